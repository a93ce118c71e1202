"""``dopsd experiment NAME...``: the paper's tables and figures at small scale, on the bundled base models."""

from __future__ import annotations

import argparse

from dopsd.cli.parser import CommandParser

SUMMARY = "reproduce tables and figures of the paper on the bundled models (dopsd experiment --help lists them)"


def register(subparsers) -> None:
    """A cheap stub: the experiments (which import the trainers) are read only when the subcommand runs."""
    stub = subparsers.add_parser("experiment", help=SUMMARY, add_help=False)
    stub.set_defaults(run=run_experiment_command, accepts_overrides=True)


def experiment_parser() -> argparse.ArgumentParser:
    from dopsd.experiments import EXPERIMENTS

    parser = CommandParser(
        prog="dopsd experiment",
        description="Train (or read back finished) runs under --output and write <output>/<name>.md: main = Tables 1 "
        "and 2, toy = Table 3, overlap = Figure 3, ablations = d-OPSD's design choices, opdlm = OPDLM against "
        "masked-diffusion SFT by training tokens, protocol = every method's learning-rate sweep on a validation split, "
        "then three seeds of the chosen rate on the test set, image = D-OPSD against flow-matching fine-tuning for the "
        "few-step image generator (--tasks does not apply). Several names share their runs (each trained once). "
        "Finished runs are reused, so an interrupted experiment continues; use a new "
        "--output when you change --max-updates.",
    )
    parser.add_argument("names", nargs="+", choices=sorted(EXPERIMENTS), metavar="NAME",
                        help=f"one or more of: {', '.join(sorted(EXPERIMENTS))}")
    parser.add_argument("--output", default="results", help="folder of runs and tables (default: results)")
    parser.add_argument("--tasks", nargs="+", default=["sudoku", "countdown"],
                        choices=["sudoku", "countdown", "countdown-steps"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--jobs", type=int, default=1,
                        help="runs and evaluations at a time, each in its own process with an equal share of the "
                        "CPU threads (default 1: one after another in this process)")
    parser.add_argument("--max-updates", type=int, default=None, help="override every run's preset update count")
    parser.add_argument("--document", default=None,
                        help="a Markdown report (e.g. docs/results.md) whose quoted tables, each between "
                        "'<!-- begin results/main.md -->' and '<!-- end results/main.md -->' lines naming the file "
                        "relative to the report, are replaced by the files' current text once the tables are written")
    return parser


def run_experiment_command(args: argparse.Namespace) -> int:
    from dopsd.errors import DopsdError
    from dopsd.experiments import run_experiments

    options = experiment_parser().parse_args(args.overrides)
    if options.jobs < 1:
        raise DopsdError(f"--jobs must be at least 1, got {options.jobs}")
    from dopsd.paths import check_writable_folder

    check_writable_folder(options.output, "--output")  # a file there, or no way to write: refused before any run
    if options.document is not None:  # checked before any training, spliced after it
        from dopsd.experiments.document import check_document

        check_document(options.document)
    overrides = {} if options.max_updates is None else {"max_updates": options.max_updates}
    print(run_experiments(list(dict.fromkeys(options.names)), options.output, options.tasks, options.seeds,
                          options.jobs, **overrides))
    if options.document is not None:
        from dopsd.experiments.document import splice_file

        changed = splice_file(options.document)
        print(f"{options.document}: quoted tables {'updated' if changed else 'already current'}")
    return 0
