"""Tiny models the tests build themselves: no hub, no downloads. Exactness checks run in float64."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from transformers import LlamaConfig, LlamaForCausalLM
from transformers.modeling_outputs import MaskedLMOutput

import dopsd  # noqa: F401  (registers the built-in family)
from dopsd.models import DiffusionLM, SpecialTokens, build_char_tokenizer, convert_causal_lm, create_builtin_model


def tiny_builtin(seed: int = 0) -> DiffusionLM:
    lm = create_builtin_model(seed=seed, hidden_size=32, num_hidden_layers=2, num_attention_heads=4)
    lm.model.double()
    return lm


def tiny_llama(seed: int = 0):
    """A random 2-layer Llama and a character tokenizer without a mask token: an autoregressive LM."""
    tokenizer = build_char_tokenizer(with_mask=False)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(config).eval(), tokenizer


def tiny_converted_llama(seed: int = 0) -> DiffusionLM:
    model, tokenizer = convert_causal_lm(*tiny_llama(seed))
    model.double()
    return DiffusionLM(model, tokenizer, shift_logits=True, bidirectional_mask=True)


@pytest.fixture
def builtin_lm() -> DiffusionLM:
    return tiny_builtin()


@pytest.fixture
def llama_lm() -> DiffusionLM:
    return tiny_converted_llama()


class FixedLogits(nn.Module):
    """A mock diffusion LM whose logits depend only on the position counted from the END of the sequence.

    The response always sits at the end, so ``table[i]`` are the logits of response position i whatever the prompt.
    It has no output head module, so selected-position logits go through the full-logits fallback.
    """

    def __init__(self, table: torch.Tensor):
        super().__init__()
        self.table = nn.Parameter(table.double(), requires_grad=False)

    def forward(self, input_ids, attention_mask=None, **kwargs):
        logits = self.table[-input_ids.shape[1] :].expand(input_ids.shape[0], -1, -1)
        return MaskedLMOutput(logits=logits)

    def get_output_embeddings(self):
        return None


def fixed_logits_lm(table: torch.Tensor, *, mask: int, eos: int) -> DiffusionLM:
    tokens = SpecialTokens(mask=mask, eos=eos, pad=eos, stop=(eos,))
    return DiffusionLM(FixedLogits(table), tokenizer=None, tokens=tokens, handles_padding=True)


class IgnoresAttentionMask(nn.Module):
    """Wraps a model and drops the attention mask and positions, as LLaDA's remote code does."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        self.config = inner.config

    def forward(self, input_ids, attention_mask=None, **kwargs):
        return self.inner(input_ids=input_ids)

    def get_output_embeddings(self):
        return self.inner.get_output_embeddings()

    def get_input_embeddings(self):
        return self.inner.get_input_embeddings()


@pytest.fixture(scope="session")
def llada_folder(tmp_path_factory):
    """A tiny LLaDA-like remote-code checkpoint folder (see tests/doubles)."""
    from doubles import write_llada_like

    return write_llada_like(tmp_path_factory.mktemp("doubles") / "llada_like")


@pytest.fixture(scope="session")
def dream_folder(tmp_path_factory):
    """A tiny Dream-like remote-code checkpoint folder (see tests/doubles)."""
    from doubles import write_dream_like

    return write_dream_like(tmp_path_factory.mktemp("doubles") / "dream_like")
