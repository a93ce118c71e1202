"""D-OPSD for a few-step image generator (``dopsd image-opsd``).

Each update: the student (the trained model) rolls out its own ``steps``-step Euler samples from the text alone
(``digit 3 framed``; on a ``retain_share`` of the rows a base-style prompt, for prior preservation), with no
gradient; at every state of the roll-out the EMA teacher (the same network, averaged weights) predicts the velocity
from the text *plus the row's target image of the concept in context* (on prior-preservation rows from the text
alone, or with ``retain_context`` the row's base-style image), and the student predicts it from the text alone.
The loss is the Gaussian KL between the two Euler transitions N(x + dt v_student, s^2) and
N(x + dt v_teacher, s^2), i.e. dt^2 |v_student - v_teacher|^2 / 2s^2: a weighted MSE, averaged over the roll-out's
states (s^2 = dt^2 / 2 makes each step's weight 1). The teacher gets no gradient and follows the student by an
exponential moving average after each update.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch

from dopsd.image.config import ImageOPSDConfig
from dopsd.image.sampler import sample_images
from dopsd.image.trainer import ImageTrainer


class ImageOPSDTrainer(ImageTrainer):
    config_class = ImageOPSDConfig

    def __init__(self, *, config: ImageOPSDConfig | None = None, model=None, classifier=None):
        super().__init__(config=config, model=model, classifier=classifier)
        self.rollout_stream = self.generator(1)
        self.teacher = copy.deepcopy(self.model).eval()
        for parameter in self.teacher.parameters():
            parameter.requires_grad_(False)

    def teacher_inputs(self, images: torch.Tensor, prompts: torch.Tensor, is_target: torch.Tensor) -> dict:
        """What the teacher is given at each roll-out state: the text and, in context, the row's target image of the
        concept (on prior-preservation rows the base-style image only with ``retain_context``; otherwise the context
        tokens of those rows are hidden)."""
        seen = is_target | self.config.retain_context
        return {"prompt_ids": prompts, "context": images, "context_mask": seen}

    @staticmethod
    def student_inputs(images: torch.Tensor, prompts: torch.Tensor) -> dict:
        """What the student is given: the text alone (no context tokens in its sequence)."""
        return {"prompt_ids": prompts, "context": None}

    def loss(self) -> tuple[torch.Tensor, dict]:
        images, prompts, is_target = self.next_batch()
        student_text = self.student_inputs(images, prompts)
        rollout = sample_images(self.model, student_text["prompt_ids"], self.config.steps, self.rollout_stream)
        teacher = self.teacher_inputs(images, prompts, is_target)
        states = torch.cat(rollout.states)
        timesteps = torch.cat(rollout.timesteps)
        repeat = len(rollout.states)
        with torch.no_grad():
            target = self.teacher(states, timesteps, teacher["prompt_ids"].repeat(repeat, 1),
                                  context=teacher["context"].repeat(repeat, 1, 1, 1),
                                  context_mask=teacher["context_mask"].repeat(repeat))
        prediction = self.model(states, timesteps, student_text["prompt_ids"].repeat(repeat, 1), context=None)
        dts = torch.tensor(rollout.dts, dtype=prediction.dtype).repeat_interleave(len(prompts))
        weights = dts**2 / (dts**2).mean()  # the KL's dt^2, normalised: 1 each on an equal-step grid
        per_state = ((prediction - target) ** 2).flatten(1).mean(1)
        loss = (weights * per_state).mean()
        gap = per_state.detach().view(len(rollout.states), -1).mean(0)
        target_gap = float(gap[is_target].mean()) if is_target.any() else 0.0
        return loss, {"teacher_student_gap": float(gap.mean()), "target_gap": target_gap,
                      "target_rows": float(is_target.float().mean())}

    @torch.no_grad()
    def after_optimizer_step(self) -> None:
        decay = self.config.ema_decay
        for teacher, student in zip(self.teacher.parameters(), self.model.parameters(), strict=True):
            teacher.mul_(decay).add_(student.detach(), alpha=1.0 - decay)

    def save_extra_state(self, folder: Path) -> None:
        self.teacher.save_pretrained(folder / "teacher")

    def load_extra_state(self, folder: Path) -> None:
        from safetensors.torch import load_file

        self.teacher.load_state_dict(load_file(folder / "teacher" / "diffusion_pytorch_model.safetensors"))
