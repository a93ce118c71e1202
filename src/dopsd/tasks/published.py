"""``--scoring d1``: each task scored the way the d1 and d-OPSD evaluation scripts score it, so that a result can be
set beside their published tables. Rewritten from the facts of their public evaluation code (nothing copied), with
every step linear in the completion's length and without ``eval``.

- GSM8K: the first ``\\boxed{...}`` (content up to the first ``}`` on the same line) whose content, without commas,
  is a float or holds a number (its first); else the first closed ``<answer>`` tag (a float, else its last
  number); compared as floats with the reference. No tag and no box: wrong.
- MATH500: the last ``\\boxed``/``\\fbox`` by brace counting (``\\boxed 5`` up to a ``$``), else the first closed
  ``<answer>`` tag; equal to the reference after the MATH dataset's string normalisation (``hendrycks_math``).
- Countdown: the last box, else the first closed tag, else the whole completion; ``\\div``, ``\\times``, ``\\cdot``
  rewritten; the expression before the first ``= number``; its integers must be the given numbers; equal to the
  target within 1e-5. (Their ``eval`` also reads ``**``, ``//`` and decimals; here those score 0.)
- Sudoku: the first of five patterns (a code block in the tag, the tag, text after ``</answer>``, 16 digits
  before ``</answer>``, a lone 16-digit word); whitespace removed, then cut to 16 characters or padded with ``0``;
  score = share of the empty cells right, and the accuracy they report is pooled over cells, not puzzles.
"""

from __future__ import annotations

import re
from fractions import Fraction

from dopsd.tasks.arithmetic import ExpressionError, evaluate_expression
from dopsd.tasks.base import Example, Score, Task
from dopsd.tasks.extraction import ANSWERED, NO_ANSWER

SCORING_MODES = ("dopsd", "d1")
FIRST_NUMBER = re.compile(r"-?\d+\.?\d*")
OPEN, CLOSE = "<answer>", "</answer>"
STOPS = ("<|eot_id|>", "<|endoftext|>")
LONE_GRID = re.compile(r"(?<!\w)\d{16}(?!\w)")
COUNTDOWN_CHARS = re.compile(r"[\d+\-*/().\s]+")
LEADING_ZERO = re.compile(r"(?<![\d.])0\d")  # Python's eval refuses 05
BRACES = re.compile(r"[{}]")
EQUATION_LEFT = set("0123456789+-*/() ")
EQUATION_RIGHT = set("0123456789. ")


def score(task: Task, example: Example, completion: str, mode: str = "dopsd") -> Score:
    """``task.score`` (``dopsd``) or the published scripts' rule (``d1``)."""
    if mode == "dopsd":
        return task.score(example, completion)
    if mode != "d1":
        raise ValueError(f"unknown scoring mode {mode!r}: use one of {', '.join(SCORING_MODES)}")
    if task.name not in D1_RULES:
        raise ValueError(f"no d1 scoring rule for task {task.name!r}: d1 scores {', '.join(D1_RULES)}")
    return D1_RULES[task.name](example, completion)


def _score(value: float, answer: str | None, weight: float = 1.0) -> Score:
    return Score(value=value, correct=value >= 1.0, extracted=answer, status=ANSWERED if answer else NO_ANSWER,
                 source="d1", weight=weight)


def first_tag(text: str) -> str | None:
    """What ``<answer>(.*?)</answer>`` (DOTALL) finds first: from the first tag to the next closing tag."""
    start = text.find(OPEN)
    end = -1 if start == -1 else text.find(CLOSE, start + len(OPEN))
    return None if end == -1 else text[start + len(OPEN):end]


def lazy_boxes(text: str):
    """What ``\\\\boxed{(.*?)}`` finds, in order: each box's content up to the first ``}``, on one line."""
    position, close, newline = 0, 0, 0
    while (start := text.find("\\boxed{", position)) != -1:
        body = start + len("\\boxed{")
        if close != -1 and close < body:
            close = text.find("}", body)
        if newline != -1 and newline < body:
            newline = text.find("\n", body)
        if close == -1:
            return
        if newline == -1 or close < newline:
            yield text[body:close]
            position = close + 1
        else:
            position = start + 1


def _float(text: str, pick: int) -> float | None:
    """``text`` as a float, else its first (``pick=0``) or last (``pick=-1``) number, else None."""
    try:
        return float(text)
    except ValueError:
        numbers = FIRST_NUMBER.findall(text)
        return float(numbers[pick]) if numbers else None


def gsm8k(example: Example, completion: str) -> Score:
    answer = None
    for content in lazy_boxes(completion):
        content = content.strip().replace(",", "")
        if content and not re.fullmatch(r"\.+", content):
            answer = _float(content, 0)
            if answer is not None:
                break
    if answer is None:
        tag = first_tag(completion)
        answer = _float(tag.strip(), -1) if tag and tag.strip() else None
    shown = None if answer is None else repr(answer)
    return _score(float(answer is not None and answer == float(example.answer)), shown)


def last_box_hendrycks(text: str) -> str | None:
    """The MATH dataset's ``last_boxed_only_string`` then ``remove_boxed``, failures as None."""
    if "\\boxed " in text:
        return text.split("\\boxed ")[-1].split("$")[0]
    start = text.rfind("\\boxed")
    if start < 0:
        start = text.rfind("\\fbox")
        if start < 0:
            return None
    depth = 0
    for brace in BRACES.finditer(text, start):
        depth += 1 if brace.group() == "{" else -1
        if brace.group() == "}" and depth == 0:
            box = text[start:brace.start() + 1]
            return box[len("\\boxed{"):-1] if box.startswith("\\boxed{") else None
    return None


def math500(example: Example, completion: str) -> Score:
    answer = last_box_hendrycks(completion)
    if not answer:
        tag = first_tag(completion)
        answer = tag.strip() if tag is not None else None
    return _score(float(answer is not None and hendrycks_equal(answer, example.answer)), answer)


def hendrycks_equal(answer: str, reference: str) -> bool:
    """The MATH dataset's ``is_equiv``: equal after normalisation; equal as raw text when normalisation fails."""
    try:
        return hendrycks_normalize(answer) == hendrycks_normalize(reference)
    except (AssertionError, IndexError, ValueError):
        return answer == reference


def hendrycks_normalize(text: str) -> str:
    for old, new in (("\n", ""), ("\\!", ""), ("\\\\", "\\"), ("tfrac", "frac"), ("dfrac", "frac"), ("\\left", ""),
                     ("\\right", ""), ("^{\\circ}", ""), ("^\\circ", ""), ("\\$", "")):
        text = text.replace(old, new)
    if "\\text{ " in text:  # units on the right
        parts = text.split("\\text{ ")
        assert len(parts) == 2
        text = parts[0]
    text = text.replace("\\%", "").replace(" .", " 0.").replace("{.", "{0.")
    if not text:
        return text
    if text[0] == ".":
        text = "0" + text
    if len(text.split("=")) == 2 and len(text.split("=")[0]) <= 2:
        text = text.split("=")[1]
    text = _braced_sqrt(text).replace(" ", "")
    text = _braced_fracs(text)
    if text == "0.5":
        text = "\\frac{1}{2}"
    return _slash_fraction(text)


def _braced_sqrt(text: str) -> str:
    """``\\sqrt3`` as ``\\sqrt{3}`` (an empty remainder after ``\\sqrt`` fails, as in the original)."""
    head, *rest = text.split("\\sqrt")
    return head + "".join("\\sqrt" + (part if part[0] == "{" else "{" + part[0] + "}" + part[1:]) for part in rest)


def _braced_fracs(text: str) -> str:
    """``\\frac12`` as ``\\frac{1}{2}``, ``\\frac1{7}`` as ``\\frac{1}{7}``; too short a remainder: unchanged."""
    head, *rest = text.split("\\frac")
    out = [head]
    for part in rest:
        if part[0] == "{":
            out.append("\\frac" + part)
        elif len(part) < 2:
            return text
        elif part[1] == "{":
            out.append("\\frac{" + part[0] + "}" + part[1:])
        else:
            out.append("\\frac{" + part[0] + "}{" + part[1] + "}" + part[2:])
    return "".join(out)


def _slash_fraction(text: str) -> str:
    """``a/b`` of two integers as ``\\frac{a}{b}``; a ValueError when a side is not an integer, as in the original."""
    parts = text.split("/")
    if len(parts) != 2:
        return text
    a, b = int(parts[0]), int(parts[1])
    return f"\\frac{{{a}}}{{{b}}}" if text == f"{a}/{b}" else text


def countdown(example: Example, completion: str) -> Score:
    box = last_box_hendrycks(completion)
    if box is None:
        tag = first_tag(completion)
        box = tag.strip() if tag is not None else completion
    equation = box.replace("\\div", "/").replace("\\times", "*").replace("\\cdot", "*")
    equation = _before_first_result(equation)
    given = sorted(example.meta["numbers"])
    numbers = re.findall(r"\d+", equation)
    same_numbers = len(numbers) == len(given) and all(len(n) <= 12 for n in numbers) and sorted(
        int(n) for n in numbers) == given
    correct = False
    if same_numbers and COUNTDOWN_CHARS.fullmatch(equation) and not LEADING_ZERO.search(equation):
        try:
            value, _ = evaluate_expression(equation.strip())
            correct = abs(value - Fraction(example.meta["target"])) < Fraction(1, 100_000)
        except ExpressionError:
            pass
    return _score(float(correct), equation.strip() or None)


def _before_first_result(text: str) -> str:
    """What ``([0-9+\\-*/() ]+)=[0-9. ]+`` captures first (stripped), or ``text`` when it finds nothing."""
    equals = text.find("=")
    while equals != -1:
        start = equals
        while start > 0 and text[start - 1] in EQUATION_LEFT:
            start -= 1
        if start < equals and equals + 1 < len(text) and text[equals + 1] in EQUATION_RIGHT:
            return text[start:equals].strip()
        equals = text.find("=", equals + 1)
    return text


def sudoku(example: Example, completion: str) -> Score:
    solution = _first_sudoku_pattern(completion)
    solution = re.sub(r"\s", "", solution)
    puzzle = example.meta.get("puzzle", example.prompt)
    empty = [i for i, char in enumerate(puzzle) if char == "0"]
    if solution:
        solution = (solution + "0" * 16)[:16]
        right = sum(solution[i] == example.answer[i] for i in empty)
    else:
        right = 0
    value = right / len(empty) if empty else 0.0
    return _score(value, solution or None, weight=float(len(empty)))


def _first_sudoku_pattern(text: str) -> str:
    """The first non-empty capture of the five patterns, stripped; "" when none has one."""
    start = text.find(OPEN)
    if start != -1:  # <answer>.*?```\s*([\d\s]+)```
        fence = text.find("```", start + len(OPEN))
        while fence != -1:
            run = fence + 3
            while run < len(text) and (text[run].isdecimal() or text[run].isspace()):
                run += 1
            if run > fence + 3 and text.startswith("```", run):
                found = text[fence + 3:run].strip()
                if found:
                    return found
                break
            fence = text.find("```", fence + 1)
        # <answer>(.*?)(?:<|eot_id|>|<|endoftext|>|</answer>)
        ends = [e for e in (text.find(stop, start + len(OPEN)) for stop in (*STOPS, CLOSE)) if e != -1]
        if ends and text[start + len(OPEN):min(ends)].strip():
            return text[start + len(OPEN):min(ends)].strip()
    closing = text.find(CLOSE)
    if closing != -1:  # </answer>\s*(.*?)(?:<|eot_id|>|<|endoftext|>|$)
        rest = text[closing + len(CLOSE):]
        ends = [e for e in (rest.find(stop) for stop in STOPS) if e != -1]
        found = rest[:min(ends)] if ends else rest
        if found.strip():
            return found.strip()
    position = text.find(CLOSE)
    while position != -1:  # .*?(\d{16})\s*</answer>
        end = position
        while end > 0 and text[end - 1].isspace():
            end -= 1
        if end >= 16 and text[end - 16:end].isdecimal():
            return text[end - 16:end]
        position = text.find(CLOSE, position + 1)
    lone = LONE_GRID.search(text)
    return lone.group() if lone else ""


def published_accuracy(task_name: str, rows) -> float:
    """The accuracy the papers report: the share of correct rows, or for Sudoku the share of empty cells right."""
    if not rows:
        return 0.0
    if task_name == "sudoku":
        weight = sum(row["weight"] for row in rows)
        return sum(row["score"] * row["weight"] for row in rows) / weight if weight else 0.0
    return sum(row["correct"] for row in rows) / len(rows)


D1_RULES = {"gsm8k": gsm8k, "math500": math500, "countdown": countdown, "sudoku": sudoku}
