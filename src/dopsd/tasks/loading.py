"""Reading task data: JSONL, CSV and Parquet files with row locations for error messages; the hub when reachable;
and :func:`load_examples`, the one way the CLI, the trainers and the experiments get a task's examples."""

from __future__ import annotations

import csv
import io
import json
import random
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

from dopsd.errors import DopsdError

SPLITS = ("train", "test")
SAMPLE = "sample"
SAMPLE_FILES = {"gsm8k": "gsm8k_sample.jsonl", "math500": "math500_sample.jsonl", "sudoku": "sudoku_sample.csv",
                "countdown": "countdown_sample.jsonl", "countdown-steps": "countdown_steps_sample.jsonl"}


class DataError(DopsdError, ValueError):
    """A data file that does not parse, or data that cannot be had; the message names the file and the line."""


def sample_data_path(name: str) -> str:
    """The small sample data file shipped in the package for task ``name``, for smoke runs (``--data sample``):
    20 GSM8K training rows, 12 MATH-style problems, 32 generated Sudoku puzzles, Countdown and Countdown-steps
    instances."""
    if name not in SAMPLE_FILES:
        raise ValueError(f"no sample data for task {name!r}: choose one of {', '.join(SAMPLE_FILES)}")
    return str(resources.files("dopsd.tasks") / "data" / SAMPLE_FILES[name])


def load_examples(task, path: str | None, split: str, limit: int | None = None) -> list:
    """``task``'s examples from a local file, ``sample`` (the package's small sample), ``bundled:NAME`` (the bundled
    NAME model's training set for ``train``, its held-out set for ``test``) or, with no path, the hub's ``split``
    (``train`` for training, ``test`` for evaluation: never the other); user errors become one-line DopsdErrors."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}: use one of {', '.join(SPLITS)}")
    from dopsd.bundled import BUNDLED_PREFIX, bundled_data_path

    source = sample_data_path(task.name) if path == SAMPLE else path
    if isinstance(path, str) and path.startswith(BUNDLED_PREFIX):  # a bundled model's own training/held-out set

        source = bundled_data_path(path[len(BUNDLED_PREFIX):], "train" if split == "train" else "heldout")
    try:
        examples = task.load(source, split=split, limit=limit)
    except FileNotFoundError as error:
        raise DopsdError(f"data file not found: {error.filename or source}") from error
    except ValueError as error:
        raise DopsdError(str(error)) from error
    if not examples:
        raise DopsdError(f"no examples in {source}")
    return examples


VALIDATION_SEED = 20_241_202  # fixed: every run, seed and method holds out the same validation examples


def split_validation(examples: list, size: int) -> tuple[list, list]:
    """``(training, validation)``: ``size`` examples chosen by a fixed seed are held out; both keep file order."""
    if not 0 < size < len(examples):
        raise DopsdError(f"validation_size {size} must be between 1 and {len(examples) - 1}, one less than the "
                         f"{len(examples)} training examples")
    order = list(range(len(examples)))
    random.Random(VALIDATION_SEED).shuffle(order)
    held = set(order[:size])
    return ([e for i, e in enumerate(examples) if i not in held], [e for i, e in enumerate(examples) if i in held])


def read_rows(path: str | Path) -> list[tuple[str, dict]]:
    """``(location, row)`` pairs; location is ``file:line`` (1-based) for text formats."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(2, "No such file", str(path))
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json", ".ndjson"):
        return list(jsonl_rows(path))
    if suffix == ".csv":
        return list(_csv_rows(path))
    if suffix == ".parquet":
        return _parquet_rows(path)
    raise DataError(f"{path}: unknown data format {suffix!r}; use .jsonl, .csv or .parquet")


def decoded_text(path: Path, newline: str | None = None) -> io.StringIO:
    """The file's UTF-8 text (a byte-order mark skipped); a file that is not UTF-8 is a DataError naming the file and
    the line of its first undecodable byte."""
    data = Path(path).read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise DataError(f"{path}:{line}: not UTF-8 text (byte {data[error.start]:#04x}): save the file as UTF-8"
                        ) from None
    return io.StringIO(text, newline=newline)


def jsonl_rows(path: Path) -> Iterator[tuple[str, dict]]:
    with decoded_text(path) as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise DataError(f"{path}:{number}: not valid JSON ({error.msg})") from error
            if not isinstance(row, dict):
                raise DataError(f"{path}:{number}: expected a JSON object")
            yield f"{path}:{number}", row


def _csv_rows(path: Path) -> Iterator[tuple[str, dict]]:
    with decoded_text(path, newline="") as handle:
        reader = csv.reader(handle)
        header = None
        for cells in reader:
            number = reader.line_num  # the physical line, even after quoted multi-line cells
            if not cells:
                continue
            if header is None and not any(cell.strip().isdigit() for cell in cells):
                header = [cell.strip().lower() for cell in cells]
                continue
            names = header or [f"column{i}" for i in range(len(cells))]
            if len(cells) != len(names):
                raise DataError(f"{path}:{number}: expected {len(names)} columns, found {len(cells)}")
            yield f"{path}:{number}", dict(zip(names, (cell.strip() for cell in cells)))


def _parquet_rows(path: Path) -> list[tuple[str, dict]]:
    try:
        import pandas
    except ImportError as error:
        raise DataError(f"{path}: reading Parquet needs pandas and pyarrow (pip install pandas pyarrow)") from error
    frame = pandas.read_parquet(path)
    return [(f"{path} row {i + 1}", row) for i, row in enumerate(frame.to_dict(orient="records"))]


def load_hub_rows(dataset: tuple[str, ...], split: str, task: str, splits: tuple[str, ...] = SPLITS
                  ) -> list[tuple[str, dict]]:
    """Rows of the hub dataset's ``split``; ``splits`` are the ones it has (a missing one is an error, never another
    split read in its place)."""
    kind = "training" if split == "train" else "evaluation"
    if not dataset:
        raise DataError(f"{task} has no hub dataset: pass a local data file of {kind} examples")
    if split not in splits:
        raise DataError(f"{'/'.join(dataset)} has no {split} split ({task} on the hub has only "
                        f"{', '.join(splits)}): pass a local data file of {kind} examples")
    from dopsd.hub import hub_unreachable

    if reason := hub_unreachable():
        raise DataError(f"no data file given for {task} and the Hugging Face hub is out of reach ({reason}): pass a "
                        f"local data file of {kind} examples")
    try:
        import datasets

        rows = datasets.load_dataset(*dataset, split=split)
    except ImportError as error:
        raise DataError(f"no data file given for {task} and `datasets` is not installed: pass a local file") from error
    except Exception as error:  # the hub unreachable, a split missing: all mean "use a local file"
        raise DataError(f"could not load {'/'.join(dataset)} from the hub ({type(error).__name__}): "
                        "pass a local data file") from error
    return [(f"{dataset[0]}[{split}] row {i + 1}", dict(row)) for i, row in enumerate(rows)]
