"""Drawing distinct random instances, with a bound so an impossible request fails instead of looping forever."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import TypeVar

T = TypeVar("T")
TRIES_PER_ITEM = 50


def draw_distinct(n: int, draw: Callable[[], T | None], key: Callable[[T], Hashable], what: str) -> list[T]:
    """``n`` items from ``draw`` (None = a failed draw) that differ by ``key``, in the order drawn."""
    seen, items = set(), []
    for _ in range(TRIES_PER_ITEM * max(n, 1)):
        if len(items) == n:
            break
        item = draw()
        if item is not None and key(item) not in seen:
            seen.add(key(item))
            items.append(item)
    if len(items) < n:
        raise ValueError(f"found only {len(items)} distinct {what} of the {n} asked for")
    return items
