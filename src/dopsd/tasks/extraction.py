"""The extraction policy that every score, reward and filter goes through (the table is in docs/tasks.md; in full,
with every case, in docs/scoring.md).

Where the final answer is taken from, first that applies:

1. the last ``<answer>`` tag (to the end of the text when it is never closed), with the tags just before it that only
   joining words separate from it: every ``\\boxed{}`` in them, else the answer after a final-answer phrase in them,
   else all of them;
2. the answer after a final-answer phrase ("The answer is 18.") that comes after every ``\\boxed{}``, when it is
   an answer of the task's form and not prose (it corrects the boxes);
3. the last ``\\boxed{}`` (none when it never closes: cut off), with the boxes just before it that only joining
   words separate from it (``\\boxed{19} or \\boxed{18}``); a box followed by more reasoning is a self-correction
   and does not count;
   without a box, the answer after the last final-answer phrase ("The answer is 18.", "Final answer: 18", "#### 18");
4. the last line, only when it is nothing but an answer of the task's form (a compact model's bare answer).

Nothing found: ``no_answer`` (the rest of the text is never searched for a stray number). Each text found is split
at ``or``-like words and parsed by the task; two or more different answers are ``hedged`` and score 0 (unless
every one of them is right); text that does not parse as an answer of the task's form is ``unparsable``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from dopsd.tasks.answers import (
    BOXED,
    MAX_ANSWER_CHARS,
    NEGATED,
    PHRASE,
    PROSE,
    boxed_spans,
    cut_off_before,
    final_answer_tags,
    final_boxes,
    prose_before_answer,
    split_hedge,
    stated_answer,
)

ANSWERED, NO_ANSWER, HEDGED, UNPARSABLE = "answered", "no_answer", "hedged", "unparsable"
STATUSES = (ANSWERED, NO_ANSWER, HEDGED, UNPARSABLE)
MAX_CANDIDATES = 8  # more alternatives than this are a hedge whatever they say
MATHS = re.compile(r"[\d\\$]")  # a number or LaTeX, not "the answer is correct"
END_TOKENS = re.compile(r"<\|(?:eot_id|endoftext|im_end|end_of_text|eos)\|>")  # end-of-text markers left in decoding


@dataclass(frozen=True)
class Extraction:
    """``answer``: the one final answer in the task's canonical form (None unless ``status`` is ``answered``);
    ``source``: ``tag``, ``boxed``, ``phrase``, ``last_line`` or ``none``; ``candidates``: the different answers
    of a hedge."""

    answer: str | None
    status: str
    source: str
    candidates: tuple[str, ...] = ()

    @property
    def shown(self) -> str | None:
        """The answer as a row of ``--output`` shows it: a hedge's answers joined by `` | ``."""
        return " | ".join(self.candidates) if self.status == HEDGED else self.answer


def locate(completion: str, bare_answer: Callable[[str], str | None], multiline: bool = False,
           parse: Callable[[str], list[str]] = lambda text: [text], phrase: re.Pattern = PHRASE
           ) -> tuple[list[str], str]:
    """The texts that state the final answer (several boxes can) and where they were found (rules 1-4 above)."""
    tags = final_answer_tags(completion, MAX_CANDIDATES)
    if tags:
        texts = []
        for tag in tags:
            spans = boxed_spans(tag)
            if BOXED in tag and tag.rfind(BOXED) > (spans[-1][1] if spans else -1):
                continue  # its last box never closes: the answer was cut off
            if spans:
                texts += [tag[start:end] for start, end in spans]
            else:
                stated = stated_answer(tag, multiline, phrase=phrase)
                text = (stated if stated is not None else tag).strip()
                texts += [text] if text else []
        return texts, "tag"
    spans = boxed_spans(completion) if BOXED in completion else []
    if BOXED in completion and completion.rfind(BOXED) > (spans[-1][1] if spans else -1):
        return [], "boxed"  # the last box never closes: the answer was cut off
    stated = stated_answer(completion, multiline, after=spans[-1][1] if spans else 0, phrase=phrase)
    if spans and stated and MATHS.search(stated) and not PROSE.search(stated) and parse(stated):
        return [stated], "phrase"  # "\boxed{19}. Wait: the answer is 18." corrects the box
    if spans:
        return final_boxes(completion), "boxed"
    if stated is not None:
        return ([stated] if stated and not prose_before_answer(stated) else []), "phrase"
    bare = bare_answer(completion)
    if bare and cut_off_before(completion, bare):
        bare = None  # "Let m be the number of mugs\n8": cut off, the 8 opens the next sentence
    return ([bare], "last_line") if bare else ([], "none")


def extract(completion: str, parse: Callable[[str], list[str]], bare_answer: Callable[[str], str | None],
            multiline: bool = False, phrase: re.Pattern = PHRASE) -> Extraction:
    """Applies the policy with a task's ``parse`` (text -> the answers it states, in canonical form, [] when it
    states none) and ``bare_answer`` (completion -> its last line(s) when they are only an answer, else None).
    A negated alternative ("18, not 19") is dropped before parsing: the answer is what is left."""
    texts, source = locate(END_TOKENS.sub("", completion), bare_answer, multiline, parse, phrase)
    texts = [NEGATED.sub("", text) for text in texts]
    if not texts:
        return Extraction(None, NO_ANSWER, source)
    answers: list[str] = []
    for text in texts[-MAX_CANDIDATES:]:
        for part in split_hedge(text[-MAX_ANSWER_CHARS:])[: MAX_CANDIDATES + 1]:
            for answer in parse(part):
                if answer not in answers:
                    answers.append(answer)
    if not answers:
        return Extraction(None, UNPARSABLE, source)
    if len(answers) > 1:
        return Extraction(None, HEDGED, source, tuple(answers[: MAX_CANDIDATES + 1]))
    return Extraction(answers[0], ANSWERED, source)
