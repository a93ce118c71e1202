"""Choosing K_t, the positions a step's divergence is averaged over (paper eq. 10-11)."""

from __future__ import annotations

import torch


def most_confident(
    logits: torch.Tensor, masked: torch.Tensor, counts: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``counts[i]`` masked block positions of row i where ``logits`` are most confident (highest max-probability).

    Args:
        logits: (rows, block, vocab) logits over the current block (teacher's or student's, detached).
        masked: (rows, block) which block positions are still masked (only they can be chosen).
        counts: (rows,) |K_t| per row: how many positions the student revealed at that step.

    Returns:
        ``chosen`` (rows, max count) block-relative positions, most confident first, and ``valid`` (rows, max count)
        marking the first ``counts[i]`` entries of each row.
    """
    logits = logits.detach().float()
    # max probability = exp(max logit - logsumexp): the ranking without materialising a softmax over the vocabulary
    confidence = (logits.amax(-1) - logits.logsumexp(-1)).exp().masked_fill(~masked, -torch.inf)
    k_max = int(counts.max())
    chosen = confidence.topk(k_max, dim=1).indices
    valid = torch.arange(k_max, device=counts.device)[None, :] < counts[:, None]
    return chosen, valid
