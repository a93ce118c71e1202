"""The judge of the image experiments: a small CNN that reads an 8x8 image's digit and style (all of
:data:`~dopsd.image.data.STYLES`, the held-out ones included), trained once on real images and bundled. Its
penultimate layer is the feature space of the Frechet distance."""

from __future__ import annotations

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from dopsd.image.data import STYLES


class DigitStyleClassifier(ModelMixin, ConfigMixin):
    @register_to_config
    def __init__(self, num_digits: int = 10, num_styles: int = len(STYLES), channels: int = 32, features: int = 64):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, channels, 3, padding=1), nn.GELU(),
            nn.Conv2d(channels, 2 * channels, 3, padding=1), nn.GELU(),
            nn.AvgPool2d(2), nn.Flatten(),
            nn.Linear(2 * channels * 16, features), nn.GELU(),
        )
        self.digit_head = nn.Linear(features, num_digits)
        self.style_head = nn.Linear(features, num_styles)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(digit logits, style logits, features)`` of images in [-1, 1]."""
        features = self.body(images)
        return self.digit_head(features), self.style_head(features), features


def train_classifier(images: torch.Tensor, digits: torch.Tensor, styles: torch.Tensor, *, epochs: int = 12,
                     batch_size: int = 128, learning_rate: float = 2e-3, noise: float = 0.1, seed: int = 0,
                     progress: bool = True) -> DigitStyleClassifier:
    """Cross-entropy on both heads; inputs jittered with Gaussian noise of std ``noise`` so that slightly noisy
    generated images are read like real ones."""
    from tqdm.auto import tqdm

    torch.manual_seed(seed)
    model = DigitStyleClassifier()
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate)
    generator = torch.Generator().manual_seed(seed)
    for _ in tqdm(range(epochs), desc="classifier", disable=not progress):
        order = torch.randperm(len(digits), generator=generator)
        for start in range(0, len(order), batch_size):
            batch = order[start:start + batch_size]
            x = images[batch] + noise * torch.randn(images[batch].shape, generator=generator)
            digit_logits, style_logits, _ = model(x)
            loss = (nn.functional.cross_entropy(digit_logits, digits[batch])
                    + nn.functional.cross_entropy(style_logits, styles[batch]))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model.eval()


def load_classifier(path: str) -> DigitStyleClassifier:
    return DigitStyleClassifier.from_pretrained(path).eval()
