"""Masked diffusion LMs: the adapter every part of dopsd talks to, loaders (with fixes for transformers-4 remote code),
the built-in family, conversion, LoRA targets and gradient checkpointing for any architecture."""

from dopsd.models.adapter import DiffusionLM, SpecialTokens, resolve_special_tokens
from dopsd.models.builtin import MaskedDiffusionConfig, MaskedDiffusionTransformer
from dopsd.models.checkpointing import enable_gradient_checkpointing
from dopsd.models.convert import convert_causal_lm
from dopsd.models.loading import create_builtin_model, default_device, load_diffusion_lm, register_builtin_models
from dopsd.models.lora import lora_target_modules
from dopsd.models.tokenizer import build_char_tokenizer

register_builtin_models()  # AutoConfig / AutoModel / AutoModelForMaskedLM know the built-in family from here on

__all__ = [
    "DiffusionLM",
    "MaskedDiffusionConfig",
    "MaskedDiffusionTransformer",
    "SpecialTokens",
    "build_char_tokenizer",
    "convert_causal_lm",
    "create_builtin_model",
    "default_device",
    "enable_gradient_checkpointing",
    "load_diffusion_lm",
    "lora_target_modules",
    "register_builtin_models",
    "resolve_special_tokens",
]
