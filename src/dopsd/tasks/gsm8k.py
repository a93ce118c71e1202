"""GSM8K: grade-school word problems; the answer is a number, compared numerically."""

from __future__ import annotations

import re
from fractions import Fraction

from dopsd.tasks.answers import last_lines
from dopsd.tasks.base import Example, Task

# a minus sign counts only where it cannot be subtraction; thousands groups need exactly three digits
NUMBER = re.compile(r"(?:(?<![\w)])-)?(?:\d+/\d+|(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?|\.\d+)")
LATEX_FRACTION = re.compile(r"\\[dt]?frac\{\s*(\d+)\s*\}\{\s*(\d+)\s*\}")
MAX_NUMBER_CHARS = 100
# what is left of a bare list of numbers ("12, 13", "12 and 13") once the numbers are taken out
LIST_RESIDUE = re.compile(r"(?:[\s,;$]|\band\b)*", re.IGNORECASE)
MARKUP = re.compile(r"\\[()\[\]]|[*$`]")
# LaTeX and typographic ways of writing a number: 448{,}000, 448\\,000, a thin space, a Unicode minus
NUMBER_SPELLINGS = [(re.compile(r"\{,\}"), ","), (re.compile("[−–]"), "-"),
                    (re.compile(r"(?<=\d)(?:\\[,! ]\s*|[\u2009\u202f])(?=\d{3}(?!\d))"), "")]
# a last line that is only an answer: a number, at most two unit words ("72 clips"), a full stop
BARE = re.compile(rf"(?:{NUMBER.pattern})(?:\s*[A-Za-z%]+){{0,2}}\.?")


def parse_number(text: str) -> Fraction | None:
    """The last number in ``text``, or None. Thousands commas, ``$`` and unit words are ignored; ``3/4`` and
    ``\\frac{3}{4}`` are fractions; numbers over ``MAX_NUMBER_CHARS`` characters are not read."""
    found = NUMBER.findall(LATEX_FRACTION.sub(r"\1/\2", text))
    return _fraction(found[-1]) if found else None


def _fraction(number: str) -> Fraction | None:
    if len(number) > MAX_NUMBER_CHARS:
        return None
    try:
        return Fraction(number.replace(",", ""))
    except ZeroDivisionError:
        return None


class GSM8K(Task):
    name = "gsm8k"
    hub_dataset = ("openai/gsm8k", "main")

    def question_text(self, example: Example) -> str:
        return f"{example.prompt}\nPut the final numerical answer inside \\boxed{{}} in the <answer> tag."

    def compact_prompt(self, example: Example) -> str:
        return f"{example.prompt}\nAnswer: "

    def parse_answer(self, text: str) -> list[str]:
        """The value after the last ``=`` (the last number there); every number of a bare list ("12, 13")."""
        for pattern, replacement in NUMBER_SPELLINGS:
            text = pattern.sub(replacement, text)
        text = LATEX_FRACTION.sub(r"\1/\2", text).rsplit("=", 1)[-1]
        found = NUMBER.findall(text)
        if len(found) > 1 and LIST_RESIDUE.fullmatch(NUMBER.sub(" ", text)):
            numbers = [_fraction(number) for number in found[:20]]
        else:
            numbers = [_fraction(found[-1])] if found else []
        return list(dict.fromkeys(str(number) for number in numbers if number is not None))

    def bare_answer(self, completion: str) -> str | None:
        lines = last_lines(completion, 1)
        line = LATEX_FRACTION.sub(r"\1/\2", MARKUP.sub("", lines[-1])).strip() if lines else ""
        return line if BARE.fullmatch(line) else None

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
