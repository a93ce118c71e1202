"""The fixed protocol for comparing methods (``dopsd experiment protocol``).

0. **d-OPSD's options, on validation.** The audit's options (issue 18), one at a time, at d-OPSD's preset rate on
   the first seed of ``--seeds``: no clip, the clip on overconfident entries only, states without teacher
   information skipped, the first rollout round sampled. The one with the best validation accuracy (the preset
   included; a tie goes to the earlier-reached best) is d-OPSD's row from step 1 on. (Added after d-OPSD's preset
   sweep of step 1 had run; that sweep is the preset's row here and is reused.)
1. **Learning rate, on validation.** Every method gets the same sweep: its CPU preset's rate times 1/3, 1 and 3, one
   seed, evaluated on ``VALIDATION_SIZE`` training prompts held out of training (the same ones for every method;
   never the test set). The rate with the best validation accuracy is chosen; a tie goes to the earlier-reached
   best.
2. **Seeds, on test.** The chosen rate, every seed of ``--seeds``, evaluated on the held-out test set.
3. **Budget.** ``UPDATES`` updates for every method, evaluated every ``EVAL_EVERY``; a method whose best evaluation
   falls on the budget's last evaluation in any seed is flagged as possibly still improving.

Reported for every method, winners and losers alike: the options, the sweep, the chosen rate, best and final test
accuracy, updates to the best and to 90% of the best method's gain, rollout samples to the best, and wall time.
"""

from __future__ import annotations

from pathlib import Path

from dopsd.bundled import cpu_preset
from dopsd.experiments.runs import Run, RunSpec, train_runs
from dopsd.experiments.tables import markdown_table, mean_spread, updates_to_reach

# Table rows: label -> (registry name, its variant's name, the config values the variant changes from the preset).
# RFT has exactly d-OPSD's rollouts and kept set, without the teacher. diffu-GRPO samples as many prompts per update
# as d-OPSD (16, six completions each) and updates once per rollout: the methods compared at equal rollouts.
PROTOCOL_METHODS = {
    "d-OPSD": ("dopsd", "", ()),
    "RFT": ("rft", "", ()),
    "diffu-GRPO": ("grpo", "one-update", (("inner_updates", 1), ("prompts_per_rollout", 16))),
    "SFT": ("sft", "", ()),
}
# Step 0: d-OPSD's options from the audit, one at a time (name -> its variant's name and config changes).
DOPSD_OPTIONS = {
    "preset (clip 0.05 on all entries)": ("", ()),
    "no clip": ("no-clip", (("clip", None),)),
    "clip overconfident entries only": ("clip-overconfident", (("clip_mode", "overconfident"),)),
    "skip states without teacher information": ("skip-uninformed", (("skip_uninformed_states", True),)),
    "first round sampled at 0.9": ("first-round-sampled", (("temperature", 0.9),)),
}
LR_FACTORS = (1 / 3, 1.0, 3.0)
VALIDATION_SIZE = 300
UPDATES = 160  # twice the default run's 80: its best evaluations sat at 60-80, near the end of its budget
EVAL_EVERY = 20

Arm = tuple[str, str, tuple]  # (registry name, variant name, config changes)


def budget(changes: tuple, **more) -> tuple:
    return tuple(sorted({**dict(changes), "max_updates": UPDATES, "eval_every": EVAL_EVERY, **more}.items()))


def named(name: str, stage: str) -> str:
    return f"{name}-{stage}" if name else stage


def sweep_rates(method: str, task: str) -> list[float]:
    rate = cpu_preset(task, method)["learning_rate"]
    return [float(f"{rate * factor:.3g}") for factor in LR_FACTORS]


def sweep_spec(arm: Arm, task: str, seed: int, rate: float) -> RunSpec:
    method, name, changes = arm
    return RunSpec(method, task, seed, named(name, f"validation-lr{rate:g}"),
                   budget(changes, learning_rate=rate, validation_size=VALIDATION_SIZE))


def test_spec(arm: Arm, task: str, seed: int, rate: float) -> RunSpec:
    method, name, changes = arm
    return RunSpec(method, task, seed, named(name, f"protocol-lr{rate:g}"), budget(changes, learning_rate=rate))


def option_arm(option: str) -> Arm:
    return ("dopsd", *DOPSD_OPTIONS[option])


def option_spec(option: str, task: str, seed: int) -> RunSpec:
    return sweep_spec(option_arm(option), task, seed, cpu_preset(task, "dopsd")["learning_rate"])


def first_best(run: Run) -> tuple:
    return run.best["accuracy"], -run.best["update"]


def chosen_option(runs: dict[RunSpec, Run], task: str, seed: int) -> str:
    return max(DOPSD_OPTIONS, key=lambda option: first_best(runs[option_spec(option, task, seed)]))


def arms(runs: dict[RunSpec, Run], task: str, seed: int) -> dict[str, Arm]:
    """Each method's row; d-OPSD's carries the option step 0 chose."""
    return {**{label: arm for label, arm in PROTOCOL_METHODS.items()}, "d-OPSD": option_arm(chosen_option(runs, task, seed))}


def sweep_runs(tasks: list[str], seeds: list[int]) -> list[RunSpec]:
    """The runs known before any result: step 0, and step 1 for every method but d-OPSD (whose row step 0 picks)."""
    options = [option_spec(option, task, seeds[0]) for task in tasks for option in DOPSD_OPTIONS]
    others = [sweep_spec(arm, task, seeds[0], rate) for task in tasks for label, arm in PROTOCOL_METHODS.items()
              if label != "d-OPSD" for rate in sweep_rates(arm[0], task)]
    return options + others


def chosen_rate(runs: dict[RunSpec, Run], arm: Arm, task: str, seed: int) -> float:
    return max(sweep_rates(arm[0], task), key=lambda rate: first_best(runs[sweep_spec(arm, task, seed, rate)]))


def protocol_tables(root: Path, tasks: list[str], seeds: list[int], runs: dict[RunSpec, Run], jobs: int = 1) -> str:
    """Step 0's table, then trains (or reads back) d-OPSD's sweep for the chosen option and every method's chosen
    rate on every seed, and writes the sweep's and the test's tables."""
    rows = {task: arms(runs, task, seeds[0]) for task in tasks}
    runs = {**runs, **train_runs(root, [sweep_spec(rows[task]["d-OPSD"], task, seeds[0], rate) for task in tasks
                                        for rate in sweep_rates("dopsd", task)], jobs)}
    chosen = {(task, label): chosen_rate(runs, arm, task, seeds[0]) for task in tasks for label, arm in rows[task].items()}
    finals = train_runs(root, [test_spec(arm, task, seed, chosen[task, label]) for task in tasks
                               for label, arm in rows[task].items() for seed in seeds], jobs)
    option_rows, sweep_rows, test_rows = [], [], []
    for task in tasks:
        for option in DOPSD_OPTIONS:
            result = runs[option_spec(option, task, seeds[0])]
            option_rows.append([task, option, f"{result.evals[0]['accuracy']:.3f}", f"{result.best['accuracy']:.3f}",
                                result.best["update"], f"{result.evals[-1]['accuracy']:.3f}",
                                "chosen" if rows[task]["d-OPSD"] == option_arm(option) else ""])
        for label, arm in rows[task].items():
            for rate in sweep_rates(arm[0], task):
                result = runs[sweep_spec(arm, task, seeds[0], rate)]
                sweep_rows.append([task, label, f"{rate:g}", f"{result.evals[0]['accuracy']:.3f}",
                                   f"{result.best['accuracy']:.3f}", result.best["update"],
                                   f"{result.evals[-1]['accuracy']:.3f}", "chosen" if rate == chosen[task, label] else ""])
        group = {label: [finals[test_spec(arm, task, seed, chosen[task, label])] for seed in seeds]
                 for label, arm in rows[task].items()}
        base = group["d-OPSD"][0].evals[0]["accuracy"]
        best_mean = max(sum(r.best["accuracy"] for r in members) / len(members) for members in group.values())
        target = base + 0.9 * (best_mean - base)
        for label, members in group.items():
            at_end = sum(r.best["update"] == r.evals[-1]["update"] for r in members)
            test_rows.append([
                task, label, f"{chosen[task, label]:g}", f"{base:.3f}",
                mean_spread([r.best["accuracy"] for r in members]), mean_spread([r.evals[-1]["accuracy"] for r in members]),
                mean_spread([r.best["update"] for r in members], 0) + (f" ({at_end} at the end)" if at_end else ""),
                updates_to_reach(members, target),
                mean_spread([r.through(r.best["update"], "rollout_samples") for r in members], 0),
                mean_spread([r.summary["wall_seconds"] / 60 for r in members], 1)])
    options = markdown_table(["task", "d-OPSD option", "validation accuracy before", "best validation accuracy",
                              "at update", f"final ({UPDATES})", ""], option_rows)
    sweep = markdown_table(["task", "method", "learning rate", "validation accuracy before", "best validation accuracy",
                            "at update", f"final ({UPDATES})", ""], sweep_rows)
    test = markdown_table(["task", "method", "learning rate", "base", "best test accuracy", "final test accuracy",
                           "best at update", "updates to 90% of the best gain", "rollout samples to best",
                           "minutes"], test_rows)
    return (f"### Protocol, step 0: d-OPSD's options on {VALIDATION_SIZE} validation prompts (seed {seeds[0]}, "
            f"preset learning rate, {UPDATES} updates)\n\n{options}\n"
            f"### Protocol, step 1: learning rate on {VALIDATION_SIZE} validation prompts (seed {seeds[0]}, "
            f"{UPDATES} updates)\n\n{sweep}\n"
            f"### Protocol, step 2: the chosen rates on the test set (seeds {seeds}; mean ± std)\n\n{test}")
