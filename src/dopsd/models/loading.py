"""Loading any Hugging Face masked diffusion LM (or a dopsd-converted one) as a :class:`DiffusionLM`; creating a new
model of the built-in family, and registering that family with the transformers Auto classes."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForMaskedLM,
    AutoTokenizer,
    PretrainedConfig,
)
from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES, MODEL_FOR_MASKED_LM_MAPPING_NAMES

from dopsd.errors import DopsdError
from dopsd.hub import cached_on_disk, hub_unreachable
from dopsd.models import compat
from dopsd.models.adapter import DiffusionLM, resolve_special_tokens
from dopsd.models.builtin import MaskedDiffusionConfig, MaskedDiffusionTransformer
from dopsd.models.convert import diffusion_settings, disable_causal_attention
from dopsd.models.layout import BLOCK_MODEL_FAMILIES, FULL, AttentionLayout, layout_from_config
from dopsd.models.tokenizer import build_char_tokenizer

logger = logging.getLogger(__name__)

# The built-in family's model type (dopsd.models.builtin): always loaded with dopsd's own code.
BUILTIN_MODEL_TYPE = "dopsd_mdm"

# Remote-code models known to read their logits one position to the left (Dream).
SHIFTED_MODEL_TYPES = {"Dream", "dream"}

# Auto classes a remote-code folder's ``auto_map`` is searched for, in order: the ones with an output head first
# (SDAR's ``AutoModel`` is its headless backbone, its LM is under ``AutoModelForCausalLM``).
REMOTE_AUTO_CLASSES = ("AutoModelForMaskedLM", "AutoModelForCausalLM", "AutoModel")

# Names a mask token goes by in tokenizers that do not declare it as their ``mask_token`` (LLaDA's: ``<|mdm_mask|>``,
# SDAR's and TraDo's: ``<|MASK|>``).
MASK_TOKEN_NAMES = ("<|mdm_mask|>", "<|mask|>", "<|MASK|>", "[MASK]", "<mask>")


def register_builtin_models() -> None:
    """Registers the built-in family with the transformers Auto classes (done once, on ``import dopsd``)."""
    AutoConfig.register(MaskedDiffusionConfig.model_type, MaskedDiffusionConfig, exist_ok=True)
    AutoModel.register(MaskedDiffusionConfig, MaskedDiffusionTransformer, exist_ok=True)
    AutoModelForMaskedLM.register(MaskedDiffusionConfig, MaskedDiffusionTransformer, exist_ok=True)


def create_builtin_model(seed: int = 0, **config_overrides) -> DiffusionLM:
    """A fresh, randomly initialised :class:`MaskedDiffusionTransformer` (defaults of :class:`MaskedDiffusionConfig`)
    with the char tokenizer."""
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


def _remote_model_class(config, path: str, trust_remote_code: bool):
    """``(auto class name, model class, fixes)`` from the folder's ``auto_map``, or ``None`` for library models
    (``fixes``: the names :func:`dopsd.models.compat.import_remote_class` restored for the import)."""
    auto_map = getattr(config, "auto_map", None) or {}
    if not (auto_map and trust_remote_code) or diffusion_settings(config):
        return None
    for name in REMOTE_AUTO_CLASSES:
        if name in auto_map:
            reference = auto_map[name]
            reference = reference[0] if isinstance(reference, (list, tuple)) else reference
            return (name, *compat.import_remote_class(reference, path))
    return None


def _declared_config(path: str, extra: dict) -> dict:
    """The checkpoint's config as written (no class defaults filled in)."""
    try:
        return PretrainedConfig.get_config_dict(path, **extra)[0]
    except (OSError, ValueError):
        return {}


def _mask_from_tokenizer(tokenizer) -> int | None:
    """The tokenizer's mask token: the one it declares, else one of :data:`MASK_TOKEN_NAMES` in its vocabulary."""
    if getattr(tokenizer, "mask_token_id", None) is not None:
        return int(tokenizer.mask_token_id)
    vocab = tokenizer.get_vocab() if tokenizer is not None else {}
    return next((int(vocab[name]) for name in MASK_TOKEN_NAMES if name in vocab), None)


def _undeclared_mask_id(config, declared: dict, tokenizer, path: str) -> int | None:
    """The mask id when config.json does not state one: never the config class's default.

    LLaDA's config class defaults ``mask_token_id`` to GPT-2's 50256, while the real model's mask is 126336
    (``<|mdm_mask|>`` in its tokenizer); a folder whose config.json omits the id would silently use the wrong token.
    The id is then taken from the tokenizer, or refused.
    """
    if "mask_token_id" in declared or getattr(config, "mask_token_id", None) is None:
        return None
    from_tokenizer = _mask_from_tokenizer(tokenizer)
    if from_tokenizer is None:
        raise DopsdError(
            f"{path}: config.json sets no mask_token_id and the tokenizer has no mask token; the config class's "
            f"default ({config.mask_token_id}) is not trusted: pass the model's mask id with --mask-token-id"
        )
    return from_tokenizer


def _import_failure(path: str, error: ImportError) -> str:
    """One line for a model whose remote code does not import: flash-attn named when it is the missing package."""
    message = str(error).splitlines()[0] if str(error) else type(error).__name__
    if "flash_attn" in message or "flash-attn" in message or getattr(error, "name", "") == "flash_attn":
        return (f"{path}: the model's code needs flash-attn, which is not installed: pip install flash-attn (it needs "
                "a CUDA GPU and a matching CUDA toolkit to build)")
    return f"{path}: the model's code does not import under this environment ({message})"


def resolve_model_path(path: str | Path) -> str:
    """``bundled:NAME`` is the bundled base model of task NAME; a training checkpoint folder (``checkpoint-N``,
    holding ``model/``) means the model inside it; anything else is returned as given."""
    from dopsd.bundled import BUNDLED_PREFIX, bundled_model_path

    path = str(path)
    if path.startswith(BUNDLED_PREFIX):
        return bundled_model_path(path[len(BUNDLED_PREFIX):])
    folder = Path(path)
    if folder.is_dir() and not (folder / "config.json").exists() and (folder / "model").is_dir():
        return str(folder / "model")
    return path


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
    check: bool = True,
    base_model: str | Path | None = None,
    block_size: int | None = None,
) -> DiffusionLM:
    """Loads a checkpoint folder (or hub name, or ``bundled:NAME``, or a training ``checkpoint-N`` folder) as a
    diffusion LM, in eval mode.

    Token ids not given come from the tokenizer, then the config (a mask id config.json does not state is never
    taken from the config class's defaults). ``shift_logits`` defaults to what the checkpoint says (dopsd-converted
    models record it; Dream shifts). Remote code written for transformers 4 gets the fixes of
    :mod:`dopsd.models.compat` (listed in ``lm.compat_fixes``); with ``check`` the rotary tables and the logits of
    a tiny input are checked after loading (``check=False`` and :func:`dopsd.models.compat.check_loaded_model`
    later, to check on the device the model is moved to). The attention layout is the config's (see
    :func:`dopsd.models.layout.layout_from_config`); ``block_size`` declares a block-attention model whose config
    does not say, or overrides the size it states. A LoRA adapter folder (a LoRA run's checkpoint) loads as
    its base model (``base_model``, else the one the adapter names) with the adapter merged in. Errors a user can
    fix raise :class:`DopsdError`.
    """
    path = resolve_model_path(path)
    if not Path(path).exists() and (path.startswith((".", "/", "~")) or path.count("/") != 1):
        raise DopsdError(f"no model folder at {path!r}")
    if not Path(path).exists() and not cached_on_disk(path) and (reason := hub_unreachable()):
        raise DopsdError(f"{path!r} is not a local folder and the Hugging Face hub is out of reach ({reason}): "
                         "pass a local model folder")
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise DopsdError(f"device {device!r}: this machine has no CUDA device torch can use: use --device cpu")
    if (Path(path) / "adapter_config.json").is_file() and not (Path(path) / "config.json").is_file():
        return _load_adapter(path, base_model, trust_remote_code=trust_remote_code, dtype=dtype, device=device,
                             mask_token_id=mask_token_id, eos_token_id=eos_token_id, pad_token_id=pad_token_id,
                             shift_logits=shift_logits, handles_padding=handles_padding, check=check,
                             block_size=block_size)
    extra = {"gguf_file": gguf_file} if gguf_file else {}
    if trust_remote_code and _declared_config(path, extra).get("model_type") == BUILTIN_MODEL_TYPE:
        trust_remote_code = False  # dopsd runs its own code for its own family (an export ships a copy for others)
    options = dict(trust_remote_code=trust_remote_code, dtype=parse_dtype(dtype), **extra)
    try:
        config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code, **extra)
        fixes = compat.fix_config(config)
        remote = _remote_model_class(config, path, trust_remote_code)
        if remote is not None:
            auto_name, model_class, imported = remote
            fixes += imported + compat.patch_remote_code(model_class)
            model_class.register_for_auto_class(auto_name)  # save_pretrained then copies the code along
        else:
            model_class = _model_class(config, trust_remote_code)
        model = model_class.from_pretrained(path, config=config, **options)
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_path or path, trust_remote_code=trust_remote_code, **extra)
    except DopsdError:
        raise
    except ImportError as error:  # raised while importing the model's remote code
        raise DopsdError(_import_failure(path, error)) from error
    except (OSError, ValueError) as error:
        raise DopsdError(f"cannot load a model from {path!r}: {str(error).splitlines()[0]}") from error
    if config.model_type == BUILTIN_MODEL_TYPE and "auto_map" in vars(model.config):
        # an export's pointer to the code shipped beside it: saves of this model (checkpoints) do not ship that code
        del model.config.auto_map
    if getattr(model, "_dopsd_post_init_added", False):
        fixes.append("post_init")
    if compat.repair_rotary_tables(model):
        fixes.append("inv_freq")
    fixes += compat.set_layer_attention_types(model)
    if device is not None:
        model.to(device)
    model.eval()
    settings = diffusion_settings(model.config) or {}
    if settings.get("bidirectional"):
        disable_causal_attention(model)
    if shift_logits is None:
        shift_logits = bool(settings.get("shift_logits", config.model_type in SHIFTED_MODEL_TYPES))
    if mask_token_id is None:
        mask_token_id = _undeclared_mask_id(config, _declared_config(path, extra), tokenizer, path)
    if mask_token_id is None and getattr(config, "mask_token_id", None) is None:
        mask_token_id = _mask_from_tokenizer(tokenizer)  # a mask token the tokenizer has under a known name
    tokens = resolve_special_tokens(
        model, tokenizer, mask_token_id=mask_token_id, eos_token_id=eos_token_id, pad_token_id=pad_token_id
    )
    lm = DiffusionLM(
        model,
        tokenizer,
        tokens=tokens,
        shift_logits=shift_logits,
        bidirectional_mask=bool(settings.get("bidirectional")),
        handles_padding=handles_padding,
        layout=model_layout(model.config, block_size, path),
    )
    lm.check_token_ids()
    lm.compat_fixes = tuple(sorted(set(fixes)))
    if lm.compat_fixes:
        logger.info("%s: applied transformers-5 compatibility fixes: %s", path, ", ".join(lm.compat_fixes))
    if check:
        compat.check_loaded_model(lm)
    return lm


def model_layout(config, block_size: int | None, path: str) -> AttentionLayout:
    """The layout of a loaded model: the config's, with ``block_size`` (an option) declaring or overriding a block
    model's; a known block-diffusion type whose config states no size needs the option."""
    stated = layout_from_config(config)
    if block_size is not None:
        return AttentionLayout("block", block_size)
    if stated is not None:
        return stated
    model_type = str(getattr(config, "model_type", "")).lower()
    if any(family in model_type for family in BLOCK_MODEL_FAMILIES):
        raise DopsdError(f"{path}: a {config.model_type!r} model attends in blocks, and its config does not say how "
                         "long: pass --block-size (4 for SDAR, TraDo and OPDLM's students)")
    return FULL


def _load_adapter(path: str, base_model, **options) -> DiffusionLM:
    """The adapter's base model with the LoRA weights merged in; the tokenizer saved beside the adapter."""
    import json

    from peft import PeftModel

    declared = json.loads((Path(path) / "adapter_config.json").read_text()).get("base_model_name_or_path")
    base_path = base_model or declared
    if not base_path:
        raise DopsdError(f"{path} holds a LoRA adapter that does not name its base model: pass --base PATH")
    check = options.pop("check")
    try:
        base = load_diffusion_lm(base_path, check=False, **options)
    except DopsdError as error:
        raise DopsdError(f"{path} holds a LoRA adapter whose base model {base_path!r} does not load ({error}): pass "
                         "--base PATH") from error
    try:
        merged = PeftModel.from_pretrained(base.model, path).merge_and_unload()
    except (OSError, ValueError, RuntimeError) as error:
        raise DopsdError(f"cannot apply the LoRA adapter in {path} to {base_path}: "
                         f"{str(error).splitlines()[0]}") from error
    has_tokenizer = (Path(path) / "tokenizer_config.json").is_file()
    tokenizer = AutoTokenizer.from_pretrained(path) if has_tokenizer else base.tokenizer
    lm = DiffusionLM(merged.eval(), tokenizer, tokens=base.tokens, shift_logits=base.shift_logits,
                     bidirectional_mask=base.bidirectional_mask, mask_form=base.mask_form,
                     handles_padding=options.get("handles_padding"), layout=base.layout)
    lm.compat_fixes = base.compat_fixes
    lm.adapter_base = str(base_path)
    if check:
        compat.check_loaded_model(lm)
    return lm
