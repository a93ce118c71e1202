"""How often `--scoring d1` agrees with the careful grader on the labelled table (tests/tasks/labelled.py), per task,
and how many hedged rows it credits: the numbers docs/scoring.md quotes.

    python scripts/d1_agreement.py
"""

import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "tasks"))

from labelled import CORRECT, NO_CREDIT, WRONG, all_rows  # noqa: E402

from dopsd.evaluation import score_row  # noqa: E402
from dopsd.tasks import get_task  # noqa: E402
from dopsd.tasks.equivalence import MathVerifier  # noqa: E402
from dopsd.tasks.math500 import MATH500  # noqa: E402


def main() -> None:
    verifier = MathVerifier(timeout=2, hard_limit=4)
    tasks = {name: MATH500(verifier) if name == "math500" else get_task(name)
             for name in ("gsm8k", "math500", "sudoku", "countdown")}
    rows, agree, hedges_credited = Counter(), Counter(), 0
    for row in all_rows():
        scored = score_row(tasks[row.task], row.example, row.completion, "d1")
        rows[row.task] += 1
        agree[row.task] += {CORRECT: scored["correct"], WRONG: not scored["correct"],
                            NO_CREDIT: scored["score"] == 0.0}[row.verdict]
        hedges_credited += row.kind == "hedged" and scored["score"] > 0
    verifier.close()
    for task in rows:
        print(f"{task}: {agree[task]} of {rows[task]} rows ({100 * agree[task] / rows[task]:.0f}%)")
    print(f"all: {sum(agree.values())} of {sum(rows.values())} ({100 * sum(agree.values()) / sum(rows.values()):.0f}%);"
          f" hedged rows credited: {hedges_credited}")


if __name__ == "__main__":
    main()
