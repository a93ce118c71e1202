"""MATH500: competition problems; the last \\boxed{} is judged for mathematical equivalence by math-verify."""

from __future__ import annotations

from dopsd.tasks.answers import answer_text, last_boxed
from dopsd.tasks.base import Example, Task
from dopsd.tasks.equivalence import MAX_ANSWER_CHARS, MathVerifier, shared_verifier


class MATH500(Task):
    name = "math500"
    hub_dataset = ("HuggingFaceH4/MATH-500",)
    hub_splits = ("test",)  # MATH-500 is a test set only: training needs a local file

    def __init__(self, verifier: MathVerifier | None = None):
        """``verifier``: a private judge (e.g. with a shorter timeout); by default one shared per process."""
        self.verifier = verifier

    def question_text(self, example: Example) -> str:
        return f"{example.prompt}\nPut the final answer inside \\boxed{{}} in the <answer> tag."

    def compact_prompt(self, example: Example) -> str:
        return f"{example.prompt}\nAnswer: "

    def extract_answer(self, completion: str) -> str | None:
        """The answer's LaTeX; None when empty or too long to be a final answer (it would only cost time)."""
        text = answer_text(completion)
        return text if text and len(text) <= MAX_ANSWER_CHARS else None

    def score_answer(self, example: Example, answer: str) -> float:
        return float((self.verifier or shared_verifier()).equivalent(example.answer, answer))

    def reference_completion(self, example: Example, style: str = "instruct") -> str:
        if style == "compact":
            return example.answer
        reasoning = example.meta.get("solution", "")
        return f"<reasoning>\n{reasoning}\n</reasoning>\n<answer>\n\\boxed{{{example.answer}}}\n</answer>"

    def worked_solution(self, example: Example) -> str:
        """The dataset's worked solution."""
        return example.meta.get("solution", "") or example.answer

    def parse_row(self, row: dict, index: int) -> Example:
        problem = str(row["problem"])
        answer = row.get("answer")
        if answer is None:
            answer = last_boxed(str(row["solution"]))
            if answer is None:
                raise ValueError("no 'answer' field and no \\boxed{} in 'solution'")
        return Example(index=index, prompt=problem, answer=str(answer), meta={"solution": str(row.get("solution", ""))})
