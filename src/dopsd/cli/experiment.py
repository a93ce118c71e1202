"""``dopsd experiment NAME``: the paper's tables and figures at small scale, on the bundled base models."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    from dopsd.experiments import EXPERIMENTS

    parser = subparsers.add_parser(
        "experiment",
        help="reproduce a table or figure of the paper on the bundled models (main, toy, overlap, ablations)",
        description="Train (or read back finished) runs under --output and write <output>/<name>.md: main = Tables 1 "
        "and 2, toy = Table 3, overlap = Figure 3, ablations = d-OPSD's design choices. Finished runs are reused, "
        "so an interrupted experiment continues; use a new --output when you change --max-updates.",
    )
    parser.add_argument("name", choices=sorted(EXPERIMENTS))
    parser.add_argument("--output", default="results", help="folder of runs and tables (default: results)")
    parser.add_argument("--tasks", nargs="+", default=["sudoku", "countdown"], choices=["sudoku", "countdown"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--max-updates", type=int, default=None, help="override every run's preset update count")
    parser.set_defaults(run=run_experiment_command)


def run_experiment_command(args: argparse.Namespace) -> int:
    from dopsd.experiments import run_experiment

    overrides = {} if args.max_updates is None else {"max_updates": args.max_updates}
    print(run_experiment(args.name, args.output, args.tasks, args.seeds, **overrides))
    return 0
