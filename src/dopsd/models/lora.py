"""Which modules LoRA adapts: what the paper adapts (q, k, v, o, gate, up, down) on any architecture.

Architectures name those seven projections differently, and a list of leaf names applied to every model misses
some (LLaDA calls its output, gate and down projections ``attn_out``, ``ff_proj`` and ``ff_out``) or catches the
output head (LLaDA's head is also called ``ff_out``). :func:`lora_target_modules` therefore returns full module
names: those of the model's architecture map when it has one, every linear layer otherwise ("all-linear"), and never
the output head.
"""

from __future__ import annotations

from torch import nn
from transformers.pytorch_utils import Conv1D

from dopsd.errors import DopsdError

# Leaf names of the adapted projections per ``config.model_type`` (compared case-insensitively).
ARCHITECTURE_TARGETS: dict[str, tuple[str, ...]] = {
    # LLaDA's Llama-style blocks; its "sequential" blocks fuse q, k, v into att_proj.
    "llada": ("q_proj", "k_proj", "v_proj", "attn_out", "ff_proj", "up_proj", "ff_out", "att_proj"),
    "dream": ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
    # dopsd's built-in family fuses q, k, v and gate, up.
    "dopsd_mdm": ("qkv", "out", "gate_up", "down"),
}

LINEAR_TYPES = (nn.Linear, Conv1D)


def _unwrapped(model: nn.Module) -> nn.Module:
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def architecture_targets(model: nn.Module) -> tuple[str, ...] | None:
    """The leaf names of the model's architecture map, or ``None`` when it has none."""
    model_type = str(getattr(getattr(_unwrapped(model), "config", None), "model_type", "") or "")
    return ARCHITECTURE_TARGETS.get(model_type.lower())


def lora_target_modules(model: nn.Module) -> list[str]:
    """Full names of the modules LoRA should adapt in ``model`` (names relative to the unwrapped model).

    The architecture's map when it has one and it matches; otherwise every linear layer. The output head
    (``get_output_embeddings()``) is never included. Pass the result as PEFT's ``target_modules``.
    """
    base = _unwrapped(model)
    head = base.get_output_embeddings() if hasattr(base, "get_output_embeddings") else None
    linear = [(name, module) for name, module in base.named_modules()
              if isinstance(module, LINEAR_TYPES) and module is not head and name]
    kinds = architecture_targets(base)
    chosen = [name for name, _ in linear if kinds is not None and name.rsplit(".", 1)[-1] in kinds]
    if not chosen:
        chosen = [name for name, _ in linear]
    if not chosen:
        raise DopsdError(f"{type(base).__name__} has no linear layers besides its output head: set lora_target_modules")
    return chosen


def describe_targets(names: list[str]) -> str:
    """One line for logs: how many modules, of which kinds (``14 modules: attn_out, ff_out, ...``)."""
    kinds = sorted({name.rsplit(".", 1)[-1] for name in names})
    return f"{len(names)} modules: {', '.join(kinds)}"
