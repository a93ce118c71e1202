"""Test doubles of LLaDA's, Dream's, SDAR's and dllm's A2D Hub remote code, saved as remote-code model folders.

``write_llada_like(folder)``, ``write_dream_like(folder)``, ``write_sdar_like(folder)`` and ``write_a2d_like(folder)``
copy the double's ``configuration_*.py`` / ``modeling_*.py`` (and Dream's ``generation_utils.py``) into ``folder`` and
add what a Hub folder holds: a
``config.json`` with ``auto_map``, a tokenizer, random weights in ``model.safetensors`` (and Dream's
``generation_config.json``). The folder then loads only with ``trust_remote_code=True``, through the same code path
as the real models. The sources reproduce the real models' interface quirks and their breakages under
transformers 5 (see each modeling file's docstring); dopsd's load-time fixes are what make them run.

``write_failing_forward(folder)`` is an LLaDA-like folder whose model raises inside its own forward (a remote model
broken in a way no load-time fix covers).

Module names come from the folder's name: give folders distinct names when a test needs a fresh, unfixed copy of
the classes.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import save_file
from tokenizers import AddedToken
from transformers.dynamic_module_utils import get_class_from_dynamic_module
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

from dopsd.models import build_char_tokenizer

SOURCES = Path(__file__).parent
LLADA_MASK = "<|mdm_mask|>"
DREAM_MASK = "<|mask|>"
SDAR_MASK = "<|MASK|>"
A2D_MASK = "<|mask|>"


def _copy_sources(name: str, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for source in (SOURCES / name).glob("*.py"):
        shutil.copy(source, folder / source.name)


def _save(folder: Path, model, config: dict, tokenizer, extra: dict | None = None) -> Path:
    save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, folder / "model.safetensors",
              metadata={"format": "pt"})
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    for name, content in (extra or {}).items():
        (folder / name).write_text(json.dumps(content, indent=2))
    tokenizer.save_pretrained(folder)
    return folder


def llada_tokenizer():
    """Character tokenizer plus LLaDA's special tokens: the mask token is in the vocabulary, not named as mask."""
    tokenizer = build_char_tokenizer(with_mask=False)
    tokenizer.add_tokens([AddedToken(LLADA_MASK, special=True), AddedToken("<|eot_id|>", special=True)])
    return tokenizer


def write_llada_like(folder, *, seed: int = 0, mask_token_id_in_config: bool = True, d_model: int = 32,
                     n_heads: int = 4, n_layers: int = 2, mlp_hidden_size: int = 48) -> Path:
    """A tiny LLaDA-like checkpoint folder (``block_type: llama``, RoPE, untied head, as LLaDA-8B's config)."""
    folder = Path(folder)
    _copy_sources("llada_like", folder)
    tokenizer = llada_tokenizer()
    fields = dict(
        d_model=d_model, n_heads=n_heads, n_kv_heads=n_heads, n_layers=n_layers, mlp_hidden_size=mlp_hidden_size,
        activation_type="silu", block_type="llama", rope=True, rope_theta=500000.0, layer_norm_type="rms",
        rms_norm_eps=1e-5, attention_dropout=0.0, residual_dropout=0.0, embedding_dropout=0.0,
        max_sequence_length=256, include_bias=False, include_qkv_bias=False, scale_logits=False,
        vocab_size=len(tokenizer), embedding_size=len(tokenizer), weight_tying=False,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        mask_token_id=tokenizer.convert_tokens_to_ids(LLADA_MASK),
    )
    config_class = get_class_from_dynamic_module("configuration_llada.LLaDAConfig", folder)
    model_class = get_class_from_dynamic_module("modeling_llada.LLaDAModelLM", folder)
    torch.manual_seed(seed)
    model = model_class(config_class(**fields))
    if not mask_token_id_in_config:
        del fields["mask_token_id"]
    config = dict(fields, model_type="llada", architectures=["LLaDAModelLM"], use_cache=False, auto_map={
        "AutoConfig": "configuration_llada.LLaDAConfig",
        "AutoModel": "modeling_llada.LLaDAModelLM",
        "AutoModelForCausalLM": "modeling_llada.LLaDAModelLM",
    })
    return _save(folder, model, config, tokenizer)


# What the failing copy's forward raises (the message a load-time refusal must carry).
FORWARD_FAILURE = "RuntimeError: shape mismatch in the double's attention (a deliberate failure)"


def write_failing_forward(folder, **options) -> Path:
    """An LLaDA-like folder whose ``LLaDAModelLM.forward`` raises a RuntimeError on every call: it loads, and fails
    at the first forward pass (dopsd's load-time probe)."""
    folder = write_llada_like(folder, **options)
    source = folder / "modeling_llada.py"
    text = source.read_text()
    anchor = "        if use_cache is None:\n            use_cache = self.config.use_cache\n"
    if anchor not in text:
        raise AssertionError("modeling_llada.py changed: update write_failing_forward's anchor")
    failure = FORWARD_FAILURE.split(": ", 1)[1]
    source.write_text(text.replace(anchor, f"        raise RuntimeError({failure!r})\n" + anchor, 1))
    return folder


def _default_rope(config, device=None, **kwargs):
    dim = config.hidden_size // config.num_attention_heads
    exponents = torch.arange(0, dim, 2, dtype=torch.int64).to(device=device, dtype=torch.float) / dim
    return 1.0 / (config.rope_theta**exponents), 1.0


@contextlib.contextmanager
def _rope_default_available():
    """Builds the Dream-like model outside any loader (the 'default' RoPE entry exists only meanwhile)."""
    ROPE_INIT_FUNCTIONS["default"] = _default_rope
    try:
        yield
    finally:
        del ROPE_INIT_FUNCTIONS["default"]


def write_dream_like(folder, *, seed: int = 0, hidden_size: int = 32, num_attention_heads: int = 4,
                     num_key_value_heads: int = 2, num_hidden_layers: int = 2, intermediate_size: int = 48) -> Path:
    """A tiny Dream-like checkpoint folder: mask token in the tokenizer (and the config), logits shifted."""
    folder = Path(folder)
    _copy_sources("dream_like", folder)
    tokenizer = build_char_tokenizer(with_mask=False)
    tokenizer.add_special_tokens({"mask_token": DREAM_MASK})
    fields = dict(
        vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=intermediate_size,
        num_hidden_layers=num_hidden_layers, num_attention_heads=num_attention_heads,
        num_key_value_heads=num_key_value_heads, max_position_embeddings=256, rope_theta=10000.0,
        rope_scaling=None, rms_norm_eps=1e-6, tie_word_embeddings=False, use_cache=False,
        mask_token_id=tokenizer.mask_token_id, pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.eos_token_id,
    )
    config_class = get_class_from_dynamic_module("configuration_dream.DreamConfig", folder)
    model_class = get_class_from_dynamic_module("modeling_dream.DreamModel", folder)
    torch.manual_seed(seed)
    with _rope_default_available():
        model = model_class(config_class(**fields))
    config = dict(fields, model_type="Dream", architectures=["DreamModel"], auto_map={
        "AutoConfig": "configuration_dream.DreamConfig",
        "AutoModel": "modeling_dream.DreamModel",
    })
    generation = {"mask_token_id": tokenizer.mask_token_id, "pad_token_id": tokenizer.pad_token_id,
                  "eos_token_id": tokenizer.eos_token_id, "steps": 16, "alg": "entropy", "temperature": 0.0}
    return _save(folder, model, config, tokenizer, {"generation_config.json": generation})


# The line SDAR's shipped modeling file starts with (flash-attn's Triton RMSNorm, imported unconditionally).
FLASH_ATTN_IMPORT = "from flash_attn.ops.triton.layer_norm import rms_norm_fn as flash_rms_norm"


def write_sdar_like(folder, *, seed: int = 0, flash_attn_import: bool = False, fuse_cross_entropy: bool = True,
                    hidden_size: int = 32, num_attention_heads: int = 4, num_key_value_heads: int = 2,
                    head_dim: int = 8, num_hidden_layers: int = 2, intermediate_size: int = 48) -> Path:
    """A tiny SDAR-like checkpoint folder (``model_type: sdar``, no block size in its config, as SDAR's).

    The mask token ``<|MASK|>`` is in the tokenizer's vocabulary but not declared as its mask token, and config.json
    names no mask id (SDAR's samplers pass 151669 themselves). ``flash_attn_import`` writes the unconditional
    flash-attn import of the shipped modeling file into the copy."""
    folder = Path(folder)
    _copy_sources("sdar_like", folder)
    if flash_attn_import:
        source = folder / "modeling_sdar.py"
        source.write_text(source.read_text().replace("# FLASH_ATTN_IMPORT", FLASH_ATTN_IMPORT))
    tokenizer = build_char_tokenizer(with_mask=False)
    tokenizer.add_tokens([AddedToken(SDAR_MASK, special=True), AddedToken("<|im_end|>", special=True)])
    fields = dict(
        vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=intermediate_size,
        num_hidden_layers=num_hidden_layers, num_attention_heads=num_attention_heads,
        num_key_value_heads=num_key_value_heads, head_dim=head_dim, max_position_embeddings=256,
        rope_theta=10000.0, rope_scaling=None, rms_norm_eps=1e-6, tie_word_embeddings=False, use_cache=True,
        use_sliding_window=False, sliding_window=None, max_window_layers=num_hidden_layers, attention_bias=False,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(seed)
    with _rope_default_available(), _loss_kwargs_available():
        model_class = _sdar_model_class(folder)
        model = model_class(model_class.config_class(**fields, fuse_cross_entropy=fuse_cross_entropy))
    config = dict(fields, fuse_cross_entropy=fuse_cross_entropy, model_type="sdar",
                  architectures=["SDARForCausalLM"], auto_map={
                      "AutoConfig": "configuration_sdar.SDARConfig",
                      "AutoModel": "modeling_sdar.SDARModel",
                      "AutoModelForCausalLM": "modeling_sdar.SDARForCausalLM",
                  })
    return _save(folder, model, config, tokenizer)


def _sdar_model_class(folder: Path):
    """The classes the weights are built with, imported from a sibling copy: the folder's own module stays unimported
    until dopsd loads it (its transformers-5 breakage intact; the flash-attn copy cannot be imported at all)."""
    clean = folder.parent / f"{folder.name}_build"
    _copy_sources("sdar_like", clean)
    return get_class_from_dynamic_module("modeling_sdar.SDARForCausalLM", clean)


@contextlib.contextmanager
def _loss_kwargs_available():
    """Builds the SDAR-like model outside any loader (``transformers.utils.LossKwargs`` exists only meanwhile)."""
    import typing

    import transformers.utils

    present = hasattr(transformers.utils, "LossKwargs")
    if not present:
        transformers.utils.LossKwargs = typing.TypedDict("LossKwargs", {}, total=False)
    try:
        yield
    finally:
        if not present:
            del transformers.utils.LossKwargs


def write_a2d_like(folder, *, seed: int = 0, hidden_size: int = 32, num_attention_heads: int = 4,
                   num_key_value_heads: int = 2, head_dim: int = 8, num_hidden_layers: int = 2,
                   intermediate_size: int = 48, block_size: int | None = None) -> Path:
    """A tiny A2D-Qwen3 checkpoint folder as dllm's code saves it (``model_type: a2d-qwen3``, the modeling file
    beside it); ``block_size`` writes that field into config.json."""
    from transformers import Qwen3Config, Qwen3ForCausalLM

    folder = Path(folder)
    _copy_sources("a2d_like", folder)
    tokenizer = build_char_tokenizer(with_mask=False)
    tokenizer.add_special_tokens({"mask_token": A2D_MASK})
    fields = dict(
        vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=intermediate_size,
        num_hidden_layers=num_hidden_layers, num_attention_heads=num_attention_heads,
        num_key_value_heads=num_key_value_heads, head_dim=head_dim, max_position_embeddings=256,
        rope_theta=10000.0, rms_norm_eps=1e-6, tie_word_embeddings=False, use_cache=False,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(seed)
    model = Qwen3ForCausalLM(Qwen3Config(**fields))  # the same weights' layout as A2DQwen3LMHeadModel
    config = dict(model.config.to_dict(), model_type="a2d-qwen3", architectures=["A2DQwen3LMHeadModel"], auto_map={
        "AutoConfig": "modeling_qwen3.A2DQwen3Config",
        "AutoModel": "modeling_qwen3.A2DQwen3LMHeadModel",
        "AutoModelForMaskedLM": "modeling_qwen3.A2DQwen3LMHeadModel",
    })
    if block_size is not None:
        config["block_size"] = block_size
    return _save(folder, model, config, tokenizer)
