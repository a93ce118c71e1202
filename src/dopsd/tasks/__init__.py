"""The benchmarks: GSM8K, MATH500, 4x4 Sudoku and Countdown."""

from __future__ import annotations

from importlib import resources

from dopsd.tasks.base import DataError, Example, Score, Task
from dopsd.tasks.countdown import (
    Countdown,
    countdown_splits,
    generate_countdown,
    write_countdown_jsonl,
)
from dopsd.tasks.gsm8k import GSM8K
from dopsd.tasks.math500 import MATH500
from dopsd.tasks.sudoku import Sudoku, generate_sudoku, sudoku_splits, write_sudoku_csv

TASKS = {task.name: task for task in (GSM8K, MATH500, Sudoku, Countdown)}
TASK_NAMES = tuple(TASKS)
SAMPLE_FILES = {"gsm8k": "gsm8k_sample.jsonl", "math500": "math500_sample.jsonl", "sudoku": "sudoku_sample.csv",
                "countdown": "countdown_sample.jsonl"}


def get_task(name: str) -> Task:
    """A fresh instance of the named task; ValueError naming the choices for an unknown name."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}: choose one of {', '.join(TASK_NAMES)}")
    return TASKS[name]()


def sample_data_path(name: str) -> str:
    """The small sample data file shipped in the package for ``name``, for smoke runs (``--data sample``):
    20 GSM8K training rows, 12 MATH-style problems, 32 generated Sudoku puzzles and Countdown instances."""
    return str(resources.files("dopsd.tasks") / "data" / SAMPLE_FILES[get_task(name).name])


__all__ = [
    "TASK_NAMES",
    "DataError",
    "Example",
    "Score",
    "Task",
    "countdown_splits",
    "generate_countdown",
    "generate_sudoku",
    "get_task",
    "sample_data_path",
    "sudoku_splits",
    "write_countdown_jsonl",
    "write_sudoku_csv",
]
