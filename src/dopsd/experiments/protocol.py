"""The fixed protocol for comparing methods (``dopsd experiment protocol``), set before any of its runs.

1. **Learning rate, on validation.** Every method gets the same sweep: its CPU preset's rate times 1/3, 1 and 3, one
   seed (the first of ``--seeds``), evaluated on ``VALIDATION_SIZE`` training prompts held out of training (the same
   ones for every method; never the test set). The rate with the best validation accuracy is chosen; a tie goes to
   the earlier-reached best.
2. **Seeds, on test.** The chosen rate, every seed of ``--seeds``, evaluated on the held-out test set.
3. **Budget.** ``UPDATES`` updates for every method, evaluated every ``EVAL_EVERY``; a method whose best evaluation
   falls on the budget's last evaluation in any seed is flagged as possibly still improving.

Reported for every method, winners and losers alike: the sweep, the chosen rate, best and final test accuracy,
updates to the best and to 90% of the best method's gain, rollout samples to the best, and wall time.
"""

from __future__ import annotations

from pathlib import Path

from dopsd.bundled import cpu_preset
from dopsd.experiments.runs import Run, RunSpec, train_runs
from dopsd.experiments.tables import markdown_table, mean_spread, updates_to_reach

# Table rows: label -> registry name. RFT has exactly d-OPSD's rollouts and kept set, without the teacher.
PROTOCOL_METHODS = {"d-OPSD": "dopsd", "RFT": "rft", "diffu-GRPO": "grpo", "SFT": "sft"}
LR_FACTORS = (1 / 3, 1.0, 3.0)
VALIDATION_SIZE = 300
UPDATES = 160  # twice the default run's 80: its best evaluations sat at 60-80, near the end of its budget
EVAL_EVERY = 20


def budget(**changes) -> tuple:
    return tuple(sorted({"max_updates": UPDATES, "eval_every": EVAL_EVERY, **changes}.items()))


def sweep_rates(method: str, task: str) -> list[float]:
    rate = cpu_preset(task, method)["learning_rate"]
    return [float(f"{rate * factor:.3g}") for factor in LR_FACTORS]


def sweep_spec(method: str, task: str, seed: int, rate: float) -> RunSpec:
    return RunSpec(method, task, seed, f"validation-lr{rate:g}", budget(learning_rate=rate,
                                                                       validation_size=VALIDATION_SIZE))


def test_spec(method: str, task: str, seed: int, rate: float) -> RunSpec:
    return RunSpec(method, task, seed, f"protocol-lr{rate:g}", budget(learning_rate=rate))


def sweep_runs(tasks: list[str], seeds: list[int]) -> list[RunSpec]:
    return [sweep_spec(method, task, seeds[0], rate) for task in tasks for method in PROTOCOL_METHODS.values()
            for rate in sweep_rates(method, task)]


def chosen_rate(runs: dict[RunSpec, Run], method: str, task: str, seed: int) -> float:
    rates = sweep_rates(method, task)
    return max(rates, key=lambda rate: (runs[sweep_spec(method, task, seed, rate)].best["accuracy"],
                                        -runs[sweep_spec(method, task, seed, rate)].best["update"]))


def protocol_tables(root: Path, tasks: list[str], seeds: list[int], runs: dict[RunSpec, Run], jobs: int = 1) -> str:
    """The sweep's table, then trains (or reads back) the chosen rates' seeds and writes the test table."""
    chosen = {(task, method): chosen_rate(runs, method, task, seeds[0])
              for task in tasks for method in PROTOCOL_METHODS.values()}
    finals = train_runs(root, [test_spec(method, task, seed, chosen[task, method]) for task in tasks
                               for method in PROTOCOL_METHODS.values() for seed in seeds], jobs)
    sweep_rows, test_rows = [], []
    for task in tasks:
        for label, method in PROTOCOL_METHODS.items():
            for rate in sweep_rates(method, task):
                result = runs[sweep_spec(method, task, seeds[0], rate)]
                sweep_rows.append([task, label, f"{rate:g}", f"{result.evals[0]['accuracy']:.3f}",
                                   f"{result.best['accuracy']:.3f}", result.best["update"],
                                   "chosen" if rate == chosen[task, method] else ""])
        group = {label: [finals[test_spec(method, task, seed, chosen[task, method])] for seed in seeds]
                 for label, method in PROTOCOL_METHODS.items()}
        base = group["d-OPSD"][0].evals[0]["accuracy"]
        best_mean = max(sum(r.best["accuracy"] for r in members) / len(members) for members in group.values())
        target = base + 0.9 * (best_mean - base)
        for label, members in group.items():
            at_end = sum(r.best["update"] == r.evals[-1]["update"] for r in members)
            test_rows.append([
                task, label, f"{chosen[task, PROTOCOL_METHODS[label]]:g}", f"{base:.3f}",
                mean_spread([r.best["accuracy"] for r in members]), mean_spread([r.evals[-1]["accuracy"] for r in members]),
                mean_spread([r.best["update"] for r in members], 0) + (f" ({at_end} at the end)" if at_end else ""),
                updates_to_reach(members, target),
                mean_spread([r.through(r.best["update"], "rollout_samples") for r in members], 0),
                mean_spread([r.summary["wall_seconds"] / 60 for r in members], 1)])
    sweep = markdown_table(["task", "method", "learning rate", "validation accuracy before", "best validation accuracy",
                            "at update", ""], sweep_rows)
    test = markdown_table(["task", "method", "learning rate", "base", "best test accuracy", "final test accuracy",
                           "best at update", "updates to 90% of the best gain", "rollout samples to best",
                           "minutes"], test_rows)
    return (f"### Protocol, step 1: learning rate on {VALIDATION_SIZE} validation prompts (seed {seeds[0]}, "
            f"{UPDATES} updates)\n\n{sweep}\n"
            f"### Protocol, step 2: the chosen rates on the test set (seeds {seeds}; mean ± std)\n\n{test}")
