"""A tiny Dream-like masked diffusion LM: the test double of Dream's Hub remote code (written for dopsd's tests).

Interface facts reproduced from Dream's public modeling code, breakages under transformers 5 included:

- Qwen2-style layout ``model.layers[i].self_attn.{q,k,v,o}_proj`` and ``mlp.{gate,up,down}_proj``, head ``lm_head``;
- logits come out unshifted and are read one position to the left (the generation code shifts them);
- attention wants a 4D boolean mask (True = attend) or ``"full"``; a 2D 0/1 mask reaches SDPA as it is;
- RoPE through ``ROPE_INIT_FUNCTIONS[rope_type]`` with ``rope_type = "default"`` (transformers 5 has no such key),
  ``inv_freq`` a non-persistent buffer that ``_init_weights`` does not initialise (transformers 5 materialises such
  buffers with ``torch.empty`` and relies on ``_init_weights``), one rotary module per layer plus one in the model;
- ``_tied_weights_keys`` is a list (transformers 5 wants a mapping); ``from_pretrained`` reloads a
  ``DreamGenerationConfig`` whose ``validate`` takes no ``**kwargs``;
- transformers' gradient checkpointing API is supported (``supports_gradient_checkpointing = True``).
"""

from typing import Optional

import torch
from torch import nn
from transformers.activations import ACT2FN
from transformers.modeling_outputs import BaseModelOutput, MaskedLMOutput
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS
from transformers.modeling_utils import PreTrainedModel

from .configuration_dream import DreamConfig
from .generation_utils import DreamGenerationConfig, DreamGenerationMixin


class DreamRMSNorm(nn.Module):
    def __init__(self, hidden_size, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.variance_epsilon = eps

    def forward(self, hidden_states):
        dtype = hidden_states.dtype
        hidden_states = hidden_states.to(torch.float32)
        hidden_states = hidden_states * torch.rsqrt(hidden_states.pow(2).mean(-1, keepdim=True) + self.variance_epsilon)
        return self.weight * hidden_states.to(dtype)


class DreamRotaryEmbedding(nn.Module):
    def __init__(self, config: DreamConfig, device=None):
        super().__init__()
        self.rope_kwargs = {}
        if config.rope_scaling is not None:
            self.rope_type = config.rope_scaling.get("rope_type", config.rope_scaling.get("type"))
        else:
            self.rope_type = "default"
        self.config = config
        self.rope_init_fn = ROPE_INIT_FUNCTIONS[self.rope_type]
        inv_freq, self.attention_scaling = self.rope_init_fn(self.config, device, **self.rope_kwargs)
        self.register_buffer("inv_freq", inv_freq, persistent=False)
        self.original_inv_freq = self.inv_freq

    @torch.no_grad()
    def forward(self, x, position_ids):
        frequencies = self.inv_freq[None, :, None].float().expand(position_ids.shape[0], -1, 1)
        angles = (frequencies @ position_ids[:, None, :].float()).transpose(1, 2)
        angles = torch.cat((angles, angles), dim=-1)
        return (angles.cos() * self.attention_scaling).to(x.dtype), (angles.sin() * self.attention_scaling).to(x.dtype)


def rotate_half(x):
    first, second = x.chunk(2, dim=-1)
    return torch.cat((-second, first), dim=-1)


def apply_rotary_pos_emb(q, k, cos, sin):
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
    return q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin


class DreamMLP(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.gate_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.up_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.down_proj = nn.Linear(config.intermediate_size, config.hidden_size, bias=False)
        self.act_fn = ACT2FN[config.hidden_act]

    def forward(self, x):
        return self.down_proj(self.act_fn(self.gate_proj(x)) * self.up_proj(x))


class DreamAttention(nn.Module):
    def __init__(self, config: DreamConfig, layer_idx: Optional[int] = None):
        super().__init__()
        self.config = config
        self.layer_idx = layer_idx
        self.num_heads = config.num_attention_heads
        self.head_dim = config.hidden_size // self.num_heads
        self.num_key_value_heads = config.num_key_value_heads
        self.is_causal = False
        self.attention_dropout = config.attention_dropout
        self.q_proj = nn.Linear(config.hidden_size, self.num_heads * self.head_dim, bias=True)
        self.k_proj = nn.Linear(config.hidden_size, self.num_key_value_heads * self.head_dim, bias=True)
        self.v_proj = nn.Linear(config.hidden_size, self.num_key_value_heads * self.head_dim, bias=True)
        self.o_proj = nn.Linear(self.num_heads * self.head_dim, config.hidden_size, bias=False)
        self.rotary_emb = DreamRotaryEmbedding(config=self.config)

    def project(self, hidden_states, position_ids, position_embeddings):
        batch, length, _ = hidden_states.shape
        q = self.q_proj(hidden_states).view(batch, length, self.num_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(hidden_states).view(batch, length, self.num_key_value_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(hidden_states).view(batch, length, self.num_key_value_heads, self.head_dim).transpose(1, 2)
        cos, sin = position_embeddings if position_embeddings is not None else self.rotary_emb(v, position_ids)
        q, k = apply_rotary_pos_emb(q, k, cos, sin)
        groups = self.num_heads // self.num_key_value_heads
        return q, k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)

    def forward(self, hidden_states, attention_mask=None, position_ids=None, position_embeddings=None, **kwargs):
        batch, length, width = hidden_states.shape
        q, k, v = self.project(hidden_states, position_ids, position_embeddings)
        weights = q @ k.transpose(2, 3) / self.head_dim**0.5
        if attention_mask is not None:
            weights = weights + attention_mask[:, :, :, : k.shape[-2]]
        weights = nn.functional.softmax(weights, dim=-1, dtype=torch.float32).to(q.dtype)
        out = (weights @ v).transpose(1, 2).reshape(batch, length, width)
        return self.o_proj(out), None


class DreamSdpaAttention(DreamAttention):
    def forward(self, hidden_states, attention_mask=None, position_ids=None, position_embeddings=None, **kwargs):
        batch, length, width = hidden_states.shape
        q, k, v = self.project(hidden_states, position_ids, position_embeddings)
        out = torch.nn.functional.scaled_dot_product_attention(
            q, k, v,
            attn_mask=attention_mask if isinstance(attention_mask, torch.Tensor) else None,
            dropout_p=self.attention_dropout if self.training else 0.0,
            is_causal=False,
        )
        return self.o_proj(out.transpose(1, 2).reshape(batch, length, width)), None


DREAM_ATTENTION_CLASSES = {"eager": DreamAttention, "sdpa": DreamSdpaAttention}


class DreamDecoderLayer(nn.Module):
    def __init__(self, config: DreamConfig, layer_idx: int):
        super().__init__()
        self.self_attn = DREAM_ATTENTION_CLASSES[config._attn_implementation](config, layer_idx)
        self.mlp = DreamMLP(config)
        self.input_layernorm = DreamRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.post_attention_layernorm = DreamRMSNorm(config.hidden_size, eps=config.rms_norm_eps)

    def forward(self, hidden_states, attention_mask=None, position_ids=None, position_embeddings=None):
        attended, _ = self.self_attn(self.input_layernorm(hidden_states), attention_mask=attention_mask,
                                     position_ids=position_ids, position_embeddings=position_embeddings)
        hidden_states = hidden_states + attended
        return (hidden_states + self.mlp(self.post_attention_layernorm(hidden_states)),)


class DreamPreTrainedModel(PreTrainedModel):
    config_class = DreamConfig
    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    _no_split_modules = ["DreamDecoderLayer"]
    _supports_sdpa = True

    def _init_weights(self, module):
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            module.weight.data.normal_(mean=0.0, std=std)
            if module.bias is not None:
                module.bias.data.zero_()
        elif isinstance(module, nn.Embedding):
            module.weight.data.normal_(mean=0.0, std=std)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, config=None, cache_dir=None,
                        force_download=False, local_files_only=False, token=None, revision="main", **kwargs):
        model = super().from_pretrained(
            pretrained_model_name_or_path, *model_args, config=config, cache_dir=cache_dir,
            force_download=force_download, local_files_only=local_files_only, token=token, revision=revision,
            **kwargs,
        )
        # Dream reloads its own generation config (the generic one lacks its diffusion fields), forwarding the
        # download options of transformers 4, resume_download and proxies included.
        model.generation_config = DreamGenerationConfig.from_pretrained(
            pretrained_model_name_or_path, cache_dir=cache_dir, force_download=force_download,
            resume_download=kwargs.get("resume_download"), proxies=kwargs.get("proxies"),
            local_files_only=local_files_only, token=token, revision=revision,
            subfolder=kwargs.get("subfolder", ""), _from_auto=kwargs.get("_from_auto", False),
            _from_pipeline=kwargs.get("_from_pipeline"),
        )
        return model


class DreamBaseModel(DreamPreTrainedModel):
    def __init__(self, config: DreamConfig):
        super().__init__(config)
        self.padding_idx = config.pad_token_id
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size, self.padding_idx)
        self.layers = nn.ModuleList(DreamDecoderLayer(config, i) for i in range(config.num_hidden_layers))
        self.norm = DreamRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.rotary_emb = DreamRotaryEmbedding(config=config)
        self.gradient_checkpointing = False
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, position_ids=None, inputs_embeds=None,
                output_hidden_states=None, return_dict=None, **kwargs):
        hidden_states = self.embed_tokens(input_ids) if inputs_embeds is None else inputs_embeds
        if position_ids is None:
            position_ids = torch.arange(hidden_states.shape[1], device=hidden_states.device).unsqueeze(0)
        position_embeddings = self.rotary_emb(hidden_states, position_ids)
        all_hidden = () if output_hidden_states else None
        for layer in self.layers:
            if all_hidden is not None:
                all_hidden += (hidden_states,)
            if self.gradient_checkpointing and self.training:
                outputs = self._gradient_checkpointing_func(
                    layer.__call__, hidden_states, attention_mask, position_ids, position_embeddings
                )
            else:
                outputs = layer(hidden_states, attention_mask=attention_mask, position_ids=position_ids,
                                position_embeddings=position_embeddings)
            hidden_states = outputs[0]
        hidden_states = self.norm(hidden_states)
        if all_hidden is not None:
            all_hidden += (hidden_states,)
        return BaseModelOutput(last_hidden_state=hidden_states, hidden_states=all_hidden)


class DreamModel(DreamGenerationMixin, DreamPreTrainedModel):
    _tied_weights_keys = ["lm_head.weight"]

    def __init__(self, config):
        super().__init__(config)
        self.model = DreamBaseModel(config)
        self.vocab_size = config.vocab_size
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def reset_rope_parameters(self):
        for module in self.modules():
            if isinstance(module, DreamRotaryEmbedding):
                inv_freq, module.attention_scaling = module.rope_init_fn(module.config, module.inv_freq.device)
                module.register_buffer("inv_freq", inv_freq, persistent=False)
                module.original_inv_freq = module.inv_freq

    def get_input_embeddings(self):
        return self.model.embed_tokens

    def set_input_embeddings(self, value):
        self.model.embed_tokens = value

    def get_output_embeddings(self):
        return self.lm_head

    def set_output_embeddings(self, new_embeddings):
        self.lm_head = new_embeddings

    def forward(self, input_ids=None, attention_mask=None, position_ids=None, inputs_embeds=None, labels=None,
                output_hidden_states=None, return_dict=None, num_logits_to_keep: int = 0, **kwargs):
        outputs = self.model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                             inputs_embeds=inputs_embeds, output_hidden_states=output_hidden_states)
        logits = self.lm_head(outputs.last_hidden_state[:, -num_logits_to_keep:, :])
        return MaskedLMOutput(logits=logits, hidden_states=outputs.hidden_states)
