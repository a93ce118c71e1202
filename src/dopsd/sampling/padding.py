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
