"""Few-step Euler sampling with diffusers' ``FlowMatchEulerDiscreteScheduler``, seeded, optionally recording the
states it passes through (the student's roll-out that D-OPSD's loss is evaluated on)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers import FlowMatchEulerDiscreteScheduler

from dopsd.errors import DopsdError


def make_scheduler(steps: int, device=None) -> FlowMatchEulerDiscreteScheduler:
    """A scheduler set to ``steps`` equal Euler steps from pure noise (sigma 1) to the image (sigma 0)."""
    if steps < 1:
        raise DopsdError(f"sampling steps must be at least 1, got {steps}")
    scheduler = FlowMatchEulerDiscreteScheduler(shift=1.0)
    scheduler.set_timesteps(sigmas=torch.linspace(1.0, 0.0, steps + 1)[:-1].tolist(), device=device)
    return scheduler


@dataclass
class Rollout:
    """A sampled batch: the final images, and each step's input state, timestep and sigma step (``dt < 0``)."""

    images: torch.Tensor
    states: list[torch.Tensor]
    timesteps: list[torch.Tensor]
    sigmas: list[float]
    dts: list[float]


def initial_noise(batch: int, shape, generator: torch.Generator | None, device=None,
                  dtype=torch.float32) -> torch.Tensor:
    noise = torch.randn((batch, *shape), generator=generator, device=generator.device if generator else device)
    return noise.to(device=device, dtype=dtype)


@torch.no_grad()
def sample_images(model, prompt_ids: torch.Tensor, steps: int = 4, generator: torch.Generator | None = None,
                  context: torch.Tensor | None = None, noise: torch.Tensor | None = None) -> Rollout:
    """Images for ``prompt_ids`` (B, L) by ``steps`` Euler steps from seeded noise (the same ``generator`` state gives
    the same images); ``context`` (B, C, H, W) puts a reference image in the sequence."""
    config = model.config
    parameter = next(model.parameters())
    if noise is None:
        noise = initial_noise(prompt_ids.shape[0], (config.in_channels, config.sample_size, config.sample_size),
                              generator, parameter.device, parameter.dtype)
    scheduler = make_scheduler(steps, parameter.device)
    sigmas = scheduler.sigmas.tolist()
    x, states, timesteps = noise, [], []
    was_training = model.training
    model.eval()
    try:
        for index, timestep in enumerate(scheduler.timesteps):
            states.append(x)
            t = timestep.expand(x.shape[0])
            timesteps.append(t)
            velocity = model(x, t, prompt_ids, context=context)
            x = scheduler.step(velocity, timestep, x).prev_sample.to(parameter.dtype)
    finally:
        model.train(was_training)
    dts = [sigmas[i + 1] - sigmas[i] for i in range(steps)]
    return Rollout(x, states, timesteps, sigmas[:-1], dts)


def to_pixels(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] images as [0, 1] ink, clipped."""
    return ((images.float() + 1.0) / 2.0).clamp(0.0, 1.0)
