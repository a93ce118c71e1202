"""The benchmarks: GSM8K, MATH500, 4x4 Sudoku, Countdown and Countdown worked step by step; their data and their
prompts as token ids."""

from __future__ import annotations

from dopsd.tasks.base import Example, Score, Task
from dopsd.tasks.countdown import (
    Countdown,
    countdown_splits,
    generate_countdown,
    write_countdown_jsonl,
)
from dopsd.tasks.countdown_steps import (
    CountdownSteps,
    countdown_steps_splits,
    generate_countdown_steps,
    write_countdown_steps_jsonl,
)
from dopsd.tasks.gsm8k import GSM8K
from dopsd.tasks.loading import SAMPLE, DataError, load_examples, sample_data_path
from dopsd.tasks.math500 import MATH500
from dopsd.tasks.prompts import PROMPT_STYLES, default_prompt_style, encode_prompts
from dopsd.tasks.sudoku import Sudoku, generate_sudoku, sudoku_splits, write_sudoku_csv

TASKS = {task.name: task for task in (GSM8K, MATH500, Sudoku, Countdown, CountdownSteps)}
TASK_NAMES = tuple(TASKS)


def get_task(name: str) -> Task:
    """A fresh instance of the named task; a one-line error (a ValueError) naming the choices for an unknown name."""
    if name not in TASKS:
        raise DataError(f"unknown task {name!r}: choose one of {', '.join(TASK_NAMES)}")
    return TASKS[name]()


__all__ = [
    "PROMPT_STYLES",
    "SAMPLE",
    "TASK_NAMES",
    "DataError",
    "Example",
    "Score",
    "Task",
    "countdown_splits",
    "countdown_steps_splits",
    "default_prompt_style",
    "encode_prompts",
    "generate_countdown",
    "generate_countdown_steps",
    "generate_sudoku",
    "get_task",
    "load_examples",
    "sample_data_path",
    "sudoku_splits",
    "write_countdown_jsonl",
    "write_countdown_steps_jsonl",
    "write_sudoku_csv",
]
