"""The flow-matching objective (rectified flow, as diffusers' SD3/Flux training scripts write it): noise an image to
``x_t = (1 - sigma) x0 + sigma noise`` with the scheduler's forward process and regress the velocity
``noise - x0``; sigma drawn from a logit-normal density (``compute_density_for_timestep_sampling``)."""

from __future__ import annotations

import torch
from diffusers import FlowMatchEulerDiscreteScheduler
from diffusers.training_utils import compute_density_for_timestep_sampling

_TRAINING_SCHEDULER: FlowMatchEulerDiscreteScheduler | None = None


def training_scheduler() -> FlowMatchEulerDiscreteScheduler:
    """The 1000-timestep schedule that training draws sigmas from (built once: it never changes)."""
    global _TRAINING_SCHEDULER
    if _TRAINING_SCHEDULER is None:
        _TRAINING_SCHEDULER = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=1.0)
    return _TRAINING_SCHEDULER


def noised(images: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(x_t, timesteps, velocity target)`` for a batch of clean images, every draw from ``generator``."""
    scheduler = training_scheduler()
    batch = images.shape[0]
    u = compute_density_for_timestep_sampling("logit_normal", batch, logit_mean=0.0, logit_std=1.0,
                                              generator=generator)
    indices = (u * scheduler.config.num_train_timesteps).long().clamp(max=scheduler.config.num_train_timesteps - 1)
    timesteps = scheduler.timesteps[indices]
    noise = torch.randn(images.shape, generator=generator).to(images.device, images.dtype)
    x_t = scheduler.scale_noise(images, timesteps.to(images.device), noise)
    return x_t, timesteps.to(images.device, images.dtype), noise - images


def flow_matching_loss(model, images: torch.Tensor, prompt_ids: torch.Tensor, generator: torch.Generator,
                       context: torch.Tensor | None = None, context_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared error between the predicted and the true velocity at a random noise level."""
    x_t, timesteps, target = noised(images, generator)
    prediction = model(x_t, timesteps, prompt_ids, context=context, context_mask=context_mask)
    return torch.nn.functional.mse_loss(prediction, target)
