"""Learning-rate schedules with warmup, and where metrics go (report_to)."""

import math
import sys
import types

import pytest
from toy import ToyTask, tiny_lm, toy_config

from dopsd.config import ConfigError
from dopsd.errors import DopsdError
from dopsd.trainers import DOPSDTrainer
from dopsd.trainers.schedule import lr_factor


def test_schedule_factors():
    assert [lr_factor(u, "constant", 0, 10) for u in (0, 5, 9)] == [1.0, 1.0, 1.0]
    assert [lr_factor(u, "constant", 4, 10) for u in range(5)] == [0.25, 0.5, 0.75, 1.0, 1.0]
    assert [lr_factor(u, "linear", 2, 6) for u in range(7)] == [0.5, 1.0, 1.0, 0.75, 0.5, 0.25, 0.0]
    cosine = [lr_factor(u, "cosine", 0, 4) for u in range(5)]
    assert cosine == pytest.approx([1.0, 0.5 * (1 + math.cos(math.pi / 4)), 0.5, 0.5 * (1 + math.cos(3 * math.pi / 4)),
                                    0.0])


def test_the_trainer_follows_the_schedule(tmp_path):
    trainer = DOPSDTrainer(model=tiny_lm(), task=ToyTask(), config=toy_config(
        tmp_path, use_lora=False, lr_scheduler="linear", warmup_steps=1, max_updates=3, learning_rate=0.01))
    rates = [trainer.step()["learning_rate"] for _ in range(3)]
    assert rates == pytest.approx([0.01, 0.005, 0.0])  # after update 1 (warmup done): 1.0, then 0.5, then 0


def test_metrics_reach_weights_and_biases(tmp_path, monkeypatch):
    calls = []

    class Run:
        def log(self, values, step):
            calls.append(("log", step, dict(values)))

        def finish(self):
            calls.append(("finish",))

    def init(project, name, config, dir):
        calls.append(("init", project, name, config["task"]))
        return Run()

    monkeypatch.setitem(sys.modules, "wandb", types.SimpleNamespace(init=init))
    monkeypatch.setattr("dopsd.trainers.run.package_missing", lambda name: False)
    DOPSDTrainer(model=tiny_lm(), task=ToyTask(),
                 config=toy_config(tmp_path, use_lora=False, report_to=["wandb"])).train()
    assert calls[0] == ("init", "dopsd", "run", "toy") and calls[-1] == ("finish",)
    logged = [c for c in calls if c[0] == "log"]
    assert [c[1] for c in logged if "loss" in c[2]] == [1, 2] and any("eval_accuracy" in c[2] for c in logged)
    assert not (tmp_path / "run" / "tensorboard").exists()


def test_report_to_none_keeps_only_the_jsonl_and_bad_values_are_refused(tmp_path, monkeypatch):
    DOPSDTrainer(model=tiny_lm(), task=ToyTask(),
                 config=toy_config(tmp_path, use_lora=False, report_to=["none"])).train()
    assert (tmp_path / "run" / "metrics.jsonl").is_file() and not (tmp_path / "run" / "tensorboard").exists()
    with pytest.raises(ConfigError, match="report_to"):
        toy_config(tmp_path, report_to=["mlflow"])
    with pytest.raises(ConfigError, match="lr_scheduler"):
        toy_config(tmp_path, lr_scheduler="step")
    monkeypatch.setattr("dopsd.trainers.run.package_missing", lambda name: name == "wandb")
    with pytest.raises(DopsdError, match="pip install wandb"):
        DOPSDTrainer(model=tiny_lm(), task=ToyTask(), config=toy_config(tmp_path / "b", report_to=["wandb"]))
