"""The tables behind the numbers README.md and docs/*.md quote that no `dopsd experiment` writes, rebuilt from the
committed runs (reading their JSON only, in about a second), then every quote in README.md and docs/*.md spliced:

    python scripts/quoted_numbers.py

writes, under docs/results/:
- ``default-run.md``: the default run's table (the protocol's three d-OPSD Sudoku test runs,
  ``sudoku/dopsd-no-clip-test-lr0.00015-seed{0,1,2}``, read at update 160), quoted by README.md and
  docs/training.md;
- ``equal-budgets.md``: the protocol's test runs (Tables 1-2, ``docs/results/main.md``) read at equal numbers of
  updates: the mean of the evaluations in the last 100 updates and the best evaluation so far, quoted by
  docs/results.md;
- ``pre-protocol-main.md``, ``pre-protocol-toy.md``, ``pre-protocol-overlap.md``, ``pre-protocol-ablations.md``: the
  tables made before issue 18's protocol (80 updates at the CPU presets of the time), rebuilt as the code of commit
  f812e72 built them from the same committed runs (``<task>/*-default-seed*``, ``grpo-one-update-seed*``,
  ``dopsd-<ablation>-seed*``, ``dopsd-ar-opsd-seed0``, the toy caches), every spread a sample std (n - 1) as in
  every other table (f812e72 wrote population stds); ``pre-protocol-long.md``: that preset with and without the clip
  over 160 updates (``long/dopsd-clip-seed0``, ``long/dopsd-noclip-seed0``); all quoted by docs/results.md.

The base model's Sudoku L=32 accuracy of that time (0.062, before the strict answer extraction; the protocol's
re-evaluation, ``sudoku/base-L32.json``, reads 0.000) is kept in ``sudoku/base-L32-f812e72.json``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from dopsd.experiments.document import splice_file
from dopsd.experiments.protocol import window_mean
from dopsd.experiments.runs import Run
from dopsd.experiments.tables import markdown_table, mean_spread, updates_to_reach

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"
SEEDS = [0, 1, 2]

DEFAULT_RUN = "dopsd-no-clip-test-lr0.00015-seed{seed}"
DEFAULT_UPDATES = 160

# The protocol's test runs (task -> method -> run folder prefix, at the rate step 1 chose) and the budgets they are
# compared at: where the plateau rule can stop a method (320, then every 160), and 100 and 160 below them.
TEST_RUNS = {
    "sudoku": {"d-OPSD": "dopsd-no-clip-test-lr0.00015", "RFT": "rft-test-lr5e-05",
               "diffu-GRPO": "grpo-one-update-test-lr9e-05", "SFT": "sft-test-lr0.00015"},
    "countdown-steps": {"d-OPSD": "dopsd-no-clip-test-lr1.67e-05", "RFT": "rft-test-lr5e-05",
                        "diffu-GRPO": "grpo-one-update-test-lr9e-05", "SFT": "sft-test-lr0.00015"},
}
BUDGETS = [100, 160, 320, 480, 640, 800, 960, 1120]

# The pre-protocol experiments as commit f812e72 defined them: Table 1's rows (name -> run folder prefix), the tasks
# with their trained and longer lengths, and the ablations (name -> run folder prefix).
PRE_METHODS = {"SFT": "sft-default", "diffu-GRPO": "grpo-default",
               "diffu-GRPO, 1 update/rollout": "grpo-one-update", "d-OPSD": "dopsd-default"}
PRE_LENGTHS = {"sudoku": (20, 32), "countdown": (16, 32)}
PRE_ABLATIONS = {"default": "dopsd-default", "rho 0.25": "dopsd-rho-025", "all trajectories": "dopsd-all-trajectories",
                 "pass@1": "dopsd-pass1", "live teacher": "dopsd-live-teacher", "forward KL": "dopsd-forward-kl",
                 "no clip": "dopsd-no-clip", "K_t from student": "dopsd-k_t-from-student",
                 "rho 0.10": "dopsd-rho-010"}
PRE_OVERLAP = {"d-OPSD": "dopsd-default-seed0", "AR-style OPSD": "dopsd-ar-opsd-seed0"}
PRE_LONG = {"clip 0.05 (preset)": "dopsd-clip-seed0", "no clip": "dopsd-noclip-seed0"}


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def default_run(results: Path) -> str:
    runs = [Run.read(results / "sudoku" / DEFAULT_RUN.format(seed=seed)).upto(DEFAULT_UPDATES) for seed in SEEDS]
    rows, bests = [], []
    for seed, run in zip(SEEDS, runs):
        first, last, best = run.evals[0], run.evals[-1], run.best
        assert last["update"] == DEFAULT_UPDATES, f"{run.folder} has no evaluation at update {DEFAULT_UPDATES}"
        seconds = run.seconds(DEFAULT_UPDATES)
        rows.append([seed, f"{first['accuracy']:.3f} -> {last['accuracy']:.3f}",
                     f"{best['accuracy']:.3f} ({best['update']})",
                     f"{first['mean_score']:.3f} -> {last['mean_score']:.3f}", f"{seconds / 60:.1f} min"])
        bests.append(best["accuracy"])
    base = runs[0].evals[0]["accuracy"]
    gain = sum(bests) / len(bests) - base
    table = markdown_table(["seed", f"held-out accuracy (base -> after {DEFAULT_UPDATES} updates)", "best (update)",
                            "mean cell score", "rollout + update time"], rows)
    return (f"{table}\n"
            f"Best evaluation {mean_spread(bests)} (mean ± sample std over seeds {SEEDS}), {gain:+.3f} over the base "
            f"model.\n")


def equal_budgets(results: Path) -> str:
    rows = []
    for task, methods in TEST_RUNS.items():
        for name, prefix in methods.items():
            runs = [Run.read(results / task / f"{prefix}-seed{seed}") for seed in SEEDS]
            ran = min(run.summary["updates"] for run in runs)
            at = {budget: [run.upto(budget) for run in runs] for budget in BUDGETS if budget <= ran}
            rows.append([task, name, "mean of the last 100 updates"]
                        + [mean_spread([window_mean(r) for r in at[b]]) if b in at else "-" for b in BUDGETS])
            rows.append([task, name, "best evaluation so far"]
                        + [mean_spread([r.best["accuracy"] for r in at[b]]) if b in at else "-" for b in BUDGETS])
    table = markdown_table(["task", "method", "test accuracy"] + [f"{budget} updates" for budget in BUDGETS], rows)
    return (f"### Equal budgets: Tables 1-2's test runs read at each number of updates (seeds {SEEDS}; mean ± std; "
            f"'-': the plateau rule stopped the method before)\n\n{table}")


def pre_protocol_main(results: Path) -> str:
    tasks = list(PRE_LENGTHS)
    group = {(task, name): [Run.read(results / task / f"{prefix}-seed{seed}") for seed in SEEDS]
             for task in tasks for name, prefix in PRE_METHODS.items()}
    base = {(task, length): read_json(results / task / f"base-L{length}.json")["accuracy"]
            for task in tasks for length in PRE_LENGTHS[task]}
    base["sudoku", 32] = read_json(results / "sudoku" / "base-L32-f812e72.json")["accuracy"]
    header = ["method"] + [f"{task} L={length}" for task in tasks for length in PRE_LENGTHS[task]]
    rows = [["base"] + [f"{base[task, length]:.3f}" for task in tasks for length in PRE_LENGTHS[task]]]
    for name in PRE_METHODS:
        row = [name]
        for task in tasks:
            longer = PRE_LENGTHS[task][1]
            row.append(mean_spread([r.best["accuracy"] for r in group[task, name]]))
            row.append(mean_spread([read_json(r.folder / f"best-L{longer}.json")["accuracy"]
                                    for r in group[task, name]]))
        rows.append(row)
    table1 = markdown_table(header, rows)
    rows = []
    for task in tasks:
        # 90% of the way from the base model to the best method's mean best accuracy on this task
        trained = base[task, PRE_LENGTHS[task][0]]
        best_mean = max(sum(r.best["accuracy"] for r in group[task, name]) / len(SEEDS) for name in PRE_METHODS)
        target = trained + 0.9 * (best_mean - trained)
        for name in PRE_METHODS:
            if name == "SFT":  # no rollouts
                continue
            members = group[task, name]
            updates = [r.best["update"] for r in members]
            samples = [r.through(r.best["update"], "rollout_samples") for r in members]
            seconds = [r.seconds(r.best["update"]) for r in members]
            per_update = [r.through(r.summary["updates"], "rollout_samples") / r.summary["updates"] for r in members]
            rows.append([task, name, mean_spread([r.best["accuracy"] for r in members]),
                         mean_spread(updates, 0), mean_spread(samples, 0), mean_spread(seconds, 0),
                         mean_spread(per_update, 0), updates_to_reach(members, target)])
    table2 = markdown_table(["task", "method", "best accuracy", "updates to best", "rollout samples to best",
                             "seconds to best", "rollout samples per update", "updates to 90% of the best gain"],
                            rows)
    return (f"#### Table 1: held-out accuracy (best evaluation; seeds {SEEDS}; mean ± std)\n\n{table1}\n"
            f"#### Table 2: cost to reach the best accuracy (seeds {SEEDS})\n\n{table2}")


def pre_protocol_toy(results: Path) -> str:
    rows = []
    for task in PRE_LENGTHS:
        result = read_json(results / task / "toy-500-seed0.json")
        teacher = result["teacher"]
        rows.append([result["task"], result["prompts"], f"{result['pass@1']:.3f}", f"{result['pass@8']:.3f}"]
                    + [f"{teacher[k]:.3f}" for k in sorted(teacher)])
    header = ["task", "prompts", "student pass@1", "pass@8"] + [f"teacher rho={k}" for k in ("0.10", "0.25", "0.50")]
    return "#### Table 3: toy verification (training prompts, seed 0)\n\n" + markdown_table(header, rows)


def pre_protocol_overlap(results: Path) -> str:
    rows = []
    for name, folder in PRE_OVERLAP.items():
        run = Run.read(results / "sudoku" / folder)
        values = [v for _, v in run.series("overlap_top20")]
        head, tail = values[:10], values[-10:]
        rows.append([name, f"{sum(head) / len(head):.3f}", f"{sum(tail) / len(tail):.3f}",
                     f"{run.evals[0]['accuracy']:.3f}", f"{run.best['accuracy']:.3f}", run.best["update"]])
    table = markdown_table(["teacher", "overlap, first 10 updates", "overlap, last 10 updates", "accuracy before",
                            "best accuracy", "best at update"], rows)
    return f"#### Figure 3: Overlap Top-20 (sudoku, seed 0)\n\n{table}"


def pre_protocol_ablations(results: Path) -> str:
    rows = []
    for name, prefix in PRE_ABLATIONS.items():
        group = [Run.read(results / "sudoku" / f"{prefix}-seed{seed}") for seed in SEEDS]
        rows.append([name, mean_spread([r.best["accuracy"] for r in group]),
                     mean_spread([r.evals[-1]["accuracy"] for r in group]),
                     mean_spread([r.best["update"] for r in group], 0)])
    header = ["variant", "best accuracy", "final accuracy", "best at update"]
    return f"#### Ablations (sudoku, seeds {SEEDS})\n\n" + markdown_table(header, rows)


def pre_protocol_long(results: Path) -> str:
    runs = {name: Run.read(results / "long" / folder) for name, folder in PRE_LONG.items()}
    updates = [e["update"] for e in next(iter(runs.values())).evals]
    assert all([e["update"] for e in run.evals] == updates for run in runs.values()), "the runs' evaluations differ"
    rows = [[name] + [f"{e['accuracy']:.3f}" for e in run.evals] for name, run in runs.items()]
    return markdown_table(["updates"] + [str(update) for update in updates], rows)


WRITERS = {"default-run.md": default_run, "equal-budgets.md": equal_budgets, "pre-protocol-main.md": pre_protocol_main,
           "pre-protocol-toy.md": pre_protocol_toy, "pre-protocol-overlap.md": pre_protocol_overlap,
           "pre-protocol-ablations.md": pre_protocol_ablations,
           "pre-protocol-long.md": pre_protocol_long}


def tables(results: Path = RESULTS) -> dict[str, str]:
    """Each file's name under docs/results/ and its text, from the committed runs under ``results``."""
    return {name: write(Path(results)) for name, write in WRITERS.items()}


def documents(root: Path = ROOT) -> list[Path]:
    """README.md and docs/*.md: every page that may quote a table."""
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def main() -> int:
    for name, text in tables().items():
        (RESULTS / name).write_text(text)
        print(f"wrote docs/results/{name}")
    for page in documents():
        if splice_file(page):
            print(f"{page.relative_to(ROOT)}: quoted tables updated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
