"""Markdown tables and the mean ± spread of a few seeds."""

from __future__ import annotations

import statistics


def mean_spread(values: list[float], digits: int = 3) -> str:
    """``0.231 ± 0.016`` (population std over seeds; a single seed shows no spread)."""
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.fmean(values):.{digits}f} ± {statistics.pstdev(values):.{digits}f}"


def markdown_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"
