"""`dopsd experiment opdlm`: accuracy by training tokens, and the tokens each method needs to reach 90% of the
teacher, from hand-written runs."""

from pathlib import Path

import dopsd.experiments.opdlm as experiment
from dopsd.experiments import EXPERIMENTS
from dopsd.experiments.runs import Run


def fake_run(accuracies, tokens_per_update, teacher=0.8):
    rows = [{"update": 0, "eval_accuracy": accuracies[0], "eval_mean_score": 0.0}]
    for update, accuracy in enumerate(accuracies[1:], start=1):
        rows += [{"update": update, "loss": 1.0, "tokens": tokens_per_update},
                 {"update": update, "eval_accuracy": accuracy, "eval_mean_score": 0.0}]
    summary = {"updates": len(accuracies) - 1, "teacher_eval": {"accuracy": teacher}}
    return Run(Path("."), summary, rows)


def test_curve_counts_tokens_through_each_evaluation_and_finds_the_first_crossing():
    run = fake_run([0.0, 0.3, 0.75, 0.7], 100)
    assert experiment.curve(run) == [(0, 0.0), (100, 0.3), (200, 0.75), (300, 0.7)]
    assert experiment.tokens_to(run, 0.72) == 200
    assert experiment.tokens_to(run, 0.8) is None


def test_table_reports_tokens_to_90_percent_of_the_teacher(tmp_path, monkeypatch):
    runs = {("opdlm", 0): fake_run([0.0, 0.5, 0.75], 1000), ("opdlm", 1): fake_run([0.0, 0.73, 0.74], 1000),
            ("sft", 0): fake_run([0.0, 0.1, 0.2], 100), ("sft", 1): fake_run([0.0, 0.2, 0.3], 100)}
    monkeypatch.setattr(experiment, "converted_start", lambda root, task: "converted")
    monkeypatch.setattr(experiment, "train_runs", lambda root, specs, jobs: {s: runs[s.method, s.seed] for s in specs})
    text = experiment.opdlm_table(tmp_path, ["sudoku", "countdown"], [0, 1], {})
    assert "AR teacher 0.800" in text and "countdown" not in text
    opdlm, sft = [line for line in text.splitlines() if line.startswith("| OPDLM") or line.startswith("| masked")]
    assert "| 1,500 (2/2 seeds) |" in opdlm  # 0.72 reached after 2,000 and 1,000 tokens
    assert "not reached in 200" in sft
    assert (tmp_path / "opdlm-sudoku.png").stat().st_size > 1000
    assert "opdlm" in EXPERIMENTS
