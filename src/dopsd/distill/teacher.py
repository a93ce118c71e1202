"""The self-teacher's input: the student's state with part of its own future answer revealed (paper eq. 8).

At step s the teacher sees the student state plus a random subset of the still-masked positions of the blocks after
the current one, filled with the trajectory's final tokens y_0. The current block is never revealed: those are the
positions being supervised, and showing them would hand the teacher the answer.
"""

from __future__ import annotations

import torch


def reveal_future(
    states: torch.Tensor,
    final_tokens: torch.Tensor,
    block_ends: torch.Tensor,
    *,
    mask_id: int,
    retain_ratio: float,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Teacher states for a stack of student states.

    Args:
        states: (steps, gen_length) student responses, one per step.
        final_tokens: (gen_length,) the trajectory's y_0.
        block_ends: (steps,) end (exclusive) of the block each step decodes; candidates start there.
        mask_id: The mask token id.
        retain_ratio: rho; each step reveals floor(rho * candidates) positions, drawn independently per step.
        generator: Source of randomness (seeded by the trainer).

    Returns:
        (steps, gen_length) teacher responses.
    """
    steps, length = states.shape
    positions = torch.arange(length, device=states.device)
    candidates = (positions[None, :] >= block_ends[:, None]) & (states == mask_id)
    count = torch.floor(candidates.sum(dim=1).double() * retain_ratio).long()
    scores = torch.rand((steps, length), generator=generator, device=generator.device if generator else states.device)
    scores = scores.to(states.device).masked_fill(~candidates, 2.0)  # non-candidates rank last
    rank = scores.argsort(dim=1).argsort(dim=1)
    reveal = candidates & (rank < count[:, None])
    return torch.where(reveal, final_tokens[None, :].expand_as(states), states)
