"""OPDLM's ceiling: the frozen causal teacher's own held-out accuracy, decoding greedily left to right."""

from __future__ import annotations

from dopsd.models import DiffusionLM
from dopsd.models.causal import greedy_decode
from dopsd.tasks import Example, Task, encode_prompts


def causal_accuracy(teacher: DiffusionLM, task: Task, examples: list[Example], style: str, gen_length: int,
                    batch_size: int = 64) -> dict:
    """``{"accuracy", "mean_score", "n"}`` of greedy left-to-right completions of ``gen_length`` tokens."""
    prompts = encode_prompts(teacher, task, examples, style)
    outputs = greedy_decode(teacher, prompts, gen_length, batch_size)
    scores = [task.score(example, teacher.decode(output)) for example, output in zip(examples, outputs)]
    n = len(scores)
    return {"accuracy": sum(s.correct for s in scores) / n, "mean_score": sum(s.value for s in scores) / n, "n": n}
