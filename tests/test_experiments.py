import json
import shutil

import pytest
import torch
from experiment_runs import finished_run

from dopsd.experiments import run
from dopsd.experiments.runs import run_spec
from dopsd.experiments.tables import markdown_table, mean_spread
from dopsd.experiments.toy import teacher_contexts
from dopsd.sampling import Trajectory


def test_mean_spread_and_markdown():
    assert mean_spread([0.2, 0.3]) == "0.250 ± 0.071"  # sample std (n - 1)
    assert mean_spread([0.2]) == "0.200"
    assert mean_spread([10, 20], 0) == "15 ± 7"
    assert markdown_table(["a", "b"], [[1, "x"]]) == "| a | b |\n|---|---|\n| 1 | x |\n"


def write_run(folder, rows):
    folder.mkdir(parents=True)
    (folder / "summary.json").write_text(json.dumps({"task": "sudoku", "updates": 3}))
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_finished_run_is_read_back_with_best_and_costs(tmp_path):
    rows = [
        {"update": 0, "eval_accuracy": 0.2, "eval_mean_score": 0.7},
        {"update": 1, "loss": 0.1, "rollout_samples": 16, "rollout_seconds": 1.0, "update_seconds": 0.5},
        {"update": 2, "loss": 0.1, "rollout_samples": 20, "rollout_seconds": 2.0, "update_seconds": 0.5},
        {"update": 2, "eval_accuracy": 0.3, "eval_mean_score": 0.8},
        {"update": 3, "loss": 0.1, "rollout_samples": 16, "rollout_seconds": 1.0, "update_seconds": 0.5},
        {"update": 3, "eval_accuracy": 0.3, "eval_mean_score": 0.9},
    ]
    write_run(tmp_path / "sudoku" / "dopsd-default-seed0", rows)
    result = run(tmp_path, "dopsd", "sudoku", 0, max_updates=3)  # no training: the summary says 3 updates
    assert result.best == {"update": 2, "accuracy": 0.3, "mean_score": 0.8}  # the first to reach the best
    assert result.through(2, "rollout_samples") == 36
    assert result.through(2, "rollout_seconds") + result.through(2, "update_seconds") == 4.0
    assert [e["update"] for e in result.evals] == [0, 2, 3]


def test_toy_teacher_context_reveals_rho_of_the_later_blocks_only():
    tokens = torch.arange(10, 30)
    trajectory = Trajectory(prompt_ids=torch.tensor([5]), tokens=tokens, reveal_step=torch.zeros(20, dtype=torch.long),
                            num_steps=10, num_recorded_steps=10, block_length=4, mask_id=2)
    context = teacher_contexts([trajectory, trajectory], 4, 0.5, torch.Generator().manual_seed(0))
    for row in context:
        revealed = row != 2
        assert not revealed[:4].any()  # the first block is decoded first: never revealed
        assert int(revealed.sum()) == 8  # floor(0.5 * 16 later positions)
        assert torch.equal(row[revealed], tokens[revealed])  # the trajectory's own tokens
    assert not torch.equal(context[0], context[1])  # drawn independently


@pytest.mark.slow
def test_in_parallel_keeps_order_and_raises_the_first_failure(capsys):
    import math
    import operator

    import pytest

    from dopsd.experiments.parallel import in_parallel

    assert in_parallel(operator.mul, [(1, 2), (3, 4), (5, 6)], jobs=2) == [2, 12, 30]
    assert in_parallel(operator.mul, [(1, 2), (3, 4)], jobs=1) == [2, 12]
    with pytest.raises(ValueError):
        in_parallel(math.sqrt, [(4.0,), (-1.0,)], jobs=2, describe=lambda a: f"sqrt of {a[0]}")
    assert "failed: sqrt of -1.0" in capsys.readouterr().err


def test_fill_in_parallel_makes_only_the_missing_calls_and_returns_all(tmp_path):
    from dopsd.experiments.parallel import fill_in_parallel

    made = []

    def cached(name):
        path = tmp_path / name
        if not path.exists():
            made.append(name)
            path.write_text(name.upper())
        return path.read_text()

    (tmp_path / "a").write_text("old")
    assert fill_in_parallel(cached, [("a",), ("b",)], lambda name: (tmp_path / name).exists()) == ["old", "B"]
    assert made == ["b"]


@pytest.fixture
def small_protocol(monkeypatch):
    """The protocol's budgets at the scale of hand-built runs (an evaluation every update); no run plateau-extended
    unless a test lowers ``PLATEAU_GAIN``."""
    from dopsd.experiments import protocol

    for name, value in dict(UPDATES=2, TEST_UPDATES=2, PLATEAU_WINDOW=1, PLATEAU_GAIN=1.0, EXTEND=2,
                            MAX_TEST_UPDATES=4).items():
        monkeypatch.setattr(protocol, name, value)
    return protocol


def validation_runs(root, tasks, option=2):
    """Hand-built finished runs of steps 0 and 1: step 0's ``option`` wins; the sweeps prefer the rates of
    ``SWEEP_WINNER``. Returns each method's arm and chosen rate per task."""
    from dopsd.experiments.protocol import DOPSD_OPTIONS, PROTOCOL_METHODS, SWEEPS, option_spec, sweep_spec

    options = list(DOPSD_OPTIONS)
    arms = {**PROTOCOL_METHODS, "d-OPSD": DOPSD_OPTIONS[options[option]]}
    for task in tasks:
        for index, name in enumerate(options):  # the pre-protocol option's run is also its sweep's middle rate
            folder = finished_run(root, option_spec(name, task, 0), [0.2, 0.28 if index == option else 0.26, 0.25])
            if dict(option_spec(name, task, 0).changes)["clip"] is not None:  # the clip's diagnostic, 0.4 then 0.6
                with open(folder / "metrics.jsonl", "a") as log:
                    log.write("".join(json.dumps({"update": u, "clip_grad_cosine": c}) + "\n"
                                      for u, c in ((1, 0.4), (2, 0.6))))
        for label, arm in arms.items():
            for index, rate in enumerate(SWEEPS[arm[0]]):
                if not sweep_spec(arm, task, 0, rate).folder(root).exists():
                    finished_run(root, sweep_spec(arm, task, 0, rate),
                                 [0.2, 0.3 if index == SWEEP_WINNER[label] else 0.25, 0.25])
    return arms, {label: SWEEPS[arm[0]][SWEEP_WINNER[label]] for label, arm in arms.items()}


SWEEP_WINNER = {"d-OPSD": 1, "RFT": 1, "diffu-GRPO": 0, "SFT": 2}  # index of the rate each method's sweep prefers


def test_the_protocol_chooses_options_and_rates_on_validation(tmp_path, small_protocol):
    """Step 0's best option becomes d-OPSD's row, each sweep's best validation accuracy picks the rate, and no run
    of an option that lost is trained further."""
    from dopsd.experiments import run_experiments
    from dopsd.experiments.protocol import (
        DOPSD_OPTIONS,
        PROTOCOL_METHODS,
        SWEEPS,
        VALIDATION_SIZE,
        option_spec,
        sweep_runs,
        sweep_spec,
    )

    options = list(DOPSD_OPTIONS)
    arms, rates = validation_runs(tmp_path, ["sudoku"])
    specs = sweep_runs(["sudoku"], [0, 1])
    assert len(specs) == len(options) + 9 and all(dict(s.changes)["validation_size"] == VALIDATION_SIZE for s in specs)
    assert dict(option_spec(options[1], "sudoku", 0).changes)["clip"] is None
    assert dict(option_spec(options[0], "sudoku", 0).changes)["clip"] == 0.05  # written out, not the preset's
    assert dict(sweep_spec(PROTOCOL_METHODS["diffu-GRPO"], "sudoku", 0, 3e-5).changes)["inner_updates"] == 1
    text = run_experiments(["protocol"], tmp_path, ["sudoku"], [0, 1])  # reads back; trains nothing
    lines = text.splitlines()
    assert f"| sudoku | {options[2]} | 0.200 | 0.280 | 1 | 0.250 | 0.50 | chosen |" in lines
    assert f"| sudoku | {options[0]} | 0.200 | 0.260 | 1 | 0.250 | 0.50 |  |" in lines
    assert f"| sudoku | {options[1]} | 0.200 | 0.260 | 1 | 0.250 | 1 (no clip) |  |" in lines
    # d-OPSD's sweep is the chosen option's: its middle rate is step 0's run (0.28), the others were built above
    assert f"| sudoku | d-OPSD | {SWEEPS['dopsd'][1]:g} | 0.200 | 0.280 | 1 | 0.250 | chosen |" in lines
    assert f"| sudoku | d-OPSD | {SWEEPS['dopsd'][0]:g} | 0.200 | 0.250 | 1 | 0.250 |  |" in lines
    assert f"| sudoku | diffu-GRPO | {SWEEPS['grpo'][0]:g} | 0.200 | 0.300 | 1 | 0.250 | chosen |" in lines
    assert sum(line.startswith("| sudoku | RFT") for line in lines) == 3
    assert not (tmp_path / "sudoku" / "dopsd-validation-lr1.5e-04-seed0").exists()  # the pre-protocol row lost


def test_main_tables_put_each_chosen_run_in_its_cell(tmp_path, small_protocol):
    """Tables 1 and 2 are step 2 of the protocol: each method's chosen arm and rate on every seed, on test."""
    from dopsd.experiments import main_tables, run_experiments
    from dopsd.experiments.protocol import sweep_runs, test_spec

    # countdown first, its longer column skipped: sudoku's cells must still get each row's own evaluations
    tasks, gains = ["countdown", "sudoku"], {"d-OPSD": 0.3, "RFT": 0.2, "diffu-GRPO": 0.1, "SFT": 0.25}
    arms, rates = validation_runs(tmp_path, tasks)
    for task in tasks:
        for label, arm in arms.items():
            for seed in (0, 1):
                folder = finished_run(tmp_path, test_spec(arm, task, seed, rates[label]),
                                      [0.2, 0.2 + gains[label] / 2, 0.2 + gains[label] + seed / 100],
                                      samples=0 if label == "SFT" else 10)
                summary = json.loads((folder / "summary.json").read_text())
                (folder / "summary.json").write_text(json.dumps({**summary, "wall_seconds": 60.0 * (seed + 1)}))
                if task == "sudoku":  # countdown's base solves none at 32: its checkpoints are not evaluated there
                    (folder / "best-L32-update2.json").write_text(
                        json.dumps({"accuracy": gains[label] / 10 + seed / 500}))
        for length, accuracy in (({"sudoku": 20, "countdown": 16}[task], 0.2), (32, 0.01 if task == "sudoku" else 0)):
            (tmp_path / task / f"base-L{length}.json").write_text(json.dumps({"accuracy": accuracy}))
    text = run_experiments(["main"], tmp_path, tasks, [0, 1], jobs=2)  # reads back; trains nothing
    assert (tmp_path / "main.md").read_text() == text
    lines = text.splitlines()
    assert ("| method | countdown L=16 | countdown L=16, last 1 updates | countdown L=32 | sudoku L=20 | sudoku L=20, "
            "last 1 updates | sudoku L=32 |") in lines
    assert "| base | 0.200 | 0.200 | 0.000 | 0.200 | 0.200 | 0.010 |" in lines
    assert ("| d-OPSD | 0.505 ± 0.007 | 0.505 ± 0.007 | not evaluated (base 0) | 0.505 ± 0.007 | 0.505 ± 0.007 | "
            "0.031 ± 0.001 |") in lines
    assert not list(tmp_path.glob("countdown/*/best-L32-*"))
    assert ("| RFT | 0.405 ± 0.007 | 0.405 ± 0.007 | not evaluated (base 0) | 0.405 ± 0.007 | 0.405 ± 0.007 | "
            "0.021 ± 0.001 |") in lines
    assert ("| SFT | 0.455 ± 0.007 | 0.455 ± 0.007 | not evaluated (base 0) | 0.455 ± 0.007 | 0.455 ± 0.007 | "
            "0.026 ± 0.001 |") in lines
    # best = final at update 2, the budget's end in both seeds; 90% of d-OPSD's gain: 0.2 + 0.9 * 0.305 = 0.4745
    # gain over the last update: 0.2 + gain + seed/100 - (0.2 + gain/2), mean over the seeds
    assert (f"| sudoku | d-OPSD | {rates['d-OPSD']:g} | 2 | +0.155 | 0.505 ± 0.007 | 2 ± 0 (2 at the end) | 2 ± 0 | "
            "20 ± 0 | 10 ± 0 | 4 ± 0 |") in lines
    assert (f"| countdown | diffu-GRPO | {rates['diffu-GRPO']:g} | 2 | +0.055 | 0.305 ± 0.007 | 2 ± 0 (2 at the end) | "
            "not reached | 20 ± 0 | 10 ± 0 | 4 ± 0 |") in lines
    assert (f"| sudoku | SFT | {rates['SFT']:g} | 2 | +0.130 | 0.455 ± 0.007 | 2 ± 0 (2 at the end) | not reached | "
            "0 ± 0 | 0 ± 0 |") in text
    runs = {spec: run_spec(tmp_path, spec, {}) for spec in sweep_runs(tasks, [0, 1])}
    assert main_tables(tmp_path, tasks, [0, 1], runs) == text


def test_ablations_and_overlap_change_one_thing_from_the_protocol_row(tmp_path, small_protocol):
    from dopsd.experiments import ABLATIONS, ablation_spec
    from dopsd.experiments.protocol import Choices, sweep_runs, test_spec

    arms, rates = validation_runs(tmp_path, ["sudoku"], option=1)  # no clip wins step 0
    runs = {spec: run_spec(tmp_path, spec, {})
            for spec in sweep_runs(["sudoku"], [0])}
    choices = Choices(tmp_path, ["sudoku"], [0], runs)
    row = test_spec(arms["d-OPSD"], "sudoku", 0, rates["d-OPSD"])
    assert choices.test_specs("sudoku", "d-OPSD", [0]) == [row]
    specs = {name: ablation_spec(choices, "sudoku", 0, name) for name in ABLATIONS}
    assert specs["no clip"] == row  # the row has no clip already: the same runs
    assert len(set(specs.values())) == len(ABLATIONS)
    for name, spec in specs.items():
        changed = {k: v for k, v in spec.changes if dict(row.changes).get(k, "unset") != v}
        assert changed == {k: v for k, v in ABLATIONS[name].items() if dict(row.changes).get(k, "unset") != v}, name
        assert changed or name == "no clip"
    assert specs["clip 0.05 on all entries"].folder(tmp_path).name == (
        "dopsd-no-clip-clip-005-on-all-entries-test-lr5e-05-seed0")


def test_ablation_table_and_overlap_figure_read_the_protocol_rows_runs(tmp_path, small_protocol, monkeypatch):
    from dopsd.experiments import ABLATIONS, ablation_spec, overlap_specs, run_experiments
    from dopsd.experiments.protocol import Choices, sweep_runs

    monkeypatch.setattr(small_protocol, "PLATEAU_WINDOW", 2)  # the mean of updates 1-2's evaluations

    validation_runs(tmp_path, ["sudoku"], option=1)
    runs = {spec: run_spec(tmp_path, spec, {}) for spec in sweep_runs(["sudoku"], [0])}
    choices = Choices(tmp_path, ["sudoku"], [0], runs)
    row = choices.test_specs("sudoku", "d-OPSD", [0])[0]
    finished_run(tmp_path, row, [0.2, 0.3, 0.29])
    for index, name in enumerate(ABLATIONS):
        if not ablation_spec(choices, "sudoku", 0, name).folder(tmp_path).exists():
            finished_run(tmp_path, ablation_spec(choices, "sudoku", 0, name), [0.2, 0.21 + index / 100, 0.2])
    finished_run(tmp_path, overlap_specs(choices, "sudoku", 0)["AR-style OPSD"], [0.2, 0.1, 0.05])
    text = run_experiments(["ablations", "overlap"], tmp_path, ["sudoku"], [0])  # reads back; trains nothing
    lines = text.splitlines()
    assert "| protocol row | 0.300 | 0.295 | 0.290 | 1 |" in lines
    assert "| no clip (= the protocol row) | 0.300 | 0.295 | 0.290 | 1 |" in lines
    assert "| rho 0.25 | 0.210 | 0.205 | 0.200 | 1 |" in lines
    assert "| AR-style OPSD | 0.900 | 0.900 | 0.200 | 0.200 | 0 |" in lines
    assert (tmp_path / "overlap-sudoku.png").stat().st_size > 0


def test_the_plateau_rule_continues_only_the_methods_still_gaining(tmp_path, small_protocol, monkeypatch):
    """Runs already trained to 4 updates are read as they stood at each budget: a method gaining less than
    PLATEAU_GAIN over the last PLATEAU_WINDOW stops there, one still gaining continues by EXTEND, up to the cap."""
    from dopsd.experiments.protocol import Choices, plateaued, sweep_runs, test_spec, window_gain

    monkeypatch.setattr(small_protocol, "PLATEAU_GAIN", 0.01)
    arms, rates = validation_runs(tmp_path, ["sudoku"])
    curves = {"d-OPSD": [0.2, 0.3, 0.4, 0.45, 0.45],  # gains 0.1 at update 2, then 0 at 4: stops at 4
              "RFT": [0.2, 0.3, 0.3, 0.5, 0.6],  # flat at update 2: stops there, the later rise unseen
              "diffu-GRPO": [0.2, 0.3, 0.4, 0.5, 0.6],  # still gaining at the cap (4)
              "SFT": [0.2, 0.3, 0.305, 0.3, 0.3]}  # gains 0.005 < 0.01 at update 2
    for label, curve in curves.items():
        for seed in (0, 1):
            finished_run(tmp_path, test_spec(arms[label], "sudoku", seed, rates[label], 4), curve)
    runs = {spec: run_spec(tmp_path, spec, {}) for spec in sweep_runs(["sudoku"], [0])}
    results = Choices(tmp_path, ["sudoku"], [0, 1], runs).test_runs([0, 1])  # reads back; trains nothing
    ran = {label: [r.summary["updates"] for r in results["sudoku", label]] for label in curves}
    assert ran == {"d-OPSD": [4, 4], "RFT": [2, 2], "diffu-GRPO": [4, 4], "SFT": [2, 2]}
    rft = results["sudoku", "RFT"][0]
    assert [e["update"] for e in rft.evals] == [0, 1, 2]
    assert rft.best == {"update": 1, "accuracy": 0.3, "mean_score": 0.5}
    assert window_gain(results["sudoku", "d-OPSD"][0]) == 0.0 and plateaued(results["sudoku", "d-OPSD"])
    assert window_gain(results["sudoku", "diffu-GRPO"][0]) == pytest.approx(0.1)
    assert not plateaued(results["sudoku", "diffu-GRPO"])
    assert window_gain(results["sudoku", "SFT"][0]) == pytest.approx(0.005)
    for group in results.values():  # Table 2 says where each method stopped, and which one the cap stopped
        for result in group:
            (result.folder / f"best-L32-update{result.best['update']}.json").write_text(json.dumps({"accuracy": 0.0}))
    for length in (20, 32):
        (tmp_path / "sudoku" / f"base-L{length}.json").write_text(json.dumps({"accuracy": 0.2}))
    from dopsd.experiments import main_tables

    rows = {line.split(" | ")[1]: line.split(" | ")[3:5] for line in main_tables(tmp_path, ["sudoku"], [0, 1], runs)
            .splitlines() if line.startswith("| sudoku |")}
    assert rows == {"d-OPSD": ["4", "+0.000"], "RFT": ["2", "+0.000"],
                    "diffu-GRPO": ["4 (cap; still gaining)", "+0.100"], "SFT": ["2", "+0.005"]}
    monkeypatch.setattr(small_protocol, "PLATEAU_WINDOW", 2)  # updates 3-4 against 1-2
    dopsd = results["sudoku", "d-OPSD"][0]
    assert small_protocol.window_mean(dopsd) == pytest.approx(0.45)
    assert small_protocol.window_mean(dopsd, 1) == pytest.approx(0.35) and window_gain(dopsd) == pytest.approx(0.1)


def test_a_method_still_gaining_in_copies_without_checkpoints_is_reported_as_it_stands(tmp_path, small_protocol,
                                                                                      monkeypatch):
    """Copies kept without checkpoints (docs/results) of runs the plateau rule would continue are read where they
    stopped, and Tables 1-2 say so instead of stopping the command; a method that plateaued is reported as usual."""
    from dopsd.experiments import main_tables
    from dopsd.experiments.protocol import Choices, sweep_runs, test_spec

    monkeypatch.setattr(small_protocol, "PLATEAU_GAIN", 0.01)
    arms, rates = validation_runs(tmp_path, ["sudoku"])
    curves = {"d-OPSD": [0.2, 0.3, 0.4], "RFT": [0.2, 0.3, 0.3, 0.3, 0.3], "diffu-GRPO": [0.2, 0.25, 0.3],
              "SFT": [0.2, 0.3, 0.3]}  # d-OPSD and diffu-GRPO gain >= 0.01 at update 2, where their copies end
    for label, curve in curves.items():
        for seed in (0, 1):
            folder = finished_run(tmp_path, test_spec(arms[label], "sudoku", seed, rates[label]), curve)
            if label != "diffu-GRPO":  # evaluated at the longer length before being copied
                best = 1 if label == "RFT" else len(curve) - 1
                (folder / f"best-L32-update{best}.json").write_text(json.dumps({"accuracy": 0.1}))
    for length in (20, 32):
        (tmp_path / "sudoku" / f"base-L{length}.json").write_text(json.dumps({"accuracy": 0.2}))
    runs = {spec: run_spec(tmp_path, spec, {}) for spec in sweep_runs(["sudoku"], [0])}
    choices = Choices(tmp_path, ["sudoku"], [0, 1], runs)
    results = choices.test_runs([0, 1])  # reads back; trains nothing
    assert choices.short == {("sudoku", "d-OPSD"), ("sudoku", "diffu-GRPO")}
    assert {label: results["sudoku", label][0].summary["updates"] for label in curves} == {
        "d-OPSD": 2, "RFT": 2, "diffu-GRPO": 2, "SFT": 2}
    text = main_tables(tmp_path, ["sudoku"], [0, 1], runs)
    rows = {line.split(" | ")[1]: line.split(" | ")[3:5] for line in text.splitlines() if line.startswith("| sudoku |")}
    assert rows == {"d-OPSD": ["2 (still gaining; not continued: its checkpoints are not kept here)", "+0.100"],
                    "RFT": ["2", "+0.000"], "SFT": ["2", "+0.000"],
                    "diffu-GRPO": ["2 (still gaining; not continued: its checkpoints are not kept here)", "+0.050"]}
    table1 = {line.split(" | ")[0]: line.split(" | ")[-1] for line in text.splitlines()}
    assert table1["| d-OPSD"] == "0.100 ± 0.000 |"
    assert table1["| diffu-GRPO"] == "not evaluated (best checkpoint not kept) |"


@pytest.mark.slow
def test_a_run_asked_for_more_updates_continues_from_its_last_checkpoint(tmp_path):
    """The runner's `finished` counts updates: a finished run asked for more resumes in place; one whose
    checkpoints were not kept is refused with the folder left as it was."""
    from dopsd.errors import DopsdError
    from dopsd.experiments.runs import finished

    settings = dict(eval_every=1, eval_limit=4, batch_size=2)
    first = run(tmp_path, "sft", "sudoku", 0, "short", max_updates=1, **settings)
    folder = first.folder
    assert finished(folder) and finished(folder, 1) and not finished(folder, 2)
    second = run(tmp_path, "sft", "sudoku", 0, "short", max_updates=2, **settings)
    assert second.summary["updates"] == 2 and [e["update"] for e in second.evals] == [0, 1, 2]
    assert second.rows[: len(first.rows)] == first.rows  # continued, not restarted
    assert run(tmp_path, "sft", "sudoku", 0, "short", max_updates=1, **settings).summary["updates"] == 2  # read back
    metrics = (folder / "metrics.jsonl").read_text()
    for kept in (["checkpoint-1"], []):  # the last update's checkpoint gone (a copy that kept the best only), then all
        for checkpoint in folder.glob("checkpoint-*"):
            if checkpoint.name not in kept:
                shutil.rmtree(checkpoint)
        before = sorted(path.name for path in folder.iterdir())
        with pytest.raises(DopsdError, match="not the checkpoint of its last update"):
            run(tmp_path, "sft", "sudoku", 0, "short", max_updates=3, **settings)
        assert sorted(path.name for path in folder.iterdir()) == before
        assert (folder / "metrics.jsonl").read_text() == metrics  # nothing retrained, nothing cut
        # asked to take it as it stands, the runner reads it back unchanged
        kept_run = run(tmp_path, "sft", "sudoku", 0, "short", short_ok=True, max_updates=3, **settings)
        assert kept_run.summary["updates"] == 2 and kept_run.rows == second.rows
        assert sorted(path.name for path in folder.iterdir()) == before
