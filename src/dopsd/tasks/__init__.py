"""The benchmarks: GSM8K, MATH500, 4x4 Sudoku and Countdown."""

from __future__ import annotations

from importlib import resources

from dopsd.tasks.base import DataError, Example, Score, Task
from dopsd.tasks.countdown import Countdown, countdown_splits, generate_countdown
from dopsd.tasks.gsm8k import GSM8K
from dopsd.tasks.math500 import MATH500
from dopsd.tasks.sudoku import Sudoku, generate_sudoku, sudoku_splits

TASKS = {task.name: task for task in (GSM8K, MATH500, Sudoku, Countdown)}
TASK_NAMES = tuple(TASKS)
SAMPLE_FILES = {"gsm8k": "gsm8k_sample.jsonl", "math500": "math500_sample.jsonl", "sudoku": "sudoku_sample.csv",
                "countdown": "countdown_sample.jsonl"}


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}: choose one of {', '.join(TASK_NAMES)}")
    return TASKS[name]()


def sample_data_path(name: str) -> str:
    """The small sample data file shipped in the package for ``name``."""
    return str(resources.files("dopsd.tasks") / "data" / SAMPLE_FILES[get_task(name).name])


__all__ = [
    "DataError", "Example", "Score", "Task", "TASK_NAMES", "countdown_splits", "generate_countdown",
    "generate_sudoku", "get_task", "sample_data_path", "sudoku_splits",
]
