"""A task whose verifier is decided by the data row, so tests control which trajectories count as correct."""

from __future__ import annotations

import json
from pathlib import Path

from dopsd.models import create_builtin_model
from dopsd.tasks import Example, Task
from dopsd.trainers import DOPSDConfig


class ToyTask(Task):
    name = "toy"

    def compact_prompt(self, example: Example) -> str:
        return example.prompt

    question_text = compact_prompt

    def worked_solution(self, example: Example) -> str:
        return f"ref{example.index}"

    def extract_answer(self, completion: str) -> str | None:
        return completion

    def score_answer(self, example: Example, answer: str) -> float:
        return 1.0 if example.meta["accept"] else 0.0

    def parse_row(self, row: dict, index: int) -> Example:
        return Example(index=index, prompt=row["prompt"], answer="", meta={"accept": bool(row["accept"])})


def toy_data(folder: Path, accept=(True, False, True, True, False, True)) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "toy.jsonl"
    prompts = ["12+3=", "7=", "45=", "6*7=", "100=", "9-1="]
    path.write_text("".join(json.dumps({"prompt": p, "accept": a}) + "\n" for p, a in zip(prompts, accept)))
    return path


def tiny_lm(seed: int = 0):
    """Larger-than-default init: sharper distributions, so teacher and student differ visibly."""
    return create_builtin_model(seed=seed, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                initializer_range=0.2)


def toy_config(folder: Path, **overrides) -> DOPSDConfig:
    data = str(toy_data(folder))
    values = dict(
        model="unused", task="toy", train_data=data, eval_data=data, output_dir=str(folder / "run"),
        max_updates=2, gen_length=12, block_length=4, steps=6, passk=2, prompts_per_rollout=3,
        updates_per_rollout=2, micro_batch_size=5, lora_r=4, lora_alpha=8, learning_rate=1e-2,
        eval_every=2, save_every=2, progress=False, mixed_precision="no", seed=3,
    )
    values.update(overrides)
    return DOPSDConfig(**values)
