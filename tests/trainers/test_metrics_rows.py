"""``read_metrics`` refuses a log in which an update appears twice (two writers in one folder), naming the file and
the lines, instead of averaging the copies; every committed run log reads."""

import json
from pathlib import Path

import pytest

from dopsd.errors import DopsdError
from dopsd.trainers.metrics import read_metrics


def write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_an_update_and_its_evaluation_are_one_row_each(tmp_path):
    rows = [{"update": 0, "eval_accuracy": 0.1}, {"update": 1, "loss": 1.0}, {"update": 1, "eval_accuracy": 0.2},
            {"update": 2, "loss": 0.5, "eval_fidelity": 0.3},  # the image trainer logs both in one row
            {"update": 2, "clip_grad_cosine": 0.4}]  # a metric of its own row: each metric once per update
    assert read_metrics(write(tmp_path / "metrics.jsonl", rows)) == rows


@pytest.mark.parametrize("rows, message", [
    ([{"update": 1, "loss": 1.0}, {"update": 2, "loss": 0.9}, {"update": 1, "loss": 1.0}],
     "metrics.jsonl:3: update 1 is logged twice \\(loss, first on line 1\\)"),
    ([{"update": 0, "eval_accuracy": 0.1}, {"update": 1, "loss": 1.0}, {"update": 0, "eval_accuracy": 0.1}],
     "metrics.jsonl:3: update 0 is logged twice \\(eval_accuracy, first on line 1\\)"),
])
def test_interleaved_rows_of_two_writers_are_refused(tmp_path, rows, message):
    with pytest.raises(DopsdError, match=message):
        read_metrics(write(tmp_path / "metrics.jsonl", rows))


def test_a_broken_row_names_its_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"update": 1, "loss": 1.0}\n{"update": 2, \n')
    with pytest.raises(DopsdError, match="metrics.jsonl:2: not valid JSON"):
        read_metrics(path)


def test_every_committed_run_log_has_one_row_per_update():
    logs = sorted((Path(__file__).resolve().parents[2] / "docs").rglob("metrics.jsonl"))
    assert logs
    for path in logs:
        read_metrics(path)
