"""Metrics to JSONL (one object per logged update) and TensorBoard, written by the main process only."""

from __future__ import annotations

import json
from pathlib import Path


class MetricsLogger:
    """Appends ``{"update": n, ...}`` rows to ``metrics.jsonl`` and the same scalars to TensorBoard."""

    def __init__(self, output_dir: str | Path, enabled: bool = True):
        self.enabled = enabled
        self.path = Path(output_dir) / "metrics.jsonl"
        self._writer = None
        if enabled:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._writer = SummaryWriter(log_dir=str(Path(output_dir) / "tensorboard"))
            except ImportError:  # tensorboard is optional; JSONL is always written
                self._writer = None

    def log(self, update: int, metrics: dict) -> None:
        if not self.enabled:
            return
        row = {"update": update, **metrics}
        with self.path.open("a") as handle:
            handle.write(json.dumps(row) + "\n")
        if self._writer is not None:
            for key, value in metrics.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    self._writer.add_scalar(key, value, update)
            self._writer.flush()

    def truncate_after(self, update: int) -> None:
        """Drops rows logged after ``update`` (a resumed run rewrites them)."""
        if not self.enabled or not self.path.exists():
            return
        rows = [line for line in self.path.read_text().splitlines() if line and json.loads(line)["update"] <= update]
        self.path.write_text("".join(row + "\n" for row in rows))

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


def read_metrics(path: str | Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
