"""PNG grids of samples: one panel per model (or before/after), a row per style, a column per digit."""

from __future__ import annotations

from pathlib import Path

import torch

from dopsd.image.data import BASE_STYLES, prompt_text
from dopsd.image.metrics import generate
from dopsd.image.sampler import to_pixels


def panel_styles(concept: str) -> tuple[str, ...]:
    return (concept, *[style for style in BASE_STYLES if style != concept])


def sample_panel(model, concept: str, steps: int, seed: int = 0) -> torch.Tensor:
    """(rows, 10, 8, 8) pixels in [0, 1]: the concept's row first, then the base styles, digits 0..9."""
    styles = panel_styles(concept)
    texts = [prompt_text(digit, style) for style in styles for digit in range(10)]
    images = to_pixels(generate(model, texts, steps, seed))
    return images[:, 0].reshape(len(styles), 10, *images.shape[-2:])


def save_grid(panels: dict[str, torch.Tensor], path: str | Path, title: str = "", row_labels=None) -> Path:
    """Side-by-side panels (each (rows, 10, H, W)) in one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(panels)
    rows, columns = next(iter(panels.values())).shape[:2]
    figure, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 0.34 * rows + 0.9), squeeze=False)
    for axis, name in zip(axes[0], names):
        panel = panels[name]
        mosaic = torch.full((rows * 9 - 1, columns * 9 - 1), 0.35)  # grey gaps: white is ink
        for r in range(rows):
            for c in range(columns):
                mosaic[r * 9:r * 9 + 8, c * 9:c * 9 + 8] = panel[r, c]
        axis.imshow(mosaic.numpy(), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        axis.set_title(name, fontsize=9)
        axis.set_xticks([])
        axis.set_yticks([r * 9 + 3.5 for r in range(rows)])
        axis.set_yticklabels(row_labels or [""] * rows, fontsize=7)
    if title:
        figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
