"""Configuration of the LLaDA-like test double (remote code, written for dopsd's tests).

Interface facts reproduced from LLaDA's public remote code: every field lives on a ``ModelConfig`` dataclass whose
defaults are GPT-2's (so ``mask_token_id`` defaults to 50256, not LLaDA's 126336), ``LLaDAConfig`` merges those
defaults with the JSON and hands ``use_cache`` to ``PretrainedConfig`` as a plain keyword (which transformers 5 drops),
and ``hidden_size`` / ``num_attention_heads`` / ``num_hidden_layers`` are read-only properties.
"""

from dataclasses import dataclass
from enum import Enum
from typing import Optional

from transformers import AutoConfig, PretrainedConfig


class StrEnum(str, Enum):
    def __str__(self) -> str:
        return self.value


class ActivationType(StrEnum):
    silu = "silu"
    swiglu = "swiglu"


class BlockType(StrEnum):
    sequential = "sequential"
    llama = "llama"


class LayerNormType(StrEnum):
    default = "default"
    rms = "rms"


@dataclass
class ModelConfig:
    d_model: int = 768
    n_heads: int = 12
    n_kv_heads: Optional[int] = None
    n_layers: int = 12
    mlp_ratio: int = 4
    mlp_hidden_size: Optional[int] = None
    activation_type: ActivationType = ActivationType.swiglu
    block_type: BlockType = BlockType.sequential
    rope: bool = False
    rope_full_precision: bool = True
    rope_theta: float = 10000.0
    attention_dropout: float = 0.1
    residual_dropout: float = 0.1
    embedding_dropout: float = 0.1
    layer_norm_type: LayerNormType = LayerNormType.default
    rms_norm_eps: float = 1e-05
    max_sequence_length: int = 1024
    include_bias: bool = False
    include_qkv_bias: Optional[bool] = False
    scale_logits: bool = False
    vocab_size: int = 50257
    embedding_size: Optional[int] = 50304
    weight_tying: bool = True
    eos_token_id: int = 50256
    pad_token_id: int = 50256
    mask_token_id: Optional[int] = 50256
    init_device: Optional[str] = None

    @property
    def effective_n_kv_heads(self) -> int:
        return self.n_heads if self.n_kv_heads is None else self.n_kv_heads


class LLaDAConfig(PretrainedConfig):
    model_type = "llada"
    keys_to_ignore_at_inference = ["past_key_values"]

    def __init__(self, use_cache: bool = False, **kwargs):
        merged = ModelConfig().__dict__
        merged.update(kwargs)
        merged.update({"use_cache": use_cache})
        merged.update({"architectures": merged.get("architectures", ["LLaDAModelLM"])})
        super().__init__(**merged)

    @property
    def num_attention_heads(self):
        return self.n_heads

    @property
    def num_hidden_layers(self):
        return self.n_layers

    @property
    def hidden_size(self):
        return self.d_model


AutoConfig.register("llada", LLaDAConfig)
