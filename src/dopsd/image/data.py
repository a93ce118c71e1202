"""scikit-learn's bundled 8x8 digits, restyled deterministically, with text prompts and seeded splits.

Every image is one of ten digits in one style. The base model is trained on the :data:`BASE_STYLES`; the
:data:`NEW_STYLES` are held out of base training and are what ``dopsd image-opsd`` and ``dopsd image-fm`` teach from a
handful of target images. A prompt is three words: ``digit 3`` (plain) or ``digit 3 thick``. Images are float tensors
of shape (1, 8, 8) in [-1, 1] (white strokes on black, as the dataset's ink values 0..16 are).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from dopsd.errors import DopsdError

SIZE = 8
BASE_STYLES = ("plain", "thick", "thin", "inverted", "shifted")
NEW_STYLES = ("framed", "striped")  # never seen in base training: the concepts to learn
STYLES = BASE_STYLES + NEW_STYLES
VOCAB = ("<pad>", "digit", *[str(d) for d in range(10)], *[s for s in STYLES if s != "plain"])
PROMPT_LENGTH = 3
HELDOUT_SHARE = 0.25  # of each digit's images, never trained on by the generator (classifier metrics read them)
SPLIT_SEED = 1234


def stylise(ink: np.ndarray, style: str) -> np.ndarray:
    """``ink`` in [0, 1], shape (8, 8), redrawn in ``style`` (same shape and range)."""
    if style == "plain":
        return ink
    if style == "thick":  # grey dilation with a plus-shaped neighbourhood
        padded = np.pad(ink, 1)
        neighbours = [padded[1:-1, 1:-1], padded[:-2, 1:-1], padded[2:, 1:-1], padded[1:-1, :-2], padded[1:-1, 2:]]
        return np.max(neighbours, axis=0)
    if style == "thin":  # only the cores of the strokes
        return np.clip((ink - 0.55) * 2.5, 0.0, 1.0)
    if style == "inverted":
        return 1.0 - ink
    if style == "shifted":  # two columns to the right, one row down
        out = np.zeros_like(ink)
        out[1:, 2:] = ink[:-1, :-2]
        return out
    if style == "framed":  # a bright one-pixel frame around the digit
        out = ink.copy()
        out[0, :] = out[-1, :] = out[:, 0] = out[:, -1] = 1.0
        return out
    if style == "striped":  # every other row blanked
        out = ink.copy()
        out[1::2, :] = 0.0
        return out
    raise DopsdError(f"unknown style {style!r}: choose one of {', '.join(STYLES)}")


def check_style(style: str, allowed=STYLES) -> str:
    if style not in allowed:
        raise DopsdError(f"unknown style {style!r}: choose one of {', '.join(allowed)}")
    return style


def prompt_text(digit: int, style: str) -> str:
    return f"digit {digit}" if style == "plain" else f"digit {digit} {style}"


def encode_prompt(text: str) -> list[int]:
    """Word ids of a prompt, padded to :data:`PROMPT_LENGTH`; an unknown word or a longer prompt is an error."""
    words = text.split()
    unknown = [word for word in words if word not in VOCAB]
    if unknown or len(words) > PROMPT_LENGTH or not words:
        raise DopsdError(f"cannot read prompt {text!r}: prompts are 'digit D' or 'digit D STYLE' with a style of "
                         f"{', '.join(STYLES[1:])}")
    return [VOCAB.index(word) for word in words] + [0] * (PROMPT_LENGTH - len(words))


def encode_prompts(texts: list[str]) -> torch.Tensor:
    return torch.tensor([encode_prompt(text) for text in texts], dtype=torch.long)


@lru_cache(maxsize=1)
def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits  # bundled with scikit-learn: no download

    data = load_digits()
    return (data.images / 16.0).astype(np.float32), data.target.astype(np.int64)


def split_indices(split: str) -> list[int]:
    """Indices of the dataset's images in ``train`` or ``heldout``: the same for every seed and machine."""
    if split not in ("train", "heldout"):
        raise DopsdError(f"unknown split {split!r}: train or heldout")
    _, labels = _digits()
    chosen = []
    for digit in range(10):
        members = [int(i) for i in np.flatnonzero(labels == digit)]
        random.Random(SPLIT_SEED + digit).shuffle(members)
        cut = int(round(len(members) * HELDOUT_SHARE))
        chosen += members[cut:] if split == "train" else members[:cut]
    return sorted(chosen)


@dataclass
class DigitSet:
    """Images (n, 1, 8, 8) in [-1, 1] with their digit, style index (into :data:`STYLES`) and prompt."""

    images: torch.Tensor
    digits: torch.Tensor
    styles: torch.Tensor

    def __len__(self) -> int:
        return len(self.digits)

    @property
    def prompts(self) -> list[str]:
        return [prompt_text(int(d), STYLES[int(s)]) for d, s in zip(self.digits, self.styles)]

    @property
    def prompt_ids(self) -> torch.Tensor:
        """(n, PROMPT_LENGTH) word ids of the prompts (computed once)."""
        if getattr(self, "_prompt_ids", None) is None:
            self._prompt_ids = encode_prompts(self.prompts)
        return self._prompt_ids

    def subset(self, indices) -> "DigitSet":
        indices = torch.as_tensor(indices, dtype=torch.long)
        return DigitSet(self.images[indices], self.digits[indices], self.styles[indices])


def digit_set(split: str, styles=BASE_STYLES) -> DigitSet:
    """Every image of ``split`` drawn in each of ``styles`` (so ``len(styles)`` times the split's size)."""
    ink, labels = _digits()
    indices = split_indices(split)
    images, digits, style_ids = [], [], []
    for style in styles:
        check_style(style)
        for index in indices:
            images.append(stylise(ink[index], style) * 2.0 - 1.0)
            digits.append(labels[index])
            style_ids.append(STYLES.index(style))
    return DigitSet(torch.tensor(np.stack(images))[:, None], torch.tensor(digits), torch.tensor(style_ids))


def target_images(style: str, count: int, seed: int = 0) -> DigitSet:
    """A handful of training images in a (new) style: ``count`` of them, digits as even as can be, drawn by
    ``seed``."""
    check_style(style)
    if count < 1:
        raise DopsdError(f"target_images must be at least 1, got {count}")
    pool = digit_set("train", (style,))
    rng = random.Random(seed)
    by_digit = {d: [i for i in range(len(pool)) if int(pool.digits[i]) == d] for d in range(10)}
    for members in by_digit.values():
        rng.shuffle(members)
    chosen = [by_digit[d][k] for k in range(max(1, -(-count // 10))) for d in range(10)][:count]
    return pool.subset(chosen)


def random_patterns(count: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` random in-context styles, none of them a named one: ``(masks (count, 8, 8) bool, values (count,))``.
    Each sets the pixels of its mask to ``value`` (1: bright, -1: erased): scattered pixels (density 8-25%) or 1-3
    whole rows or columns. Base training shows a digit with such a pattern in context and asks for another image of
    that digit with the same pattern (no word names it), so the model learns to carry a style over from its context
    rather than memorising a few named ones."""
    masks = torch.zeros(count, SIZE, SIZE, dtype=torch.bool)
    kinds = torch.randint(2, (count,), generator=generator)
    values = torch.where(torch.rand(count, generator=generator) < 0.5, 1.0, -1.0)
    for row in range(count):
        if kinds[row] == 0:
            density = 0.08 + 0.17 * float(torch.rand((), generator=generator))
            masks[row] = torch.rand(SIZE, SIZE, generator=generator) < density
        else:
            lines = torch.randperm(SIZE, generator=generator)[: int(torch.randint(1, 4, (), generator=generator))]
            if torch.rand((), generator=generator) < 0.5:
                masks[row, lines, :] = True
            else:
                masks[row, :, lines] = True
    return masks, values


def with_pattern(images: torch.Tensor, masks: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Images (n, 1, 8, 8) with each one's pattern drawn on."""
    return torch.where(masks[:, None], values.view(-1, 1, 1, 1).to(images.dtype), images)


def reference_for(dataset: DigitSet, generator: torch.Generator) -> torch.Tensor:
    """For each image, the index of another image of the same digit and style (the in-context reference)."""
    keys = dataset.digits * len(STYLES) + dataset.styles
    references = torch.empty(len(dataset), dtype=torch.long)
    for key in keys.unique():
        members = torch.nonzero(keys == key).flatten()
        shift = torch.randint(1, max(2, len(members)), (len(members),), generator=generator) if len(members) > 1 else 0
        positions = (torch.arange(len(members)) + shift) % len(members)
        references[members] = members[positions]
    return references
