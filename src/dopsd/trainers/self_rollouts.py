"""What the methods that learn from the model's own solved trajectories share (d-OPSD, rejection-sampling
fine-tuning): their pass@k settings, the pass@k sampling itself, which trajectories reach the score threshold that
training keeps, and the rollout's metrics."""

from __future__ import annotations

import time
from dataclasses import dataclass

from dopsd.config import option
from dopsd.sampling import PassKResult, passk_rollout
from dopsd.tasks import encode_prompts
from dopsd.trainers.config import RolloutConfig, check, check_at_least_one


@dataclass
class PassKConfig(RolloutConfig):
    """How a method samples its own trajectories: every prompt at once, the unsolved ones again, up to pass@k."""

    passk: int = option(8, "rounds of sampling per prompt until a correct trajectory appears (pass@k)", "rollout")
    passk_temperature: float = option(0.9, "temperature of the pass@k resampling rounds", "rollout")
    passk_stop_when_solved: bool = option(True, "stop resampling a prompt once a correct trajectory appears (false: "
                                          "all passk rounds, keeping the best, as the authors' code does for Sudoku)",
                                          "rollout")
    prompts_per_rollout: int = option(1, "prompts sampled together per process per rollout (the authors: 1 per GPU)",
                                      "rollout")
    score_threshold: float | None = option(None, "score a trajectory needs to count as correct (null: the task's, "
                                           "0.25 for Sudoku)", "method")

    def __post_init__(self):
        super().__post_init__()
        check_at_least_one(self, "passk", "prompts_per_rollout")
        check(self.passk_temperature >= 0, "passk_temperature", self.passk_temperature, "must be >= 0")
        check(self.score_threshold is None or 0.0 <= self.score_threshold <= 1.0, "score_threshold",
              self.score_threshold, "must be in [0, 1]")


class SelfRollouts:
    """A mixin for :class:`~dopsd.trainers.rollouts.RolloutTrainer` subclasses with a :class:`PassKConfig`."""

    def score_threshold(self) -> float:
        if self.config.score_threshold is not None:
            return self.config.score_threshold
        return getattr(self.task, "filter_threshold", self.task.correct_threshold)

    def sample_own(self) -> tuple[list, list[list[int]], PassKResult, float]:
        """This process's next prompts sampled with pass@k by the current policy: ``(examples, prompt ids, result,
        seconds)``."""
        config = self.config
        began = time.perf_counter()
        examples = self.next_examples(config.prompts_per_rollout)
        prompts = encode_prompts(self.base_lm, self.task, examples, config.prompt_style)
        with self.policy_pass() as lm:
            result = passk_rollout(lm, self.task, examples, prompts, first=config.sampler_config(),
                                   resample=config.sampler_config(config.passk_temperature), passk=config.passk,
                                   generator=self.sample_generator, stop_when_solved=config.passk_stop_when_solved)
        return examples, prompts, result, time.perf_counter() - began

    def reaching_score_threshold(self, result: PassKResult) -> list[int]:
        """Indices of the prompts whose kept trajectory reaches :meth:`score_threshold` (the trajectories training
        keeps). Not ``result.solved``, the task's accuracy rule, which the ``solved`` metric counts: Sudoku keeps a
        trajectory from a score of 0.25 and counts a puzzle solved at 1.0."""
        threshold = self.score_threshold()
        return [i for i, score in enumerate(result.scores) if score >= threshold]

    def rollout_summary(self, result: PassKResult, kept: int, seconds: float) -> dict:
        lengths = [trajectory.response_length(self.base_lm.tokens.stop) for trajectory in result.trajectories]
        return {
            "solved": sum(result.solved) / len(result.solved),
            "kept": kept / len(result.scores),
            "mean_score": sum(result.scores) / len(result.scores),
            "passk_rounds": sum(result.rounds) / len(result.rounds),
            "response_length": sum(lengths) / len(lengths),
            "rollout_samples": result.samples,
            "tokens_per_second": result.decoded_tokens / seconds if seconds else 0.0,
        }
