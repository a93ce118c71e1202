"""The paper's experiments at small scale, on the bundled base models (``dopsd experiment NAME``).

Each experiment trains the runs it needs (or reads back finished ones from the output folder), then writes its
tables as Markdown, ``<output>/<name>.md``, and returns that text:

- ``main``: Table 1 (test accuracy of base, d-OPSD, RFT, diffu-GRPO and SFT under the protocol, at two generation
  lengths) and Table 2 (updates, rollout samples and wall time to each method's best accuracy, and to 90% of the
  best method's gain);
- ``toy``: Table 3 (the self-teacher re-generating from its revealed future vs pass@1 and pass@8);
- ``overlap``: Figure 3 (Overlap Top-20 over training for d-OPSD and AR-style OPSD);
- ``ablations``: d-OPSD's design choices, one changed at a time from its protocol row;
- ``opdlm``: OPDLM against masked-diffusion SFT from the same converted causal model, accuracy by training tokens
  (:mod:`dopsd.experiments.opdlm`);
- ``protocol``: the fixed protocol's validation steps, d-OPSD's options and every method's learning-rate sweep
  (:mod:`dopsd.experiments.protocol`); ``main``, ``overlap`` and ``ablations`` run on its choices;
- ``image``: D-OPSD against flow-matching fine-tuning for the few-step image generator (:mod:`dopsd.experiments.image`);
- ``protocol-v2``, ``main-v2``: protocol v2, every decision on validation and the test set evaluated once at the
  chosen points, at each method's own budget and at equal compute (:mod:`dopsd.experiments.protocol_v2`).
"""

from __future__ import annotations

import inspect
import json
import statistics
from pathlib import Path

from dopsd.bundled import bundled_model_path
from dopsd.experiments import protocol, protocol_v2
from dopsd.experiments.image import image_table
from dopsd.experiments.opdlm import opdlm_table
from dopsd.experiments.parallel import fill_in_parallel
from dopsd.experiments.protocol import (
    PROTOCOL_METHODS,
    Choices,
    extend,
    protocol_tables,
    sweep_runs,
    test_spec,
    window_gain,
    window_mean,
)
from dopsd.experiments.runs import Run, RunSpec, best_model_path, evaluate_model, run, train_runs
from dopsd.experiments.tables import markdown_table, mean_spread, updates_to_reach
from dopsd.presets import cpu_preset

# The second evaluation length, longer than the one trained at (the paper: 128 and 256 for planning tasks). Trained
# checkpoints are evaluated there only where the base model solves any prompt at that length: on Sudoku it solves none
# at 32 tokens (it writes digits past the 16 cells), and neither did the best checkpoint of any of the 12 Sudoku test
# runs at 320 updates (docs/results.md at commit 5993da4), so there the column would cost a kept checkpoint per run
# and say nothing.
LONGER = {"sudoku": 32, "countdown": 32, "countdown-steps": 48}

# One design choice changed at a time from d-OPSD's protocol row (paper section 4.4). A change the row already has
# reads back the row's own runs.
ABLATIONS = {
    "rho 0.25": dict(teacher_retain_ratio=0.25),
    "all trajectories": dict(correct_only=False),
    "pass@1": dict(passk=1),
    "live teacher": dict(teacher="live"),
    "forward KL": dict(divergence="forward_kl"),
    "no clip": dict(clip=None),
    "clip 0.05 on all entries": dict(clip=0.05, clip_mode="all"),
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
def main_tables(root: Path, tasks: list[str], seeds: list[int], runs: dict[RunSpec, Run], jobs: int = 1) -> str:
    """Step 2 of the protocol: every method's chosen settings on every seed, evaluated on the test set."""
    choices = Choices(root, tasks, seeds, runs, jobs)
    group = choices.test_runs(seeds)
    lengths = {task: (cpu_preset(task)["gen_length"], LONGER[task]) for task in tasks}
    block = {task: cpu_preset(task)["block_length"] for task in tasks}
    base_calls = [(bundled_model_path(task), task, length, block[task], root / task / f"base-L{length}.json")
                  for task in tasks for length in lengths[task]]
    base_results = evaluate_models(base_calls, jobs)
    base_at = {(call[1], call[2]): result["accuracy"] for call, result in zip(base_calls, base_results)}
    longer_tasks = [task for task in tasks if base_at[task, lengths[task][1]] > 0]
    longer_calls = {(task, label): [(best_model_path(r), task, lengths[task][1], block[task],
                                     r.folder / f"best-L{lengths[task][1]}-update{r.best['update']}.json")
                                    for r in group[task, label]]
                    for label in PROTOCOL_METHODS for task in longer_tasks}
    # a copy kept without checkpoints (docs/results) can only read back evaluations made before it was copied
    kept = {key: all(Path(call[0]).is_dir() or Path(call[-1]).is_file() for call in calls)
            for key, calls in longer_calls.items()}
    longer_results = evaluate_models([call for key, calls in longer_calls.items() if kept[key] for call in calls], jobs)
    base_at_trained = {task: base_at[task, lengths[task][0]] for task in tasks}
    base, longer = iter(base_results), iter(longer_results)
    header = ["method"] + [f"{task} L={length}{suffix}" for task in tasks
                           for length, suffix in ((lengths[task][0], ""),
                                                  (lengths[task][0], f", last {protocol.PLATEAU_WINDOW} updates"),
                                                  (lengths[task][1], ""))]
    rows = [["base"]]
    for task in tasks:
        at_trained, at_longer = next(base)["accuracy"], next(base)["accuracy"]
        rows[0] += [f"{at_trained:.3f}", f"{at_trained:.3f}", f"{at_longer:.3f}"]
    for label in PROTOCOL_METHODS:
        row = [label]
        for task in tasks:
            row.append(mean_spread([r.best["accuracy"] for r in group[task, label]]))
            row.append(mean_spread([window_mean(r) for r in group[task, label]]))
            if task not in longer_tasks:
                row.append("not evaluated (base 0)")
            elif not kept[task, label]:
                row.append("not evaluated (best checkpoint not kept)")
            else:
                row.append(mean_spread([next(longer)["accuracy"] for _ in group[task, label]]))
        rows.append(row)
    table1 = markdown_table(header, rows)
    rows = []
    for task in tasks:
        # 90% of the way from the base model to the best method's mean best accuracy on this task
        best_mean = max(sum(r.best["accuracy"] for r in group[task, label]) / len(seeds) for label in PROTOCOL_METHODS)
        target = base_at_trained[task] + 0.9 * (best_mean - base_at_trained[task])
        for label in PROTOCOL_METHODS:
            members = group[task, label]
            at_end = sum(r.best["update"] == r.evals[-1]["update"] for r in members)
            samples = [r.through(r.best["update"], "rollout_samples") for r in members]
            per_update = [r.through(r.summary["updates"], "rollout_samples") / r.summary["updates"] for r in members]
            seconds = [r.seconds(r.best["update"]) for r in members]
            ran = members[0].summary["updates"]
            plateau = ("" if protocol.plateaued(members) else
                       " (still gaining; not continued: its checkpoints are not kept here)"
                       if (task, label) in choices.short else " (cap; still gaining)")
            rows.append([task, label, f"{choices.rates[task, label]:g}", f"{ran}{plateau}",
                         f"{statistics.fmean(window_gain(r) for r in members):+.3f}",
                         mean_spread([r.best["accuracy"] for r in members]),
                         mean_spread([r.best["update"] for r in members], 0)
                         + (f" ({at_end} at the end)" if at_end else ""),
                         updates_to_reach(members, target), mean_spread(samples, 0), mean_spread(per_update, 0),
                         mean_spread(seconds, 0)])
    table2 = markdown_table(["task", "method", "learning rate", "updates run",
                             f"gain over the last {protocol.PLATEAU_WINDOW} updates", "best accuracy",
                             "updates to best",
                             "updates to 90% of the best gain", "rollout samples to best", "rollout samples per update",
                             "seconds to best"], rows)
    return (f"### Table 1: test accuracy under the protocol (best evaluation; mean of the evaluations in the last "
            f"{protocol.PLATEAU_WINDOW} updates; best checkpoint at the longer length, where the base model solves "
            f"any prompt there; seeds {seeds}; mean ± std)"
            f"\n\n{table1}\n"
            f"### Table 2: cost to reach the best accuracy (seeds {seeds}; each method trained until its mean accuracy "
            f"over the last {protocol.PLATEAU_WINDOW} updates beats the {protocol.PLATEAU_WINDOW} before by less than "
            f"{protocol.PLATEAU_GAIN:g}, mean over seeds, or {protocol.MAX_TEST_UPDATES} updates)\n\n{table2}")


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
def overlap_specs(choices: Choices, task: str, seed: int) -> dict[str, RunSpec]:
    """d-OPSD's protocol row, and the same with the teacher shown the reference solution instead (AR-style OPSD)."""
    row, rate = choices.arms[task, "d-OPSD"], choices.rates[task, "d-OPSD"]
    return {"d-OPSD": test_spec(row, task, seed, rate),
            "AR-style OPSD": test_spec(extend(row, "ar-opsd", teacher_input="reference"), task, seed, rate)}


def overlap_figure(root: Path, tasks: list[str], seeds: list[int], runs: dict[RunSpec, Run], jobs: int = 1) -> str:
    from dopsd.experiments.plots import plot_series

    task = tasks[0]
    specs = overlap_specs(Choices(root, tasks[:1], seeds, runs, jobs), task, seeds[0])
    variants = {name: result.upto(protocol.TEST_UPDATES)
                for name, result in zip(specs, train_runs(root, list(specs.values()), jobs).values())}
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
    return (f"### Figure 3: Overlap Top-20 ({task}, seed {seeds[0]}, {protocol.TEST_UPDATES} updates)\n\n"
            f"![overlap]({path.name})\n\n{table}")


# ----- Ablations -----------------------------------------------------------------------------------------------
def ablation_spec(choices: Choices, task: str, seed: int, name: str) -> RunSpec:
    return test_spec(extend(choices.arms[task, "d-OPSD"], slug(name), **ABLATIONS[name]), task, seed,
                     choices.rates[task, "d-OPSD"])


def ablation_table(root: Path, tasks: list[str], seeds: list[int], runs: dict[RunSpec, Run], jobs: int = 1) -> str:
    """Every variant at the protocol's first test budget, ``TEST_UPDATES``; the row's runs are read up to there."""
    task = tasks[0]
    choices = Choices(root, [task], seeds, runs, jobs)
    names = ["protocol row", *ABLATIONS]
    specs = {name: choices.test_specs(task, "d-OPSD", seeds) if name == "protocol row"
             else [ablation_spec(choices, task, seed, name) for seed in seeds] for name in names}
    finals = train_runs(root, [spec for group in specs.values() for spec in group], jobs)
    rows = []
    for name, members in specs.items():
        group = [finals[spec].upto(protocol.TEST_UPDATES) for spec in members]
        same = name != "protocol row" and members == specs["protocol row"]
        rows.append([name + (" (= the protocol row)" if same else ""),
                     mean_spread([r.best["accuracy"] for r in group]),
                     mean_spread([window_mean(r) for r in group]),
                     mean_spread([r.evals[-1]["accuracy"] for r in group]),
                     mean_spread([r.best["update"] for r in group], 0)])
    header = ["variant", "best accuracy", f"mean of the last {protocol.PLATEAU_WINDOW} updates", "final accuracy",
              "best at update"]
    return (f"### Ablations ({task}, seeds {seeds}; d-OPSD's protocol row with one change; "
            f"{protocol.TEST_UPDATES} updates each)\n\n"
            + markdown_table(header, rows))


# name -> (the runs it needs, what writes its Markdown from them)
EXPERIMENTS = {
    "main": (sweep_runs, main_tables),  # the protocol's validation runs; the table writers train the rest
    "toy": (lambda tasks, seeds: [], toy_table),
    "overlap": (sweep_runs, overlap_figure),
    "ablations": (sweep_runs, ablation_table),
    "opdlm": (lambda tasks, seeds: [], opdlm_table),  # trains its own runs: SFT's start is converted under <output>
    "protocol": (sweep_runs, protocol_tables),
    "image": (lambda tasks, seeds: [], image_table),  # trains its own runs: image models have no task
    "protocol-v2": (sweep_runs, protocol_v2.rate_table),  # v2 trains its own grids and test-seed runs
    "main-v2": (sweep_runs, protocol_v2.main_v2_tables),
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


__all__ = ["ABLATIONS", "EXPERIMENTS", "Run", "RunSpec", "run", "run_experiments", "train_runs"]
