"""Loading any Hugging Face masked diffusion LM (or a dopsd-converted one) as a :class:`DiffusionLM`."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForMaskedLM,
    AutoTokenizer,
)
from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES, MODEL_FOR_MASKED_LM_MAPPING_NAMES

from dopsd.errors import DopsdError
from dopsd.models.adapter import DiffusionLM, resolve_special_tokens
from dopsd.models.convert import diffusion_settings, disable_causal_attention

# Remote-code models known to read their logits one position to the left (Dream).
SHIFTED_MODEL_TYPES = {"Dream", "dream"}


def default_device() -> str:
    """Where a model goes when nobody says: the GPU when there is one."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def parse_dtype(dtype: str | torch.dtype | None):
    """``"auto"``/``None`` keep the checkpoint's dtype; a name such as ``"bfloat16"`` selects that dtype."""
    if dtype is None or dtype == "auto" or isinstance(dtype, torch.dtype):
        return dtype or "auto"
    value = getattr(torch, str(dtype), None)
    if not isinstance(value, torch.dtype):
        raise DopsdError(f"unknown dtype {dtype!r}: use auto, float32, bfloat16 or float16")
    return value


def _model_class(config, trust_remote_code: bool):
    if diffusion_settings(config):
        return AutoModelForCausalLM
    auto_map = getattr(config, "auto_map", None) or {}
    if auto_map and trust_remote_code:
        for name in ("AutoModelForMaskedLM", "AutoModel", "AutoModelForCausalLM"):
            if name in auto_map:
                return {"AutoModelForMaskedLM": AutoModelForMaskedLM, "AutoModel": AutoModel,
                        "AutoModelForCausalLM": AutoModelForCausalLM}[name]
    if config.model_type in MODEL_FOR_MASKED_LM_MAPPING_NAMES or config.model_type == "dopsd_mdm":
        return AutoModelForMaskedLM
    if auto_map:
        raise DopsdError("this model's code ships with the checkpoint: pass --trust-remote-code to run it")
    if config.model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        raise DopsdError(
            f"{config.model_type!r} is an autoregressive model, not a masked diffusion LM: "
            "convert it first with `dopsd convert`"
        )
    return AutoModel


def load_diffusion_lm(
    path: str | Path,
    *,
    tokenizer_path: str | Path | None = None,
    trust_remote_code: bool = False,
    dtype: str | torch.dtype | None = "auto",
    device: str | torch.device | None = None,
    gguf_file: str | None = None,
    mask_token_id: int | None = None,
    eos_token_id: int | None = None,
    pad_token_id: int | None = None,
    shift_logits: bool | None = None,
    handles_padding: bool | None = None,
) -> DiffusionLM:
    """Loads a checkpoint folder (or hub name) as a diffusion LM, in eval mode.

    Token ids not given come from the tokenizer, then the config. ``shift_logits`` defaults to what the checkpoint
    says (dopsd-converted models record it; Dream shifts). Errors a user can fix raise :class:`DopsdError`.
    """
    path = str(path)
    if not Path(path).exists() and (path.startswith((".", "/", "~")) or path.count("/") != 1):
        raise DopsdError(f"no model folder at {path!r}")
    extra = {"gguf_file": gguf_file} if gguf_file else {}
    try:
        config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code, **extra)
        model_class = _model_class(config, trust_remote_code)
        model = model_class.from_pretrained(path, trust_remote_code=trust_remote_code, dtype=parse_dtype(dtype), **extra)
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_path or path, trust_remote_code=trust_remote_code, **extra)
    except DopsdError:
        raise
    except (OSError, ValueError) as error:
        raise DopsdError(f"cannot load a model from {path!r}: {str(error).splitlines()[0]}") from error
    if device is not None:
        model.to(device)
    model.eval()
    settings = diffusion_settings(model.config) or {}
    if settings.get("bidirectional"):
        disable_causal_attention(model)
    if shift_logits is None:
        shift_logits = bool(settings.get("shift_logits", config.model_type in SHIFTED_MODEL_TYPES))
    tokens = resolve_special_tokens(
        model, tokenizer, mask_token_id=mask_token_id, eos_token_id=eos_token_id, pad_token_id=pad_token_id
    )
    return DiffusionLM(
        model,
        tokenizer,
        tokens=tokens,
        shift_logits=shift_logits,
        bidirectional_mask=bool(settings.get("bidirectional")),
        handles_padding=handles_padding,
    )
