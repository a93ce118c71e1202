"""What the image experiments measure, with the bundled classifier as the judge:

- concept fidelity: the share of images generated for the new concept's prompts (``digit D framed``) that the
  classifier reads as that style;
- retained accuracy: the share of images generated for the base prompts (every digit in every base style) whose digit
  and style both read as prompted;
- Frechet distance between the classifier features (penultimate layer) of those generations and of the real held-out
  images of the base styles (FID's formula in this small feature space; lower is closer).

Every number is from a seeded sampler, so evaluating the same model twice gives the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from dopsd.image.data import BASE_STYLES, STYLES, DigitSet, digit_set, encode_prompts, prompt_text
from dopsd.image.sampler import sample_images


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to two sets of feature rows (n, d)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    mean_a, mean_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    # tr sqrt(A B) = sum of sqrt of the eigenvalues of sqrt(A) B sqrt(A), a symmetric PSD matrix
    values, vectors = np.linalg.eigh(cov_a)
    root_a = (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T
    middle = np.linalg.eigvalsh(root_a @ cov_b @ root_a)
    trace_root = np.sqrt(np.clip(middle, 0, None)).sum()
    return float(((mean_a - mean_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_root)


@dataclass
class Reading:
    digits: torch.Tensor
    styles: torch.Tensor
    features: torch.Tensor


class Judge:
    """The classifier with the real held-out images' features, read once."""

    def __init__(self, classifier, batch_size: int = 1024):
        self.classifier = classifier.eval()
        self.batch_size = batch_size
        self.real = self.read(digit_set("heldout", BASE_STYLES).images).features.numpy()

    @torch.no_grad()
    def read(self, images: torch.Tensor) -> Reading:
        parts = [self.classifier(images[i:i + self.batch_size].float().clamp(-1, 1))
                 for i in range(0, len(images), self.batch_size)]
        return Reading(torch.cat([p[0] for p in parts]).argmax(-1), torch.cat([p[1] for p in parts]).argmax(-1),
                       torch.cat([p[2] for p in parts]))

    def accuracy(self, dataset: DigitSet) -> dict:
        reading = self.read(dataset.images)
        return {"digit": float((reading.digits == dataset.digits).float().mean()),
                "style": float((reading.styles == dataset.styles).float().mean())}


def prompt_grid(styles, samples_per_prompt: int) -> tuple[list[str], torch.Tensor, torch.Tensor]:
    """Every digit in every style, ``samples_per_prompt`` times: (texts, digits, style indices)."""
    rows = [(d, s) for s in styles for d in range(10) for _ in range(samples_per_prompt)]
    return ([prompt_text(d, s) for d, s in rows], torch.tensor([d for d, _ in rows]),
            torch.tensor([STYLES.index(s) for _, s in rows]))


def generate(model, texts: list[str], steps: int, seed: int, context: torch.Tensor | None = None,
             batch_size: int = 500) -> torch.Tensor:
    """Seeded samples for ``texts``: one noise stream per call, drawn batch by batch in order."""
    generator = torch.Generator().manual_seed(seed)
    prompts = encode_prompts(texts)
    out = []
    for start in range(0, len(texts), batch_size):
        part = None if context is None else context[start:start + batch_size]
        out.append(sample_images(model, prompts[start:start + batch_size], steps, generator, context=part).images)
    return torch.cat(out).float()


def evaluate_generator(model, judge: Judge, concept: str, steps: int, *, samples_per_prompt: int = 10, seed: int = 0,
                       concept_context: torch.Tensor | None = None) -> dict:
    """Fidelity, retained accuracy and Frechet distance of ``model`` sampled with ``steps`` Euler steps.

    ``concept_context`` (one image per digit, (10, C, H, W)): also measure ``teacher_fidelity``, the fidelity with
    an image of the concept in context (what D-OPSD's teacher sees)."""
    texts, digits, styles = prompt_grid(BASE_STYLES, samples_per_prompt)
    old = judge.read(generate(model, texts, steps, seed))
    concept_texts, concept_digits, _ = prompt_grid((concept,), samples_per_prompt)
    new = judge.read(generate(model, concept_texts, steps, seed + 1))
    concept_index = STYLES.index(concept)
    result = {
        "steps": steps,
        "fidelity": float((new.styles == concept_index).float().mean()),
        "concept_digit_accuracy": float((new.digits == concept_digits).float().mean()),
        "retained_accuracy": float(((old.digits == digits) & (old.styles == styles)).float().mean()),
        "retained_digit_accuracy": float((old.digits == digits).float().mean()),
        "frechet": frechet_distance(old.features.numpy(), judge.real),
    }
    if concept_context is not None:
        context = concept_context[concept_digits]
        teacher = judge.read(generate(model, concept_texts, steps, seed + 1, context=context))
        result["teacher_fidelity"] = float((teacher.styles == concept_index).float().mean())
    return result
