"""Batched pass@k rollouts: every prompt of a rollout sampled together, the unsolved ones resampled together,
scored by the task's verifier (d-OPSD's rollouts and the self-teacher verification of `dopsd experiment toy`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from dopsd.models import DiffusionLM
from dopsd.sampling.sampler import BlockDiffusionSampler, SamplerConfig
from dopsd.sampling.trajectory import Trajectory
from dopsd.tasks import Example, Task


@dataclass
class PassKResult:
    """What pass@k sampling kept for each prompt: its trajectory, its score, whether it was solved, and how many rounds
    it took.

    A prompt keeps the best-scoring trajectory seen (the first at that score). ``solved`` is the task's accuracy rule
    (``Score.correct``) on a trajectory of any round; a prompt stops being resampled once it is solved.
    """

    examples: list[Example]
    trajectories: list[Trajectory]
    completions: list[str]
    scores: list[float]
    solved: list[bool]
    rounds: list[int]
    samples: int = 0
    decoded_tokens: int = 0


def passk_rollout(
    lm: DiffusionLM,
    task: Task,
    examples: Sequence[Example],
    prompts: Sequence[Sequence[int]],
    *,
    first: SamplerConfig,
    resample: SamplerConfig,
    passk: int,
    generator: torch.Generator,
    stop_when_solved: bool = True,
) -> PassKResult:
    """Up to ``passk`` rounds; round 1 uses ``first``, later rounds ``resample`` (the pass@k temperature). A prompt
    stops being resampled once it is solved, unless ``stop_when_solved`` is off: then every prompt is drawn in all
    ``passk`` rounds and keeps its best-scoring trajectory (as the authors' code does for Sudoku)."""
    count = len(examples)
    best: list[tuple[float, Trajectory, str] | None] = [None] * count
    solved = [False] * count
    rounds = [0] * count
    samples = 0
    for round_index in range(passk):
        pending = [i for i in range(count) if not (solved[i] and stop_when_solved)]
        if not pending:
            break
        sampler = BlockDiffusionSampler(lm, first if round_index == 0 else resample)
        trajectories = sampler.sample([prompts[i] for i in pending], generator=generator)
        samples += len(pending)
        for i, trajectory in zip(pending, trajectories):
            completion = lm.decode(trajectory.tokens)
            score = task.score(examples[i], completion)
            rounds[i] = round_index + 1
            if best[i] is None or score.value > best[i][0]:
                best[i] = (score.value, trajectory, completion)
            solved[i] = solved[i] or score.correct
    return PassKResult(
        examples=list(examples),
        trajectories=[entry[1] for entry in best],
        completions=[entry[2] for entry in best],
        scores=[entry[0] for entry in best],
        solved=solved,
        rounds=rounds,
        samples=samples,
        decoded_tokens=samples * first.gen_length,
    )
