"""Protocol v2: every decision read on validation; the test set evaluated once, at the points chosen
(``dopsd experiment protocol-v2 main-v2``).

Protocol v1 (:mod:`dopsd.experiments.protocol`) chose learning rates and d-OPSD's options on validation, but read
each method's stopping point, its best checkpoint and the budget changes off test-set curves. v2 keeps v1's step 0
(d-OPSD's options, already on validation) and replaces the rest:

1. **Learning rate, on validation, two seeds.** Each method's v1 grid (``protocol.SWEEPS``), on the first
   ``RATE_SEEDS`` seeds, ``protocol.UPDATES`` updates, ``protocol.VALIDATION_SIZE`` validation prompts. A rate's
   score is the mean over those seeds of the validation accuracy averaged over the evaluations of the last
   ``protocol.PLATEAU_WINDOW`` updates (a sustained level, less noisy than a best single evaluation). While the best
   rate sits at an edge of the grid, the grid grows by a factor ``GRID_FACTOR`` past that edge, at most
   ``MAX_GRID_STEPS`` times a side; a rate still at an edge after that is said so in the table. Ties go to the
   smaller rate.
2. **Budget and checkpoint, on validation.** Every seed of ``--seeds`` trains at the chosen rate with the same
   validation prompts held out of training and evaluated every ``protocol.EVAL_EVERY`` updates. v1's plateau rule
   reads these validation curves; the checkpoint reported is each run's best validation evaluation within its final
   budget.
3. **Test, once per chosen point.** The test set is evaluated on the chosen checkpoints only: at the method's own
   final budget, and at equal compute across methods (equal updates, equal rollout samples, equal wall time: the
   smallest final budget of any method, each method read at its best validation checkpoint within that budget).
   Differences between methods come with a paired bootstrap 95% interval over seeds and test items
   (:func:`paired_bootstrap`). Spreads are sample standard deviations over seeds (n - 1).
"""

from __future__ import annotations

import statistics
from pathlib import Path

import numpy as np

from dopsd.bundled import bundled_model_path
from dopsd.experiments import protocol
from dopsd.experiments.parallel import fill_in_parallel
from dopsd.experiments.protocol import PROTOCOL_METHODS, Arm, budget, named, sweep_spec, window_mean
from dopsd.experiments.runs import Run, RunSpec, best_model_path, evaluate_model, train_runs
from dopsd.experiments.tables import markdown_table, mean_spread
from dopsd.presets import cpu_preset

RATE_SEEDS = 2
GRID_FACTOR = 3.0
MAX_GRID_STEPS = 2
BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0
# the equal-compute budgets: name -> (the per-update metric summed, how a cell names it)
COMPUTE = {"updates": (None, "updates"), "rollout samples": ("rollout_samples", "rollout samples"),
           "wall seconds": ("seconds", "s of rollout + update time")}


def rate_score(runs: list[Run]) -> float:
    """Mean over seeds of each run's validation accuracy averaged over its last ``PLATEAU_WINDOW`` updates."""
    return statistics.fmean(window_mean(run) for run in runs)


def best_rate(scores: dict[float, float]) -> float:
    """The rate with the highest score; a tie goes to the smaller rate."""
    return max(sorted(scores), key=lambda rate: (scores[rate], -rate))


def grown(grid: tuple[float, ...], chosen: float) -> tuple[float, ...] | None:
    """``grid`` with one more rate past the edge ``chosen`` sits at, or None when ``chosen`` is interior."""
    if chosen == max(grid):
        return grid + (float(f"{chosen * GRID_FACTOR:.3g}"),)
    if chosen == min(grid):
        return (float(f"{chosen / GRID_FACTOR:.3g}"),) + grid
    return None


def heldout_spec(arm: Arm, task: str, seed: int, rate: float, updates: int | None = None) -> RunSpec:
    """A test-seed run of v2: trained without the validation prompts, evaluated on them; its folder does not depend
    on ``updates`` (default ``protocol.TEST_UPDATES``), so the plateau rule continues it in place."""
    method, name, changes = arm
    return RunSpec(method, task, seed, named(name, f"heldout-lr{rate:g}"),
                   budget(changes, learning_rate=rate, validation_size=protocol.VALIDATION_SIZE,
                          max_updates=updates or protocol.TEST_UPDATES))


class RateChoice:
    """Step 1 of v2 for one (task, method label): the grid it ended with, each rate's runs and score, the choice."""

    def __init__(self, arm: Arm, task: str, seeds: list[int]):
        self.arm, self.task, self.seeds = arm, task, seeds[:RATE_SEEDS]
        self.grid: tuple[float, ...] = tuple(protocol.SWEEPS[arm[0]])
        self.runs: dict[float, list[Run]] = {}

    def specs(self) -> list[RunSpec]:
        return [sweep_spec(self.arm, self.task, seed, rate) for rate in self.grid for seed in self.seeds]

    def take(self, runs: dict[RunSpec, Run]) -> bool:
        """Reads the grid's runs; grows the grid when the best rate is at an edge; says whether it grew."""
        self.runs = {rate: [runs[sweep_spec(self.arm, self.task, seed, rate)] for seed in self.seeds]
                     for rate in self.grid}
        bigger = grown(self.grid, self.chosen)
        if bigger is None or self.side_steps(bigger) > MAX_GRID_STEPS:
            return False
        self.grid = bigger
        return True

    def side_steps(self, grid: tuple[float, ...]) -> int:
        start = protocol.SWEEPS[self.arm[0]]
        return max(sum(rate > max(start) for rate in grid), sum(rate < min(start) for rate in grid))

    @property
    def scores(self) -> dict[float, float]:
        return {rate: rate_score(runs) for rate, runs in self.runs.items()}

    @property
    def chosen(self) -> float:
        return best_rate(self.scores)

    @property
    def at_edge(self) -> bool:
        return grown(self.grid, self.chosen) is not None


def choose_rates(root: Path, arms: dict[tuple[str, str], Arm], seeds: list[int], runs: dict[RunSpec, Run],
                 jobs: int = 1) -> dict[tuple[str, str], RateChoice]:
    """Step 1 for every (task, label) of ``arms``: trains each grid's missing runs, round by round, until no grid
    grows."""
    choices = {key: RateChoice(arm, key[0], seeds) for key, arm in arms.items()}
    pending = list(choices)
    while pending:
        specs = [spec for key in pending for spec in choices[key].specs()]
        runs = {**runs, **train_runs(root, [spec for spec in specs if spec not in runs], jobs)}
        pending = [key for key in pending if choices[key].take(runs)]
    return choices


class HeldoutRuns:
    """Step 2 for every (task, label): the test seeds' runs at the chosen rate, each read at its method's final budget
    (v1's plateau rule on the validation curves)."""

    def __init__(self, root: Path, arms: dict, rates: dict, seeds: list[int], jobs: int = 1):
        self.root, self.arms, self.rates, self.seeds, self.jobs = root, arms, rates, seeds, jobs

    def specs(self, key: tuple[str, str], updates: int | None = None) -> list[RunSpec]:
        return [heldout_spec(self.arms[key], key[0], seed, self.rates[key], updates) for seed in self.seeds]

    def train(self) -> dict[tuple[str, str], list[Run]]:
        pending = list(self.arms)
        budgets = {key: protocol.TEST_UPDATES for key in pending}
        results = {}
        while pending:
            specs = {key: self.specs(key, budgets[key]) for key in pending}
            trained = train_runs(self.root, [spec for group in specs.values() for spec in group], self.jobs)
            for key in pending:
                results[key] = [trained[spec].upto(budgets[key]) for spec in specs[key]]
            pending = [key for key in pending if not (protocol.plateaued(results[key])
                                                      or budgets[key] + protocol.EXTEND > protocol.MAX_TEST_UPDATES)]
            for key in pending:
                budgets[key] += protocol.EXTEND
        return results


def spent(run: Run, update: int, metric: str | None) -> float:
    """What ``run`` spent on updates 1..``update``: updates, or a per-update metric's sum (``seconds``: rollout plus
    update seconds, evaluations excluded)."""
    if metric is None:
        return float(update)
    if metric == "seconds":
        return run.seconds(update)
    return run.through(update, metric)


def seconds_per_update(run: Run) -> float:
    """Rollout plus update seconds per update over the whole run (what a unit of the equal-time budget buys)."""
    return spent(run, run.summary["updates"], "seconds") / run.summary["updates"]


def within(run: Run, metric: str | None, limit: float) -> Run:
    """``run`` as it stood at its last evaluation whose spending is at most ``limit``."""
    points = [e["update"] for e in run.evals if spent(run, e["update"], metric) <= limit + 1e-9]
    return run.upto(max(points))


def equal_budgets(groups: dict[str, list[Run]]) -> dict[str, float | None]:
    """Per compute measure, the smallest mean final spending of any method that spends it (None: fewer than two
    methods do, e.g. rollout samples when only one method samples)."""
    limits = {}
    for name, (metric, _) in COMPUTE.items():
        totals = [statistics.fmean(spent(r, r.summary["updates"], metric) for r in runs) for runs in groups.values()]
        totals = [total for total in totals if total > 0]
        limits[name] = min(totals) if len(totals) >= 2 else None
    return limits


def test_cache(run: Run, update: int) -> Path:
    return run.folder / f"test-update{update}.json"


def evaluate_on_test(model_path: str, task: str, cache: Path) -> dict:
    """The test accuracy of a saved model at the task's preset lengths, with each item's correctness, cached."""
    preset = cpu_preset(task)
    return evaluate_model(model_path, task, preset["gen_length"], preset["block_length"], cache)


def test_results(runs: list[Run], jobs: int = 1) -> list[dict]:
    """Each run's test result at its chosen checkpoint (evaluated once; cached beside the run)."""
    calls = [(best_model_path(run), run.summary["task"], test_cache(run, run.best["update"])) for run in runs]
    return fill_in_parallel(evaluate_on_test, calls, lambda *call: Path(call[-1]).is_file(), jobs,
                            describe=lambda call: f"test evaluation {call[-1]}", desc="test evaluations")


def paired_bootstrap(a: np.ndarray, b: np.ndarray, resamples: int = BOOTSTRAP_RESAMPLES,
                     seed: int = BOOTSTRAP_SEED) -> tuple[float, float, float]:
    """Mean of ``a - b`` and its 95% percentile interval; ``a`` and ``b`` are (seeds, items) arrays paired by seed
    and by item. Each resample draws seeds and items with replacement, the same ones for both."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"paired arrays must share a (seeds, items) shape, got {a.shape} and {b.shape}")
    difference = a - b
    rng = np.random.default_rng(seed)
    seeds = rng.integers(0, a.shape[0], size=(resamples, a.shape[0]))
    items = rng.integers(0, a.shape[1], size=(resamples, a.shape[1]))
    means = np.array([difference[s][:, i].mean() for s, i in zip(seeds, items)])
    low, high = np.percentile(means, [2.5, 97.5])
    return float(difference.mean()), float(low), float(high)


def difference_cell(a: list[dict], b: list[dict]) -> str:
    mean, low, high = paired_bootstrap([r["correct"] for r in a], [r["correct"] for r in b])
    return f"{mean:+.3f} [{low:+.3f}, {high:+.3f}]"


# ----- tables ----------------------------------------------------------------------------------------------------
def arms_of(tasks: list[str], seeds: list[int], runs: dict[RunSpec, Run]) -> dict[tuple[str, str], Arm]:
    """Each (task, method label)'s arm: v1's, with d-OPSD's from step 0 (on validation, the first seed)."""
    arms = {(task, label): arm for task in tasks for label, arm in PROTOCOL_METHODS.items()}
    for task in tasks:
        arms[task, "d-OPSD"] = protocol.DOPSD_OPTIONS[protocol.chosen_option(runs, task, seeds[0])]
    return arms


def rate_table(root: Path, tasks: list[str], seeds: list[int], runs: dict[RunSpec, Run], jobs: int = 1) -> str:
    """Step 1 of v2: every rate of every grid, its score per seed and their mean."""
    choices = choose_rates(root, arms_of(tasks, seeds, runs), seeds, runs, jobs)
    rows = []
    for (task, label), choice in choices.items():
        for rate in choice.grid:
            mark = (("chosen (still at the grid's edge)" if choice.at_edge else "chosen")
                    if rate == choice.chosen else "")
            rows.append([task, label, f"{rate:g}", *[f"{window_mean(run):.3f}" for run in choice.runs[rate]],
                         f"{choice.scores[rate]:.3f}", mark])
    seed_columns = [f"seed {seed}" for seed in seeds[:RATE_SEEDS]]
    return (f"### Protocol v2, step 1: learning rate on {protocol.VALIDATION_SIZE} validation prompts "
            f"({protocol.UPDATES} updates; each cell the mean validation accuracy of the evaluations in the last "
            f"{protocol.PLATEAU_WINDOW} updates; grids grown by x{GRID_FACTOR:g} past an edge winner, at most "
            f"{MAX_GRID_STEPS} times a side)\n\n"
            + markdown_table(["task", "method", "learning rate", *seed_columns, "mean", ""], rows))


def main_v2_tables(root: Path, tasks: list[str], seeds: list[int], runs: dict[RunSpec, Run], jobs: int = 1) -> str:
    """Steps 2 and 3 of v2: each method at its own budget, then at equal compute; differences with paired
    bootstrap intervals."""
    arms = arms_of(tasks, seeds, runs)
    rates = {key: choice.chosen for key, choice in choose_rates(root, arms, seeds, runs, jobs).items()}
    groups = HeldoutRuns(root, arms, rates, seeds, jobs).train()
    labels = list(PROTOCOL_METHODS)
    own_rows, compute_rows = [], []
    for task in tasks:
        base = evaluate_on_test(bundled_model_path(task), task, root / task / "base-test.json")
        own = {label: test_results(groups[task, label], jobs) for label in labels}
        own_rows.append([task, "base", "", "", "", "", "", f"{base['accuracy']:.3f}", ""])
        for label in labels:
            members = groups[task, label]
            stop = members[0].summary["updates"]
            capped = "" if protocol.plateaued(members) else " (cap; still gaining)"
            own_rows.append([task, label, f"{rates[task, label]:g}", f"{stop}{capped}",
                             mean_spread([seconds_per_update(r) for r in members], 2),
                             mean_spread([r.best["update"] for r in members], 0),
                             mean_spread([r.best["accuracy"] for r in members]),
                             mean_spread([r["accuracy"] for r in own[label]]),
                             "" if label == "d-OPSD" else difference_cell(own["d-OPSD"], own[label])])
        limits = equal_budgets({label: groups[task, label] for label in labels})
        for name, (metric, unit) in COMPUTE.items():
            if limits[name] is None:
                continue
            read = {label: [within(r, metric, limits[name]) for r in groups[task, label]] for label in labels}
            tests = {label: test_results(read[label], jobs) for label in labels}
            for label in labels:
                if metric == "rollout_samples" and spent(groups[task, label][0], 1, metric) == 0:
                    compute_rows.append([task, f"{limits[name]:.0f} {unit}", label, "no rollouts", "", ""])
                    continue
                compute_rows.append([task, f"{limits[name]:.0f} {unit}", label,
                                     mean_spread([r.best["update"] for r in read[label]], 0),
                                     mean_spread([t["accuracy"] for t in tests[label]]),
                                     "" if label == "d-OPSD" else difference_cell(tests["d-OPSD"], tests[label])])
    own_table = markdown_table(["task", "method", "learning rate", "updates run", "s per update (rollout + update)",
                                "chosen checkpoint (update)",
                                "validation accuracy there", "test accuracy", "d-OPSD minus method [95% CI]"],
                               own_rows)
    compute_table = markdown_table(["task", "equal budget", "method", "chosen checkpoint (update)", "test accuracy",
                                    "d-OPSD minus method [95% CI]"], compute_rows)
    return (f"### Protocol v2, Table 1: test accuracy at each method's validation-chosen checkpoint (seeds {seeds}; "
            f"each run trained until its validation accuracy over the last {protocol.PLATEAU_WINDOW} updates beats "
            f"the {protocol.PLATEAU_WINDOW} before by less than {protocol.PLATEAU_GAIN:g}, mean over seeds, or "
            f"{protocol.MAX_TEST_UPDATES} updates; checkpoint: the best validation evaluation; mean ± sample std "
            f"over seeds; differences: paired bootstrap over seeds and test items, {BOOTSTRAP_RESAMPLES} "
            f"resamples)\n\n{own_table}\n"
            f"### Protocol v2, Table 2: at equal compute (each budget the smallest final spending of any method, "
            f"mean over seeds; each run read at its best validation checkpoint within the budget; rollout + update "
            f"seconds exclude evaluations and were measured on a shared 2-core CPU)\n\n{compute_table}")
