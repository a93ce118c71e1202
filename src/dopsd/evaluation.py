"""Held-out evaluation: batched greedy generation, the task's verifier, one summary per generation length; and a
causal LM's own accuracy (OPDLM's ceiling: the teacher it distils from)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from dopsd.errors import DopsdError
from dopsd.models import DiffusionLM
from dopsd.models.causal import greedy_decode
from dopsd.sampling import BlockDiffusionSampler, SamplerConfig
from dopsd.tasks import PROMPT_STYLES, Example, Task, default_prompt_style, encode_prompts
from dopsd.tasks.extraction import HEDGED, NO_ANSWER, UNPARSABLE
from dopsd.tasks.loading import jsonl_rows
from dopsd.tasks.published import SCORING_MODES, published_accuracy
from dopsd.tasks.published import score as score_by


@dataclass
class EvalSummary:
    """What one evaluation at one generation length measured."""

    task: str
    n: int
    accuracy: float
    mean_score: float
    tokens_per_second: float | None
    gen_length: int | None
    seconds: float | None
    no_answer: int = 0  # completions with no final answer (extraction.py)
    hedged: int = 0  # completions that give two or more different answers
    unparsable: int = 0  # final answers that are not of the task's form
    scoring: str = "dopsd"  # or "d1": accuracy as the d1 / d-OPSD scripts compute it

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def summarize(task: Task, rows: Sequence[dict], gen_length=None, seconds=None, tokens=None,
              scoring: str = "dopsd") -> EvalSummary:
    n = len(rows)
    statuses = [row.get("status") for row in rows]
    return EvalSummary(
        task=task.name,
        n=n,
        accuracy=published_accuracy(task.name, rows) if scoring == "d1" else
        sum(row["correct"] for row in rows) / n if n else 0.0,
        mean_score=sum(row["score"] for row in rows) / n if n else 0.0,
        tokens_per_second=tokens / seconds if tokens and seconds else None,
        gen_length=gen_length,
        seconds=seconds,
        no_answer=statuses.count(NO_ANSWER),
        hedged=statuses.count(HEDGED),
        unparsable=statuses.count(UNPARSABLE),
        scoring=scoring,
    )


def score_row(task: Task, example: Example, completion: str, scoring: str = "dopsd") -> dict:
    """One scored completion with its extraction: the answer found, its status and where it was found."""
    score = score_by(task, example, completion, scoring)
    row = {
        "index": example.index,
        "completion": completion,
        "extracted": score.extracted,
        "status": score.status,
        "source": score.source,
        "score": score.value,
        "correct": score.correct,
    }
    if score.weight != 1.0:
        row["weight"] = score.weight
    return row


def evaluate(
    lm: DiffusionLM,
    task: Task,
    examples: Sequence[Example],
    sampler_config: SamplerConfig,
    *,
    batch_size: int = 16,
    style: str | None = None,
    progress: bool = True,
    scoring: str = "dopsd",
) -> tuple[list[dict], EvalSummary]:
    """Generates a completion for every example and scores it (``scoring``: ``dopsd`` or ``d1``, see
    ``tasks/published.py``); rows come back in the examples' order.

    Prompts are batched in order of length (less padding); ``tokens_per_second`` counts every response position
    decoded (``len(examples) * gen_length``) over the generation time.
    """
    style = style or default_prompt_style(lm)
    if style not in PROMPT_STYLES:
        raise DopsdError(f"unknown prompt style {style!r}: use one of {', '.join(PROMPT_STYLES)}")
    if batch_size < 1:
        raise DopsdError(f"batch size must be at least 1, got {batch_size}")
    if scoring not in SCORING_MODES:
        raise DopsdError(f"unknown scoring mode {scoring!r}: use one of {', '.join(SCORING_MODES)}")
    prompts = encode_prompts(lm, task, examples, style)
    lm.check_fits(max(map(len, prompts), default=0), sampler_config.gen_length)  # before any generation
    order = sorted(range(len(examples)), key=lambda i: len(prompts[i]))
    sampler = BlockDiffusionSampler(lm, sampler_config)
    rows: list[dict | None] = [None] * len(examples)
    correct = done = 0
    seconds = 0.0
    bar = tqdm(total=len(examples), desc=f"{task.name} L={sampler_config.gen_length}", disable=not progress, unit="ex")
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        began = time.perf_counter()
        trajectories = sampler.sample([prompts[i] for i in chunk])
        seconds += time.perf_counter() - began
        for i, trajectory in zip(chunk, trajectories):
            row = score_row(task, examples[i], lm.decode(trajectory.tokens), scoring)
            row["prompt"] = lm.tokenizer.decode(prompts[i])
            rows[i] = row
            correct += row["correct"]
        done += len(chunk)
        bar.update(len(chunk))
        bar.set_postfix(accuracy=f"{correct / done:.3f}")
    bar.close()
    summary = summarize(task, rows, sampler_config.gen_length, seconds, len(examples) * sampler_config.gen_length,
                        scoring)
    return rows, summary


def causal_accuracy(causal: DiffusionLM, task: Task, examples: list[Example], style: str, gen_length: int,
                    batch_size: int = 64) -> dict:
    """``{"accuracy", "mean_score", "n"}`` of a causal LM (a :func:`~dopsd.models.causal.causal_view`) completing
    each example greedily, left to right, for ``gen_length`` tokens."""
    prompts = encode_prompts(causal, task, examples, style)
    outputs = greedy_decode(causal, prompts, gen_length, batch_size)
    scores = [task.score(example, causal.decode(output)) for example, output in zip(examples, outputs)]
    n = len(scores)
    return {"accuracy": sum(s.correct for s in scores) / n, "mean_score": sum(s.value for s in scores) / n, "n": n}


def write_jsonl(path: str | Path, rows: Iterable[dict]) -> None:
    """Writes rows to ``path`` through a temporary file, so a failure never leaves half a file behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with partial.open("w") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")
    partial.replace(path)


def read_completions(path: str | Path) -> list[dict]:
    """Rows of ``{"index": i, "completion": "..."}``; a malformed line is an error naming the file and line."""
    path = Path(path)
    if not path.is_file():
        raise DopsdError(f"completions file not found: {path}")
    rows = []
    for where, row in jsonl_rows(path):  # JSONL whatever the file's extension
        if not isinstance(row.get("index"), int) or not isinstance(row.get("completion"), str):
            raise DopsdError(f'{where}: expected {{"index": <int>, "completion": <string>}}')
        rows.append(row)
    return rows
