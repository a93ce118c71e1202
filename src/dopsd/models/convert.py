"""Turning an autoregressive Hugging Face LM into a masked diffusion LM.

Three changes make a causal LM a diffusion LM: attention sees the whole sequence, or (``layout`` block) its own block
and the blocks before it, BD3LM's layout (the adapter passes a 4D mask with no causal part, and attention modules are
told they are not causal), a mask token exists (added to the tokenizer, embeddings resized), and optionally logits
stay shifted as in Dream (position i read from the hidden state at i-1), which keeps the pretrained head's
next-token meaning. The choices are written into the config under ``dopsd_diffusion`` so that a saved model loads
back as the same diffusion LM.
"""

from __future__ import annotations

from torch import nn
from transformers import PreTrainedModel

from dopsd.errors import DopsdError
from dopsd.models.layout import FULL, AttentionLayout

# Causal LM families whose attention takes the 4D masks a conversion relies on (checked by tests on tiny models).
CONVERTIBLE_MODEL_TYPES = ("llama", "qwen2", "qwen3", "mistral", "smollm3")

DIFFUSION_CONFIG_KEY = "dopsd_diffusion"
DEFAULT_MASK_TOKEN = "<|mdm_mask|>"


def disable_causal_attention(model: nn.Module) -> None:
    """Marks every attention module non-causal (the flag flash-attention style kernels read)."""
    for module in model.modules():
        if hasattr(module, "is_causal"):
            module.is_causal = False


def forget_gguf_origin(model: PreTrainedModel) -> PreTrainedModel:
    """Lets a model loaded from a GGUF file be trained and saved like any other.

    transformers dequantizes GGUF weights into ordinary float tensors but keeps a quantizer attached that refuses
    ``save_pretrained``. When every weight is a plain float tensor the quantizer has nothing left to do, so it is
    detached; weights still packed in GGUF blocks are refused with a message.
    """
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is None:
        return model
    if not all(parameter.dtype.is_floating_point for parameter in model.parameters()):
        raise DopsdError(
            "this GGUF checkpoint was loaded with packed (quantized) weights, which cannot be trained; "
            "uninstall the `kernels` package so that transformers dequantizes it"
        )
    quantizer.remove_quantization_config(model)
    return model


def convert_causal_lm(
    model: PreTrainedModel, tokenizer, *, mask_token: str = DEFAULT_MASK_TOKEN, shift_logits: bool = True,
    layout: AttentionLayout = FULL,
) -> tuple[PreTrainedModel, object]:
    """Makes ``model`` a masked diffusion LM in place (full attention, or ``layout`` block-causal); returns it with
    the updated tokenizer.

    The mask token is added to the tokenizer when it has none; new embedding rows start at the mean of the existing
    ones. An existing ``tokenizer.mask_token`` is kept.
    """
    if layout.is_block and model.config.model_type not in CONVERTIBLE_MODEL_TYPES:
        raise DopsdError(f"block-attention conversion supports the {', '.join(CONVERTIBLE_MODEL_TYPES)} families, not "
                         f"{model.config.model_type!r}: use --attention full")
    forget_gguf_origin(model)
    if tokenizer.mask_token is None:
        tokenizer.add_special_tokens({"mask_token": mask_token})
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    if len(tokenizer) > model.get_input_embeddings().weight.shape[0]:
        model.resize_token_embeddings(len(tokenizer))
    model.config.mask_token_id = tokenizer.mask_token_id
    record = {"bidirectional": True, "shift_logits": bool(shift_logits)}
    if layout.is_block:
        record.update(layout.as_dict())
    setattr(model.config, DIFFUSION_CONFIG_KEY, record)
    disable_causal_attention(model)
    return model, tokenizer


def diffusion_settings(config) -> dict | None:
    """The conversion record of a converted model's config, or ``None`` for any other model."""
    return getattr(config, DIFFUSION_CONFIG_KEY, None)
