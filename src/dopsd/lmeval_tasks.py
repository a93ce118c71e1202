"""dopsd's own tasks as lm-evaluation-harness tasks: the same prompts and the same extraction and scoring as
``dopsd eval``, so that a number from ``lm_eval --model dopsd`` can be set beside dopsd's.

``write_task("sudoku", "bundled:sudoku", folder)`` writes ``folder/dopsd_sudoku.yaml`` (task ``dopsd_sudoku``), its
data (each held-out example with its rendered prompt) and the ``utils.py`` whose ``process_results`` scores a
completion with :meth:`dopsd.tasks.base.Task.score`; run it with ``--include_path folder --tasks dopsd_sudoku``.
"""

from __future__ import annotations

import json
from pathlib import Path

from dopsd.tasks import get_task, load_examples
from dopsd.tasks.base import Example


def write_task(task_name: str, data: str, folder: str | Path, *, style: str = "compact", split: str = "test",
               limit: int | None = None, gen_length: int = 256) -> str:
    """Writes the lm-eval task ``dopsd_<task>`` into ``folder`` and returns its name. ``style``: the prompt style
    (``compact`` for the bundled models; ``instruct`` without a chat template); ``gen_length``: lm-eval's
    ``max_gen_toks`` (the model's ``gen_length`` model_arg, when set, wins)."""
    task = get_task(task_name)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    examples = load_examples(task, data, split, limit)
    name = f"dopsd_{task.name.replace('-', '_')}"
    rows = [{"task": task.name, "index": e.index, "prompt": e.prompt, "answer": e.answer, "meta": e.meta,
             "text": task.render_prompt(e, style=style)} for e in examples]
    (folder / f"{name}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    (folder / "utils.py").write_text("from dopsd.lmeval_tasks import process_results  # noqa: F401\n", encoding="utf-8")
    (folder / f"{name}.yaml").write_text(
        f"task: {name}\n"
        "dataset_path: json\n"
        f"dataset_kwargs:\n  data_files:\n    test: {folder.resolve() / (name + '.jsonl')}\n"
        "test_split: test\n"
        "output_type: generate_until\n"
        'doc_to_text: "{{text}}"\n'
        'doc_to_target: "{{answer}}"\n'
        f"generation_kwargs:\n  until: []\n  max_gen_toks: {gen_length}\n"
        "process_results: !function utils.process_results\n"
        "metric_list:\n  - metric: acc\n    aggregation: mean\n    higher_is_better: true\n"
        "  - metric: mean_score\n    aggregation: mean\n    higher_is_better: true\n",
        encoding="utf-8")
    return name


def process_results(doc: dict, results: list[str]) -> dict:
    """dopsd's score of the completion: ``acc`` (correct) and ``mean_score`` (a Sudoku's share of cells)."""
    task = get_task(doc["task"])
    score = task.score(Example(doc["index"], doc["prompt"], doc["answer"], doc["meta"]), results[0])
    return {"acc": float(score.correct), "mean_score": float(score.value)}
