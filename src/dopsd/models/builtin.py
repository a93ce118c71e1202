"""Creating a randomly initialised model of the built-in family, with its tokenizer."""

from __future__ import annotations

import torch

from dopsd.models.adapter import DiffusionLM
from dopsd.models.tiny import MaskedDiffusionConfig, MaskedDiffusionTransformer
from dopsd.models.tokenizer import build_char_tokenizer


def create_builtin_model(seed: int = 0, **config_overrides) -> DiffusionLM:
    """A fresh :class:`MaskedDiffusionTransformer` (defaults of :class:`MaskedDiffusionConfig`) with the char tokenizer."""
    tokenizer = build_char_tokenizer()
    config = MaskedDiffusionConfig(
        vocab_size=len(tokenizer),
        mask_token_id=tokenizer.mask_token_id,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        **config_overrides,
    )
    torch.manual_seed(seed)
    model = MaskedDiffusionTransformer(config).eval()
    return DiffusionLM(model, tokenizer, handles_padding=True)
