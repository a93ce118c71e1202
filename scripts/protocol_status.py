"""Where each test run of an experiment folder stands, finished or still training (protocol step 3's numbers).

    python scripts/protocol_status.py /scratch/results/sudoku

One line per method (run folders named ``<variant>-test-lr<rate>-seed<S>``): each seed's last evaluated update, the
mean accuracy over the last ``PLATEAU_WINDOW`` updates, its gain over the window before, and the best evaluation,
each a mean over seeds. Runs with no evaluation yet are left out.
"""

from __future__ import annotations

import re
import statistics
import sys
from collections import defaultdict
from pathlib import Path

from dopsd.experiments.protocol import PLATEAU_WINDOW, window_gain, window_mean
from dopsd.experiments.runs import Run
from dopsd.trainers.metrics import read_metrics


def status(task_folder: Path) -> list[str]:
    groups = defaultdict(list)
    for metrics in sorted(Path(task_folder).glob("*-test-*/metrics.jsonl")):
        try:
            rows = read_metrics(metrics)
        except ValueError:  # a line being written: read it next time
            continue
        last = max((row["update"] for row in rows if "eval_accuracy" in row), default=None)
        if last is None:
            continue
        groups[re.sub(r"-seed\d+$", "", metrics.parent.name)].append(
            Run(metrics.parent, {"updates": last}, [row for row in rows if row["update"] <= last]))
    lines = []
    for name, runs in groups.items():
        try:
            gain = f"{statistics.fmean(window_gain(run) for run in runs):+.3f}"
        except ValueError:  # fewer than two windows logged yet
            gain = "n/a"
        lines.append(f"{name}: updates {[run.summary['updates'] for run in runs]}, last {PLATEAU_WINDOW} "
                     f"{statistics.fmean(window_mean(run) for run in runs):.3f}, gain {gain}, best "
                     f"{statistics.fmean(run.best['accuracy'] for run in runs):.3f}")
    return lines


if __name__ == "__main__":
    print("\n".join(line for folder in sys.argv[1:] for line in status(Path(folder))))
