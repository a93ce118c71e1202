"""What a task is: prompts in two styles, answer extraction, a verifier, and loading data files."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from dopsd.tasks.answers import PHRASE
from dopsd.tasks.extraction import ANSWERED, HEDGED, NO_ANSWER, UNPARSABLE, Extraction, extract
from dopsd.tasks.loading import DataError, load_hub_rows, read_rows

# d1's system prompt: reasoning and answer in tags.
SYSTEM_PROMPT = (
    "Respond in the following format:\n<reasoning>\n...\n</reasoning>\n<answer>\n...\n</answer>"
)
# The AR-style OPSD teacher's prompt (paper section 4.3) wraps a reference solution in these words.
REFERENCE_INTRO = "Here is a reference solution:"
REFERENCE_OUTRO = (
    "After understanding the reference solution, please try to solve this problem using your own approach below:"
)


@dataclass
class Example:
    """One problem: the raw question (not rendered), the reference final answer, task-specific fields."""

    index: int
    prompt: str
    answer: str
    meta: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Score:
    """``value`` in [0, 1]; ``correct`` when it reaches the task's accuracy threshold; ``status``: ``answered``,
    ``no_answer``, ``hedged`` or ``unparsable``; ``source``: where the answer was found (``extraction.py``);
    ``weight``: how many units ``value`` averages over, for metrics pooled over units (d1's Sudoku cells)."""

    value: float
    correct: bool
    extracted: str | None
    status: str = ANSWERED
    source: str = ""
    weight: float = 1.0


class Task:
    """A benchmark. Subclasses set ``name`` and implement the methods below that raise NotImplementedError."""

    name: str = ""
    correct_threshold: float = 1.0  # score that counts as correct for accuracy
    hub_dataset: tuple[str, ...] = ()  # arguments of datasets.load_dataset when no local file is given
    hub_splits: tuple[str, ...] = ("train", "test")  # the splits that hub dataset has
    multiline_answer: bool = False  # whether a stated answer runs to the end of its paragraph (a grid in rows)
    phrase = PHRASE  # the final-answer phrases ("The answer is", "Final answer:", "####")
    # How a question is typed by hand (``dopsd sample --task``): the question alone, as a data row gives it.
    prompt_format: str = "the question as text"

    def question_text(self, example: Example) -> str:
        """The instruction-style user message."""
        raise NotImplementedError

    def compact_prompt(self, example: Example) -> str:
        """The prompt for the small built-in character-level models."""
        raise NotImplementedError

    def parse_answer(self, text: str) -> list[str]:
        """The answers that ``text`` (a box, a tag, a stated answer) gives, in canonical form; [] for none."""
        raise NotImplementedError

    def bare_answer(self, completion: str) -> str | None:
        """The end of ``completion`` when it is nothing but an answer of this task's form (a compact prompt's
        completion), else None."""
        raise NotImplementedError

    def score_answer(self, example: Example, answer: str) -> float:
        raise NotImplementedError

    def extract(self, completion: str) -> Extraction:
        """The final answer by the policy in ``extraction.py``; a task that overrides only ``extract_answer``
        (its own reading, as a test's toy task does) keeps it."""
        if type(self).extract_answer is not Task.extract_answer:
            answer = self.extract_answer(completion)
            return Extraction(answer, ANSWERED if answer is not None else NO_ANSWER, "custom")
        return extract(completion, self.parse_answer, self.bare_answer, self.multiline_answer, self.phrase)

    def extract_answer(self, completion: str) -> str | None:
        return self.extract(completion).answer

    def score_alternatives(self, example: Example, answers: tuple[str, ...]) -> float:
        """What a hedge earns: 1 when every alternative is right (the same answer written twice), else 0."""
        return float(all(self.score_answer(example, answer) >= self.correct_threshold for answer in answers))

    def reference_completion(self, example: Example, style: str = "instruct") -> str:
        """The reference answer written as a completion of the ``style`` prompt (scores 1.0)."""
        raise NotImplementedError

    def worked_solution(self, example: Example) -> str:
        """A reference solution with its working, shown to the AR-style OPSD teacher; the bare answer by default."""
        return self.reference_completion(example, "compact")

    def parse_row(self, row: dict, index: int) -> Example:
        """An Example from one data row; raises KeyError/ValueError on a malformed row."""
        raise NotImplementedError

    def example_from_text(self, text: str) -> Example:
        """The question of a prompt typed by hand (``dopsd sample --task``), written as :attr:`prompt_format` says,
        as an Example without a reference answer; a ValueError naming that format when ``text`` is not one."""
        question = text.strip()
        if not question:
            raise ValueError(f"the prompt is empty: give {self.prompt_format}")
        return Example(index=0, prompt=question, answer="")

    # ----- shared behaviour ------------------------------------------------------------------------------------
    def render_prompt(self, example: Example, style: str = "instruct", tokenizer=None, reference: bool = False) -> str:
        """``instruct``: d1-style prompt, through the tokenizer's chat template when it has one; ``compact``: bare.

        ``reference``: the AR-style OPSD teacher's prompt, which also carries :meth:`worked_solution` (for compact
        prompts it goes first, ``solution|prompt``, so that the response still continues the student's prompt).
        """
        if style == "compact":
            prompt = self.compact_prompt(example)
            return f"{self.worked_solution(example)}|{prompt}" if reference else prompt
        if style != "instruct":
            raise ValueError(f"unknown prompt style {style!r}: use instruct or compact")
        user = f"{SYSTEM_PROMPT}\n\n{self.question_text(example)}"
        if reference:
            user += f"\n\n{REFERENCE_INTRO}\n{self.worked_solution(example)}\n\n{REFERENCE_OUTRO}"
        if tokenizer is not None and getattr(tokenizer, "chat_template", None):
            return tokenizer.apply_chat_template([{"role": "user", "content": user}], tokenize=False,
                                                 add_generation_prompt=True)
        return user

    def score(self, example: Example, completion: str) -> Score:
        """Never raises: anything unreadable scores 0. Every score, reward and filter goes through here."""
        try:
            extraction = self.extract(completion)
            if extraction.status == ANSWERED:
                value = float(self.score_answer(example, extraction.answer))
            elif extraction.status == HEDGED:
                value = float(self.score_alternatives(example, extraction.candidates))
                if value > 0:  # alternatives that are all right are one answer written several ways
                    extraction = replace(extraction, status=ANSWERED, answer=extraction.shown)
            else:
                value = 0.0
        except (ValueError, ArithmeticError, RecursionError, TypeError, OverflowError):
            extraction, value = Extraction(None, UNPARSABLE, ""), 0.0
        value = min(max(value, 0.0), 1.0)
        return Score(value=value, correct=value >= self.correct_threshold, extracted=extraction.shown,
                     status=extraction.status, source=extraction.source)

    def reward(self, example: Example, completion: str) -> float:
        """The RLVR training reward; the score, unless a task adds credit for a well-formed answer (Countdown)."""
        return self.score(example, completion).value

    def load(self, path: str | Path | None = None, *, split: str | None = None,
             limit: int | None = None) -> list[Example]:
        """Examples from a local CSV/JSONL/Parquet file, or, with no path, from the hub dataset's ``split``
        (``train`` or ``test``; it must be named: nothing picks a split for the caller)."""
        if path is None and split is None:
            raise DataError(f"no {self.name} data: pass a local data file, or name a hub split ('train' or 'test')")
        rows = read_rows(path) if path is not None else load_hub_rows(self.hub_dataset, split, self.name,
                                                                       self.hub_splits)
        examples = []
        for index, (where, row) in enumerate(rows):
            if limit is not None and index >= limit:
                break
            try:
                examples.append(self.parse_row(row, index))
            except (KeyError, ValueError, TypeError, AttributeError) as error:
                detail = f"missing field {error}" if isinstance(error, KeyError) else str(error)
                raise DataError(f"{where}: malformed {self.name} row: {detail}") from error
        return examples
