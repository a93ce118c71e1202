"""Reading task data: JSONL, CSV and Parquet files with row locations for error messages; the hub when reachable."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path

from dopsd.tasks.base import DataError


def read_rows(path: str | Path) -> list[tuple[str, dict]]:
    """``(location, row)`` pairs; location is ``file:line`` (1-based) for text formats."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(2, "No such file", str(path))
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json", ".ndjson"):
        return list(_jsonl_rows(path))
    if suffix == ".csv":
        return list(_csv_rows(path))
    if suffix == ".parquet":
        return _parquet_rows(path)
    raise DataError(f"{path}: unknown data format {suffix!r}; use .jsonl, .csv or .parquet")


def _jsonl_rows(path: Path) -> Iterator[tuple[str, dict]]:
    with path.open(encoding="utf-8-sig") as handle:
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
    with path.open(encoding="utf-8-sig", newline="") as handle:
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


def load_hub_rows(dataset: tuple[str, ...], split: str, task: str) -> list[tuple[str, dict]]:
    if not dataset:
        raise DataError(f"{task} has no hub dataset: pass a local data file")
    try:
        import datasets

        rows = datasets.load_dataset(*dataset, split=split)
    except ImportError as error:
        raise DataError(f"no data file given for {task} and `datasets` is not installed: pass a local file") from error
    except Exception as error:  # the hub unreachable, a split missing: all mean "use a local file"
        raise DataError(f"could not load {'/'.join(dataset)} from the hub ({type(error).__name__}): "
                        "pass a local data file") from error
    return [(f"{dataset[0]}[{split}] row {i + 1}", dict(row)) for i, row in enumerate(rows)]
