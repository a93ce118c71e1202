"""Random-weight models of the shapes the bench is run at.

``tiny`` is the built-in family at the small shape of issue 17 (hidden 256, 4 layers, vocabulary 49152);
``smollm2-135m`` and ``llada-8b`` are Llama configurations of those models' sizes (``llama-toy`` one of a few
hundred thousand parameters, for quick checks), converted to diffusion LMs the way
``dopsd convert`` does (bidirectional attention, shifted logits). Weights are random: speed does not depend on them.
The Llama shapes keep input embeddings and output head untied (SmolLM2 ties them: the same FLOPs, 28M more
parameters held in memory at the 135M shape).

Every shape also comes block-causal (``layout`` = ``AttentionLayout("block", B)``): the built-in family with
``attention_layout="block"``, a Llama converted the way ``dopsd convert --attention block`` does (the block size in its
conversion record). Same weights for the same seed whatever the layout: the layout is no parameter.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dopsd.errors import DopsdError
from dopsd.models.adapter import DiffusionLM, SpecialTokens
from dopsd.models.layout import FULL, AttentionLayout


@dataclass(frozen=True)
class Shape:
    family: str  # "builtin" or "llama"
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int
    vocab: int


SHAPES = {
    "tiny": Shape("builtin", 256, 4, 4, 4, 1024, 49152),
    "smollm2-135m": Shape("llama", 576, 30, 9, 3, 1536, 49152),
    "llada-8b": Shape("llama", 4096, 32, 32, 32, 12288, 126464),
    # a Llama small enough for checks on a CPU in seconds (`scripts/gpu_check.py --dry-run` stands it in for both)
    "llama-toy": Shape("llama", 64, 2, 4, 2, 128, 512),
}


def special_tokens(vocab: int) -> SpecialTokens:
    """The last ids play mask, EOS and padding: random weights give them no meaning anyway."""
    return SpecialTokens(mask=vocab - 1, eos=vocab - 2, pad=vocab - 2, stop=(vocab - 2,))


def build_model(shape: str, *, layers: int | None = None, dtype: torch.dtype = torch.float32,
                device: str | torch.device = "cpu", max_positions: int = 4096, seed: int = 0,
                layout: AttentionLayout = FULL) -> DiffusionLM:
    """A random-weight :class:`DiffusionLM` of the named shape (``layers`` cuts or extends the depth), full or
    block-causal attention as ``layout`` says."""
    if shape not in SHAPES:
        raise DopsdError(f"unknown shape {shape!r}: use one of {', '.join(SHAPES)}")
    spec = SHAPES[shape]
    depth = layers or spec.layers
    if depth < 1:
        raise DopsdError(f"--layers must be at least 1, got {depth}")
    torch.manual_seed(seed)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # build in the target dtype: an 8B model in float32 would not fit twice
    try:
        with torch.device(device):
            model, shifted = _build(spec, depth, max_positions, layout)
    finally:
        torch.set_default_dtype(previous)
    model.eval()
    return DiffusionLM(model, None, tokens=special_tokens(spec.vocab), shift_logits=shifted,
                       bidirectional_mask=shifted, handles_padding=True)


def _build(spec: Shape, depth: int, max_positions: int, layout: AttentionLayout):
    tokens = special_tokens(spec.vocab)
    if spec.family == "builtin":
        from dopsd.models.builtin import MaskedDiffusionConfig, MaskedDiffusionTransformer

        config = MaskedDiffusionConfig(vocab_size=spec.vocab, hidden_size=spec.hidden, num_hidden_layers=depth,
                                       num_attention_heads=spec.heads, intermediate_size=spec.intermediate,
                                       max_position_embeddings=max_positions, mask_token_id=tokens.mask,
                                       pad_token_id=tokens.pad, eos_token_id=tokens.eos,
                                       attention_layout=layout.kind, block_size=layout.block_size)
        return MaskedDiffusionTransformer(config), False
    from transformers import LlamaConfig, LlamaForCausalLM

    from dopsd.models.convert import DIFFUSION_CONFIG_KEY, disable_causal_attention

    config = LlamaConfig(vocab_size=spec.vocab, hidden_size=spec.hidden, num_hidden_layers=depth,
                         num_attention_heads=spec.heads, num_key_value_heads=spec.kv_heads,
                         intermediate_size=spec.intermediate, max_position_embeddings=max_positions,
                         pad_token_id=tokens.pad, eos_token_id=tokens.eos, bos_token_id=None,
                         tie_word_embeddings=False)
    config.mask_token_id = tokens.mask
    record = {"bidirectional": True, "shift_logits": True}
    if layout.is_block:
        record.update(layout.as_dict())
    setattr(config, DIFFUSION_CONFIG_KEY, record)
    model = LlamaForCausalLM(config)
    disable_causal_attention(model)
    return model, True


def parameter_counts(lm: DiffusionLM) -> tuple[int, int]:
    """(parameters of the transformer body, parameters of the output head): the FLOP count needs them apart."""
    head = lm.model.get_output_embeddings().weight
    total = sum(p.numel() for p in lm.model.parameters())
    embed = lm.model.get_input_embeddings().weight
    body = total - head.numel() - (embed.numel() if embed is not head else 0)
    return body, head.numel()
