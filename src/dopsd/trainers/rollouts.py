"""What the methods that train on their own samples share (d-OPSD, RFT, diffu-GRPO, OPDLM): the rollout.

A rollout is drawn by the current policy, cut into chunks, and each chunk serves one optimizer update; the next
rollout is drawn when no chunk is left. :class:`RolloutTrainer` owns that bookkeeping (the rollout's data, the chunks
still pending, the rollout's metrics), the stream its samples are drawn from, and the checkpointing of a rollout not yet
consumed; a method says how to draw one (:meth:`RolloutTrainer.draw_rollout`) and trains on one chunk at a time.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from dopsd.trainers.base import Trainer
from dopsd.trainers.salts import ROLLOUT_SAMPLING_SALT


def split_into_chunks(items: Sequence, chunks: int) -> list[list[tuple[int, int]]]:
    """All (item, step) pairs of ``items`` (each with ``num_steps``) in order, cut into ``chunks`` contiguous pieces
    of near-equal size."""
    pairs = [(i, step) for i, item in enumerate(items) for step in range(item.num_steps)]
    size, extra = divmod(len(pairs), chunks)
    pieces, start = [], 0
    for index in range(chunks):
        end = start + size + (1 if index < extra else 0)
        pieces.append(pairs[start:end])
        start = end
    return pieces


class RolloutTrainer(Trainer):
    """A trainer that learns from rollouts of its own policy. A subclass implements :meth:`draw_rollout` and, in
    ``compute_update``, trains on the chunk :meth:`next_chunk` gives it.

    ``rollout_data`` is what the last rollout made (each method's own kind: prepared trajectories, rewarded
    completions...), ``pending`` its chunks not trained on yet (each indexes into ``rollout_data``), and
    ``rollout_metrics`` its statistics. Samples are drawn from ``sample_generator``, the first of the method's
    random streams."""

    # The key a checkpoint keeps ``rollout_data`` under (each method's older checkpoints named it their own way).
    rollout_key = "rollout"
    # Statistics of a rollout that count its samples: logged on the update that drew it only, so that summing them
    # over updates counts every sample once (its other statistics describe each of its updates).
    ONCE_PER_ROLLOUT = ("rollout_samples", "data_tokens")

    def __init__(self, *, model=None, tokenizer=None, task=None, config=None):
        super().__init__(model=model, tokenizer=tokenizer, task=task, config=config)
        self.sample_generator = self.generator(ROLLOUT_SAMPLING_SALT)
        self.rollout_data = None
        self.pending: list = []
        self.rollout_metrics: dict = {}

    def draw_rollout(self) -> tuple[object, list, dict]:
        """Samples a rollout with the current policy: ``(its data, its chunks, its metrics)``."""
        raise NotImplementedError

    def rollout(self) -> float:
        """Draws a new rollout, which replaces any chunks still pending; returns the seconds it took."""
        began = time.perf_counter()
        self.rollout_data, self.pending, self.rollout_metrics = self.draw_rollout()
        return time.perf_counter() - began

    def next_chunk(self) -> tuple[object, dict]:
        """The next chunk, drawing a new rollout when none is pending, and the rollout's metrics for this update."""
        metrics = {}
        drawn = not self.pending
        if drawn:
            metrics["rollout_seconds"] = self.rollout()
        metrics.update({k: v for k, v in self.rollout_metrics.items() if drawn or k not in self.ONCE_PER_ROLLOUT})
        return self.pending.pop(0), metrics

    def method_state(self) -> dict:
        """The random streams and the rollout being trained on (none when every chunk of it is done: the next update
        draws a new one)."""
        return {**super().method_state(), self.rollout_key: self.rollout_data if self.pending else None,
                "pending": self.pending, "rollout_metrics": self.rollout_metrics}

    def load_method_state(self, state: dict) -> None:
        super().load_method_state(state)
        # RFT's checkpoints from before it kept its rollout here hold no rollout: the next update draws one.
        self.rollout_data = state.get(self.rollout_key)
        self.pending, self.rollout_metrics = state.get("pending", []), state.get("rollout_metrics", {})
