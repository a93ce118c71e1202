"""The ``dopsd`` command: one subcommand per module, user errors as one line."""

from __future__ import annotations

import argparse
import sys

from dopsd.cli import bench, evaluate, experiment, models, sample, train
from dopsd.cli.parser import CommandParser
from dopsd.errors import DopsdError

COMMANDS = (sample, evaluate, train, models, experiment, bench)


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser(prog="dopsd", description="On-policy self-distillation for diffusion LMs.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS:
        module.register(subparsers)
    return parser


def quiet_transformers() -> None:
    """No progress bars from transformers' loading (ours are enough), without importing it before it is needed."""
    import os

    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # read when transformers is first imported
    if "transformers" in sys.modules:
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "accepts_overrides", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.overrides = extra
    quiet_transformers()
    try:
        return args.run(args) or 0
    except DopsdError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # a file that cannot be read or written: its path and why, in one line
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        resume = " (continue a training run with the same command and --resume-from latest)" if getattr(
            args, "accepts_overrides", False) else ""
        print(f"interrupted{resume}", file=sys.stderr)
        return 130
