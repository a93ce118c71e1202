"""``dopsd experiment NAME...``: the paper's tables and figures at small scale, on the bundled base models."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    from dopsd.experiments import EXPERIMENTS

    parser = subparsers.add_parser(
        "experiment",
        help="reproduce tables and figures of the paper on the bundled models (main, toy, overlap, ablations)",
        description="Train (or read back finished) runs under --output and write <output>/<name>.md: main = Tables 1 "
        "and 2, toy = Table 3, overlap = Figure 3, ablations = d-OPSD's design choices. Several names share their "
        "runs (each trained once). Finished runs are reused, so an interrupted experiment continues; use a new "
        "--output when you change --max-updates.",
    )
    parser.add_argument("names", nargs="+", choices=sorted(EXPERIMENTS), metavar="NAME",
                        help=f"one or more of: {', '.join(sorted(EXPERIMENTS))}")
    parser.add_argument("--output", default="results", help="folder of runs and tables (default: results)")
    parser.add_argument("--tasks", nargs="+", default=["sudoku", "countdown"], choices=["sudoku", "countdown"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--jobs", type=int, default=1,
                        help="runs and evaluations at a time, each in its own process with an equal share of the "
                        "CPU threads (default 1: one after another in this process)")
    parser.add_argument("--max-updates", type=int, default=None, help="override every run's preset update count")
    parser.set_defaults(run=run_experiment_command)


def run_experiment_command(args: argparse.Namespace) -> int:
    from dopsd.errors import DopsdError
    from dopsd.experiments import run_experiments

    if args.jobs < 1:
        raise DopsdError(f"--jobs must be at least 1, got {args.jobs}")
    overrides = {} if args.max_updates is None else {"max_updates": args.max_updates}
    print(run_experiments(list(dict.fromkeys(args.names)), args.output, args.tasks, args.seeds, args.jobs, **overrides))
    return 0
