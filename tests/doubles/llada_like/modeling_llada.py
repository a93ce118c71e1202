"""A tiny LLaDA-like masked diffusion LM: the test double of LLaDA's Hub remote code (written for dopsd's tests).

Interface facts reproduced from LLaDA's public modeling code, breakages under transformers 5 included:

- layout ``model.transformer`` (a ``ModuleDict``: ``wte``, ``emb_drop``, ``blocks``, ``ln_f``, and the output head
  ``ff_out`` when weights are not tied); each Llama-style block has ``q_proj``, ``k_proj``, ``v_proj``, ``attn_out``,
  ``ff_proj`` (gate), ``up_proj`` and ``ff_out`` (down) -- the same name as the output head;
- attention is bidirectional and ignores the attention mask (``attn_mask=None`` is hard-coded); there is no
  ``position_ids`` argument, positions are always 0..T-1;
- the forward returns ``CausalLMOutputWithPast`` with ``logits`` read unshifted;
- no transformers gradient-checkpointing support (``supports_gradient_checkpointing`` is unset); the inner model has
  its own ``set_activation_checkpointing`` switch instead;
- ``LLaDAModelLM.__init__`` never calls ``post_init()`` (transformers 5 then lacks ``all_tied_weights_keys``),
  ``tie_weights()`` takes no arguments, and ``forward`` reads ``self.config.use_cache``.
"""

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoModel, PreTrainedModel
from transformers.modeling_outputs import CausalLMOutputWithPast

from .configuration_llada import BlockType, LLaDAConfig, ModelConfig


class BufferCache(dict):
    """Rotary tables shared by every block, kept outside the module's buffers (as LLaDA does)."""


class RMSLayerNorm(nn.Module):
    def __init__(self, config: ModelConfig, size: Optional[int] = None):
        super().__init__()
        self.eps = config.rms_norm_eps
        self.weight = nn.Parameter(torch.ones(size or config.d_model, device=config.init_device))

    def forward(self, x):
        dtype = x.dtype
        x = x.float()
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x.to(dtype)


class RotaryEmbedding(nn.Module):
    def __init__(self, config: ModelConfig, cache: BufferCache):
        super().__init__()
        self.config = config
        self.cache = cache
        self.table(config.max_sequence_length, torch.device("cpu"))  # warmed at build time, like LLaDA

    def table(self, length: int, device: torch.device):
        sin, cos = self.cache.get("rope_pos_sin"), self.cache.get("rope_pos_cos")
        if sin is not None and sin.shape[-2] >= length:
            if sin.device != device:
                sin, cos = sin.to(device), cos.to(device)
                self.cache["rope_pos_sin"], self.cache["rope_pos_cos"] = sin, cos
            return sin[:, :, :length], cos[:, :, :length]
        dim = self.config.d_model // self.config.n_heads
        inv_freq = 1.0 / (self.config.rope_theta ** (torch.arange(0, dim, 2, device=device, dtype=torch.float) / dim))
        angles = torch.outer(torch.arange(length, device=device, dtype=torch.float), inv_freq)
        angles = torch.cat((angles, angles), dim=-1)
        sin, cos = angles.sin()[None, None], angles.cos()[None, None]
        self.cache["rope_pos_sin"], self.cache["rope_pos_cos"] = sin, cos
        return sin, cos

    @staticmethod
    def rotate(x):
        first, second = x.chunk(2, dim=-1)
        return torch.cat((-second, first), dim=-1)

    def forward(self, q, k):
        sin, cos = self.table(k.shape[-2], q.device)
        qf, kf = q.float(), k.float()
        rotated_q = qf * cos + self.rotate(qf) * sin
        rotated_k = kf * cos + self.rotate(kf) * sin
        return rotated_q.type_as(q), rotated_k.type_as(k)


class LLaDABlock(nn.Module):
    def __init__(self, layer_id: int, config: ModelConfig, cache: BufferCache):
        super().__init__()
        self.layer_id = layer_id
        self.config = config
        self.hidden_size = config.mlp_hidden_size or config.mlp_ratio * config.d_model
        self.dropout = nn.Dropout(config.residual_dropout)
        self.attn_out = nn.Linear(config.d_model, config.d_model, bias=config.include_bias, device=config.init_device)
        self.ff_out = nn.Linear(self.hidden_size, config.d_model, bias=config.include_bias, device=config.init_device)
        self.rotary_emb = RotaryEmbedding(config, cache) if config.rope else None
        self._activation_checkpoint_fn = None

    def attention(self, q, k, v, attention_bias=None, layer_past=None, use_cache=False):
        batch, length, width = q.shape
        heads, kv_heads = self.config.n_heads, self.config.effective_n_kv_heads
        q = q.view(batch, length, heads, width // heads).transpose(1, 2)
        k = k.view(batch, length, kv_heads, width // heads).transpose(1, 2)
        v = v.view(batch, length, kv_heads, width // heads).transpose(1, 2)
        if kv_heads != heads:
            k = k.repeat_interleave(heads // kv_heads, dim=1)
            v = v.repeat_interleave(heads // kv_heads, dim=1)
        if self.rotary_emb is not None:
            q, k = self.rotary_emb(q, k)
        # The attention bias (where the padding mask ended up) is never applied: bidirectional, mask ignored.
        att = F.scaled_dot_product_attention(
            q, k, v, attn_mask=None, dropout_p=self.config.attention_dropout if self.training else 0.0, is_causal=False
        )
        att = att.transpose(1, 2).contiguous().view(batch, length, width)
        return self.attn_out(att), ((k, v) if use_cache else None)

    @classmethod
    def build(cls, layer_id: int, config: ModelConfig, cache: BufferCache):
        if config.block_type == BlockType.llama:
            return LLaDALlamaBlock(layer_id, config, cache)
        raise NotImplementedError(f"block type {config.block_type!r} is not part of this double")


class LLaDALlamaBlock(LLaDABlock):
    def __init__(self, layer_id: int, config: ModelConfig, cache: BufferCache):
        super().__init__(layer_id, config, cache)
        head_dim = config.d_model // config.n_heads
        bias = config.include_bias or bool(config.include_qkv_bias)
        self.attn_norm = RMSLayerNorm(config)
        self.ff_norm = RMSLayerNorm(config)
        self.q_proj = nn.Linear(config.d_model, config.d_model, bias=bias, device=config.init_device)
        kv_width = config.effective_n_kv_heads * head_dim
        self.k_proj = nn.Linear(config.d_model, kv_width, bias=bias, device=config.init_device)
        self.v_proj = nn.Linear(config.d_model, kv_width, bias=bias, device=config.init_device)
        self.ff_proj = nn.Linear(config.d_model, self.hidden_size, bias=config.include_bias, device=config.init_device)
        self.up_proj = nn.Linear(config.d_model, self.hidden_size, bias=config.include_bias, device=config.init_device)

    def forward(self, x, attention_bias=None, layer_past=None, use_cache=False):
        normed = self.attn_norm(x)
        q, k, v = self.q_proj(normed), self.k_proj(normed), self.v_proj(normed)
        if self._activation_checkpoint_fn is not None:
            att, cache = self._activation_checkpoint_fn(self.attention, q, k, v, attention_bias, layer_past, use_cache)
        else:
            att, cache = self.attention(q, k, v, attention_bias, layer_past=layer_past, use_cache=use_cache)
        x = x + self.dropout(att)
        residual = x
        x = self.ff_norm(x)
        x, x_up = self.ff_proj(x), self.up_proj(x)
        x = F.silu(x) * x_up
        x = self.dropout(self.ff_out(x))
        return residual + x, cache


class LLaDAOutput(tuple):
    """``(logits, attn_key_values, hidden_states)``, with attribute access, as LLaDA's inner model returns."""

    def __new__(cls, logits, attn_key_values=None, hidden_states=None):
        return super().__new__(cls, (logits, attn_key_values, hidden_states))

    logits = property(lambda self: self[0])
    attn_key_values = property(lambda self: self[1])
    hidden_states = property(lambda self: self[2])


class LLaDAModel(nn.Module):
    def __init__(self, config: ModelConfig, init_params: bool = True):
        super().__init__()
        self.config = config
        self.__cache = BufferCache()
        self.activation_checkpointing_strategy = None
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(config.embedding_size or config.vocab_size, config.d_model, device=config.init_device),
            emb_drop=nn.Dropout(config.embedding_dropout),
            ln_f=RMSLayerNorm(config),
        ))
        self.transformer.update({"blocks": nn.ModuleList(
            LLaDABlock.build(i, config, self.__cache) for i in range(config.n_layers)
        )})
        if not config.weight_tying:
            self.transformer.update({"ff_out": nn.Linear(
                config.d_model, config.embedding_size or config.vocab_size, bias=config.include_bias,
                device=config.init_device,
            )})

    def set_activation_checkpointing(self, strategy):
        """LLaDA's own switch (not transformers' API): checkpoints the attention of every block."""
        self.activation_checkpointing_strategy = strategy
        function = None
        if strategy is not None:
            def function(fn, *args):
                return torch.utils.checkpoint.checkpoint(fn, *args, use_reentrant=False)
        for block in self.transformer.blocks:
            block._activation_checkpoint_fn = function

    def forward(self, input_ids, input_embeddings=None, attention_mask=None, attention_bias=None,
                past_key_values=None, use_cache=False, last_logits_only=False, output_hidden_states=None):
        batch, length = input_ids.shape if input_embeddings is None else input_embeddings.shape[:2]
        x = self.transformer.wte(input_ids) if input_embeddings is None else input_embeddings
        x = self.transformer.emb_drop(x)
        if attention_mask is not None and 0.0 in attention_mask:
            mask = attention_mask.to(dtype=torch.float).view(batch, -1)[:, None, None, :]
            attention_bias = (1.0 - mask) * torch.finfo(mask.dtype).min
        hidden = [] if output_hidden_states else None
        caches = [] if use_cache else None
        for block in self.transformer.blocks:
            if hidden is not None:
                hidden.append(x)
            x, cache = block(x, attention_bias=attention_bias, use_cache=use_cache)
            if caches is not None:
                caches.append(cache)
        if last_logits_only:
            x = x[:, -1:]
        x = self.transformer.ln_f(x)
        if hidden is not None:
            hidden.append(x)
        if self.config.weight_tying:
            logits = F.linear(x, self.transformer.wte.weight, None)
        else:
            logits = self.transformer.ff_out(x)
        if self.config.scale_logits:
            logits.mul_(1 / math.sqrt(self.config.d_model))
        return LLaDAOutput(logits, caches, tuple(hidden) if hidden is not None else None)


def create_model_config_from_pretrained_config(config: LLaDAConfig) -> ModelConfig:
    from dataclasses import fields

    return ModelConfig(**{field.name: getattr(config, field.name) for field in fields(ModelConfig)})


class LLaDAModelLM(PreTrainedModel):
    config_class = LLaDAConfig
    base_model_prefix = "model"
    _no_split_modules = ["LLaDABlock", "LLaDALlamaBlock"]

    def __init__(self, config: LLaDAConfig, model: Optional[LLaDAModel] = None, init_params: bool = False):
        super().__init__(config)
        if model is None:
            model_config = create_model_config_from_pretrained_config(config)
            model_config.init_device = "cpu"
            self.model = LLaDAModel(model_config, init_params=init_params)
        else:
            self.model = model
        # (no post_init() here, as in LLaDA's code)

    def forward(self, input_ids=None, inputs_embeds=None, attention_mask=None, attention_bias=None,
                past_key_values=None, labels=None, use_cache=None, output_attentions=None,
                output_hidden_states=None, return_dict=None):
        if use_cache is None:
            use_cache = self.config.use_cache
        return_dict = return_dict if return_dict is not None else self.config.use_return_dict
        outputs = self.model.forward(
            input_ids=input_ids, input_embeddings=inputs_embeds, attention_mask=attention_mask,
            attention_bias=attention_bias, past_key_values=past_key_values, use_cache=use_cache,
            output_hidden_states=output_hidden_states,
        )
        if labels is not None:
            import warnings

            warnings.warn("Note that for LLaDA, you cannot calculate the loss here.", UserWarning)
        if not return_dict:
            return (outputs.logits,) + tuple(outputs[1:])
        return CausalLMOutputWithPast(
            logits=outputs.logits, past_key_values=outputs.attn_key_values, hidden_states=outputs.hidden_states
        )

    def can_generate(self) -> bool:
        return True

    def get_input_embeddings(self):
        return self.model.transformer.wte

    def set_input_embeddings(self, value):
        self.model.transformer.wte = value

    def get_output_embeddings(self):
        return self.model.transformer.wte if self.config.weight_tying else self.model.transformer.ff_out

    def set_output_embeddings(self, value):
        if self.config.weight_tying:
            self.model.transformer.wte = value
        else:
            self.model.transformer.ff_out = value

    def tie_weights(self):
        if self.config.weight_tying:
            self.model.transformer.ff_out = self.model.transformer.wte


AutoModel.register(LLaDAConfig, LLaDAModelLM)
