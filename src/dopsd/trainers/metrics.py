"""Metrics to JSONL (one object per logged update) and TensorBoard, written by the main process only."""

from __future__ import annotations

import json
from pathlib import Path


class MetricsLogger:
    """Appends ``{"update": n, ...}`` rows to ``metrics.jsonl``, and the same scalars to the trackers of
    ``report_to``: TensorBoard (``output_dir/tensorboard``) and Weights & Biases (project ``dopsd``, the run named
    after its folder, its config attached)."""

    def __init__(self, output_dir: str | Path, enabled: bool = True, report_to=("tensorboard",),
                 run_config: dict | None = None):
        self.enabled = enabled
        self.path = Path(output_dir) / "metrics.jsonl"
        self._writer = None
        self._wandb = None
        if not enabled or "none" in report_to:
            return
        if "tensorboard" in report_to:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._writer = SummaryWriter(log_dir=str(Path(output_dir) / "tensorboard"))
            except ImportError:  # tensorboard is optional; JSONL is always written
                self._writer = None
        if "wandb" in report_to:
            import wandb

            self._wandb = wandb.init(project="dopsd", name=Path(output_dir).name, config=run_config or {},
                                     dir=str(output_dir))

    def log(self, update: int, metrics: dict) -> None:
        if not self.enabled:
            return
        row = {"update": update, **metrics}
        with self.path.open("a") as handle:
            handle.write(json.dumps(row) + "\n")
        scalars = {key: value for key, value in metrics.items()
                   if isinstance(value, (int, float)) and not isinstance(value, bool)}
        if self._writer is not None:
            for key, value in scalars.items():
                self._writer.add_scalar(key, value, update)
            self._writer.flush()
        if self._wandb is not None:
            self._wandb.log(scalars, step=update)

    def truncate_after(self, update: int) -> None:
        """Drops rows logged after ``update`` (a resumed run rewrites them)."""
        if not self.enabled or not self.path.exists():
            return
        rows = [line for line in self.path.read_text().splitlines() if line and json.loads(line)["update"] <= update]
        self.path.write_text("".join(row + "\n" for row in rows))

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        if self._wandb is not None:
            self._wandb.finish()


def read_metrics(path: str | Path) -> list[dict]:
    """The rows of a ``metrics.jsonl``. Each update logs each metric once (its training row, its evaluation's row);
    a metric logged twice for one update (two writers in one run folder interleave their rows) is refused, naming
    the file and both lines, rather than counted twice."""
    from dopsd.errors import DopsdError
    from dopsd.tasks.loading import jsonl_rows

    path, rows, seen = Path(path), [], {}
    for location, row in jsonl_rows(path):  # undecodable text, bad JSON: one error naming the file and line
        number = int(location.rsplit(":", 1)[1])
        update = row.get("update")
        for key in row:
            if key == "update":
                continue
            first = seen.setdefault((update, key), number)
            if first != number:
                raise DopsdError(f"{path}:{number}: update {update} is logged twice ({key}, first on line {first}): "
                                 "two runs wrote into one folder; keep one run's rows")
        rows.append(row)
    return rows
