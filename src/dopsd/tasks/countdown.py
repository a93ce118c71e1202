"""Countdown (3 numbers): write an expression using each given number once that equals the target."""

from __future__ import annotations

import itertools
import json
import random
import re
from collections import Counter
from fractions import Fraction

from dopsd.tasks.answers import last_lines
from dopsd.tasks.arithmetic import ExpressionError, evaluate_expression
from dopsd.tasks.base import Example, Task
from dopsd.tasks.distinct import draw_distinct
from dopsd.tasks.extraction import ANSWERED, HEDGED

TOLERANCE = 1e-5
# operator precedence; a number binds tighter than any operator
PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2}
ATOM = 3
# LaTeX and Unicode spellings of the four operations and of brackets, as the safe parser reads them
SPELLINGS = [
    (re.compile(r"\\times|\\cdot|\\ast|[×·∗⋅]|(?<=[\d)\s])[xX](?=[\s\d(])"), "*"),
    (re.compile(r"\\div|[÷∕]"), "/"),
    (re.compile(r"[−–—]"), "-"),
    (re.compile(r"\\left|\\right|\\[()\[\]]|\$|^\s*\*\*|\*\*\s*$|\\[,;! ]"), ""),
    (re.compile(r"[\[{]"), "("),
    (re.compile(r"[\]}]"), ")"),
]
LATEX_FRACTION = re.compile(r"\\[dt]?frac\{([^{}]*)\}\{([^{}]*)\}")
UNFINISHED = ("=", "+", "-", "*", "/", "(")  # a last line cut off in the middle of a calculation
# a short label before a last-line expression: "Equation:", "The expression is", "So,"
LABEL = re.compile(r"^(?:(?:[A-Za-z]+ ){0,3}(?:[A-Za-z]+:|is\b)|(?:so|thus|therefore|hence)\b,?)\s*", re.IGNORECASE)
EXPRESSION_CHARS = re.compile(r"[\d\s+\-*/()]+")


def _combine(a: tuple[str, int], operator: str, b: tuple[str, int]) -> str:
    """``a operator b`` with only the parentheses that exact arithmetic needs."""
    level = PRECEDENCE[operator]
    left = f"({a[0]})" if a[1] < level else a[0]
    tight = operator in "-/"  # a-(b-c) and a/(b/c) differ from a-b-c and a/b/c; a+(b-c) and a*(b/c) do not
    right = f"({b[0]})" if b[1] < level or (tight and b[1] == level) else b[0]
    return left + operator + right


def all_expressions(numbers: list[int]) -> dict[Fraction, tuple[str, int]]:
    """Every value reachable using each number exactly once, with one expression (text, precedence) for it."""
    if len(numbers) == 1:
        return {Fraction(numbers[0]): (str(numbers[0]), ATOM)}
    reachable: dict[Fraction, tuple[str, int]] = {}
    for size in range(1, len(numbers)):
        for left_ids in itertools.combinations(range(len(numbers)), size):
            left = [numbers[i] for i in left_ids]
            right = [numbers[i] for i in range(len(numbers)) if i not in left_ids]
            for a, ea in all_expressions(left).items():
                for b, eb in all_expressions(right).items():
                    results = {"+": a + b, "-": a - b, "*": a * b, "/": a / b if b else None}
                    for operator, value in results.items():
                        if value is not None and value not in reachable:
                            reachable[value] = (_combine(ea, operator, eb), PRECEDENCE[operator])
    return reachable


def solve(numbers: list[int], target: int) -> str | None:
    """An expression reaching ``target`` with each number once, or None (proof that none exists)."""
    found = all_expressions(list(numbers)).get(Fraction(target))
    return None if found is None else found[0]


def generate_countdown(n: int, seed: int, low: int = 1, high: int = 100, max_target: int = 1000) -> list[Example]:
    """``n`` distinct solvable instances: three numbers in [low, high] and an integer target in [1, max_target]
    reachable from them, with one solution in ``meta["solution"]``; reproducible from ``seed``."""
    rng = random.Random(seed)

    def draw() -> Example | None:
        numbers = [rng.randint(low, high) for _ in range(3)]
        reachable = all_expressions(numbers)
        targets = sorted(v for v in reachable if v.denominator == 1 and 1 <= v <= max_target)
        if not targets:
            return None
        target = rng.choice(targets)
        return Example(index=0, prompt=",".join(map(str, numbers)), answer=str(target),
                       meta={"numbers": numbers, "target": int(target), "solution": reachable[target][0]})

    examples = draw_distinct(n, draw, key=instance_key, what="Countdown instances")
    for index, example in enumerate(examples):
        example.index = index
    return examples


def instance_key(example: Example) -> tuple:
    """What makes two instances the same: the multiset of numbers and the target."""
    return tuple(sorted(example.meta["numbers"])), example.meta["target"]


def write_countdown_jsonl(examples: list[Example], path) -> None:
    """The test-set format: one ``{"input": "30,100,93", "output": "23"}`` per line."""
    with open(path, "w", encoding="utf-8") as handle:
        handle.writelines(json.dumps({"input": e.prompt, "output": e.answer}) + "\n" for e in examples)


def countdown_splits(n_train: int, n_heldout: int, seed: int, **ranges) -> tuple[list[Example], list[Example]]:
    """Train and held-out instances from one stream of distinct instances, so they never overlap; ``ranges`` are
    :func:`generate_countdown`'s ``low``, ``high`` and ``max_target``."""
    pool = generate_countdown(n_train + n_heldout, seed, **ranges)
    heldout = [Example(i, e.prompt, e.answer, e.meta) for i, e in enumerate(pool[n_train:])]
    return pool[:n_train], heldout


def numbers_and_target(row: dict) -> tuple[list[int], int]:
    """A Countdown row's numbers (``input``, at least two) and target (``output``, one integer)."""
    numbers, targets = _integers(row["input"], "input"), _integers(row["output"], "output")
    if len(numbers) < 2:
        raise ValueError(f"input {row['input']!r} needs at least two numbers")
    if len(targets) != 1:
        raise ValueError(f"output {row['output']!r} must be one integer")
    return numbers, targets[0]


def countdown_example(text: str, task: str, prompt_format: str) -> Example:
    """A Countdown instance typed by hand as ``NUMBERS>TARGET`` (a compact prompt's trailing ``=`` or ``:`` allowed)."""
    written = text.strip().rstrip("=:").strip()
    numbers, _, target = written.rpartition(">")
    try:
        if not numbers:
            raise ValueError("no '>' before the target")
        numbers, target = numbers_and_target({"input": numbers.strip(), "output": target.strip()})
    except ValueError as error:
        raise ValueError(f"{text.strip()[:40]!r} is not a {task} instance ({error}): give {prompt_format}") from None
    return Example(index=0, prompt=",".join(map(str, numbers)), answer=str(target),
                   meta={"numbers": numbers, "target": target})


class ValidityReward:
    """For tasks whose ``check(example, answer)`` says ``(valid, correct)``: the score is correctness, and the
    training reward d1's: 1 for a correct answer, 0.1 for a valid wrong one, else 0 (a hedge earns 1 only when every
    alternative is correct, and never the 0.1)."""

    def score_answer(self, example: Example, answer: str) -> float:
        return float(self.check(example, answer)[1])

    def reward(self, example: Example, completion: str) -> float:
        extraction = self.extract(completion)
        if extraction.status == HEDGED:
            return self.score_alternatives(example, extraction.candidates)
        if extraction.status != ANSWERED:
            return 0.0
        valid, correct = self.check(example, extraction.answer)
        return 1.0 if correct else 0.1 if valid else 0.0


class Countdown(ValidityReward, Task):
    name = "countdown"

    def question_text(self, example: Example) -> str:
        numbers, target = example.meta["numbers"], example.meta["target"]
        return (
            f"Using the numbers {numbers}, create an equation that equals {target}. You can use basic arithmetic "
            "operations (+, -, *, /) and each number must be used exactly once. "
            "Put the expression inside \\boxed{} in the <answer> tag."
        )

    def compact_prompt(self, example: Example) -> str:
        return f"{example.prompt}>{example.answer}="

    prompt_format = "the numbers and the target as NUMBERS>TARGET (e.g. 3,5,7>15)"

    def example_from_text(self, text: str) -> Example:
        return countdown_example(text, self.name, self.prompt_format)

    def parse_answer(self, text: str) -> list[str]:
        """The expression, in ASCII: the side of an equation that holds the operations (``100-93+30 = 37``)."""
        expression = normalize_expression(text)
        sides = [side.strip().rstrip(".").strip() for side in expression.split("=")]
        side = next((side for side in sides if any(op in side for op in "+-*/")), sides[0])
        return [re.sub(r"\s+", "", side)] if is_expression(side) else []

    def bare_answer(self, completion: str) -> str | None:
        lines = last_lines(completion, 1)
        line = lines[-1] if lines and len(lines[-1]) <= 200 and not lines[-1].endswith(UNFINISHED) else ""
        line = LABEL.sub("", line)  # "Equation: ...", "The expression is ..."
        return line if is_expression(normalize_expression(line).replace("=", " ").rstrip(".")) else None

    def check(self, example: Example, expression: str) -> tuple[bool, bool]:
        """(valid: parses and uses exactly the given numbers, correct: valid and equals the target)."""
        try:
            value, used = evaluate_expression(expression)
        except ExpressionError:
            return False, False
        if Counter(used) != Counter(example.meta["numbers"]):
            return False, False
        return True, abs(float(value) - example.meta["target"]) < TOLERANCE

    def solution(self, example: Example) -> str:
        solution = example.meta.get("solution") or solve(example.meta["numbers"], example.meta["target"])
        if solution is None:
            raise ValueError(f"no expression of {example.meta['numbers']} reaches {example.meta['target']}")
        return solution

    def worked_solution(self, example: Example) -> str:
        """The solver's expression and the target it reaches: ``(3+5)*2=16``."""
        return f"{self.solution(example)}={example.meta['target']}"

    def reference_completion(self, example: Example, style: str = "instruct") -> str:
        solution = self.solution(example)
        if style == "compact":
            return solution
        return f"<reasoning>\nTry combinations.\n</reasoning>\n<answer>\n\\boxed{{{solution}}}\n</answer>"

    def parse_row(self, row: dict, index: int) -> Example:
        numbers, target = numbers_and_target(row)
        return Example(index=index, prompt=",".join(map(str, numbers)), answer=str(target),
                       meta={"numbers": numbers, "target": target})


def is_expression(text: str) -> bool:
    """Only digits, spaces, ``+ - * / ( )``, and at least one digit."""
    return bool(EXPRESSION_CHARS.fullmatch(text)) and any(char.isdigit() for char in text)


def normalize_expression(text: str) -> str:
    """``\\times``, ``×``, ``\\div``, ``÷``, ``−``, ``\\frac{a}{b}``, brackets and math delimiters in ASCII."""
    for _ in range(3):
        text = LATEX_FRACTION.sub(r"(\1)/(\2)", text)
    for pattern, replacement in SPELLINGS:
        text = pattern.sub(replacement, text)
    return text


def _integers(value, field: str) -> list[int]:
    """Integers from a comma-separated string (or a JSON list, or one number)."""
    parts = value if isinstance(value, list) else str(value).split(",")
    texts = [str(part).strip() for part in parts]
    if not all(re.fullmatch(r"-?[0-9]+", text) for text in texts):
        raise ValueError(f"{field} {value!r} is not a comma-separated list of integers")
    return [int(text) for text in texts]
