"""The image trainers run on the language trainers' run (dopsd.trainers.run): a learning-rate schedule with warmup,
exact resume with it, evaluations through record_eval with the best weights kept, W&B allowed."""

import json

import pytest
import torch
from image_doubles import small_config, tiny_classifier, tiny_model
from safetensors.torch import load_file

from dopsd.image.config import ImageFMConfig, ImageTrainingConfig
from dopsd.image.fm import ImageFMTrainer
from dopsd.image.opsd import ImageOPSDTrainer
from dopsd.trainers.base import Trainer
from dopsd.trainers.config import RunConfig, TrainingConfig
from dopsd.trainers.run import TrainingRun
from dopsd.trainers.schedule import lr_factor


def fm(tmp_path, folder="run", **changes):
    config = small_config(ImageFMConfig, tmp_path, output_dir=str(tmp_path / folder), **changes)
    return ImageFMTrainer(config=config, model=tiny_model(), classifier=tiny_classifier())


def rows(folder):
    return [{k: v for k, v in json.loads(line).items() if "seconds" not in k}
            for line in (folder / "metrics.jsonl").read_text().splitlines()]


def test_both_families_are_one_run_with_one_config():
    assert issubclass(ImageTrainingConfig, RunConfig) and issubclass(TrainingConfig, RunConfig)
    assert issubclass(ImageOPSDTrainer, TrainingRun) and issubclass(Trainer, TrainingRun)
    with pytest.raises(TypeError):
        ImageFMTrainer(ImageFMConfig())  # keyword-only
    assert ImageFMConfig(report_to=["wandb"]).report_to == ["wandb"]


def test_warmup_and_a_schedule_set_each_updates_rate(tmp_path):
    schedule = dict(warmup_steps=2, lr_scheduler="linear", max_updates=4)
    trainer = fm(tmp_path, **schedule)
    trainer.train()
    logged = [row["learning_rate"] for row in rows(tmp_path / "run") if "loss" in row]
    # the rate after update n is the one update n + 1 uses
    expected = [1e-3 * lr_factor(n, "linear", 2, 4) for n in range(1, 5)]
    assert logged == pytest.approx(expected) and logged[0] == pytest.approx(1e-3)
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(0.0)
    constant = fm(tmp_path, "constant")  # a constant rate is not logged: image rows never gave it
    constant.train()
    assert not any("learning_rate" in row for row in rows(tmp_path / "constant"))


def test_a_resumed_scheduled_run_equals_the_uninterrupted_one(tmp_path):
    values = dict(max_updates=4, save_every=2, eval_every=2, warmup_steps=3, lr_scheduler="cosine")
    straight = fm(tmp_path, "straight", **values)
    straight.train()
    fm(tmp_path, "resumed", **{**values, "max_updates": 2}).train()
    resumed = fm(tmp_path, "resumed", **values, resume_from="latest")
    assert resumed.update == 0
    summary = resumed.train()
    assert summary["updates"] == 4 and resumed.scheduler.last_epoch == 4
    for p, q in zip(straight.model.parameters(), resumed.model.parameters(), strict=True):
        assert torch.equal(p, q)
    assert rows(tmp_path / "straight") == rows(tmp_path / "resumed")


def test_the_best_evaluation_keeps_its_weights(tmp_path):
    trainer = fm(tmp_path, max_updates=3, eval_every=1, save_every=1)
    fidelities = iter([0.1, 0.5, 0.3, 0.4])
    evaluate = trainer.evaluate

    def scripted(steps=None):
        result = evaluate(steps)
        return result if steps is not None else {**result, "fidelity": next(fidelities)}

    trainer.evaluate = scripted
    summary = trainer.train()
    run = tmp_path / "run"
    assert [entry["fidelity"] for entry in trainer.history] == [0.1, 0.5, 0.3, 0.4]
    assert summary["best_update"] == 1 and summary["best_checkpoint"] == str(run / "best")
    assert json.loads((run / "best" / "eval.json").read_text())["update"] == 1
    name = "diffusion_pytorch_model.safetensors"
    best, saved = load_file(run / "best" / name), load_file(run / "checkpoint-1" / "model" / name)
    assert best.keys() == saved.keys() and all(torch.equal(best[k], saved[k]) for k in best)
    # in-loop evaluations join their update's row, as image runs' rows always had them
    assert [row["eval_fidelity"] for row in rows(run) if "loss" in row] == [0.5, 0.3, 0.4]
    kept = fm(tmp_path, "not-kept", max_updates=1, eval_every=1, keep_best=False)
    kept.train()
    assert not (tmp_path / "not-kept" / "best").exists()
