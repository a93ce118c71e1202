"""One training run of an experiment, on a bundled base model, resumable, and what it measured.

A run lives in its own folder named by task, method, variant and seed. A folder whose ``summary.json`` says it ran
at least the updates asked for is a finished run and is read back instead of retrained, so an interrupted experiment
picks up where it stopped, experiments that need the same run (the main table and the ablations both need default
d-OPSD) share it, and a run asked for more updates than it has continues from its last checkpoint (resuming is exact).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from dopsd.bundled import bundled_data_path, bundled_model_path
from dopsd.errors import DopsdError
from dopsd.evaluation import evaluate
from dopsd.experiments.parallel import fill_in_parallel
from dopsd.methods import get_method
from dopsd.models import default_device, load_diffusion_lm
from dopsd.presets import cpu_preset
from dopsd.sampling import SamplerConfig
from dopsd.tasks import get_task, load_examples
from dopsd.trainers import checkpoint as ckpt
from dopsd.trainers.metrics import read_metrics


@dataclass
class Run:
    """A finished run: its summary and every logged row."""

    folder: Path
    summary: dict
    rows: list[dict]

    @property
    def evals(self) -> list[dict]:
        """``{"update", "accuracy", "mean_score"}`` at each evaluation, in order."""
        return [{"update": r["update"], "accuracy": r["eval_accuracy"], "mean_score": r["eval_mean_score"]}
                for r in self.rows if "eval_accuracy" in r]

    @property
    def best(self) -> dict:
        """The first evaluation reaching the best accuracy (the paper reports the best of its evaluations)."""
        return max(self.evals, key=lambda e: (e["accuracy"], -e["update"]))

    @classmethod
    def read(cls, folder: Path) -> Run:
        """The finished run a folder holds: its ``summary.json`` and every row of its ``metrics.jsonl``."""
        return cls(folder, json.loads((folder / "summary.json").read_text()), read_metrics(folder / "metrics.jsonl"))

    def through(self, update: int, key: str) -> float:
        """Sum of a per-update metric over updates 1..``update`` (rollout samples, seconds)."""
        return float(sum(r.get(key, 0.0) for r in self.rows if 0 < r["update"] <= update and "loss" in r))

    def seconds(self, update: int) -> float:
        """Rollout plus update seconds of updates 1..``update`` (evaluations excluded)."""
        return self.through(update, "rollout_seconds") + self.through(update, "update_seconds")

    def series(self, key: str) -> list[tuple[int, float]]:
        return [(r["update"], r[key]) for r in self.rows if key in r]

    def upto(self, update: int) -> Run:
        """The run as it stood after ``update`` updates: what a run with that budget logged, when ``update`` is an
        evaluation point (resuming is exact). The summary keeps what does not depend on the budget."""
        kept = {key: value for key, value in self.summary.items() if key in ("trainer", "task", "output_dir")}
        return Run(self.folder, {**kept, "updates": min(self.summary["updates"], update)},
                   [r for r in self.rows if r["update"] <= update])


@dataclass(frozen=True)
class RunSpec:
    """What names a run: method, task, seed, and a variant with the config values it changes from the preset."""

    method: str
    task: str
    seed: int
    variant: str = "default"
    changes: tuple[tuple[str, object], ...] = ()

    def folder(self, root: Path) -> Path:
        return Path(root) / self.task / f"{self.method}-{self.variant}-seed{self.seed}"


def finished(folder: Path, updates: int | None = None) -> bool:
    """A run's folder holding ``summary.json`` is a finished run, if it ran at least ``updates`` updates."""
    return (Path(folder) / "summary.json").is_file() and (updates is None or summary_updates(folder) >= updates)


def stranded(folder: Path, updates: int) -> bool:
    """A finished run of fewer than ``updates`` updates without the checkpoint of its last update to continue from:
    e.g. a copy kept without checkpoints, as in docs/results."""
    if not finished(folder) or summary_updates(folder) >= updates:
        return False
    latest = ckpt.latest_checkpoint(folder)
    return latest is None or ckpt.checkpoint_update(latest) < summary_updates(folder)


def ready(folder: Path, updates: int, short_ok: bool = False) -> bool:
    """Read back without training: finished with ``updates`` updates, or, with ``short_ok``, :func:`stranded` short
    of them."""
    return finished(folder, updates) or (short_ok and stranded(folder, updates))


def run_spec(root: Path, spec: RunSpec, overrides: dict, short_ok: bool = False) -> Run:
    return run(root, spec.method, spec.task, spec.seed, spec.variant, short_ok,
               **{**dict(spec.changes), **overrides})


def train_runs(root: Path, specs: list[RunSpec], jobs: int = 1, short_ok: bool = False,
               **overrides) -> dict[RunSpec, Run]:
    """Trains the runs of ``specs`` not finished yet, ``jobs`` at a time, and reads every one back; with ``short_ok``
    a :func:`stranded` run is read back as it stands (fewer updates than asked for) instead of refused."""
    unique = list(dict.fromkeys(specs))
    results = fill_in_parallel(run_spec, [(root, spec, overrides, short_ok) for spec in unique],
                               lambda root, spec, *_: ready(spec.folder(root), requested_updates(spec, overrides),
                                                            short_ok),
                               jobs,
                               describe=lambda arguments: f"training run {arguments[1].folder(root)}",
                               desc="training runs")
    return dict(zip(unique, results))


def summary_updates(folder: Path) -> int:
    return json.loads((Path(folder) / "summary.json").read_text())["updates"]


def run_values(method: str, task: str, overrides: dict) -> dict:
    """A run's config values: the CPU preset of ``task`` and ``method`` with ``overrides`` (a spec's changes, then the
    caller's) on top."""
    return {**cpu_preset(task, method), **overrides}


def requested_updates(spec: RunSpec, overrides: dict) -> int:
    return run_values(spec.method, spec.task, {**dict(spec.changes), **overrides})["max_updates"]


def run(root: Path, method: str, task: str, seed: int, variant: str = "default", short_ok: bool = False,
        **overrides) -> Run:
    """Trains (or reads back) ``method`` on the bundled ``task`` model with the CPU preset plus ``overrides``.

    Every evaluation point keeps a checkpoint (``save_every = eval_every``), so the best one can be re-evaluated at
    another generation length. A finished run of fewer updates than asked for is continued from its last checkpoint;
    when that checkpoint is not there (:func:`stranded`) it is read back as it stands with ``short_ok``, and refused
    (:class:`DopsdError`) without.
    """
    folder = RunSpec(method, task, seed, variant).folder(root)
    values = run_values(method, task, {"seed": seed, "output_dir": str(folder), "progress": False, **overrides})
    if not short_ok and stranded(folder, values["max_updates"]):  # never retrained, even in part
        raise DopsdError(f"{folder} holds a finished run of fewer than the {values['max_updates']} updates asked "
                         "for and not the checkpoint of its last update to continue from: run on the output "
                         "folder that holds its checkpoints")
    if not ready(folder, values["max_updates"], short_ok):
        trainer_class = get_method(method).trainer_class()
        values["save_every"] = values["eval_every"]
        latest = ckpt.latest_checkpoint(folder)
        if latest is not None:
            values["resume_from"] = "latest"
        else:  # the runner's own folder, interrupted before its first checkpoint
            values["overwrite_output_dir"] = True
        trainer_class(config=trainer_class.config_class(**values)).train()
    return Run.read(folder)


def evaluate_model(model_path: str, task: str, gen_length: int, block_length: int, cache: Path) -> dict:
    """Greedy held-out accuracy of a saved model at one generation length, with each item's correctness, cached in a
    JSON file."""
    cache = Path(cache)
    if cache.is_file():
        return json.loads(cache.read_text())
    lm = load_diffusion_lm(model_path, device=default_device())
    task_object = get_task(task)
    examples = load_examples(task_object, bundled_data_path(task, "heldout"), "test")
    config = SamplerConfig(gen_length=gen_length, block_length=min(block_length, gen_length))
    rows, summary = evaluate(lm, task_object, examples, config, batch_size=100, progress=False)
    result = {"accuracy": summary.accuracy, "mean_score": summary.mean_score, "n": summary.n,
              "gen_length": gen_length, "model": model_path,
              "correct": [int(bool(row["correct"])) for row in rows]}  # each item's, for paired comparisons
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(result) + "\n")
    return result


def best_model_path(result: Run) -> str:
    """The model folder of the run's best evaluation (the base model when that is the evaluation before update 1)."""
    update = result.best["update"]
    if update == 0:
        return bundled_model_path(result.summary["task"])
    return str(ckpt.checkpoint_folder(result.folder, update) / "model")
