"""A run stops at its first non-finite number: a loss or gradient norm of inf or nan ends it before the optimizer
steps, and weights that are not finite are never saved, so the last checkpoint and the best weights stay those of
the last finite update.

Every process takes part in each check (one small all-reduce), so all of them stop together: a process that saw a
finite loss must not wait alone in the next collective.
"""

from __future__ import annotations

import math

import torch

from dopsd.errors import DopsdError
from dopsd.trainers import checkpoint as ckpt


class NonFiniteError(DopsdError):
    """A loss, gradient norm or weight of inf or nan: the run stopped without saving it."""

    on_every_process = True  # raised by every process of a run together: the command line prints it once


def _local(tensor: torch.Tensor) -> torch.Tensor:
    """This process's part of a (possibly sharded, DTensor) tensor."""
    return tensor.to_local() if hasattr(tensor, "to_local") else tensor


def _all_finite(tensors) -> bool:
    flags = [torch.isfinite(_local(t)).all() for t in tensors if t is not None and _local(t).numel()]
    return bool(torch.stack(flags).all()) if flags else True


def _anywhere(accelerator, bad: bool) -> bool:
    """Whether any process of the run found ``bad`` true (the same answer on every process)."""
    if accelerator.num_processes == 1:
        return bad
    flag = torch.tensor([1.0 if bad else 0.0], device=accelerator.device)
    torch.distributed.all_reduce(flag)
    return bool(flag.item() > 0)


def _kept(trainer) -> str:
    latest = ckpt.latest_checkpoint(trainer.output_dir)
    kept = f"its last checkpoint ({latest.name})" if latest is not None else "its folder (no checkpoint yet)"
    return (f"the run stopped, and {kept} and best weights are as they were: nothing of this update was saved; "
            "lower learning_rate or set max_grad_norm, and start again")


def stop_if_not_finite(trainer, metrics: dict) -> None:
    """Before the optimizer steps: raises :class:`NonFiniteError`, naming the update, when any process's loss or the
    gradient norm is inf or nan. Without a clipping norm the gradients themselves are checked. Under fp16 mixed
    precision an inf gradient is the loss scaler's business (it skips that step and lowers the scale), so there
    only the loss is checked."""
    update = trainer.update + 1
    loss = metrics.get("loss")
    problems = []
    if isinstance(loss, (int, float)) and not math.isfinite(loss):
        problems.append(f"the loss is {loss}")
    if getattr(trainer.accelerator, "scaler", None) is None:
        norm = metrics.get("grad_norm")
        if norm is not None:
            if not math.isfinite(norm):
                problems.append(f"the gradient norm is {norm}")
        elif trainer.config.max_grad_norm is None and not _all_finite(
                p.grad for p in trainer.trainable_parameters()):
            problems.append("a gradient is not finite")
    if _anywhere(trainer.accelerator, bool(problems)):
        found = " and ".join(problems) if problems else "another process's loss is not finite"
        raise NonFiniteError(f"update {update}: {found}; {_kept(trainer)}")


def check_finite_weights(trainer) -> None:
    """Before weights are saved (a checkpoint, the best weights): raises :class:`NonFiniteError` when a trainable
    weight of any process is inf or nan, so that no checkpoint of non-finite weights is ever written."""
    bad = not _all_finite(trainer.trainable_parameters())
    if _anywhere(trainer.accelerator, bad):
        raise NonFiniteError(f"update {trainer.update} left weights that are not finite; {_kept(trainer)}")
