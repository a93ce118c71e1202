import json

import torch

from dopsd.experiments import run
from dopsd.experiments.tables import markdown_table, mean_spread
from dopsd.experiments.toy import teacher_contexts
from dopsd.sampling import Trajectory


def test_mean_spread_and_markdown():
    assert mean_spread([0.2, 0.3]) == "0.250 ± 0.050"
    assert mean_spread([0.2]) == "0.200"
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
