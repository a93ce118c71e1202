"""Learning-rate schedules: the factor on the configured rate at each optimizer update.

Warmup multiplies by ``(update + 1) / warmup_steps`` for the first ``warmup_steps`` updates (so the first update
already learns); then ``constant`` keeps the full rate, ``linear`` decays it to 0 at ``max_updates``, and ``cosine``
follows half a cosine from the full rate to 0 at ``max_updates``.
"""

from __future__ import annotations

import math

SCHEDULES = ("constant", "linear", "cosine")


def lr_factor(update: int, schedule: str, warmup_steps: int, max_updates: int) -> float:
    """The factor for optimizer update ``update`` (0-based)."""
    if warmup_steps and update < warmup_steps:
        return (update + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    span = max(max_updates - warmup_steps, 1)
    progress = min(max(update - warmup_steps, 0) / span, 1.0)
    if schedule == "linear":
        return 1.0 - progress
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    raise ValueError(f"unknown schedule {schedule!r}: use one of {', '.join(SCHEDULES)}")
