"""dopsd agrees with the careful grader on every row of the labelled table (``labelled.py``)."""

from collections import Counter

import pytest
from labelled import CORRECT, NO_CREDIT, WRONG, all_rows

from dopsd.tasks import get_task
from dopsd.tasks.equivalence import MathVerifier
from dopsd.tasks.math500 import MATH500

ROWS = all_rows()


@pytest.fixture(scope="module")
def tasks():
    verifier = MathVerifier(timeout=2, hard_limit=4)
    yield {name: MATH500(verifier) if name == "math500" else get_task(name) for name in
           ("gsm8k", "math500", "sudoku", "countdown")}
    verifier.close()


def test_the_table_has_200_rows_of_every_kind_per_task():
    per_task = Counter(row.task for row in ROWS)
    assert min(per_task.values()) >= 200 and len(per_task) == 4
    kinds = Counter((row.task, row.kind) for row in ROWS)
    for task in per_task:
        for kind in ("canonical", "variant", "wrong", "hedged", "truncated", "hostile"):
            assert kinds[task, kind] >= 10, (task, kind)


@pytest.mark.parametrize("task_name", ["gsm8k", pytest.param("math500", marks=pytest.mark.slow), "sudoku",
                                       "countdown"])
def test_dopsd_agrees_with_the_grader_on_every_row(tasks, task_name):
    task = tasks[task_name]
    disagreements = []
    for row in (row for row in ROWS if row.task == task_name):
        score = task.score(row.example, row.completion)
        reward = task.reward(row.example, row.completion)
        agrees = {CORRECT: score.correct and reward == 1.0,
                  WRONG: not score.correct and reward < 1.0,
                  NO_CREDIT: score.value == 0.0 and reward == 0.0}[row.verdict]
        if not agrees:
            disagreements.append((row.kind, row.verdict, row.completion[-120:], score))
    assert disagreements == []
