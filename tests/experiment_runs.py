"""Hand-built finished experiment runs, for the experiment tests."""

import json


def finished_run(root, spec, accuracies, samples=10, seconds=1.0):
    """A finished run of ``spec``: an evaluation after every update with ``accuracies`` (whatever the run evaluates:
    test, or validation for a run with ``validation_size``), ``samples`` rollout samples and ``seconds`` of rollout
    and of update time each."""
    rows = [{"update": 0, "eval_accuracy": accuracies[0], "eval_mean_score": 0.5}]
    for update, accuracy in enumerate(accuracies[1:], start=1):
        rows.append({"update": update, "loss": 0.1, "rollout_samples": samples, "rollout_seconds": seconds,
                     "update_seconds": seconds, "overlap_top20": 0.9})
        rows.append({"update": update, "eval_accuracy": accuracy, "eval_mean_score": 0.5})
    folder = spec.folder(root)
    folder.mkdir(parents=True)
    (folder / "summary.json").write_text(json.dumps({"task": spec.task, "updates": len(accuracies) - 1}))
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder
