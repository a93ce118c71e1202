"""A PNG of held-out accuracy and training loss against updates, drawn from ``metrics.jsonl``."""

from __future__ import annotations

from pathlib import Path

from dopsd.trainers.metrics import read_metrics

LM_CURVES = (("eval_accuracy", "held-out accuracy"), ("eval_mean_score", "held-out mean score"))


def plot_run(output_dir: str | Path, title: str = "", curves=LM_CURVES) -> Path:
    """Writes ``training.png`` into ``output_dir`` and returns its path; ``curves``: the two evaluation series of the
    top panel, ``(metrics key, label)`` each (held-out accuracy and mean score by default)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    output_dir = Path(output_dir)
    rows = read_metrics(output_dir / "metrics.jsonl")
    (first, first_label), (second, second_label) = curves
    evals = [(r["update"], r[first], r[second]) for r in rows if first in r]
    losses = [(r["update"], r["loss"]) for r in rows if "loss" in r]
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
    if evals:
        updates, accuracy, score = zip(*evals)
        top.plot(updates, accuracy, marker="o", label=first_label)
        top.plot(updates, score, marker=".", linestyle="--", label=second_label)
        top.set_ylim(0, 1)
        top.legend(loc="lower right")
    top.set_ylabel("held-out")
    top.grid(alpha=0.3)
    if losses:
        updates, values = zip(*losses)
        bottom.plot(updates, values, color="tab:red", linewidth=1)
    bottom.set_ylabel("training loss")
    bottom.set_xlabel("optimizer update")
    bottom.grid(alpha=0.3)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    path = output_dir / "training.png"
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
