"""GSM8K: grade-school word problems; the answer is a number, compared numerically."""

from __future__ import annotations

import re
from fractions import Fraction

from dopsd.tasks.answers import answer_text
from dopsd.tasks.base import Example, Task

NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:/\d+)?|-?\.\d+")


def parse_number(text: str) -> Fraction | None:
    """The last number in ``text`` (commas, ``$`` and units ignored; ``3/4`` is a fraction), or None."""
    found = NUMBER.findall(text.replace("$", ""))
    if not found:
        return None
    token = found[-1].replace(",", "")
    if len(token) > 100:
        return None
    return Fraction(token)


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

    def parse_row(self, row: dict, index: int) -> Example:
        question, answer = str(row["question"]), str(row["answer"])
        if "####" not in answer:
            raise ValueError("answer has no '#### N' final answer")
        final = answer.rsplit("####", 1)[1].strip().replace(",", "")
        if parse_number(final) is None:
            raise ValueError(f"final answer {final!r} is not a number")
        return Example(index=index, prompt=question, answer=final, meta={"solution": answer})
