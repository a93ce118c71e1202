"""MATH500: competition problems; the last \\boxed{} is judged for mathematical equivalence by math-verify."""

from __future__ import annotations

import threading

from dopsd.tasks.answers import answer_text, last_boxed
from dopsd.tasks.base import Example, Task


def _timeout() -> int | None:
    """math-verify's timeouts use signals, which work only on the main thread; elsewhere run without."""
    return 5 if threading.current_thread() is threading.main_thread() else None


def equivalent(reference: str, answer: str) -> bool:
    import warnings

    from math_verify import parse, verify

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gold = parse(f"\\boxed{{{reference}}}", parsing_timeout=_timeout())
        predicted = parse(f"\\boxed{{{answer}}}", parsing_timeout=_timeout())
        if not gold or not predicted:
            return False
        return bool(verify(gold, predicted, timeout_seconds=_timeout()))


class MATH500(Task):
    name = "math500"
    hub_dataset = ("HuggingFaceH4/MATH-500",)

    def question_text(self, example: Example) -> str:
        return f"{example.prompt}\nPut the final answer inside \\boxed{{}} in the <answer> tag."

    def compact_prompt(self, example: Example) -> str:
        return f"{example.prompt}\nAnswer: "

    def extract_answer(self, completion: str) -> str | None:
        text = answer_text(completion)
        return text or None

    def score_answer(self, example: Example, answer: str) -> float:
        return float(equivalent(example.answer, answer))

    def reference_completion(self, example: Example, style: str = "instruct") -> str:
        if style == "compact":
            return example.answer
        return f"<reasoning>\n{example.meta.get('solution', '')}\n</reasoning>\n<answer>\n\\boxed{{{example.answer}}}\n</answer>"

    def parse_row(self, row: dict, index: int) -> Example:
        problem = str(row["problem"])
        answer = row.get("answer")
        if answer is None:
            answer = last_boxed(str(row["solution"]))
            if answer is None:
                raise ValueError("no 'answer' field and no \\boxed{} in 'solution'")
        return Example(index=index, prompt=problem, answer=str(answer), meta={"solution": str(row.get("solution", ""))})
