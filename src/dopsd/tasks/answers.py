"""Finding the answer in a completion: the last <answer> tag, the last \\boxed{}, or the bare text."""

from __future__ import annotations

import re

ANSWER_TAG = re.compile(r"<answer>(.*?)(?:</answer>|$)", re.DOTALL)  # DOTALL: reasoning spans lines
BOXED = "\\boxed"
MAX_ANSWER_CHARS = 2000


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` with balanced braces (nesting allowed), or None."""
    start = text.rfind(BOXED + "{")
    while start != -1:
        depth, position = 0, start + len(BOXED)
        for position in range(start + len(BOXED), len(text)):
            char = text[position]
            if char == "{":
                depth += 1
            elif char == "}":
                depth -= 1
                if depth == 0:
                    return text[start + len(BOXED) + 1 : position]
        start = text.rfind(BOXED + "{", 0, start)  # unbalanced: try an earlier one
    return None


def answer_text(completion: str) -> str:
    """The answer part of a completion: inside the last <answer> tag (if any), then inside its last \\boxed{}."""
    tagged = ANSWER_TAG.findall(completion)
    text = tagged[-1] if tagged else completion
    boxed = last_boxed(text)
    text = boxed if boxed is not None else text
    return text.strip()[-MAX_ANSWER_CHARS:]
