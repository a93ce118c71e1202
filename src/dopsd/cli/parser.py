"""The argument parser of every ``dopsd`` command: a mistake on the command line is one ``error:`` line, exit 2."""

from __future__ import annotations

import argparse
import math
import sys


def finite_float(text: str) -> float:
    """``type=`` of every float flag: a number, never inf or nan (argparse's ``float`` takes both)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid float value: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number (inf and nan are refused)")
    return value


class CommandParser(argparse.ArgumentParser):
    """``argparse`` with abbreviations off (``--teach 0.5`` must not silently mean one field) and errors as one line
    naming the command's ``--help``."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        print(f"error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)
