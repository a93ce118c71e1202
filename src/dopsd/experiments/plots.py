"""A PNG of one metric against updates for several runs (Figure 3)."""

from __future__ import annotations

from pathlib import Path


def plot_series(series: dict[str, list[tuple[int, float]]], path: Path, *, ylabel: str, title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4))
    for name, points in series.items():
        if points:
            updates, values = zip(*points)
            axis.plot(updates, values, label=name, linewidth=1.2)
    axis.set_xlabel("optimizer update")
    axis.set_ylabel(ylabel)
    axis.grid(alpha=0.3)
    axis.legend()
    if title:
        axis.set_title(title)
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
