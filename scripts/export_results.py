"""Copies an experiment folder's finished runs into another without their checkpoints (how docs/results is filled).

    python scripts/export_results.py /scratch/results docs/results sudoku countdown-steps

For each task folder: every run folder holding ``summary.json`` (its config, summary, best-checkpoint evaluation
caches, and its metrics up to the summary's update: a run being continued has logged past it) and the task's
base-model and toy-verification caches. Checkpoints, the ``best`` model and TensorBoard logs stay behind. A run the
destination already holds with more updates is left alone (say ``--replace`` to take the source's anyway), so an
export while a rerun is under way never swaps a longer run for a shorter one.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

RUN_FILES = ("config.yaml", "summary.json")
RUN_PATTERNS = ("best-L*.json",)
TASK_PATTERNS = ("base-L*.json", "toy-*.json")


def updates(folder: Path) -> int:
    return json.loads((folder / "summary.json").read_text())["updates"]


def export_run(source: Path, target: Path) -> None:
    """One finished run: its small files, and the metrics rows up to its summary's update."""
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for name in RUN_FILES:
        shutil.copy2(source / name, target / name)
    for pattern in RUN_PATTERNS:
        for path in source.glob(pattern):
            shutil.copy2(path, target / path.name)
    last = updates(source)
    rows = [line for line in (source / "metrics.jsonl").read_text().splitlines()
            if line.strip() and json.loads(line)["update"] <= last]
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
        if not replace and (there / "summary.json").is_file() and updates(there) > updates(run):
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
        copied = export_task(options.source / task, options.target / task, options.replace)
        print(f"{task}: {len(copied)} runs exported")


if __name__ == "__main__":
    main()
