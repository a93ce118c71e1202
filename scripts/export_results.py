"""Copies an experiment folder's finished runs into another without their checkpoints (how docs/results is filled).

    python scripts/export_results.py /scratch/results docs/results sudoku countdown-steps

For each task folder: every run folder holding ``summary.json`` (its config, summary, best-checkpoint evaluation
caches, and its metrics up to the summary's update: a run being continued has logged past it) and the task's
base-model and toy-verification caches. A run being continued is exported as its summary stands: its config's
``max_updates`` set back to the summary's updates, best-checkpoint caches past them left out. Checkpoints, the
``best`` model and TensorBoard logs stay behind. A run the destination already holds with more updates is left alone
(say ``--replace`` to take the source's anyway), so an export while a rerun is under way never swaps a longer run
for a shorter one.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
from pathlib import Path

from dopsd.experiments.runs import summary_updates

CACHES = "best-L*.json"  # best-L<length>-update<U>.json; best-L<length>.json before the plateau rule
TASK_PATTERNS = ("base-L*.json", "toy-*.json")


def kept_rows(metrics: Path, last: int) -> list[str]:
    """The metrics lines of updates up to ``last``; a run still training may have left a half-written last line."""
    lines = [line for line in metrics.read_text().splitlines() if line.strip()]
    rows = []
    for index, line in enumerate(lines):
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            if index == len(lines) - 1:
                break
            raise ValueError(f"{metrics}: line {index + 1} is not JSON") from None
        if row["update"] <= last:
            rows.append(line)
    return rows


def cache_update(path: Path) -> int:
    """The update a best-checkpoint cache was evaluated at (0 for the older names that carry none)."""
    match = re.search(r"-update(\d+)\.json$", path.name)
    return int(match.group(1)) if match else 0


def export_run(source: Path, target: Path) -> None:
    """One finished run: its small files, and the metrics rows up to its summary's update. Everything is read before
    the target is touched, so a run that cannot be read leaves the target as it was."""
    last = summary_updates(source)
    rows = kept_rows(source / "metrics.jsonl", last)
    # a run being continued has its config rewritten for the longer budget: the export is the run as summarised
    config = re.sub(r"(?m)^max_updates: .*$", f"max_updates: {last}", (source / "config.yaml").read_text())
    caches = [path for path in source.glob(CACHES) if cache_update(path) <= last]
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    (target / "config.yaml").write_text(config)
    shutil.copy2(source / "summary.json", target / "summary.json")
    for path in caches:
        shutil.copy2(path, target / path.name)
    (target / "metrics.jsonl").write_text("".join(row + "\n" for row in rows))


def export_task(source: Path, target: Path, replace: bool = False) -> list[str]:
    """Exports one task folder; returns the names of the runs copied."""
    target.mkdir(parents=True, exist_ok=True)
    for pattern in TASK_PATTERNS:
        for path in source.glob(pattern):
            shutil.copy2(path, target / path.name)
    copied = []
    for run in sorted(path.parent for path in source.glob("*/summary.json")):
        there = target / run.name
        if not replace and (there / "summary.json").is_file() and summary_updates(there) > summary_updates(run):
            continue
        export_run(run, there)
        copied.append(run.name)
    return copied


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="experiment folder holding <task>/<run> folders with checkpoints")
    parser.add_argument("target", type=Path, help="folder to copy them into, e.g. docs/results")
    parser.add_argument("tasks", nargs="+", help="task folders to export")
    parser.add_argument("--replace", action="store_true", help="take the source's runs even when shorter")
    options = parser.parse_args(argv)
    for task in options.tasks:
        if not (options.source / task).is_dir():
            parser.error(f"{options.source / task} is not a folder: name a task folder of {options.source}")
        copied = export_task(options.source / task, options.target / task, options.replace)
        print(f"{task}: {len(copied)} runs exported")


if __name__ == "__main__":
    main()
