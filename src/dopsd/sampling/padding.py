"""Prompts of different lengths in one batch: left padding, so every response starts at the same column."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def left_pad_with_responses(
    prompts: Sequence[Sequence[int] | torch.Tensor], responses: torch.Tensor, pad_id: int
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """``[pad..., prompt, response]`` rows, their attention mask (0 on padding) and the prompt width.

    ``responses`` is (batch, gen_length) and sets the device of the result.
    """
    width = max(len(prompt) for prompt in prompts)
    batch, device = responses.shape[0], responses.device
    prefix = torch.full((batch, width), pad_id, dtype=torch.long, device=device)
    attention = torch.ones((batch, width + responses.shape[1]), dtype=torch.long, device=device)
    for row, prompt in enumerate(prompts):
        start = width - len(prompt)
        prefix[row, start:] = torch.as_tensor(prompt, dtype=torch.long, device=device)
        attention[row, :start] = 0
    return torch.cat([prefix, responses], dim=1), attention, width


def group_by_length(lengths: Sequence) -> list[list[int]]:
    """Indices grouped by equal length (any hashable: a tuple of the lengths of several prompts of one row), groups
    in order of first appearance, indices in order within each.

    A model that ignores the attention mask (LLaDA's remote code) must never see a padded row: it is run on one
    group at a time, where no row needs padding.
    """
    groups: dict = {}
    for index, length in enumerate(lengths):
        groups.setdefault(length, []).append(index)
    return list(groups.values())


def micro_batches(groups: Sequence[Sequence], size: int) -> list[list]:
    """Each group cut into consecutive pieces of at most ``size``; no piece mixes groups."""
    return [list(group[start : start + size]) for group in groups for start in range(0, len(group), size)]
