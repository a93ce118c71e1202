"""Primitives for finding an answer in a completion: answer tags, ``\\boxed{}``, final-answer phrases, last lines.

Everything here is linear in the completion's length, so megabyte-long or adversarial completions stay cheap.
The policy that combines them (which one wins, hedges, answer-less text) is in ``extraction.py``.
"""

from __future__ import annotations

import re

BOXED = "\\boxed{"
OPEN_TAG, CLOSE_TAG = "<answer>", "</answer>"
MAX_ANSWER_CHARS = 2000
BRACES = re.compile(r"[{}]")
# "The answer is", "Final answer:", "answer =", "####" (GSM8K's own marker); what follows is the stated answer
VERB = r"(?:(?:is|was|would\s+be|will\s+be|should\s+be)\b|[:=])"
PHRASE = re.compile(rf"(?:\bfinal\s+answer\b(?:\s*{VERB})?|\banswer\s*{VERB}|####)[\s:*]*", re.IGNORECASE)
PROSE = re.compile(r"[A-Za-z]{2,}\s+[A-Za-z]{2,}")  # two words in a row
# "18, not 19", "18 (not 19)", "18 rather than 19": a negated alternative is not an answer; LaTeX's \not is no word
NEGATED = re.compile(r"[,;]?\s*\(?(?<![\\\w])(?:not|rather\s+than|instead\s+of)\b[^,;.()\n]*\)?", re.IGNORECASE)
# the end of a line that breaks off mid-sentence (a word or a comma with no full stop): what follows is no answer
FRAGMENT_END = re.compile(r"[A-Za-z,;]\**$")
SENTENCE_END = re.compile(r"\.(?:\s|$)|\n")
PARAGRAPH_END = re.compile(r"\.(?:\s|$)|\n\s*\n")
# words and symbols that list alternatives: "19 or 18", "19 \text{ or } 18", "19 \lor 18"
HEDGE = re.compile(r"\\text\{\s*or\s*\}|\\(?:lor|vee)\b|\b(?:or|either)\b", re.IGNORECASE)
# what may separate boxes that together form one final answer ("\boxed{19} or \boxed{18}", "$\boxed{2}$, $\boxed{3}$")
BOX_JOINER = re.compile(r"(?:[\s$,;.&]|\\[(),;! ]|\\q?quad|\\text\{[^{}]{0,20}\}|\b(?:and|or|either)\b)*",
                        re.IGNORECASE)


def last_answer_tag(text: str) -> str | None:
    """Content of the last ``<answer>`` tag, up to its ``</answer>`` or, when that is missing (a generation cut
    short), to the end of the text; None when there is no tag."""
    start = text.rfind(OPEN_TAG)
    if start == -1:
        return None
    body = text[start + len(OPEN_TAG):]
    end = body.find(CLOSE_TAG)
    return body if end == -1 else body[:end]


def final_answer_tags(text: str, limit: int = 8) -> list[str]:
    """The last tag's content (``last_answer_tag``) and, before it, the contents of the tags that only joining
    words or punctuation separate from it (``<answer>19</answer> or <answer>18</answer>``); [] without a tag."""
    last = last_answer_tag(text)
    if last is None:
        return []
    tags, start = [last], text.rfind(OPEN_TAG)
    while len(tags) < limit:
        close = text.rfind(CLOSE_TAG, 0, start)
        between = text[close + len(CLOSE_TAG):start]
        if close == -1 or len(between) > 200 or not BOX_JOINER.fullmatch(between):
            break
        previous = text.rfind(OPEN_TAG, 0, close)
        if previous == -1:
            break
        tags.insert(0, text[previous + len(OPEN_TAG):close])
        start = previous
    return tags


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` whose braces balance (nested braces allowed), or None."""
    boxes = boxed_spans(text)
    return None if not boxes else _unwrap(text[boxes[-1][0]:boxes[-1][1]])


def boxed_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of the content of every outermost ``\\boxed{...}`` whose braces balance, in order; a box
    nested in another counts as part of it."""
    first = text.find(BOXED)
    if first == -1:
        return []
    closing = _closing_braces(text, first)
    spans, start = [], first
    while start != -1:
        brace = start + len(BOXED) - 1
        end = closing.get(brace)
        if end is not None and (not spans or brace > spans[-1][1]):
            spans.append((brace + 1, end))
        start = text.find(BOXED, start + 1)
    return spans


def _unwrap(content: str) -> str:
    """``\\boxed{\\boxed{3}}`` is a box of 3."""
    for _ in range(3):
        if not content.startswith(BOXED) or _closing_braces(content, 0).get(len(BOXED) - 1) != len(content) - 1:
            break
        content = content[len(BOXED):-1]
    return content


def final_boxes(text: str, limit: int = 9) -> list[str]:
    """The contents of the last box and of the boxes just before it that only joining words or punctuation
    separate from it (``\\boxed{19} or \\boxed{18}``): the boxes that together state the final answer. A box
    followed by more reasoning (a self-correction) is not part of it."""
    spans = boxed_spans(text)
    group = spans[-1:]  # last box first; at most ``limit`` (more are a hedge anyway)
    for previous in reversed(spans[max(0, len(spans) - limit):-1]):
        between = text[previous[1] + 1 : group[-1][0] - len(BOXED)]
        if len(between) > 200 or not BOX_JOINER.fullmatch(between):
            break
        group.append(previous)
    return [_unwrap(text[start:end]) for start, end in reversed(group)]


def stated_answer(text: str, multiline: bool = False, after: int = 0, phrase: re.Pattern = PHRASE) -> str | None:
    """What follows the last final-answer phrase from position ``after`` on ("The answer is 18." gives ``18``), to
    the end of its sentence or line (``multiline``: of its paragraph, for a grid written row by row); None when
    there is no such phrase. The answer may start on the next line ("Final answer:\\n18"). ``phrase``: the task's
    final-answer phrases (Sudoku adds "the solution is")."""
    last = None
    for last in phrase.finditer(text, after):
        pass
    if last is None:
        return None
    rest = text[last.end(): last.end() + MAX_ANSWER_CHARS]
    end = (PARAGRAPH_END if multiline else SENTENCE_END).search(rest)
    return (rest if end is None else rest[:end.start()]).strip()


def prose_before_answer(stated: str) -> bool:
    """Whether a stated answer opens with words before any number or LaTeX ("to multiply 3 by 4"): an explanation,
    not an answer ("18 red apples" and "approximately 18" are answers)."""
    first = re.search(r"[\d\\$]", stated)
    return bool(PROSE.search(stated if first is None else stated[: first.start()]))


def cut_off_before(text: str, answer: str) -> bool:
    """Whether the bare ``answer`` ending ``text`` follows a line that breaks off mid-sentence without stating it
    ("Let m be the number of mugs" then "8"): the completion was cut off and its last line opens the next thought.
    A line that states the answer before it ("he writes 12*52=624 pages a year" then "624") is a conclusion."""
    lines = last_lines(text, answer.count("\n") + 2)
    if len(lines) < answer.count("\n") + 2 or not FRAGMENT_END.search(lines[0]):
        return False
    return re.search(rf"(?<![\w.]){re.escape(answer.strip())}(?![\w])", lines[0]) is None


def last_lines(text: str, count: int) -> list[str]:
    """The last ``count`` non-empty lines, stripped, last one last (reads only the end of the text)."""
    lines, end = [], len(text)
    while end > 0 and len(lines) < count:
        start = text.rfind("\n", 0, end) + 1
        line = text[start:end].strip()
        if line:
            lines.insert(0, line)
        end = start - 1
    return lines


def _closing_braces(text: str, start: int) -> dict[int, int]:
    """Position of the matching ``}`` for every ``{`` from ``start`` on that has one (one pass with a stack)."""
    opened, closing = [], {}
    for brace in BRACES.finditer(text, start):
        if brace.group() == "{":
            opened.append(brace.start())
        elif opened:
            closing[opened.pop()] = brace.start()
    return closing


def split_hedge(text: str) -> list[str]:
    """The alternatives that ``or``-like words separate (one item when there are none)."""
    return HEDGE.split(text)
