"""Countdown (3 numbers): write an expression using each given number once that equals the target."""

from __future__ import annotations

import itertools
import random
from collections import Counter
from fractions import Fraction

from dopsd.tasks.answers import answer_text
from dopsd.tasks.arithmetic import ExpressionError, evaluate_expression
from dopsd.tasks.base import Example, Task

TOLERANCE = 1e-5


def all_expressions(numbers: list[int]) -> dict[Fraction, str]:
    """Every value reachable using each number exactly once, with one expression for it."""
    if len(numbers) == 1:
        return {Fraction(numbers[0]): str(numbers[0])}
    reachable: dict[Fraction, str] = {}
    for size in range(1, len(numbers)):
        for left_ids in itertools.combinations(range(len(numbers)), size):
            left = [numbers[i] for i in left_ids]
            right = [numbers[i] for i in range(len(numbers)) if i not in left_ids]
            for a, ea in all_expressions(left).items():
                for b, eb in all_expressions(right).items():
                    candidates = [(a + b, f"{ea}+{eb}"), (a - b, f"{ea}-({eb})"), (a * b, f"({ea})*({eb})")]
                    if b != 0:
                        candidates.append((a / b, f"({ea})/({eb})"))
                    for value, text in candidates:
                        reachable.setdefault(value, text)
    return reachable


def solve(numbers: list[int], target: int) -> str | None:
    """An expression reaching ``target`` with each number once, or None (proof that none exists)."""
    return all_expressions(list(numbers)).get(Fraction(target))


def generate_countdown(n: int, seed: int, low: int = 1, high: int = 100) -> list[Example]:
    """``n`` distinct solvable instances: three numbers and an integer target in [1, 1000] with a known solution."""
    rng, seen, examples = random.Random(seed), set(), []
    while len(examples) < n:
        numbers = [rng.randint(low, high) for _ in range(3)]
        values = sorted(v for v in all_expressions(numbers) if v.denominator == 1 and 1 <= v <= 1000)
        if not values:
            continue
        target = int(rng.choice(values))
        key = (tuple(sorted(numbers)), target)
        if key in seen:
            continue
        seen.add(key)
        solution = solve(numbers, target)
        examples.append(Example(index=len(examples), prompt=",".join(map(str, numbers)), answer=str(target),
                                meta={"numbers": numbers, "target": target, "solution": solution}))
    return examples


def countdown_splits(n_train: int, n_heldout: int, seed: int) -> tuple[list[Example], list[Example]]:
    """Train and held-out instances from one stream of distinct instances, so they never overlap."""
    pool = generate_countdown(n_train + n_heldout, seed)
    heldout = [Example(i, e.prompt, e.answer, e.meta) for i, e in enumerate(pool[n_train:])]
    return pool[:n_train], heldout


class Countdown(Task):
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

    def extract_answer(self, completion: str) -> str | None:
        text = answer_text(completion).split("=")[0].strip()
        return text or None

    def check(self, example: Example, expression: str) -> tuple[bool, bool]:
        """(valid: parses and uses exactly the given numbers, correct: valid and equals the target)."""
        try:
            value, used = evaluate_expression(expression)
        except ExpressionError:
            return False, False
        if Counter(used) != Counter(example.meta["numbers"]):
            return False, False
        return True, abs(float(value) - example.meta["target"]) < TOLERANCE

    def score_answer(self, example: Example, answer: str) -> float:
        return float(self.check(example, answer)[1])

    def reward(self, example: Example, completion: str) -> float:
        """d1's training reward: 1 for a correct expression, 0.1 for a valid wrong one, else 0."""
        answer = self.extract_answer(completion)
        if answer is None:
            return 0.0
        valid, correct = self.check(example, answer)
        return 1.0 if correct else 0.1 if valid else 0.0

    def reference_completion(self, example: Example, style: str = "instruct") -> str:
        solution = example.meta.get("solution") or solve(example.meta["numbers"], example.meta["target"])
        if style == "compact":
            return solution
        return f"<reasoning>\nTry combinations.\n</reasoning>\n<answer>\n\\boxed{{{solution}}}\n</answer>"

    def parse_row(self, row: dict, index: int) -> Example:
        numbers = [int(part) for part in str(row["input"]).split(",")]
        target = int(str(row["output"]).strip())
        if len(numbers) < 2:
            raise ValueError("needs at least two numbers")
        return Example(index=index, prompt=",".join(map(str, numbers)), answer=str(target),
                       meta={"numbers": numbers, "target": target})
