"""A denoising trajectory, stored as its end point and the step at which each position was revealed.

Steps are counted forward: step ``s`` (0-based) turns state ``s`` into state ``s + 1``; state 0 is the all-mask
response (the paper's y_T) and state ``num_steps`` is y_0. Every intermediate state is rebuilt from ``tokens`` and
``reveal_step``, so a trajectory of T steps costs two vectors instead of T copies of the sequence.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass
class Trajectory:
    """One sampled response and how it was decoded.

    Attributes:
        prompt_ids: The prompt's token ids, unpadded.
        tokens: The final response y_0 (gen_length ids).
        reveal_step: For each response position, the step that revealed it.
        num_steps: Steps the sampler took for this response.
        num_recorded_steps: Steps worth training on: by default they end with the step that reveals the last
            position up to and including the first stop token; later steps only decode padding after the answer.
        block_length: Block size used while sampling (the block of a step is ``position // block_length``).
        mask_id: The mask token id, for rebuilding states.
    """

    prompt_ids: torch.Tensor
    tokens: torch.Tensor
    reveal_step: torch.Tensor
    num_steps: int
    num_recorded_steps: int
    block_length: int
    mask_id: int

    @property
    def gen_length(self) -> int:
        return self.tokens.shape[0]

    def response_length(self, stop: Sequence[int]) -> int:
        """Tokens before the first of the ``stop`` ids (the whole response when none appears)."""
        stops = torch.isin(self.tokens, torch.tensor(list(stop)))
        return int(torch.nonzero(stops)[0]) if bool(stops.any()) else self.gen_length

    def state(self, step: int) -> torch.Tensor:
        """The response before step ``step``: revealed tokens in place, the rest masked."""
        if not 0 <= step <= self.num_steps:
            raise IndexError(f"step {step} is outside 0..{self.num_steps}")
        return torch.where(self.reveal_step < step, self.tokens, torch.full_like(self.tokens, self.mask_id))

    def states(self, steps: torch.Tensor | None = None) -> torch.Tensor:
        """States before each of ``steps`` (default: every recorded step), stacked to (len(steps), gen_length)."""
        if steps is None:
            steps = torch.arange(self.num_recorded_steps, device=self.tokens.device)
        revealed = self.reveal_step[None, :] < steps[:, None]
        return torch.where(revealed, self.tokens[None, :], torch.full_like(self.tokens, self.mask_id)[None, :])

    def revealed_at(self, step: int) -> torch.Tensor:
        """Positions (sorted) that step ``step`` revealed."""
        return torch.nonzero(self.reveal_step == step).flatten()

    def block_steps(self) -> list[torch.Tensor]:
        """For each block, the steps that decoded it (sorted): the states before them are the block's states."""
        return [self.reveal_step[start : start + self.block_length].unique()
                for start in range(0, self.gen_length, self.block_length)]

    def block_state(self, steps: torch.Tensor) -> torch.Tensor:
        """A response stitched from one state per block: block b as it was before step ``steps[b]`` (a step of
        ``num_steps`` gives the finished block). With block-causal attention each block's logits depend only on the
        blocks before it, which are finished in every state of that block, so one stitched response stands for one
        state of every block (OPDLM's ``one_state_per_block``)."""
        before = steps.repeat_interleave(self.block_length)[: self.gen_length]
        return torch.where(self.reveal_step < before, self.tokens, torch.full_like(self.tokens, self.mask_id))

    def block_bounds(self, step: int) -> tuple[int, int]:
        """``[start, end)`` of the block that step ``step`` decoded."""
        first = int(self.revealed_at(step)[0])
        start = first - first % self.block_length
        return start, min(start + self.block_length, self.gen_length)


def recorded_steps(tokens: torch.Tensor, reveal_step: torch.Tensor, num_steps: int, stop_ids) -> int:
    """Steps up to the one that completes everything through the first stop token (all steps if there is none)."""
    is_stop = torch.isin(tokens, torch.as_tensor(list(stop_ids), device=tokens.device))
    if not bool(is_stop.any()):
        return num_steps
    first_stop = int(torch.nonzero(is_stop)[0])
    return int(reveal_step[: first_stop + 1].max()) + 1
