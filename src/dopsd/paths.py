"""Checks on where output goes, made before any work: a run or an evaluation that cannot save is refused at once."""

from __future__ import annotations

import os
from pathlib import Path

from dopsd.errors import DopsdError


def check_writable_folder(folder: str | Path, what: str) -> None:
    """``folder`` (created later if missing) must be a folder, or creatable in a writable one."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise DopsdError(f"{what} {folder} is a file: name a folder")
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise DopsdError(f"{what} {folder} cannot be created: {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise DopsdError(f"{what} {folder} cannot be written: {existing} is not writable")


def check_writable_file(path: str | Path, what: str) -> None:
    """``path`` must be a file that can be (over)written, in a folder that exists or can be created."""
    path = Path(path)
    if path.is_dir():
        raise DopsdError(f"{what} {path} is a folder: name a file")
    if path.exists() and not os.access(path, os.W_OK):
        raise DopsdError(f"{what} {path} is not writable")
    check_writable_folder(path.parent, f"the folder of {what}")


def check_new_folder(folder: str | Path, what: str) -> None:
    """``folder`` must not exist yet, or be an empty folder: nothing is ever written over a file or a model."""
    folder = Path(folder)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        kind = "a folder that is not empty" if folder.is_dir() else "a file"
        raise DopsdError(f"{what} {folder} is {kind}: choose a new folder")
    check_writable_folder(folder, what)  # found before a model is loaded, not when it is saved
