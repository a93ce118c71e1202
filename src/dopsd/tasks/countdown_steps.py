"""Countdown worked step by step: reach the target from four small numbers, one operation per step.

An answer is a chain of steps separated by commas, ``7*8=56,3+2=5,56-5=51``. The rules the verifier enforces:

- each step is ``a<op>b=c`` with ``op`` one of ``+ - * /`` and ``a``, ``b``, ``c`` written as plain decimal integers
  (no sign, no leading zero);
- ``a`` and ``b`` are each a given number or the result of an earlier step that no later step has consumed yet;
  every given number and every step's result can be consumed at most once (a number given twice can be used twice);
- ``c`` is exactly ``a op b`` and a positive integer (so subtraction must stay positive, division must be exact);
- the last step's result is the target. Not every given number has to be used.

A valid chain that ends elsewhere is valid but wrong; anything else (bad arithmetic, a number used twice or never
given, text that is not a chain) is invalid. The score is 1 for a valid chain reaching the target and 0 otherwise;
the training reward, as Countdown's, also gives 0.1 to a valid chain that misses. Everything is integer
arithmetic on parsed digits: nothing is evaluated.

Generated instances: four numbers in 1-9 and a target of at least 10 that folding the numbers in the order given with
a random ``+`` or ``-`` at each step reaches (every intermediate result positive). The reference answer is that fold,
three steps of about 20 characters; the verifier accepts any valid chain, in any order, with any of the four
operations. Fixing the order and the two operations in the generated data keeps the task within reach of the bundled
1M-parameter model: with any order and all four operations it solved none of the held-out set after 500 SFT updates,
and with the order fixed but ``+`` and ``*`` 0.9% after 1,000 (its multiplication stayed wrong).
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from fractions import Fraction

from dopsd.tasks.answers import last_lines
from dopsd.tasks.base import Example, Task
from dopsd.tasks.countdown import ValidityReward, countdown_example, normalize_expression, numbers_and_target
from dopsd.tasks.distinct import draw_distinct

NUMBER = r"(?:0|[1-9][0-9]{0,8})"
STEP = re.compile(rf"({NUMBER})([-+*/])({NUMBER})=({NUMBER})")
CHAIN = re.compile(rf"{NUMBER}[-+*/]{NUMBER}={NUMBER}(?:,{NUMBER}[-+*/]{NUMBER}={NUMBER})*")
MAX_CHAIN_CHARS = 200
OPERATIONS = "+-*/"


def apply(a: int, operator: str, b: int) -> Fraction | None:
    """``a operator b`` exactly; None for a division by zero."""
    if operator == "+":
        return Fraction(a + b)
    if operator == "-":
        return Fraction(a - b)
    if operator == "*":
        return Fraction(a * b)
    return None if b == 0 else Fraction(a, b)


def check_chain(numbers: list[int], target: int, chain: str) -> tuple[bool, bool]:
    """(valid: every step follows the rules above, correct: valid and the last result is ``target``)."""
    if len(chain) > MAX_CHAIN_CHARS or not CHAIN.fullmatch(chain):
        return False, False
    available = Counter(numbers)
    result = None
    for step in chain.split(","):
        a, operator, b, written = STEP.fullmatch(step).groups()
        a, b, result = int(a), int(b), int(written)
        for operand in (a, b):
            if available[operand] <= 0:
                return False, False  # never given, or already consumed
            available[operand] -= 1
        value = apply(a, operator, b)
        if value is None or value != result or result <= 0:
            return False, False
        available[result] += 1
    return True, result == target


def solve_chain(numbers: list[int], target: int) -> str | None:
    """A valid chain reaching ``target`` (fewest steps first), or None when there is none."""
    if target in numbers:
        return None  # a chain needs at least one step; the generator never asks for a given number
    best: list[str] | None = None

    def search(pool: list[int], steps: list[str]) -> None:
        nonlocal best
        if steps and int(steps[-1].rsplit("=", 1)[1]) == target:
            if best is None or len(steps) < len(best):
                best = list(steps)
            return
        if best is not None and len(steps) + 1 >= len(best):
            return
        for i in range(len(pool)):
            for j in range(len(pool)):
                if i == j:
                    continue
                for operator in OPERATIONS:
                    value = apply(pool[i], operator, pool[j])
                    if value is None or value.denominator != 1 or value <= 0:
                        continue
                    rest = [pool[k] for k in range(len(pool)) if k not in (i, j)] + [int(value)]
                    search(rest, steps + [f"{pool[i]}{operator}{pool[j]}={int(value)}"])

    search(list(numbers), [])
    return None if best is None else ",".join(best)


def random_chain(rng: random.Random, numbers: list[int], max_value: int, operations: str = "+-") -> list[str] | None:
    """Steps that fold ``numbers`` left to right (the first two, then that result with the third...), each with an
    operation drawn from ``operations`` whose result is an integer in 1..max_value; None on a dead end."""
    value, steps = numbers[0], []
    for number in numbers[1:]:
        choices = [(op, apply(value, op, number)) for op in operations]
        choices = [(op, v) for op, v in choices if v is not None and v.denominator == 1 and 1 <= v <= max_value]
        if not choices:
            return None
        operator, result = rng.choice(choices)
        steps.append(f"{value}{operator}{number}={int(result)}")
        value = int(result)
    return steps


def generate_countdown_steps(n: int, seed: int, count: int = 4, low: int = 1, high: int = 9, min_target: int = 10,
                             max_value: int = 99, operations: str = "+-") -> list[Example]:
    """``n`` distinct instances: ``count`` numbers in [low, high] and a target in [min_target, max_value], not one of
    the numbers, that a random left-to-right chain of ``operations`` using every number reaches (kept in
    ``meta["solution"]``, the reference answer); reproducible from ``seed``."""
    rng = random.Random(seed)

    def draw() -> Example | None:
        numbers = [rng.randint(low, high) for _ in range(count)]
        steps = random_chain(rng, numbers, max_value, operations)
        if steps is None:
            return None
        target = int(steps[-1].rsplit("=", 1)[1])
        if target < min_target or target in numbers:
            return None
        return Example(index=0, prompt=",".join(map(str, numbers)), answer=str(target),
                       meta={"numbers": numbers, "target": target, "solution": ",".join(steps)})

    examples = draw_distinct(n, draw, key=instance_key, what="Countdown-steps instances")
    for index, example in enumerate(examples):
        example.index = index
    return examples


def instance_key(example: Example) -> tuple:
    """What makes two instances the same: the numbers in their order (the order is part of the prompt, and the
    reference answer follows it) and the target."""
    return tuple(example.meta["numbers"]), example.meta["target"]


def countdown_steps_splits(n_train: int, n_heldout: int, seed: int, **ranges) -> tuple[list[Example], list[Example]]:
    """Train and held-out instances from one stream of distinct instances, so they never overlap."""
    pool = generate_countdown_steps(n_train + n_heldout, seed, **ranges)
    heldout = [Example(i, e.prompt, e.answer, e.meta) for i, e in enumerate(pool[n_train:])]
    return pool[:n_train], heldout


def write_countdown_steps_jsonl(examples: list[Example], path) -> None:
    """One ``{"input": "7,8,3,2", "output": "51", "solution": "7*8=56,3+2=5,56-5=51"}`` per line."""
    with open(path, "w", encoding="utf-8") as handle:
        handle.writelines(json.dumps({"input": e.prompt, "output": e.answer, "solution": e.meta["solution"]}) + "\n"
                          for e in examples)


class CountdownSteps(ValidityReward, Task):
    name = "countdown-steps"

    def question_text(self, example: Example) -> str:
        numbers, target = example.meta["numbers"], example.meta["target"]
        return (
            f"Using the numbers {numbers}, reach {target} one operation at a time. Write each step as a<op>b=c with "
            "op one of +, -, *, /, steps separated by commas (for example 7*8=56,3+2=5,56-5=51). Each given number "
            "and each step's result can be used at most once, every result must be a positive integer, and the last "
            "result must be the target. Put the steps inside \\boxed{} in the <answer> tag."
        )

    def compact_prompt(self, example: Example) -> str:
        return f"{example.prompt}>{example.answer}:"

    prompt_format = "the numbers and the target as NUMBERS>TARGET (e.g. 7,8,3,2>51)"

    def example_from_text(self, text: str) -> Example:
        return countdown_example(text, self.name, self.prompt_format)

    def parse_answer(self, text: str) -> list[str]:
        """The chain in canonical form: ASCII operators, no spaces, steps joined by commas."""
        chain = re.sub(r"\s+", "", normalize_expression(text)).rstrip(".").replace(";", ",").strip(",")
        return [chain] if len(chain) <= MAX_CHAIN_CHARS and CHAIN.fullmatch(chain) else []

    def bare_answer(self, completion: str) -> str | None:
        lines = last_lines(completion, 1)
        if not lines or len(lines[-1]) > MAX_CHAIN_CHARS:
            return None
        return lines[-1] if self.parse_answer(lines[-1]) else None

    def check(self, example: Example, chain: str) -> tuple[bool, bool]:
        return check_chain(example.meta["numbers"], example.meta["target"], chain)

    def solution(self, example: Example) -> str:
        solution = example.meta.get("solution") or solve_chain(example.meta["numbers"], example.meta["target"])
        if solution is None:
            raise ValueError(f"no chain of {example.meta['numbers']} reaches {example.meta['target']}")
        return solution

    def worked_solution(self, example: Example) -> str:
        return self.solution(example)

    def reference_completion(self, example: Example, style: str = "instruct") -> str:
        solution = self.solution(example)
        if style == "compact":
            return solution
        return f"<reasoning>\nCombine two numbers at a time.\n</reasoning>\n<answer>\n\\boxed{{{solution}}}\n</answer>"

    def parse_row(self, row: dict, index: int) -> Example:
        numbers, target = numbers_and_target(row)
        meta = {"numbers": numbers, "target": target}
        if row.get("solution"):
            if not check_chain(numbers, target, str(row["solution"]))[1]:
                raise ValueError(f"solution {row['solution']!r} does not reach {target} from {numbers}")
            meta["solution"] = str(row["solution"])
        return Example(index=index, prompt=",".join(map(str, numbers)), answer=str(target), meta=meta)
