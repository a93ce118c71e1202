"""MATH500: competition problems; the final answer is judged for mathematical equivalence by math-verify."""

from __future__ import annotations

import re

from dopsd.tasks.answers import last_boxed, last_lines
from dopsd.tasks.base import Example, Task
from dopsd.tasks.equivalence import MAX_ANSWER_CHARS, MathVerifier, shared_verifier

# math-mode delimiters and emphasis around an answer, and punctuation after it
DELIMITERS = re.compile(r"^(?:\s|\$|\\[(\[]|\*\*|\\displaystyle)+|(?:\s|\$|\\[)\]]|\*\*|[.,;])+$")
# "x = 5", "f(x) = 2x+1", "a_1 = 3": a name for the answer, dropped when the reference has none
VARIABLE = re.compile(r"^\s*(?:[A-Za-z](?:_\{?\w+\}?)?|[A-Za-z]\([A-Za-z]\))\s*=(?!=)\s*")
TEXT = re.compile(r"\\(?:text|textbf|textrm|mathrm|mbox)\s*\{([^{}]*)\}")
SPACING = re.compile(r"\\[,;:! ]|\\left|\\right|\s+")
# a last line that ends in the middle of a formula, or is prose (two words in a row outside LaTeX commands)
UNFINISHED = re.compile(r"[-+*/=^_,({\[\\]$")
PROSE = re.compile(r"[A-Za-z]{2,}\s+[A-Za-z]{2,}")
COMMANDS = re.compile(r"\\[A-Za-z]+")
INLINE_MATH = re.compile(r"\$([^$]+)\$")
MAX_BARE_CHARS = 100


def plain(latex: str) -> str:
    """A form for comparing text answers: no spacing commands, text wrappers, delimiters or case."""
    text = TEXT.sub(r"\1", DELIMITERS.sub("", latex))
    text = SPACING.sub("", text).replace("dfrac", "frac").replace("tfrac", "frac").lower()
    return text[1:-1] if re.fullmatch(r"\([a-z]\)", text) else text  # "(C)" is the choice C


def top_level_items(latex: str) -> list[str]:
    """The comma-separated items of ``latex`` outside every bracket (``2, 3`` has two, ``(0,9) \\cup (9,36)`` one)."""
    items, depth, start = [], 0, 0
    for index, char in enumerate(latex):
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth = max(depth - 1, 0)
        elif char == "," and depth == 0:
            items.append(latex[start:index])
            start = index + 1
    return items + [latex[start:]]


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

    def parse_answer(self, text: str) -> list[str]:
        """The answer's LaTeX without delimiters; none when empty or too long to be a final answer."""
        text = DELIMITERS.sub("", text)
        balanced = text.count("{") == text.count("}")  # "\\frac{5}{6" was cut off
        return [text] if text and balanced and len(text) <= MAX_ANSWER_CHARS else []

    def bare_answer(self, completion: str) -> str | None:
        lines = last_lines(completion, 3)
        if len(lines) == 3 and not DELIMITERS.sub("", lines[0]) and not DELIMITERS.sub("", lines[2]):
            lines = lines[:2]  # a display block: \[, the answer, \]
        line = DELIMITERS.sub("", lines[-1]) if lines and len(lines[-1]) <= 2 * MAX_BARE_CHARS else ""
        if not line or len(line) > MAX_BARE_CHARS or UNFINISHED.search(line):
            return None
        if PROSE.search(COMMANDS.sub(" ", TEXT.sub("x", line))):
            return None
        inline = INLINE_MATH.findall(lines[-1])  # "Therefore $x = 5$." states the formula
        line = inline[-1] if inline else line
        if "=" in line and not VARIABLE.match(line):
            return None  # "= \\frac{a}{b}", "\\frac{AB}{CD} = ...": a step of a derivation, not a stated answer
        return line if line.count("{") == line.count("}") else None

    def score_answer(self, example: Example, answer: str) -> float:
        """Equal as text (``\\text{Evelyn}`` and ``Evelyn``), else equivalent by math-verify, with a leading
        ``x =`` dropped when the reference has none: at most two verifier calls."""
        if plain(answer) == plain(example.answer):
            return 1.0
        verifier = self.verifier or shared_verifier()
        if verifier.equivalent(example.answer, answer):
            return 1.0
        named = VARIABLE.match(answer)
        return float(bool(named) and not VARIABLE.match(example.answer)
                     and verifier.equivalent(example.answer, answer[named.end():]))

    def score_alternatives(self, example: Example, answers: tuple[str, ...]) -> float:
        """Alternatives are right together when they are the reference's list of answers (``x=2 or x=3`` for
        ``2, 3``), judged in one verifier call: as many alternatives as the reference has items, none of them a list
        itself (``\\boxed{(0,9) \\cup (9,36)} or \\boxed{12}`` against 12 is a hedge, whatever the verifier makes
        of the joined text)."""
        values = [answer[m.end():] if (m := VARIABLE.match(answer)) else answer for answer in answers]
        if len(top_level_items(example.answer)) != len(values) or any(len(top_level_items(v)) > 1 for v in values):
            return 0.0
        joined = ", ".join(values)
        return float((self.verifier or shared_verifier()).equivalent(example.answer, joined))

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
