import json

import torch

from dopsd.experiments import run
from dopsd.experiments.tables import markdown_table, mean_spread
from dopsd.experiments.toy import teacher_contexts
from dopsd.sampling import Trajectory


def test_mean_spread_and_markdown():
    assert mean_spread([0.2, 0.3]) == "0.250 ± 0.050"
    assert mean_spread([0.2]) == "0.200"
    assert mean_spread([10, 20], 0) == "15 ± 5"
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
    result = run(tmp_path, "dopsd", "sudoku", 0)  # no training: the summary exists
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


def finished_run(root, spec, accuracies, samples=10):
    """A finished run of ``spec``: evaluations every update with ``accuracies``, ``samples`` rollout samples each."""
    rows = [{"update": 0, "eval_accuracy": accuracies[0], "eval_mean_score": 0.5}]
    for update, accuracy in enumerate(accuracies[1:], start=1):
        rows.append({"update": update, "loss": 0.1, "rollout_samples": samples, "rollout_seconds": 1.0,
                     "update_seconds": 1.0, "overlap_top20": 0.9})
        rows.append({"update": update, "eval_accuracy": accuracy, "eval_mean_score": 0.5})
    folder = spec.folder(root)
    folder.mkdir(parents=True)
    (folder / "summary.json").write_text(json.dumps({"task": spec.task, "updates": len(accuracies) - 1}))
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def test_main_tables_put_each_run_in_its_cell(tmp_path):
    """Hand-built finished runs and cached evaluations: every cell of Tables 1 and 2 is the number of its own runs."""
    from dopsd.experiments import METHODS, main_runs, main_spec, main_tables, run_experiments

    best = {"SFT": (0.3, 0.05), "diffu-GRPO": (0.4, 0.1), "diffu-GRPO, 1 update/rollout": (0.45, 0.15),
            "d-OPSD": (0.5, 0.2)}
    assert set(best) == set(METHODS)
    for name, per_task in best.items():
        for task, accuracy in zip(("sudoku", "countdown"), per_task):
            for seed in (0, 1):
                folder = finished_run(tmp_path, main_spec(name, task, seed), [0.0, accuracy + seed / 100, 0.01],
                                      samples=6 if name == "diffu-GRPO" else 30)
                # the best checkpoint's accuracy at the longer length, as if evaluated already
                (folder / "best-L32.json").write_text(json.dumps({"accuracy": accuracy / 10 + seed / 500}))
    for task, trained in (("sudoku", 20), ("countdown", 16)):
        for length, accuracy in ((trained, 0.0), (32, 0.001)):
            (tmp_path / task / f"base-L{length}.json").write_text(json.dumps({"accuracy": accuracy}))
    specs = main_runs(["sudoku", "countdown"], [0, 1])
    assert len(specs) == 16 and len(set(specs)) == 16
    text = run_experiments(["main"], tmp_path, ["sudoku", "countdown"], [0, 1], jobs=2)  # reads back; trains nothing
    assert (tmp_path / "main.md").read_text() == text
    lines = text.splitlines()
    assert "| method | sudoku L=20 | sudoku L=32 | countdown L=16 | countdown L=32 |" in lines
    assert "| base | 0.000 | 0.001 | 0.000 | 0.001 |" in lines
    assert "| SFT | 0.305 ± 0.005 | 0.031 ± 0.001 | 0.055 ± 0.005 | 0.006 ± 0.001 |" in lines
    assert "| diffu-GRPO | 0.405 ± 0.005 | 0.041 ± 0.001 | 0.105 ± 0.005 | 0.011 ± 0.001 |" in lines
    assert "| diffu-GRPO, 1 update/rollout | 0.455 ± 0.005 | 0.046 ± 0.001 | 0.155 ± 0.005 | 0.016 ± 0.001 |" in lines
    assert "| d-OPSD | 0.505 ± 0.005 | 0.051 ± 0.001 | 0.205 ± 0.005 | 0.021 ± 0.001 |" in lines
    # best at update 1 for every run: one update, its samples and its 2 seconds; samples per update over both updates
    # 90% of the best gain: sudoku 0.9 * 0.505 = 0.4545, reached by one seed of the one-update GRPO, by no GRPO run
    assert "| sudoku | diffu-GRPO | 0.405 ± 0.005 | 1 ± 0 | 6 ± 0 | 2 ± 0 | 6 ± 0 | not reached |" in lines
    assert "| sudoku | diffu-GRPO, 1 update/rollout | 0.455 ± 0.005 | 1 ± 0 | 30 ± 0 | 2 ± 0 | 30 ± 0 | 1 (1/2) |" in lines
    assert "| countdown | d-OPSD | 0.205 ± 0.005 | 1 ± 0 | 30 ± 0 | 2 ± 0 | 30 ± 0 | 1 ± 0 |" in lines
    assert not any(line.startswith("| sudoku | SFT") for line in lines)  # SFT samples no rollouts
    assert main_tables(tmp_path, ["sudoku", "countdown"], [0, 1],
                       {s: run(tmp_path, s.method, s.task, s.seed, s.variant) for s in specs}) == text


def test_experiments_share_runs_and_ablations_change_one_field_each():
    from dopsd.experiments import ABLATIONS, RunSpec, ablation_runs, main_runs, overlap_runs

    ablations = ablation_runs(["sudoku"], [0, 1])
    assert len(ablations) == 2 * len(ABLATIONS) and len({s.folder("r") for s in ablations}) == len(ablations)
    default = RunSpec("dopsd", "sudoku", 0)
    assert default in ablations and default in main_runs(["sudoku"], [0]) and default in overlap_runs(["sudoku"], [0])
    assert all(len(s.changes) == 1 for s in ablations if s.variant != "default")
    assert RunSpec("dopsd", "sudoku", 0, "ar-opsd", (("teacher_input", "reference"),)) in overlap_runs(["sudoku"], [0])


def test_the_protocol_chooses_options_and_rates_on_validation_and_reports_every_method_on_test(tmp_path):
    """Hand-built finished runs: step 0's best option becomes d-OPSD's row, each sweep's best validation accuracy
    picks the rate whose seeds fill the test table, and no run of an option that lost is trained further."""
    from dopsd.experiments import run_experiments
    from dopsd.experiments.protocol import (DOPSD_OPTIONS, PROTOCOL_METHODS, VALIDATION_SIZE, option_arm, option_spec,
                                            sweep_rates, sweep_runs, sweep_spec, test_spec)

    options = list(DOPSD_OPTIONS)
    for index, option in enumerate(options):  # the third option wins; the preset's run is also its sweep's middle
        finished_run(tmp_path, option_spec(option, "sudoku", 0), [0.2, 0.28 if index == 2 else 0.26, 0.25])
    arms = {**PROTOCOL_METHODS, "d-OPSD": option_arm(options[2])}
    winner = {"d-OPSD": 1, "RFT": 1, "diffu-GRPO": 0, "SFT": 2}  # index of the rate each method's sweep prefers
    gains = {"d-OPSD": 0.3, "RFT": 0.2, "diffu-GRPO": 0.1, "SFT": 0.25}
    for label, arm in arms.items():
        for index, rate in enumerate(sweep_rates(arm[0], "sudoku")):
            if not sweep_spec(arm, "sudoku", 0, rate).folder(tmp_path).exists():
                finished_run(tmp_path, sweep_spec(arm, "sudoku", 0, rate),
                             [0.2, 0.3 if index == winner[label] else 0.25, 0.25])
            if index == winner[label]:
                for seed in (0, 1):
                    folder = finished_run(tmp_path, test_spec(arm, "sudoku", seed, rate),
                                          [0.2, 0.2 + gains[label] / 2, 0.2 + gains[label] + seed / 100])
                    summary = json.loads((folder / "summary.json").read_text())
                    (folder / "summary.json").write_text(json.dumps({**summary, "wall_seconds": 60.0 * (seed + 1)}))
    specs = sweep_runs(["sudoku"], [0, 1])
    assert len(specs) == len(options) + 9 and all(dict(s.changes)["validation_size"] == VALIDATION_SIZE for s in specs)
    assert dict(option_spec(options[1], "sudoku", 0).changes)["clip"] is None
    assert dict(sweep_spec(PROTOCOL_METHODS["diffu-GRPO"], "sudoku", 0, 3e-5).changes)["inner_updates"] == 1
    text = run_experiments(["protocol"], tmp_path, ["sudoku"], [0, 1])  # reads back; trains nothing
    lines = text.splitlines()
    assert f"| sudoku | {options[2]} | 0.200 | 0.280 | 1 | 0.250 | chosen |" in lines
    assert f"| sudoku | {options[0]} | 0.200 | 0.260 | 1 | 0.250 |  |" in lines
    rates = {label: sweep_rates(arm[0], "sudoku") for label, arm in arms.items()}
    # d-OPSD's sweep is the chosen option's: its middle rate is step 0's run (0.28), the others were built above
    assert f"| sudoku | d-OPSD | {rates['d-OPSD'][1]:g} | 0.200 | 0.280 | 1 | 0.250 | chosen |" in lines
    assert f"| sudoku | d-OPSD | {rates['d-OPSD'][0]:g} | 0.200 | 0.250 | 1 | 0.250 |  |" in lines
    assert f"| sudoku | diffu-GRPO | {rates['diffu-GRPO'][0]:g} | 0.200 | 0.300 | 1 | 0.250 | chosen |" in lines
    # test: best = final (update 2, the budget's end in both seeds); 90% of d-OPSD's mean gain (0.305) is 0.4745
    assert (f"| sudoku | d-OPSD | {rates['d-OPSD'][1]:g} | 0.200 | 0.505 ± 0.005 | 0.505 ± 0.005 | 2 ± 0 (2 at the "
            "end) | 2 ± 0 | 20 ± 0 | 1.5 ± 0.5 |") in lines
    assert (f"| sudoku | diffu-GRPO | {rates['diffu-GRPO'][0]:g} | 0.200 | 0.305 ± 0.005 | 0.305 ± 0.005 | 2 ± 0 (2 at "
            "the end) | not reached | 20 ± 0 | 1.5 ± 0.5 |") in lines
    assert sum(line.startswith("| sudoku | RFT") for line in lines) == 4  # three sweep rows, one test row
    assert not (tmp_path / "sudoku" / "dopsd-protocol-lr5e-05-seed0").exists()  # the preset lost step 0
