"""``dopsd bench --lora R``: both sides run a LoRA model, as a LoRA run does (the paper trains LoRA at r = 128).

A rank-R adapter on the projections a LoRA run adapts (:func:`dopsd.models.lora.lora_target_modules`: the paper's
q, k, v, o, gate, up and down, never the output head), alpha = R x the paper's ratio (64 / 128, DOPSDConfig's
defaults) unless given, no dropout (both sides' passes stay deterministic, so their loss values still compare). Only
the adapter's weights are trainable: the loss's backward, on dopsd's side and the naive side alike, computes the
gradients a LoRA run computes (the adapter's, and the activations' through the frozen body), not every weight's. The
rollouts and the student passes run with the adapter; the teacher passes with the adapter switched off, as a LoRA
run's fixed teacher does (the initial policy, no second copy of the model).
"""

from __future__ import annotations

import contextlib

import torch

from dopsd.models.adapter import DiffusionLM
from dopsd.models.lora import describe_targets, lora_target_modules
from dopsd.trainers.dopsd import DOPSDConfig


def paper_alpha(rank: int) -> float:
    """alpha at the paper's alpha / r ratio (DOPSDConfig's defaults: 64 at r = 128)."""
    defaults = DOPSDConfig()
    return rank * defaults.lora_alpha / defaults.lora_r


def attach_lora(lm: DiffusionLM, rank: int, alpha: float | None = None) -> tuple[DiffusionLM, dict]:
    """``lm`` wrapped with a rank-``rank`` LoRA adapter, only the adapter trainable; and the facts the bench reports
    (rank, alpha, the adapted modules, trainable and total parameters)."""
    from peft import LoraConfig, get_peft_model

    alpha = paper_alpha(rank) if alpha is None else alpha
    targets = lora_target_modules(lm.model)
    model = get_peft_model(lm.model, LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=0.0, target_modules=targets))
    model.eval()
    adapted = lm.rewrap(model)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return adapted, {"rank": rank, "alpha": alpha, "modules": len(targets), "targets": describe_targets(targets),
                     "trainable_parameters": trainable, "total_parameters": total}


def is_adapter(name: str) -> bool:
    return ".lora_" in name


@contextlib.contextmanager
def adapter_off(lm: DiffusionLM):
    """No gradients, and the LoRA adapter switched off when ``lm`` has one: the fixed teacher's pass."""
    off = lm.model.disable_adapter() if hasattr(lm.model, "disable_adapter") else contextlib.nullcontext()
    with torch.no_grad(), off:
        yield lm


class AdapterOffView:
    """The naive loss's ``teacher``: ``lm``'s logits with its adapter switched off."""

    def __init__(self, lm: DiffusionLM):
        self.lm = lm

    def logits(self, *args, **kwargs) -> torch.Tensor:
        with adapter_off(self.lm):
            return self.lm.logits(*args, **kwargs)


def gradient_holders(lm: DiffusionLM) -> dict:
    """After a backward: how many parameter tensors hold a gradient, and whether every one is an adapter's."""
    names = [name for name, p in lm.model.named_parameters() if p.grad is not None]
    return {"tensors": len(names), "adapter_only": all(is_adapter(name) for name in names)}
