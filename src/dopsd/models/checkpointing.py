"""Gradient checkpointing on any model: its own switch when it has transformers' one, else its blocks wrapped.

LLaDA's remote code does not support transformers' ``gradient_checkpointing_enable`` (it raises); it has a switch of
its own that checkpoints only the attention. :func:`enable_gradient_checkpointing` uses transformers' API when the
model declares support for it (``supports_gradient_checkpointing``), and otherwise finds the model's stack of
transformer blocks and runs each block's forward through ``torch.utils.checkpoint`` (non-reentrant, so LoRA-only
training needs no input gradients, and dropout is replayed with the same random numbers) while training with
gradients enabled.
"""

from __future__ import annotations

import functools
import types

import torch
from torch import nn

from dopsd.errors import DopsdError

_WRAPPED = "_dopsd_checkpointed"


def find_blocks(model: nn.Module) -> nn.ModuleList | None:
    """The model's stack of repeated blocks: the ``ModuleList`` of same-class modules holding the most parameters."""
    best, best_size = None, 0
    for module in model.modules():
        if not isinstance(module, nn.ModuleList) or len(module) == 0:
            continue
        if len({type(child) for child in module}) != 1 or isinstance(module[0], (nn.Linear, nn.Embedding)):
            continue
        size = sum(parameter.numel() for parameter in module.parameters())
        if size > best_size:
            best, best_size = module, size
    return best


def _checkpointed_forward(self, *args, **kwargs):
    """A block's forward through ``torch.utils.checkpoint`` while training with gradients. Bound to the block as a
    method, so a deep copy of the model (a frozen teacher) runs its own weights, not the original's."""
    forward = functools.partial(type(self).forward, self)
    if self.training and torch.is_grad_enabled():
        return torch.utils.checkpoint.checkpoint(forward, *args, use_reentrant=False, **kwargs)
    return forward(*args, **kwargs)


def _checkpoint_block(block: nn.Module) -> None:
    if getattr(block, _WRAPPED, False):
        return
    block.forward = types.MethodType(_checkpointed_forward, block)
    setattr(block, _WRAPPED, True)


def enable_gradient_checkpointing(model: nn.Module) -> str:
    """Turns on gradient checkpointing for ``model`` (a PEFT wrapper is seen through); returns how.

    Returns ``"model"`` when the model's own (transformers) switch was used, ``"blocks"`` when its blocks were
    wrapped. A model with neither is refused with one line.
    """
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    if getattr(base, "supports_gradient_checkpointing", False):
        options = {"use_reentrant": False}
        if hasattr(base, "activation_checkpointing_enable"):
            base.activation_checkpointing_enable(activation_checkpointing_kwargs=options)
        else:
            base.gradient_checkpointing_enable(gradient_checkpointing_kwargs=options)
        return "model"
    blocks = find_blocks(base)
    if blocks is None:
        raise DopsdError(f"{type(base).__name__}: no transformer blocks found to checkpoint; "
                         "set gradient_checkpointing: false")
    for block in blocks:
        _checkpoint_block(block)
    return "blocks"
