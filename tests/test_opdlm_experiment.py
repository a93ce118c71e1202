"""`dopsd experiment opdlm`: accuracy by training tokens, and the tokens each method needs to reach 90% of the
teacher, from hand-written runs."""

from pathlib import Path

import dopsd.experiments.opdlm as experiment
from dopsd.experiments import EXPERIMENTS
from dopsd.experiments.runs import Run


def fake_run(accuracies, tokens_per_update, data_per_update=None, teacher=0.8):
    """An SFT run, or with ``data_per_update`` an OPDLM run (one rollout an update)."""
    rows = [{"update": 0, "eval_accuracy": accuracies[0], "eval_mean_score": 0.0}]
    for update, accuracy in enumerate(accuracies[1:], start=1):
        row = {"update": update, "loss": 1.0, "tokens": tokens_per_update}
        if data_per_update is not None:
            row.update(states=4, rollout_seconds=1.0, rollout_samples=2, data_tokens=data_per_update)
        rows += [row, {"update": update, "eval_accuracy": accuracy, "eval_mean_score": 0.0}]
    summary = {"updates": len(accuracies) - 1, "teacher_eval": {"accuracy": teacher}}
    return Run(Path("."), summary, rows)


def test_curve_counts_tokens_through_each_evaluation_and_finds_the_first_crossing():
    run = fake_run([0.0, 0.3, 0.75, 0.7], 100)
    assert experiment.curve(run) == [(0, 0.0), (100, 0.3), (200, 0.75), (300, 0.7)]
    assert experiment.curve(run, "data") == experiment.curve(run)  # SFT: each example is data once
    assert experiment.tokens_to(run, 0.72) == 200
    assert experiment.tokens_to(run, 0.8) is None
    opdlm = fake_run([0.0, 0.3], 400, 74)
    assert experiment.curve(opdlm, "data") == [(0, 0.0), (74, 0.3)]
    # logged before data_tokens existed: samples x the length of each state's sequence
    assert experiment.data_tokens({"update": 1, "rollout_seconds": 1.0, "states": 8, "tokens": 296,
                                   "rollout_samples": 2}) == 74


def test_table_reports_tokens_to_shares_of_the_teacher(tmp_path, monkeypatch):
    runs = {("block", 0): fake_run([0.0, 0.5, 0.75], 1000, 250), ("block", 1): fake_run([0.0, 0.73, 0.74], 1000, 250),
            ("full", 0): fake_run([0.0, 0.1, 0.75], 400, 50), ("full", 1): fake_run([0.0, 0.1, 0.5], 400, 50),
            ("from-converted", 0): fake_run([0.0, 0.1, 0.2], 100),
            ("from-converted", 1): fake_run([0.0, 0.2, 0.3], 100)}
    monkeypatch.setattr(experiment, "converted_start", lambda root, task: "converted")
    monkeypatch.setattr(experiment, "train_runs", lambda root, specs, jobs: {s: runs[s.variant, s.seed] for s in specs})
    text = experiment.opdlm_table(tmp_path, ["sudoku", "countdown"], [0, 1], {})
    assert "AR teacher 0.800" in text and "countdown" not in text
    block, full, sft = [line for line in text.splitlines() if line.startswith("| OPDLM") or line.startswith("| masked")]
    # levels 0.2 and 0.72; columns: data tokens to each, then sequence tokens to each, then the totals
    assert block.startswith("| OPDLM, block student |") and full.startswith("| OPDLM, full attention |")
    assert "| 250 (2/2 seeds) | 375 (2/2 seeds) | 1,000 (2/2 seeds) | 1,500 (2/2 seeds) | 500 | 2,000 |" in block
    assert "| 100 (2/2 seeds) | 100 (1/2 seeds) | 800 (2/2 seeds) | 800 (1/2 seeds) | 100 | 800 |" in full
    assert "| 150 (2/2 seeds) | not reached in 200 | 150 (2/2 seeds) | not reached in 200 | 200 | 200 |" in sft
    assert (tmp_path / "opdlm-sudoku.png").stat().st_size > 1000
    assert "opdlm" in EXPERIMENTS
