"""A2D-Qwen3 as dllm ships it (``dllm/pipelines/a2d``): the test double, written for dopsd's tests.

dllm turns an autoregressive Qwen3 into a diffusion LM ("AR to diffusion") by subclassing transformers' own Qwen3
classes and replacing the model's causal mask with a padding-only (bidirectional) one; a BD3LM checkpoint of the
same code gets its block-causal mask from the caller, as a 4D mask that is passed through unchanged. Interface facts
reproduced from dllm's code:

- ``model_type = "a2d-qwen3"``; the classes register themselves with the Auto classes at import;
- ``A2DQwen3Model.forward`` mirrors transformers 4.5x's ``Qwen3Model.forward`` and looks each layer's mask up by
  ``decoder_layer.attention_type``, an attribute transformers 5's ``Qwen3DecoderLayer`` no longer has (its layer types
  moved to ``config.layer_types``): under transformers 5 every forward raises ``AttributeError``;
- a 2D mask becomes a 4D additive padding mask (``_prepare_4d_attention_mask``); a 4D mask is used as given;
- the model type says nothing about full or block attention: the same code runs MDLM and BD3LM checkpoints.
"""

from typing import Optional

import torch
import transformers
from torch import nn
from transformers.cache_utils import Cache, DynamicCache
from transformers.modeling_attn_mask_utils import _prepare_4d_attention_mask
from transformers.modeling_outputs import BaseModelOutputWithPast


class A2DQwen3Config(transformers.Qwen3Config):
    model_type = "a2d-qwen3"


class A2DQwen3Model(transformers.Qwen3Model):
    def forward(self, input_ids: Optional[torch.LongTensor] = None, attention_mask: Optional[torch.Tensor] = None,
                position_ids: Optional[torch.LongTensor] = None, past_key_values: Optional[Cache] = None,
                inputs_embeds: Optional[torch.FloatTensor] = None, use_cache: Optional[bool] = None,
                cache_position: Optional[torch.LongTensor] = None, **kwargs) -> BaseModelOutputWithPast:
        if (input_ids is None) ^ (inputs_embeds is not None):
            raise ValueError("You must specify exactly one of input_ids or inputs_embeds")
        if inputs_embeds is None:
            inputs_embeds = self.embed_tokens(input_ids)
        if use_cache and past_key_values is None:
            past_key_values = DynamicCache(config=self.config)
        if cache_position is None:
            seen = past_key_values.get_seq_length() if past_key_values is not None else 0
            cache_position = torch.arange(seen, seen + inputs_embeds.shape[1], device=inputs_embeds.device)
        if position_ids is None:
            position_ids = cache_position.unsqueeze(0)
        # bidirectional, padding-only mask instead of the causal one
        if not isinstance(causal_mask_mapping := attention_mask, dict):
            if attention_mask is None:
                attention_mask = torch.ones(inputs_embeds.shape[:2], device=inputs_embeds.device, dtype=torch.long)
            if not (isinstance(attention_mask, torch.Tensor) and attention_mask.ndim == 4):
                attention_mask = _prepare_4d_attention_mask(attention_mask, self.dtype)
            causal_mask_mapping = {"full_attention": attention_mask}
            if self.has_sliding_layers:
                causal_mask_mapping["sliding_attention"] = attention_mask
        hidden_states = inputs_embeds
        position_embeddings = self.rotary_emb(hidden_states, position_ids)
        for decoder_layer in self.layers[: self.config.num_hidden_layers]:
            hidden_states = decoder_layer(
                hidden_states,
                attention_mask=causal_mask_mapping[decoder_layer.attention_type],
                position_ids=position_ids,
                past_key_values=past_key_values,
                use_cache=use_cache,
                cache_position=cache_position,
                position_embeddings=position_embeddings,
                **kwargs,
            )
        hidden_states = self.norm(hidden_states)
        return BaseModelOutputWithPast(last_hidden_state=hidden_states,
                                       past_key_values=past_key_values if use_cache else None)


class A2DQwen3LMHeadModel(transformers.Qwen3ForCausalLM):
    config: A2DQwen3Config

    def __init__(self, config):
        transformers.Qwen3PreTrainedModel.__init__(self, config)
        self.model = A2DQwen3Model(config)
        self.vocab_size = config.vocab_size
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()


transformers.AutoConfig.register("a2d-qwen3", A2DQwen3Config)
transformers.AutoModel.register(A2DQwen3Config, A2DQwen3LMHeadModel)
transformers.AutoModelForMaskedLM.register(A2DQwen3Config, A2DQwen3LMHeadModel)
