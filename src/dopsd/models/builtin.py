"""The built-in masked diffusion LM: a small bidirectional transformer that runs on a laptop CPU.

It is a plain Hugging Face model (registered with the Auto classes when ``dopsd`` is imported), so
``save_pretrained``/``from_pretrained``/``AutoModel`` work as for any other checkpoint. Pre-norm blocks with
RMSNorm, rotary position embeddings and a SwiGLU MLP; attention is full (no causal mask) with a key-padding mask, and
positions are counted from the first real token so that a left-padded row computes exactly what the same row
computes unpadded.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import MaskedLMOutput


class MaskedDiffusionConfig(PretrainedConfig):
    """Configuration of :class:`MaskedDiffusionTransformer`.

    Args:
        vocab_size: Number of token ids (the built-in tokenizer has 100).
        hidden_size: Width of the residual stream.
        num_hidden_layers: Number of transformer blocks.
        num_attention_heads: Attention heads per block; must divide ``hidden_size``.
        intermediate_size: Width of the SwiGLU MLP; defaults to ``4 * hidden_size``.
        max_position_embeddings: Longest sequence the model is meant for (rotary embeddings extrapolate, but
            training never saw longer).
        rope_theta: Base of the rotary frequencies.
        rms_norm_eps: Epsilon of RMSNorm.
        dropout: Dropout on attention outputs and MLP outputs during training.
        initializer_range: Standard deviation of the normal initialisation.
        tie_word_embeddings: Share the output head with the token embeddings.
        mask_token_id, pad_token_id, eos_token_id: Special ids, also read by the dopsd loader.
        attention_layout: ``full`` (bidirectional over the whole sequence) or ``block`` (block-causal in blocks of
            ``block_size``, BD3LM style). The caller builds the block mask (dopsd's adapter does, as SDAR's code
            expects of its callers); this field tells dopsd which layout the weights were trained for.
        block_size: Tokens per attention block of a ``block`` layout.
    """

    model_type = "dopsd_mdm"

    def __init__(
        self,
        vocab_size: int = 100,
        hidden_size: int = 128,
        num_hidden_layers: int = 4,
        num_attention_heads: int = 4,
        intermediate_size: int | None = None,
        max_position_embeddings: int = 512,
        rope_theta: float = 10000.0,
        rms_norm_eps: float = 1e-5,
        dropout: float = 0.0,
        initializer_range: float = 0.02,
        tie_word_embeddings: bool = True,
        mask_token_id: int | None = None,
        pad_token_id: int | None = None,
        eos_token_id: int | None = None,
        attention_layout: str = "full",
        block_size: int | None = None,
        **kwargs,
    ):
        if attention_layout not in ("full", "block"):
            raise ValueError(f"attention_layout must be full or block, got {attention_layout!r}")
        if (attention_layout == "block") != (block_size is not None):
            raise ValueError("block_size is set exactly when attention_layout is block")
        if hidden_size % num_attention_heads != 0:
            raise ValueError(f"hidden_size ({hidden_size}) must be a multiple of "
                             f"num_attention_heads ({num_attention_heads})")
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size or 4 * hidden_size
        self.max_position_embeddings = max_position_embeddings
        self.rope_theta = rope_theta
        self.rms_norm_eps = rms_norm_eps
        self.dropout = dropout
        self.initializer_range = initializer_range
        self.mask_token_id = mask_token_id
        self.attention_layout = attention_layout
        self.block_size = block_size
        super().__init__(
            pad_token_id=pad_token_id,
            eos_token_id=eos_token_id,
            tie_word_embeddings=tie_word_embeddings,
            **kwargs,
        )


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    first, second = x.chunk(2, dim=-1)
    return torch.cat((-second, first), dim=-1)


class RotaryEmbedding(nn.Module):
    def __init__(self, head_dim: int, theta: float):
        super().__init__()
        inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def forward(self, position_ids: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        angles = position_ids[..., None].to(torch.float32) * self.inv_freq.float()  # same math whatever the dtype
        angles = torch.cat((angles, angles), dim=-1)[:, None]  # (batch, 1, seq, head_dim)
        return angles.cos().to(dtype), angles.sin().to(dtype)


class Block(nn.Module):
    def __init__(self, config: MaskedDiffusionConfig):
        super().__init__()
        self.num_heads = config.num_attention_heads
        self.attn_norm = nn.RMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.qkv = nn.Linear(config.hidden_size, 3 * config.hidden_size, bias=False)
        self.out = nn.Linear(config.hidden_size, config.hidden_size, bias=False)
        self.mlp_norm = nn.RMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.gate_up = nn.Linear(config.hidden_size, 2 * config.intermediate_size, bias=False)
        self.down = nn.Linear(config.intermediate_size, config.hidden_size, bias=False)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x, cos, sin, key_mask, cache=None, layer_index: int = 0):
        batch, length, width = x.shape
        q, k, v = self.qkv(self.attn_norm(x)).view(batch, length, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        q = q * cos + _rotate_half(q) * sin
        k = k * cos + _rotate_half(k) * sin
        if cache is not None:  # keys/values of other positions (rotated at their own positions) join this pass's
            k, v = cache.update(k, v, layer_index)
        attended = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask)
        x = x + self.dropout(self.out(attended.transpose(1, 2).reshape(batch, length, width)))
        gate, up = self.gate_up(self.mlp_norm(x)).chunk(2, dim=-1)
        return x + self.dropout(self.down(F.silu(gate) * up))


class MaskedDiffusionTransformer(PreTrainedModel):
    """Bidirectional transformer returning logits for every position (``MaskedLMOutput``)."""

    config_class = MaskedDiffusionConfig
    base_model_prefix = "dopsd_mdm"
    supports_gradient_checkpointing = True
    _no_split_modules = ["Block"]
    _tied_weights_keys = {"lm_head.weight": "embed_tokens.weight"}

    def __init__(self, config: MaskedDiffusionConfig):
        super().__init__(config)
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.rotary = RotaryEmbedding(config.hidden_size // config.num_attention_heads, config.rope_theta)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.num_hidden_layers))
        self.norm = nn.RMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.gradient_checkpointing = False
        self.post_init()

    def _init_weights(self, module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=self.config.initializer_range)
        elif isinstance(module, nn.RMSNorm):
            nn.init.ones_(module.weight)
        elif isinstance(module, RotaryEmbedding):
            head_dim = self.config.hidden_size // self.config.num_attention_heads
            exponents = torch.arange(0, head_dim, 2, dtype=torch.float32, device=module.inv_freq.device) / head_dim
            module.inv_freq.copy_(1.0 / (self.config.rope_theta**exponents))

    def get_input_embeddings(self):
        return self.embed_tokens

    def set_input_embeddings(self, value):
        self.embed_tokens = value

    def get_output_embeddings(self):
        return self.lm_head

    def set_output_embeddings(self, value):
        self.lm_head = value

    def forward(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        output_hidden_states: bool = False,
        return_dict: bool = True,
        past_key_values=None,
        use_cache: bool | None = None,
        **kwargs,
    ) -> MaskedLMOutput:
        """With ``past_key_values`` (a transformers ``Cache``, e.g. ``DynamicCache``), the keys and values it holds
        are attended to besides this pass's tokens, and this pass's are appended to it (the block KV cache of the
        sampler). ``attention_mask`` then covers the cached positions first, then ``input_ids``; give
        ``position_ids`` for the new tokens (attention is bidirectional, so the cached ones may come from anywhere).

        ``attention_mask`` is a (batch, keys) padding mask (1 = real token), or a 4D (batch, 1, queries, keys) mask,
        boolean (True = may attend) or additive, used as given: how a block-causal layout reaches the model."""
        queries = input_ids.shape[1]
        full_mask = attention_mask is not None and attention_mask.dim() == 4
        if position_ids is None:
            if attention_mask is None or full_mask:
                past = 0 if past_key_values is None else past_key_values.get_seq_length()
                position_ids = torch.arange(past, past + queries, device=input_ids.device).expand_as(input_ids)
            else:
                position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)[:, -queries:]
        if full_mask:
            key_mask = attention_mask if attention_mask.dtype == torch.bool else attention_mask.to(self.dtype)
        else:
            key_mask = None if attention_mask is None else attention_mask.bool()[:, None, None, :]
        x = self.embed_tokens(input_ids)
        cos, sin = self.rotary(position_ids, x.dtype)
        for index, block in enumerate(self.blocks):
            if self.gradient_checkpointing and self.training:
                x = torch.utils.checkpoint.checkpoint(block, x, cos, sin, key_mask, use_reentrant=False)
            else:
                x = block(x, cos, sin, key_mask, past_key_values, index)
        hidden = self.norm(x)
        logits = self.lm_head(hidden)
        return MaskedLMOutput(logits=logits, hidden_states=(hidden,) if output_hidden_states else None)
