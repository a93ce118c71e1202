"""The teacher's input. d-OPSD's self-teacher sees the student's state with part of its own future answer revealed
(paper eq. 8): at step s, a random subset of the still-masked positions of the blocks after the current one, filled
with the trajectory's final tokens y_0. The current block is never revealed: those are the positions being
supervised, and showing them would hand the teacher the answer. AR-style OPSD's teacher (paper section 4.3) instead
sees the student's state unchanged after a prompt that also carries the task's worked reference solution.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dopsd.sampling import Trajectory


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


@dataclass
class PreparedTrajectory:
    """A kept trajectory with everything its states need for the loss, built once per rollout."""

    trajectory: Trajectory
    student_states: torch.Tensor  # (steps, gen_length)
    teacher_states: torch.Tensor  # (steps, gen_length)
    block_starts: torch.Tensor  # (steps,)
    block_ends: torch.Tensor  # (steps,)
    counts: torch.Tensor  # (steps,) positions the student revealed at each step = |K_t|
    teacher_prompt_ids: list[int] | None = None  # AR-style OPSD's prompt with a reference solution; None: the student's
    steps: torch.Tensor | None = None  # (steps,) the sampler's step number of each row; None: 0, 1, 2, ...

    def step_number(self, row: int) -> int:
        """The sampler's step that row ``row`` of the states is (rows differ once uninformed states are dropped)."""
        return row if self.steps is None else int(self.steps[row])

    @property
    def teacher_prompt(self) -> list[int]:
        return self.trajectory.prompt_ids if self.teacher_prompt_ids is None else self.teacher_prompt_ids

    @property
    def num_steps(self) -> int:
        return self.student_states.shape[0]


def prepare_trajectory(trajectory: Trajectory, retain_ratio: float, generator: torch.Generator,
                       reference_prompt: list[int] | None = None, skip_uninformed: bool = False) -> PreparedTrajectory:
    """The teacher sees part of the trajectory's own future (d-OPSD), or, given ``reference_prompt`` (AR-style OPSD),
    the student's states unchanged after that prompt: positions then shift by the prompts' length difference.

    ``skip_uninformed`` drops the states whose teacher input equals the student's (nothing revealed: the last block,
    or no masked position left after the current one); with a fixed teacher they only pull the student back to its
    initial policy. The random reveals are drawn for every state first, so the kept ones are the same either way."""
    steps = trajectory.num_recorded_steps
    bounds = torch.tensor([trajectory.block_bounds(step) for step in range(steps)], dtype=torch.long).view(-1, 2)
    counts = torch.bincount(trajectory.reveal_step[trajectory.reveal_step < steps], minlength=steps)
    states = trajectory.states()
    if reference_prompt is not None:
        return PreparedTrajectory(trajectory, states, states, bounds[:, 0], bounds[:, 1], counts, reference_prompt)
    teacher = reveal_future(states, trajectory.tokens, bounds[:, 1], mask_id=trajectory.mask_id,
                            retain_ratio=retain_ratio, generator=generator)
    if not skip_uninformed:
        return PreparedTrajectory(trajectory, states, teacher, bounds[:, 0], bounds[:, 1], counts)
    keep = torch.nonzero((teacher != states).any(dim=1)).flatten()
    return PreparedTrajectory(trajectory, states[keep], teacher[keep], bounds[keep, 0], bounds[keep, 1], counts[keep],
                              steps=keep)
