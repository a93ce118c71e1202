"""Protocol v2 on hand-built runs: rates chosen on two validation seeds with grids grown past an edge, the plateau
rule and the checkpoint read on validation, the test set evaluated at the chosen points only, paired bootstrap
intervals and equal-compute budgets."""

import json

import numpy as np
import pytest
from experiment_runs import finished_run

from dopsd.experiments import protocol, protocol_v2
from dopsd.experiments.protocol import DOPSD_OPTIONS, PROTOCOL_METHODS, sweep_spec
from dopsd.experiments.protocol_v2 import (
    HeldoutRuns,
    RateChoice,
    best_rate,
    choose_rates,
    equal_budgets,
    grown,
    heldout_spec,
    paired_bootstrap,
    seconds_per_update,
    within,
)
from dopsd.experiments.runs import run_spec


@pytest.fixture
def small(monkeypatch):
    """v1's budgets at the scale of hand-built runs: an evaluation every update, windows of one update."""
    for name, value in dict(UPDATES=2, TEST_UPDATES=2, PLATEAU_WINDOW=1, PLATEAU_GAIN=0.01, EXTEND=2,
                            MAX_TEST_UPDATES=6).items():
        monkeypatch.setattr(protocol, name, value)
    return protocol


def read(root, spec):
    return run_spec(root, spec, {})


def test_best_rate_and_grid_growth():
    assert best_rate({1e-5: 0.3, 3e-5: 0.4, 9e-5: 0.4}) == 3e-5  # a tie goes to the smaller rate
    assert grown((1e-5, 3e-5, 9e-5), 9e-5) == (1e-5, 3e-5, 9e-5, 2.7e-4)
    assert grown((1.67e-5, 5e-5), 1.67e-5) == (5.57e-6, 1.67e-5, 5e-5)
    assert grown((1e-5, 3e-5, 9e-5), 3e-5) is None


def test_rates_are_chosen_on_two_seeds_and_the_grid_grows_past_an_edge_winner(tmp_path, small, monkeypatch):
    """diffu-GRPO's grid (1e-5, 3e-5, 9e-5): seed 0 alone would pick 3e-5, the two-seed mean picks 9e-5, an edge, so
    2.7e-4 is trained on both seeds; it loses, and 9e-5 is chosen, now interior."""
    monkeypatch.setattr(protocol_v2, "MAX_GRID_STEPS", 2)
    arm = PROTOCOL_METHODS["diffu-GRPO"]
    last = {(0, 1e-5): 0.30, (0, 3e-5): 0.40, (0, 9e-5): 0.38, (1, 1e-5): 0.30, (1, 3e-5): 0.30, (1, 9e-5): 0.40,
            (0, 2.7e-4): 0.20, (1, 2.7e-4): 0.39}
    for (seed, rate), accuracy in last.items():
        finished_run(tmp_path, sweep_spec(arm, "sudoku", seed, rate), [0.2, 0.2, accuracy])
    runs = {}
    choices = choose_rates(tmp_path, {("sudoku", "diffu-GRPO"): arm}, [0, 1, 2], runs)  # reads back; trains nothing
    choice = choices["sudoku", "diffu-GRPO"]
    assert choice.grid == (1e-5, 3e-5, 9e-5, 2.7e-4) and choice.chosen == 9e-5 and not choice.at_edge
    assert choice.scores[9e-5] == pytest.approx(0.39) and choice.scores[3e-5] == pytest.approx(0.35)
    assert [r.folder.name for r in choice.runs[9e-5]] == ["grpo-one-update-validation-lr9e-05-seed0",
                                                          "grpo-one-update-validation-lr9e-05-seed1"]
    assert not sweep_spec(arm, "sudoku", 2, 9e-5).folder(tmp_path).exists()  # only RATE_SEEDS seeds


def test_a_grid_grows_at_most_max_grid_steps_a_side_and_says_so(tmp_path, small, monkeypatch):
    monkeypatch.setattr(protocol_v2, "MAX_GRID_STEPS", 1)
    arm = PROTOCOL_METHODS["SFT"]
    choice = RateChoice(arm, "sudoku", [0, 1])
    for rate, accuracy in ((1.67e-5, 0.3), (5e-5, 0.35), (1.5e-4, 0.4), (4.5e-4, 0.45)):
        for seed in (0, 1):
            finished_run(tmp_path, sweep_spec(arm, "sudoku", seed, rate), [0.2, 0.2, accuracy])
    runs = {spec: read(tmp_path, spec) for spec in [sweep_spec(arm, "sudoku", s, r) for s in (0, 1)
                                                    for r in (1.67e-5, 5e-5, 1.5e-4, 4.5e-4)]}
    assert choice.take(runs) and choice.grid[-1] == 4.5e-4
    assert not choice.take(runs)  # grown once already on that side
    assert choice.chosen == 4.5e-4 and choice.at_edge


def test_the_stopping_rule_and_the_checkpoint_read_validation_only(tmp_path, small, monkeypatch):
    """Two worlds with the same validation curves and opposite test results: the budgets, the chosen checkpoints and
    the test evaluations asked for are the same, and only at the chosen points."""
    arms = {("sudoku", "d-OPSD"): DOPSD_OPTIONS["no clip"], ("sudoku", "RFT"): PROTOCOL_METHODS["RFT"]}
    rates = {("sudoku", "d-OPSD"): 1.5e-4, ("sudoku", "RFT"): 5e-5}
    validation = {"d-OPSD": [0.2, 0.3, 0.4, 0.45, 0.45], "RFT": [0.2, 0.35, 0.3, 0.5, 0.6]}
    worlds = {}
    for world in ("a", "b"):
        root = tmp_path / world
        for (task, label), arm in arms.items():
            for seed in (0, 1):
                spec = heldout_spec(arm, task, seed, rates[task, label], 6)
                finished_run(root, spec, validation[label])
                assert dict(spec.changes)["validation_size"] == protocol.VALIDATION_SIZE
        groups = HeldoutRuns(root, arms, rates, [0, 1]).train()  # reads back; trains nothing
        asked = []

        def evaluate_on_test(model, task, cache, world=world, asked=asked):  # evaluates once, then reads the cache
            if not cache.is_file():
                asked.append(cache.name)
                cache.write_text(json.dumps({"accuracy": 0.9 if world == "a" else 0.1, "correct": [1]}))
            return json.loads(cache.read_text())

        monkeypatch.setattr(protocol_v2, "evaluate_on_test", evaluate_on_test)
        tests = {key: protocol_v2.test_results(runs) for key, runs in groups.items()}
        worlds[world] = ({key: [r.summary["updates"] for r in runs] for key, runs in groups.items()},
                         {key: [r.best["update"] for r in runs] for key, runs in groups.items()}, asked)
        assert {t["accuracy"] for results in tests.values() for t in results} == {0.9 if world == "a" else 0.1}
    assert worlds["a"] == worlds["b"]
    budgets, chosen, asked = worlds["a"]
    # d-OPSD gains 0.1 in its last update at 2 (continued), 0 at 4 (stops); RFT loses 0.05 at 2 (stops)
    assert budgets == {("sudoku", "d-OPSD"): [4, 4], ("sudoku", "RFT"): [2, 2]}
    assert chosen == {("sudoku", "d-OPSD"): [3, 3], ("sudoku", "RFT"): [1, 1]}
    assert sorted(asked) == ["test-update1.json"] * 2 + ["test-update3.json"] * 2


def test_paired_bootstrap_exact_cases():
    ones, zeros = np.ones((3, 50)), np.zeros((3, 50))
    assert paired_bootstrap(ones, zeros) == (1.0, 1.0, 1.0)
    same = np.random.default_rng(1).integers(0, 2, size=(3, 200))
    assert paired_bootstrap(same, same) == (0.0, 0.0, 0.0)  # pairing: identical answers never differ
    a = np.random.default_rng(2).integers(0, 2, size=(3, 400))
    b = np.where(np.random.default_rng(3).random((3, 400)) < 0.1, 1 - a, a)  # b = a with 10% of items flipped
    mean, low, high = paired_bootstrap(a, b)
    assert mean == pytest.approx((a - b).mean()) and low < mean < high and high - low < 0.1
    assert paired_bootstrap(a, b) == (mean, low, high)  # seeded
    with pytest.raises(ValueError):
        paired_bootstrap(np.ones((2, 3)), np.ones((3, 3)))


def test_equal_budgets_read_each_run_within_the_smallest_spending(tmp_path, small):
    """d-OPSD: 4 updates of 4 s and 96 samples; RFT: 6 of 2 s and 96 samples; SFT: 6 of 1 s, no rollouts."""
    def made(label, updates, accuracies, samples, seconds):
        spec = heldout_spec(DOPSD_OPTIONS["no clip"] if label == "d-OPSD" else PROTOCOL_METHODS[label], "sudoku", 0,
                            1e-4, updates)
        finished_run(tmp_path, spec, accuracies, samples=samples, seconds=seconds)
        return read(tmp_path, spec)

    dopsd = made("d-OPSD", 4, [0.2, 0.5, 0.4, 0.3, 0.3], 96, 2.0)
    rft = made("RFT", 6, [0.2, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7], 96, 1.0)
    sft = made("SFT", 6, [0.2] * 7, 0, 0.5)
    limits = equal_budgets({"d-OPSD": [dopsd], "RFT": [rft], "SFT": [sft]})
    assert limits == {"updates": 4.0, "rollout samples": 384.0, "wall seconds": 6.0}  # SFT samples nothing
    assert within(rft, None, 4).summary["updates"] == 4 and within(rft, None, 4).best["update"] == 4
    assert within(rft, "seconds", 6.0).best["update"] == 3  # 2 s an update: 3 updates in 6 s
    assert within(dopsd, "seconds", 6.0).best["update"] == 1  # 4 s an update: its best within 1 update
    assert within(sft, "rollout_samples", 384.0).summary["updates"] == 6
    assert equal_budgets({"d-OPSD": [dopsd], "SFT": [sft]})["rollout samples"] is None
    # Table 1's frame of the equal-time budget: rollout plus update seconds per update
    assert [seconds_per_update(run) for run in (dopsd, rft, sft)] == [4.0, 2.0, 1.0]
    assert seconds_per_update(rft.upto(3)) == 2.0
