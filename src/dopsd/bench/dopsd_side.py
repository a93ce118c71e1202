"""dopsd's own path, as the trainers run it: the batched sampler, and d-OPSD's ``states_loss`` (the trainer's code
itself, run outside a trainer) over micro-batches of stacked states."""

from __future__ import annotations

from types import SimpleNamespace

from dopsd.bench.lora import adapter_off
from dopsd.distill.teacher import PreparedTrajectory
from dopsd.models.adapter import DiffusionLM
from dopsd.sampling.padding import micro_batches
from dopsd.trainers.dopsd import DOPSDConfig, DOPSDTrainer


class _LossHost:
    """Just enough of a :class:`DOPSDTrainer` for its loss methods: the model, the config and the prepared states.
    The teacher is the model itself without gradients (the fixed teacher before any update), its LoRA adapter
    switched off when it has one (as a LoRA run's fixed teacher)."""

    stack_inputs = DOPSDTrainer.stack_inputs
    states_loss = DOPSDTrainer.states_loss
    revealed_offsets = staticmethod(DOPSDTrainer.revealed_offsets)

    def __init__(self, lm: DiffusionLM, config: DOPSDConfig, prepared: list[PreparedTrajectory]):
        self.lm = self.base_lm = lm
        self.config, self.rollout_data = config, prepared
        self.accelerator = SimpleNamespace(device=lm.device)

    def teacher_context(self):
        return adapter_off(self.lm)


def dopsd_loss(lm: DiffusionLM, prepared: PreparedTrajectory, *, micro_batch_size: int = 16,
               config: DOPSDConfig | None = None) -> float:
    """Forward and backward over every state of ``prepared``; returns the trajectory's loss (mean over steps of
    the mean over K_t), the value d-OPSD's update reports for it."""
    host = _LossHost(lm, config or DOPSDConfig(), [prepared])
    steps = prepared.num_steps
    total = None
    for batch in micro_batches([[(0, step) for step in range(steps)]], micro_batch_size):
        per_state = host.states_loss(batch)[0]
        loss = per_state.sum() / steps
        loss.backward()
        total = loss.detach() if total is None else total + loss.detach()
    return float(total)
