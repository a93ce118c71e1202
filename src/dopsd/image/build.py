"""How the bundled image models are made (``scripts/build_image_models.py`` runs these with fixed seeds):

1. :func:`train_base`: flow matching on the base styles' training images, a share of them with another image of the
   same digit and style in context, and a share with a random unnamed pattern drawn on both the image and the
   reference in context (:func:`~dopsd.image.data.random_patterns`): the model learns to carry over from its context
   what the prompt does not say, the in-context ability that large models inherit from their LLM/VLM encoder;
2. :func:`distill_few_step`: the few-step model. Trajectory (segment) distillation: the base model integrates the ODE
   from seeded noise with ``substeps`` Euler steps per segment of the 4-step grid, and the student learns, at each
   grid state, the one velocity whose single Euler step lands where the base model's many small steps landed
   (progressive distillation's target in one stage). Prompts and in-context references are drawn as in base
   training, so the few-step model keeps the in-context ability.
"""

from __future__ import annotations

import copy

import torch
from tqdm.auto import tqdm

from dopsd.image.data import BASE_STYLES, DigitSet, digit_set, random_patterns, reference_for, with_pattern
from dopsd.image.flow import flow_matching_loss
from dopsd.image.sampler import initial_noise, make_scheduler


def conditioning_batch(dataset: DigitSet, references: torch.Tensor, indices: torch.Tensor, context_share: float,
                       generator: torch.Generator, pattern_share: float = 0.0):
    """``(images, prompt ids, reference images, context mask)`` of the examples at ``indices``: a ``context_share``
    of them with their reference in context; a ``pattern_share`` of them instead with a random pattern drawn on both
    the image and its reference (always in context; the prompt names only the digit and base style)."""
    mask = torch.rand(len(indices), generator=generator) < context_share
    prompts = dataset.prompt_ids[indices]
    images, context = dataset.images[indices], dataset.images[references[indices]]
    patterned = torch.rand(len(indices), generator=generator) < pattern_share
    if patterned.any():
        masks, values = random_patterns(int(patterned.sum()), generator)
        images, context = images.clone(), context.clone()
        images[patterned] = with_pattern(images[patterned], masks, values)
        context[patterned] = with_pattern(context[patterned], masks, values)
        mask = mask | patterned
    return images, prompts, context, mask


def train_base(model, *, updates: int = 3000, batch_size: int = 64, learning_rate: float = 1e-3,
               context_share: float = 0.5, pattern_share: float = 0.3, seed: int = 0, progress: bool = True,
               dataset: DigitSet | None = None) -> list:
    """Flow-matching training on the base styles; returns the loss of every update."""
    dataset = dataset or digit_set("train", BASE_STYLES)
    generator = torch.Generator().manual_seed(seed)
    references = reference_for(dataset, generator)
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / 100)
                                                 * max(0.1, 1.0 - step / updates))
    model.train()
    losses = []
    bar = tqdm(range(updates), desc="base flow matching", disable=not progress)
    for _ in bar:
        indices = torch.randint(len(dataset), (batch_size,), generator=generator)
        images, prompts, context, mask = conditioning_batch(dataset, references, indices, context_share, generator,
                                                            pattern_share)
        loss = flow_matching_loss(model, images, prompts, generator, context=context, context_mask=mask)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        losses.append(float(loss.detach()))
        bar.set_postfix(loss=f"{sum(losses[-50:]) / len(losses[-50:]):.4f}")
    return losses


@torch.no_grad()
def teacher_trajectories(teacher, dataset: DigitSet, references: torch.Tensor, *, count: int, steps: int,
                         substeps: int, context_share: float, generator: torch.Generator, batch_size: int = 256,
                         pattern_share: float = 0.0, progress: bool = True) -> dict:
    """The base model's many-step ODE paths, kept at the ``steps``-step grid: states (count, steps + 1, C, H, W)."""
    teacher.eval()
    fine = make_scheduler(steps * substeps)
    timesteps = fine.timesteps
    kept = {"states": [], "prompts": [], "context": [], "mask": []}
    for start in tqdm(range(0, count, batch_size), desc="teacher trajectories", disable=not progress):
        n = min(batch_size, count - start)
        indices = torch.randint(len(dataset), (n,), generator=generator)
        _, prompts, context, mask = conditioning_batch(dataset, references, indices, context_share, generator,
                                                       pattern_share)
        x = initial_noise(n, dataset.images.shape[1:], generator)
        states = [x]
        for index, timestep in enumerate(timesteps):
            velocity = teacher(x, timestep.expand(n), prompts, context=context, context_mask=mask)
            x = x + (fine.sigmas[index + 1] - fine.sigmas[index]) * velocity
            if (index + 1) % substeps == 0:
                states.append(x)
        kept["states"].append(torch.stack(states, dim=1))
        kept["prompts"].append(prompts)
        kept["context"].append(context)
        kept["mask"].append(mask)
    return {key: torch.cat(values) for key, values in kept.items()}


def distill_few_step(teacher, *, steps: int = 4, substeps: int = 8, trajectories: int = 4096, updates: int = 1500,
                     batch_size: int = 64, learning_rate: float = 3e-4, context_share: float = 0.5,
                     pattern_share: float = 0.3, seed: int = 0,
                     progress: bool = True, dataset: DigitSet | None = None):
    """A copy of ``teacher`` whose ``steps``-step Euler sampler follows ``teacher``'s many-step ODE; returns
    ``(student, losses)``."""
    dataset = dataset or digit_set("train", BASE_STYLES)
    generator = torch.Generator().manual_seed(seed)
    references = reference_for(dataset, generator)
    paths = teacher_trajectories(teacher, dataset, references, count=trajectories, steps=steps, substeps=substeps,
                                 context_share=context_share, generator=generator, pattern_share=pattern_share,
                                 progress=progress)
    grid = make_scheduler(steps)
    sigmas, timesteps = grid.sigmas, grid.timesteps
    student = copy.deepcopy(teacher).train()
    optimizer = torch.optim.AdamW(student.parameters(), lr=learning_rate, weight_decay=0.0)
    losses = []
    bar = tqdm(range(updates), desc=f"{steps}-step distillation", disable=not progress)
    for _ in bar:
        rows = torch.randint(trajectories, (batch_size,), generator=generator)
        segment = torch.randint(steps, (batch_size,), generator=generator)
        states = paths["states"][rows]
        x = states[torch.arange(batch_size), segment]
        following = states[torch.arange(batch_size), segment + 1]
        dt = (sigmas[segment + 1] - sigmas[segment]).view(-1, 1, 1, 1)
        target = (following - x) / dt
        prediction = student(x, timesteps[segment], paths["prompts"][rows], context=paths["context"][rows],
                             context_mask=paths["mask"][rows])
        loss = torch.nn.functional.mse_loss(prediction, target)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
        optimizer.step()
        losses.append(float(loss.detach()))
        bar.set_postfix(loss=f"{sum(losses[-50:]) / len(losses[-50:]):.4f}")
    return student.eval(), losses
