import json
import sys

import pytest

from dopsd.tasks import DataError, get_task


def write_jsonl(path, rows):
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows))
    return path


GOOD = {"question": "q", "answer": "1 + 2\n#### 3"}


@pytest.mark.parametrize(
    ("bad", "problem"),
    [("{not json", "JSON"), ("[1, 2]", "object"), ({"question": "q"}, "answer"), ({"answer": "#### 3"}, "question"),
     ({"question": "q", "answer": "3"}, "####"), ({"question": "q", "answer": "#### three"}, "number")],
)
def test_gsm8k_errors_name_the_file_and_line(tmp_path, bad, problem):
    path = write_jsonl(tmp_path / "gsm.jsonl", [GOOD, "", GOOD, bad])  # a blank line still counts as a line
    with pytest.raises(DataError, match=rf"gsm\.jsonl:4.*{problem}"):
        get_task("gsm8k").load(path)


def test_math_rows_need_a_problem_and_an_answer(tmp_path):
    path = write_jsonl(tmp_path / "math.jsonl",
                       [{"problem": "p", "answer": "1"}, {"problem": "p", "solution": "no box"}])
    with pytest.raises(DataError, match=r"math\.jsonl:2.*boxed"):
        get_task("math500").load(path)
    path = write_jsonl(tmp_path / "math2.jsonl", [{"problem": "p", "solution": "so \\boxed{\\frac{1}{2}}"}])
    [example] = get_task("math500").load(path)
    assert example.answer == "\\frac{1}{2}"


def test_missing_file_and_unknown_format(tmp_path):
    missing = tmp_path / "absent.jsonl"
    with pytest.raises(FileNotFoundError, match="absent.jsonl") as caught:
        get_task("countdown").load(missing)
    assert caught.value.filename == str(missing)
    other = tmp_path / "data.txt"
    other.write_text("x\n")
    with pytest.raises(DataError, match=r"data\.txt.*\.jsonl"):
        get_task("gsm8k").load(other)


def test_limit_keeps_the_first_rows(tmp_path):
    path = write_jsonl(tmp_path / "gsm.jsonl", [{"question": f"q{i}", "answer": f"#### {i}"} for i in range(10)])
    assert [e.answer for e in get_task("gsm8k").load(path, limit=3)] == ["0", "1", "2"]


def test_parquet_without_pandas_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)  # as if pandas were not installed
    path = tmp_path / "gsm.parquet"
    path.write_bytes(b"PAR1")
    with pytest.raises(DataError, match="pip install"):
        get_task("gsm8k").load(path)


def test_parquet_rows(tmp_path):
    import pandas

    path = tmp_path / "gsm.parquet"
    pandas.DataFrame([GOOD]).to_parquet(path)
    [example] = get_task("gsm8k").load(path)
    assert example.answer == "3"


@pytest.mark.parametrize("name", ["sudoku", "countdown"])
def test_tasks_without_a_hub_data_set_ask_for_a_file(name):
    with pytest.raises(DataError, match="local"):
        get_task(name).load()
