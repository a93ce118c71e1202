"""The baseline D-OPSD must beat (``dopsd image-fm``): plain flow-matching fine-tuning on the target images and their
prompts (text only, no context), with the same batches (target and prior-preservation rows), updates and optimiser
as D-OPSD's."""

from __future__ import annotations

import torch

from dopsd.image.config import ImageFMConfig
from dopsd.image.flow import flow_matching_loss
from dopsd.image.trainer import ImageTrainer


class ImageFMTrainer(ImageTrainer):
    config_class = ImageFMConfig

    def __init__(self, *, config: ImageFMConfig | None = None, model=None, classifier=None):
        super().__init__(config=config, model=model, classifier=classifier)
        self.noise_stream = self.generator(2)

    def loss(self) -> tuple[torch.Tensor, dict]:
        images, prompts, is_target = self.next_batch()
        return flow_matching_loss(self.model, images, prompts, self.noise_stream), {
            "target_rows": float(is_target.float().mean())}
