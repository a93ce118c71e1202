"""The argument parser of every ``dopsd`` command: a mistake on the command line is one ``error:`` line, exit 2."""

from __future__ import annotations

import argparse
import sys


class CommandParser(argparse.ArgumentParser):
    """``argparse`` with abbreviations off (``--teach 0.5`` must not silently mean one field) and errors as one line
    naming the command's ``--help``."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        print(f"error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)
