"""GSM8K: grade-school word problems; the answer is a number, compared numerically."""

from __future__ import annotations

import re
from fractions import Fraction

from dopsd.tasks.answers import answer_text
from dopsd.tasks.base import Example, Task

# a minus sign counts only where it cannot be subtraction; thousands groups need exactly three digits
NUMBER = re.compile(r"(?:(?<![\w)])-)?(?:\d+/\d+|(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?|\.\d+)")
LATEX_FRACTION = re.compile(r"\\[dt]?frac\{\s*(\d+)\s*\}\{\s*(\d+)\s*\}")
MAX_NUMBER_CHARS = 100


def parse_number(text: str) -> Fraction | None:
    """The last number in ``text``, or None. Thousands commas, ``$`` and unit words are ignored; ``3/4`` and
    ``\\frac{3}{4}`` are fractions; numbers over ``MAX_NUMBER_CHARS`` characters are not read."""
    found = NUMBER.findall(LATEX_FRACTION.sub(r"\1/\2", text))
    if not found or len(found[-1]) > MAX_NUMBER_CHARS:
        return None
    try:
        return Fraction(found[-1].replace(",", ""))
    except ZeroDivisionError:
        return None


class GSM8K(Task):
    name = "gsm8k"
    hub_dataset = ("openai/gsm8k", "main")

    def question_text(self, example: Example) -> str:
        return f"{example.prompt}\nPut the final numerical answer inside \\boxed{{}} in the <answer> tag."

    def compact_prompt(self, example: Example) -> str:
        return f"{example.prompt}\nAnswer: "

    def extract_answer(self, completion: str) -> str | None:
        number = parse_number(answer_text(completion))
        return None if number is None else str(number)

    def score_answer(self, example: Example, answer: str) -> float:
        return float(Fraction(answer) == parse_number(example.answer))

    def reference_completion(self, example: Example, style: str = "instruct") -> str:
        if style == "compact":
            return example.answer
        reasoning = example.meta.get("solution", "").split("####")[0].strip()
        return f"<reasoning>\n{reasoning}\n</reasoning>\n<answer>\n\\boxed{{{example.answer}}}\n</answer>"

    def worked_solution(self, example: Example) -> str:
        """The dataset's worked solution."""
        return example.meta.get("solution", "").split("####")[0].strip() or example.answer

    def parse_row(self, row: dict, index: int) -> Example:
        question, answer = str(row["question"]), str(row["answer"])
        if "####" not in answer:
            raise ValueError("answer has no '#### N' final answer")
        final = answer.rsplit("####", 1)[1].strip().replace(",", "")
        if parse_number(final) is None:
            raise ValueError(f"final answer {final!r} is not a number")
        return Example(index=index, prompt=question, answer=final, meta={"solution": answer})
