"""Markdown tables and the mean ± sample standard deviation of a few seeds."""

from __future__ import annotations

import statistics


def mean_spread(values: list[float], digits: int = 3) -> str:
    """``0.231 ± 0.016``: the mean and the sample standard deviation (n - 1) over seeds, the one convention of every
    table; a single seed shows no spread."""
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.fmean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def markdown_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def updates_to_reach(runs: list, target: float) -> str:
    """Mean ± std over the runs (:class:`~dopsd.experiments.runs.Run`) of the first evaluated update at or above
    ``target``; runs that never get there are counted beside it (``1 ± 0 (2/3)``), and ``not reached`` when none
    does."""
    reached = [next((e["update"] for e in r.evals if e["accuracy"] >= target), None) for r in runs]
    values = [update for update in reached if update is not None]
    if not values:
        return "not reached"
    cell = mean_spread(values, 0)
    return cell if len(values) == len(runs) else f"{cell} ({len(values)}/{len(runs)})"
