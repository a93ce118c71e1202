"""The paper's experiments at small scale, on the bundled base models (``dopsd experiment NAME``).

Each experiment trains the runs it needs (or reads back finished ones from the output folder), then writes its
tables as Markdown, ``<output>/<name>.md``, and returns that text:

- ``main``: Table 1 (held-out accuracy of base, SFT, diffu-GRPO and d-OPSD at two generation lengths) and Table 2
  (updates, rollout samples and wall time to each method's best accuracy, d-OPSD vs diffu-GRPO);
- ``toy``: Table 3 (the self-teacher re-generating from its revealed future vs pass@1 and pass@8);
- ``overlap``: Figure 3 (Overlap Top-20 over training for d-OPSD and AR-style OPSD);
- ``ablations``: d-OPSD's design choices, one changed at a time;
- ``opdlm``: OPDLM against masked-diffusion SFT from the same converted causal model, accuracy by training tokens
  (:mod:`dopsd.experiments.opdlm`);
- ``protocol``: every method under one fixed protocol, a learning-rate sweep on a validation split then three seeds
  on the test set (:mod:`dopsd.experiments.protocol`);
- ``image``: D-OPSD against flow-matching fine-tuning for the few-step image generator (:mod:`dopsd.experiments.image`).
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path

from dopsd.bundled import bundled_model_path, cpu_preset
from dopsd.experiments.image import image_table
from dopsd.experiments.opdlm import opdlm_table
from dopsd.experiments.parallel import fill_in_parallel
from dopsd.experiments.protocol import protocol_tables, sweep_runs
from dopsd.experiments.runs import Run, RunSpec, best_model_path, evaluate_model, run, train_runs
from dopsd.experiments.tables import markdown_table, mean_spread, updates_to_reach

# Table 1's rows: (method, variant, the config values the variant changes from the method's CPU preset).
METHODS = {
    "SFT": ("sft", "default", ()),
    "diffu-GRPO": ("grpo", "default", ()),
    # d1's schedule reuses each rollout for 8 updates; this one samples as many prompts per update as d-OPSD (16, six
    # completions each) and updates once, so the two methods are also compared at equal rollouts per update.
    "diffu-GRPO, 1 update/rollout": ("grpo", "one-update", (("inner_updates", 1), ("prompts_per_rollout", 16))),
    "d-OPSD": ("dopsd", "default", ()),
}
# The second evaluation length, longer than the one trained at (the paper: 128 and 256 for planning tasks).
LONGER = {"sudoku": 32, "countdown": 32, "countdown-steps": 48}

# One design choice changed at a time from the CPU preset of d-OPSD (paper section 4.4).
ABLATIONS = {
    "default": {},
    "rho 0.25": dict(teacher_retain_ratio=0.25),
    "all trajectories": dict(correct_only=False),
    "pass@1": dict(passk=1),
    "live teacher": dict(teacher="live"),
    "forward KL": dict(divergence="forward_kl"),
    "no clip": dict(clip=None),
    "K_t from student": dict(kt_selection="student"),
    "rho 0.10": dict(teacher_retain_ratio=0.10),
}


def slug(name: str) -> str:
    return name.lower().replace(" ", "-").replace("@", "").replace(".", "")


def evaluate_models(calls: list[tuple], jobs: int) -> list[dict]:
    """:func:`evaluate_model` for each argument tuple, the ones not cached yet ``jobs`` at a time."""
    return fill_in_parallel(evaluate_model, calls, lambda *call: Path(call[-1]).is_file(), jobs,
                            describe=lambda call: f"evaluation {call[-1]}", desc="evaluations")


# ----- Tables 1 and 2 ------------------------------------------------------------------------------------------
def main_spec(name: str, task: str, seed: int) -> RunSpec:
    method, variant, changes = METHODS[name]
    return RunSpec(method, task, seed, variant, changes)


def main_runs(tasks: list[str], seeds: list[int]) -> list[RunSpec]:
    # d-OPSD first: its runs are also the default run's seeds, the number most worth having early.
    return [main_spec(name, task, seed) for task in tasks for name in reversed(METHODS) for seed in seeds]


def main_tables(root: Path, tasks: list[str], seeds: list[int], runs: dict[RunSpec, Run], jobs: int = 1) -> str:
    lengths = {task: (cpu_preset(task)["gen_length"], LONGER[task]) for task in tasks}
    block = {task: cpu_preset(task)["block_length"] for task in tasks}
    group = {(task, name): [runs[main_spec(name, task, seed)] for seed in seeds] for task in tasks for name in METHODS}
    base_calls = [(bundled_model_path(task), task, length, block[task], root / task / f"base-L{length}.json")
                  for task in tasks for length in lengths[task]]
    longer_calls = [(best_model_path(r), task, lengths[task][1], block[task], r.folder / f"best-L{lengths[task][1]}.json")
                    for name in METHODS for task in tasks for r in group[task, name]]  # the rows' order
    results = evaluate_models(base_calls + longer_calls, jobs)
    base_at_trained = {call[1]: result["accuracy"] for call, result in zip(base_calls, results)
                       if call[2] == lengths[call[1]][0]}
    base, longer = iter(results[: len(base_calls)]), iter(results[len(base_calls):])
    header = ["method"] + [f"{task} L={length}" for task in tasks for length in lengths[task]]
    rows = [["base"] + [f"{next(base)['accuracy']:.3f}" for task in tasks for _ in lengths[task]]]
    for name in METHODS:
        row = [name]
        for task in tasks:
            row.append(mean_spread([r.best["accuracy"] for r in group[task, name]]))
            row.append(mean_spread([next(longer)["accuracy"] for _ in group[task, name]]))
        rows.append(row)
    table1 = markdown_table(header, rows)
    rows = []
    for task in tasks:
        # 90% of the way from the base model to the best method's mean best accuracy on this task
        best_mean = max(sum(r.best["accuracy"] for r in group[task, name]) / len(seeds) for name in METHODS)
        target = base_at_trained[task] + 0.9 * (best_mean - base_at_trained[task])
        for name in METHODS:
            if name == "SFT":  # no rollouts
                continue
            members = group[task, name]
            updates = [r.best["update"] for r in members]
            samples = [r.through(r.best["update"], "rollout_samples") for r in members]
            seconds = [r.through(r.best["update"], "update_seconds") + r.through(r.best["update"], "rollout_seconds")
                       for r in members]
            per_update = [r.through(r.summary["updates"], "rollout_samples") / r.summary["updates"] for r in members]
            rows.append([task, name, mean_spread([r.best["accuracy"] for r in members]),
                         mean_spread(updates, 0), mean_spread(samples, 0), mean_spread(seconds, 0),
                         mean_spread(per_update, 0), updates_to_reach(members, target)])
    table2 = markdown_table(["task", "method", "best accuracy", "updates to best", "rollout samples to best",
                             "seconds to best", "rollout samples per update", "updates to 90% of the best gain"],
                            rows)
    return (f"### Table 1: held-out accuracy (best evaluation; seeds {seeds}; mean ± std)\n\n{table1}\n"
            f"### Table 2: cost to reach the best accuracy (seeds {seeds})\n\n{table2}")


# ----- Table 3 -------------------------------------------------------------------------------------------------
def toy_cache(root: Path, task: str, prompts: int, seed: int) -> Path:
    return root / task / f"toy-{prompts}-seed{seed}.json"


def toy_result(root: Path, task: str, prompts: int, seed: int) -> dict:
    cache = toy_cache(root, task, prompts, seed)
    if cache.is_file():
        return json.loads(cache.read_text())
    from dopsd.experiments.toy import toy_verification

    result = toy_verification(task, prompts=prompts, seed=seed)
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(result) + "\n")
    return result


def toy_table(root: Path, tasks: list[str], seeds: list[int], runs: dict, jobs: int = 1, prompts: int = 500) -> str:
    """Samples only: no training run is involved."""
    calls = [(root, task, prompts, seeds[0]) for task in tasks]
    rows = []
    for result in fill_in_parallel(toy_result, calls, lambda *call: toy_cache(*call).is_file(), jobs,
                                   desc="toy verification"):
        teacher = result["teacher"]
        rows.append([result["task"], result["prompts"], f"{result['pass@1']:.3f}", f"{result['pass@8']:.3f}"]
                    + [f"{teacher[k]:.3f}" for k in sorted(teacher)])
    header = ["task", "prompts", "student pass@1", "pass@8"] + [f"teacher rho={k}" for k in ("0.10", "0.25", "0.50")]
    return f"### Table 3: toy verification (training prompts, seed {seeds[0]})\n\n" + markdown_table(header, rows)


# ----- Figure 3 ------------------------------------------------------------------------------------------------
OVERLAP_VARIANTS = {"d-OPSD": ("default", ()), "AR-style OPSD": ("ar-opsd", (("teacher_input", "reference"),))}


def overlap_runs(tasks: list[str], seeds: list[int]) -> list[RunSpec]:
    return [RunSpec("dopsd", tasks[0], seeds[0], variant, changes) for variant, changes in OVERLAP_VARIANTS.values()]


def overlap_figure(root: Path, tasks: list[str], seeds: list[int], runs: dict[RunSpec, Run], jobs: int = 1) -> str:
    from dopsd.experiments.plots import plot_series

    task = tasks[0]
    variants = {name: runs[spec] for name, spec in zip(OVERLAP_VARIANTS, overlap_runs(tasks, seeds))}
    key = "overlap_top20"
    path = plot_series({name: r.series(key) for name, r in variants.items()}, root / f"overlap-{task}.png",
                       ylabel="Overlap Top-20 (student vs teacher)", title=f"Figure 3: Overlap Top-20, {task}")
    rows = []
    for name, r in variants.items():
        values = [v for _, v in r.series(key)]
        head, tail = values[:10], values[-10:]
        rows.append([name, f"{sum(head) / len(head):.3f}", f"{sum(tail) / len(tail):.3f}",
                     f"{r.evals[0]['accuracy']:.3f}", f"{r.best['accuracy']:.3f}", r.best["update"]])
    table = markdown_table(["teacher", "overlap, first 10 updates", "overlap, last 10 updates", "accuracy before",
                            "best accuracy", "best at update"], rows)
    return f"### Figure 3: Overlap Top-20 ({task}, seed {seeds[0]})\n\n![overlap]({path.name})\n\n{table}"


# ----- Ablations -----------------------------------------------------------------------------------------------
def ablation_spec(task: str, seed: int, name: str) -> RunSpec:
    changes = ABLATIONS[name]
    return RunSpec("dopsd", task, seed, slug(name) if changes else "default", tuple(sorted(changes.items())))


def ablation_runs(tasks: list[str], seeds: list[int]) -> list[RunSpec]:
    return [ablation_spec(tasks[0], seed, name) for name in ABLATIONS for seed in seeds]


def ablation_table(root: Path, tasks: list[str], seeds: list[int], runs: dict[RunSpec, Run], jobs: int = 1) -> str:
    rows = []
    for name in ABLATIONS:
        group = [runs[ablation_spec(tasks[0], seed, name)] for seed in seeds]
        rows.append([name, mean_spread([r.best["accuracy"] for r in group]),
                     mean_spread([r.evals[-1]["accuracy"] for r in group]), mean_spread([r.best["update"] for r in group], 0)])
    header = ["variant", "best accuracy", "final accuracy", "best at update"]
    return f"### Ablations ({tasks[0]}, seeds {seeds})\n\n" + markdown_table(header, rows)


# name -> (the runs it needs, what writes its Markdown from them)
EXPERIMENTS = {
    "main": (main_runs, main_tables),
    "toy": (lambda tasks, seeds: [], toy_table),
    "overlap": (overlap_runs, overlap_figure),
    "ablations": (ablation_runs, ablation_table),
    "opdlm": (lambda tasks, seeds: [], opdlm_table),  # trains its own runs: SFT's start is converted under <output>
    "protocol": (sweep_runs, protocol_tables),  # trains the chosen rates' seeds after its sweep
    "image": (lambda tasks, seeds: [], image_table),  # trains its own runs: image models have no task
}


def run_experiments(names: list[str], output: str | Path, tasks: list[str], seeds: list[int], jobs: int = 1,
                    **overrides) -> str:
    """Trains every run the named experiments need (each once, ``jobs`` at a time), then writes
    ``<output>/<name>.md`` for each and returns their text."""
    root = Path(output)
    root.mkdir(parents=True, exist_ok=True)
    specs = [spec for name in names for spec in EXPERIMENTS[name][0](tasks, seeds)]
    runs = train_runs(root, specs, jobs, **overrides)
    texts = []
    for name in names:
        write = EXPERIMENTS[name][1]
        # a writer that trains its own runs takes the overrides (--max-updates) too
        takes_overrides = any(p.kind is p.VAR_KEYWORD for p in inspect.signature(write).parameters.values())
        text = write(root, tasks, seeds, runs, jobs, **(overrides if takes_overrides else {}))
        (root / f"{name}.md").write_text(text)
        texts.append(text)
    return "\n".join(texts)


__all__ = ["ABLATIONS", "EXPERIMENTS", "METHODS", "Run", "RunSpec", "run", "run_experiments", "train_runs"]
