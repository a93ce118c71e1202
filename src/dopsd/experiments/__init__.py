"""The paper's experiments at small scale, on the bundled base models (``dopsd experiment NAME``).

Each experiment trains the runs it needs (or reads back finished ones from the output folder), then writes its
tables as Markdown, ``<output>/<name>.md``, and returns that text:

- ``main``: Table 1 (held-out accuracy of base, SFT, diffu-GRPO and d-OPSD at two generation lengths) and Table 2
  (updates, rollout samples and wall time to each method's best accuracy, d-OPSD vs diffu-GRPO);
- ``toy``: Table 3 (the self-teacher re-generating from its revealed future vs pass@1 and pass@8);
- ``overlap``: Figure 3 (Overlap Top-20 over training for d-OPSD and AR-style OPSD);
- ``ablations``: d-OPSD's design choices, one changed at a time.
"""

from __future__ import annotations

import json
from pathlib import Path

from dopsd.bundled import bundled_model_path, cpu_preset
from dopsd.experiments.runs import Run, best_model_path, evaluate_model, run
from dopsd.experiments.tables import markdown_table, mean_spread

METHODS = {"sft": "SFT", "grpo": "diffu-GRPO", "dopsd": "d-OPSD"}
# The second evaluation length, longer than the one trained at (the paper: 128 and 256 for planning tasks).
LONGER = {"sudoku": 32, "countdown": 32}

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


def main_tables(root: Path, tasks: list[str], seeds: list[int], **overrides) -> str:
    lengths = {task: (cpu_preset(task)["gen_length"], LONGER[task]) for task in tasks}
    # d-OPSD first: its runs are also the default run's seeds, the number most worth having early.
    runs = {(task, method): [run(root, method, task, seed, **overrides) for seed in seeds]
            for task in tasks for method in ("dopsd", "grpo", "sft")}
    header = ["method"] + [f"{task} L={length}" for task in tasks for length in lengths[task]]
    block = {task: cpu_preset(task)["block_length"] for task in tasks}
    base_row = ["base"]
    for task in tasks:
        for length in lengths[task]:
            base = evaluate_model(bundled_model_path(task), task, length, block[task], root / task / f"base-L{length}.json")
            base_row.append(f"{base['accuracy']:.3f}")
    rows = [base_row]
    for method, name in METHODS.items():
        row = [name]
        for task in tasks:
            trained, longer = lengths[task]
            row.append(mean_spread([r.best["accuracy"] for r in runs[task, method]]))
            row.append(mean_spread([evaluate_model(best_model_path(r), task, longer, block[task],
                                                   r.folder / f"best-L{longer}.json")["accuracy"]
                                    for r in runs[task, method]]))
        rows.append(row)
    table1 = markdown_table(header, rows)
    rows = []
    for task in tasks:
        for method in ("grpo", "dopsd"):
            group = runs[task, method]
            updates = [r.best["update"] for r in group]
            samples = [r.through(r.best["update"], "rollout_samples") for r in group]
            seconds = [r.through(r.best["update"], "update_seconds") + r.through(r.best["update"], "rollout_seconds")
                       for r in group]
            per_update = [r.through(r.summary["updates"], "rollout_samples") / r.summary["updates"] for r in group]
            rows.append([task, METHODS[method], mean_spread([r.best["accuracy"] for r in group]),
                         mean_spread(updates), mean_spread(samples), mean_spread(seconds), mean_spread(per_update)])
    table2 = markdown_table(["task", "method", "best accuracy", "updates to best", "rollout samples to best",
                             "seconds to best", "rollout samples per update"], rows)
    return (f"### Table 1: held-out accuracy (best evaluation; seeds {seeds}; mean ± std)\n\n{table1}\n"
            f"### Table 2: cost to reach the best accuracy (seeds {seeds})\n\n{table2}")


def toy_table(root: Path, tasks: list[str], seeds: list[int], prompts: int = 500, **training_overrides) -> str:
    """Samples only: ``training_overrides`` (for the training experiments) do not apply."""
    from dopsd.experiments.toy import toy_verification

    rows = []
    for task in tasks:
        cache = root / task / f"toy-{prompts}-seed{seeds[0]}.json"
        if cache.is_file():
            result = json.loads(cache.read_text())
        else:
            result = toy_verification(task, prompts=prompts, seed=seeds[0])
            cache.parent.mkdir(parents=True, exist_ok=True)
            cache.write_text(json.dumps(result) + "\n")
        teacher = result["teacher"]
        rows.append([task, result["prompts"], f"{result['pass@1']:.3f}", f"{result['pass@8']:.3f}"]
                    + [f"{teacher[k]:.3f}" for k in sorted(teacher)])
    header = ["task", "prompts", "student pass@1", "pass@8"] + [f"teacher rho={k}" for k in ("0.10", "0.25", "0.50")]
    return f"### Table 3: toy verification (training prompts, seed {seeds[0]})\n\n" + markdown_table(header, rows)


def overlap_figure(root: Path, tasks: list[str], seeds: list[int], **overrides) -> str:
    from dopsd.experiments.plots import plot_series

    task = tasks[0]
    variants = {"d-OPSD": run(root, "dopsd", task, seeds[0], **overrides),
                "AR-style OPSD": run(root, "dopsd", task, seeds[0], "ar-opsd", teacher_input="reference", **overrides)}
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


def ablation_table(root: Path, tasks: list[str], seeds: list[int], **overrides) -> str:
    task = tasks[0]
    rows = []
    for name, changes in ABLATIONS.items():
        group = [run(root, "dopsd", task, seed, "default" if not changes else slug(name), **changes, **overrides)
                 for seed in seeds]
        rows.append([name, mean_spread([r.best["accuracy"] for r in group]),
                     mean_spread([r.evals[-1]["accuracy"] for r in group]), mean_spread([r.best["update"] for r in group])])
    header = ["variant", "best accuracy", "final accuracy", "best at update"]
    return f"### Ablations ({task}, seeds {seeds})\n\n" + markdown_table(header, rows)


EXPERIMENTS = {"main": main_tables, "toy": toy_table, "overlap": overlap_figure, "ablations": ablation_table}


def run_experiment(name: str, output: str | Path, tasks: list[str], seeds: list[int], **overrides) -> str:
    """Runs experiment ``name`` and writes ``<output>/<name>.md``."""
    root = Path(output)
    root.mkdir(parents=True, exist_ok=True)
    text = EXPERIMENTS[name](root, tasks, seeds, **overrides)
    (root / f"{name}.md").write_text(text)
    return text


__all__ = ["ABLATIONS", "EXPERIMENTS", "METHODS", "Run", "run", "run_experiment"]
