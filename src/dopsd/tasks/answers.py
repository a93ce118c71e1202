"""Finding the answer in a completion: the last <answer> tag, then the last \\boxed{} in it, or the bare text.

Everything here is linear in the completion's length, so megabyte-long or adversarial completions stay cheap.
"""

from __future__ import annotations

import re

BOXED = "\\boxed{"
OPEN_TAG, CLOSE_TAG = "<answer>", "</answer>"
MAX_ANSWER_CHARS = 2000
BRACES = re.compile(r"[{}]")


def last_answer_tag(text: str) -> str | None:
    """Content of the last ``<answer>`` tag, up to its ``</answer>`` or, when that is missing (a generation cut
    short), to the end of the text; None when there is no tag."""
    start = text.rfind(OPEN_TAG)
    if start == -1:
        return None
    body = text[start + len(OPEN_TAG):]
    end = body.find(CLOSE_TAG)
    return body if end == -1 else body[:end]


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` whose braces balance (nested braces allowed), or None."""
    first = text.find(BOXED)
    if first == -1:
        return None
    closing = _closing_braces(text, first)
    start = text.rfind(BOXED)
    while start != -1:
        brace = start + len(BOXED) - 1
        if brace in closing:
            return text[brace + 1 : closing[brace]]
        start = text.rfind(BOXED, first, start)
    return None


def _closing_braces(text: str, start: int) -> dict[int, int]:
    """Position of the matching ``}`` for every ``{`` from ``start`` on that has one (one pass with a stack)."""
    opened, closing = [], {}
    for brace in BRACES.finditer(text, start):
        if brace.group() == "{":
            opened.append(brace.start())
        elif opened:
            closing[opened.pop()] = brace.start()
    return closing


def answer_text(completion: str) -> str:
    """The answer part of a completion: the last <answer> tag's content (else the whole completion), then the
    content of its last \\boxed{} if it has one; stripped, and cut to its last ``MAX_ANSWER_CHARS`` characters."""
    tagged = last_answer_tag(completion)
    text = completion if tagged is None else tagged
    boxed = last_boxed(text)
    text = text if boxed is None else boxed
    return text.strip()[-MAX_ANSWER_CHARS:]
