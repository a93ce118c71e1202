"""Rejection-sampling fine-tuning (RFT / STaR): the baseline with exactly d-OPSD's information.

Each update samples its prompts with the same batched pass@k rollout as d-OPSD, keeps the same solved trajectories,
and trains on their final responses with the masked-diffusion (SFT) loss: learning from one's own correct answers,
with no teacher. Whether d-OPSD's self-teacher adds anything is d-OPSD against this.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dopsd.config import option
from dopsd.trainers.config import check
from dopsd.trainers.rollouts import RolloutTrainer
from dopsd.trainers.salts import RFT_MASKING_SALT
from dopsd.trainers.self_rollouts import PassKConfig, SelfRollouts
from dopsd.trainers.sft import masked_diffusion_backward


@dataclass
class RFTConfig(PassKConfig):
    """RFT: d-OPSD's rollouts and kept set, the masked-diffusion loss on the kept responses (``dopsd rft --help``)."""

    output_dir: str = "runs/rft"
    min_mask_ratio: float = option(1e-3, "lower end eps of the masking ratio t ~ U(eps, 1)", "method")

    def __post_init__(self):
        super().__post_init__()
        check(0.0 < self.min_mask_ratio < 1.0, "min_mask_ratio", self.min_mask_ratio, "must be in (0, 1)")


class RFTTrainer(SelfRollouts, RolloutTrainer):
    """``RFTTrainer(model=..., task=..., config=RFTConfig(...)).train()``: one rollout and one update at a time."""

    config_class = RFTConfig
    progress_keys = ("loss", "solved", "eval_accuracy")

    def __init__(self, *, model=None, tokenizer=None, task=None, config: RFTConfig | None = None):
        super().__init__(model=model, tokenizer=tokenizer, task=task, config=config)
        self.mask_generator = self.generator(RFT_MASKING_SALT)

    def draw_rollout(self) -> tuple[tuple, list[list[int]], dict]:
        """Samples this process's prompts with pass@k: the data is ``(prompt ids, result)``, its one chunk the indices
        of the trajectories kept."""
        _, prompts, result, seconds = self.sample_own()
        kept = self.reaching_score_threshold(result)
        return (prompts, result), [kept], self.rollout_summary(result, len(kept), seconds)

    def compute_update(self) -> dict:
        kept, metrics = self.next_chunk()
        if not kept:  # nothing solved: still join the other processes' gradient all-reduce
            self.backward_micro_batches([], None)
            return {**metrics, "loss": 0.0, "trained": 0}
        prompts, result = self.rollout_data
        responses = torch.stack([result.trajectories[i].tokens for i in kept]).to(self.accelerator.device)
        trained = masked_diffusion_backward(self, [prompts[i] for i in kept], responses, self.mask_generator,
                                            self.config.min_mask_ratio)
        return {**metrics, **trained, "trained": len(kept)}
