"""The ``dopsd`` command: one subcommand per module, user errors as one line."""

from __future__ import annotations

import argparse
import os
import sys

from dopsd.cli import bench, evaluate, experiment, lm_eval, models, sample, train
from dopsd.cli.parser import CommandParser
from dopsd.errors import DopsdError

COMMANDS = (sample, evaluate, train, models, experiment, bench, lm_eval)


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
        # an error every process of a multi-process run raises together is printed once, by the first
        if not (getattr(error, "on_every_process", False) and os.environ.get("RANK", "0") != "0"):
            print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # a file that cannot be read or written: its path and why, in one line
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as interrupt:
        # a training command says what the run folder holds (dopsd.cli.train.interrupted_advice)
        advice = getattr(interrupt, "advice", "")
        print(f"interrupted{f' ({advice})' if advice else ''}", file=sys.stderr)
        return 130
    except Exception as error:
        if type(error).__name__ != "SafetensorError":
            raise
        print(f"error: {damaged_weights(error)}", file=sys.stderr)
        return 2


def damaged_weights(error: Exception) -> str:
    """A weights file that safetensors cannot read (truncated, or not safetensors at all), named when a frame of the
    traceback holds its path (transformers' loader and safetensors' ``load_file`` do)."""
    named = None
    traceback = error.__traceback__
    while traceback is not None:
        for value in traceback.tb_frame.f_locals.values():
            if isinstance(value, (str, os.PathLike)) and str(value).endswith(".safetensors"):
                named = str(value)
        traceback = traceback.tb_next
    what = f"the weights file {named}" if named else "a .safetensors weights file"
    return (f"cannot read {what}: it is truncated or damaged ({str(error).strip()}); copy or download it again")
