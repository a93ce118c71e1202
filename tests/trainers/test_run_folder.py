"""A run folder is never silently restarted, a resumed run's time counts from its start, the best weights are kept."""

import json

import pytest
import torch
from safetensors.torch import load_file
from toy import ToyTask, tiny_lm, toy_config

from dopsd.errors import DopsdError
from dopsd.trainers import DOPSDTrainer
from dopsd.trainers.metrics import MetricsLogger, read_metrics


def trainer(folder, **overrides):
    return DOPSDTrainer(model=tiny_lm(), task=ToyTask(), config=toy_config(folder, use_lora=False, **overrides))


def untimed(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if "seconds" not in k and k != "tokens_per_second"} for row in rows]


def test_an_output_folder_holding_a_run_is_refused_until_resumed_or_overwritten(tmp_path):
    trainer(tmp_path).train()
    run = tmp_path / "run"
    before = {path.name: path.stat().st_mtime_ns for path in run.iterdir()}
    rows = untimed(read_metrics(run / "metrics.jsonl"))
    with pytest.raises(DopsdError, match="already holds a run .*--resume-from latest to continue it from "
                                         "checkpoint-2, --overwrite-output-dir to start over"):
        trainer(tmp_path)
    assert {path.name: path.stat().st_mtime_ns for path in run.iterdir()} == before  # nothing touched
    again = trainer(tmp_path, overwrite_output_dir=True).train()
    assert untimed(read_metrics(run / "metrics.jsonl")) == rows  # started over: the same rows once, not appended
    assert [row["update"] for row in read_metrics(run / "metrics.jsonl") if "loss" in row] == [1, 2]
    assert again["updates"] == 2


def test_an_output_dir_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "run").write_text("not a folder")
    with pytest.raises(DopsdError, match="output_dir .* is a file: name a folder"):
        trainer(tmp_path)


def test_a_resumed_run_counts_the_time_before_its_checkpoint(tmp_path):
    first = trainer(tmp_path, max_updates=1, save_every=1)
    first.train()
    saved = torch.load(tmp_path / "run" / "checkpoint-1" / "trainer_state.pt", weights_only=False)["wall_seconds"]
    assert saved > 0
    resumed = trainer(tmp_path, max_updates=2, resume_from="latest")
    summary = resumed.train()
    assert resumed.seconds_before == saved and summary["wall_seconds"] > saved


def test_every_new_best_evaluation_keeps_its_weights(tmp_path):
    run = trainer(tmp_path)
    run.output_dir.mkdir(parents=True)
    run.logger = MetricsLogger(run.output_dir)
    best = run.output_dir / "best"
    for update, accuracy in [(0, 0.5), (1, 0.7), (2, 0.6), (3, 0.7)]:
        run.update = update
        with torch.no_grad():
            next(run.unwrapped.parameters()).add_(1.0)  # weights that differ at every evaluation
        if update == 1:
            expected = {k: v.clone() for k, v in run.unwrapped.state_dict().items()}
        run.record_eval({"accuracy": accuracy, "mean_score": accuracy, "n": 10})
        if update == 0:
            assert not best.exists()  # the base model is not copied
    assert json.loads((best / "eval.json").read_text())["update"] == 1  # a tie later does not replace it
    saved = load_file(best / "model.safetensors")
    assert all(torch.equal(saved[k], expected[k]) for k in saved)
    assert json.loads((best / "sampling.json").read_text()) == {"gen_length": 12, "block_length": 4, "task": "toy"}
    summary = run.summary(1.0)
    assert summary["best_update"] == 1 and summary["best_checkpoint"] == str(best)


def test_checkpoints_carry_their_decoding_settings(tmp_path):
    trainer(tmp_path).train()
    settings = json.loads((tmp_path / "run" / "checkpoint-2" / "model" / "sampling.json").read_text())
    assert settings == {"gen_length": 12, "block_length": 4, "task": "toy"}


def test_checkpoints_say_who_wrote_them_and_only_that_trainer_resumes_them(tmp_path):
    from dopsd.trainers import RFTConfig, RFTTrainer

    trainer(tmp_path).train()
    checkpoint = tmp_path / "run" / "checkpoint-2"
    assert json.loads((checkpoint / "checkpoint.json").read_text()) == {
        "format": 3, "trainer": "DOPSDTrainer", "update": 2, "num_processes": 1}
    data = str(tmp_path / "toy.jsonl")
    other = tmp_path / "other"
    with pytest.raises(DopsdError, match="written by DOPSDTrainer, not RFTTrainer"):
        RFTTrainer(model=tiny_lm(), task=ToyTask(), config=RFTConfig(
            model="unused", train_data=data, eval_data=data, output_dir=str(other), resume_from=str(checkpoint),
            gen_length=12, block_length=4, progress=False, mixed_precision="no"))
    assert not other.exists()  # refused before anything was written
    (checkpoint / "checkpoint.json").unlink()
    with pytest.raises(DopsdError, match="earlier dopsd version"):
        trainer(tmp_path, resume_from="latest", max_updates=3)


def test_resuming_from_elsewhere_into_a_folder_holding_a_run_is_refused(tmp_path):
    trainer(tmp_path / "a").train()
    trainer(tmp_path / "b").train()
    rows = (tmp_path / "b" / "run" / "metrics.jsonl").read_text()
    source = str(tmp_path / "a" / "run" / "checkpoint-2")
    with pytest.raises(DopsdError, match="already holds a run"):
        trainer(tmp_path / "b", resume_from=source, max_updates=3)
    assert (tmp_path / "b" / "run" / "metrics.jsonl").read_text() == rows
    fresh = trainer(tmp_path / "c", resume_from=source, max_updates=3)  # an empty folder may continue another run
    assert fresh.train()["updates"] == 3


def test_overwriting_deletes_the_runs_files_and_nothing_else(tmp_path):
    trainer(tmp_path).train()
    run = tmp_path / "run"
    (run / "checkpoint-notes.md").write_text("mine")
    (run / "wandb").mkdir()
    (run / "notes.txt").write_text("mine too")
    trainer(tmp_path, overwrite_output_dir=True, max_updates=1, save_every=1, eval_every=1).train()
    assert (run / "checkpoint-notes.md").read_text() == "mine" and (run / "notes.txt").exists()
    assert not (run / "wandb").exists() and not (run / "checkpoint-2").exists() and (run / "checkpoint-1").exists()


def test_a_runs_random_streams_differ_at_every_seed(tmp_path):
    for seed in (0, 1):
        run = trainer(tmp_path / str(seed), seed=seed)
        first, second = (torch.rand(8, generator=g) for g in (run.sample_generator, run.teacher_generator))
        assert not torch.equal(first, second)
    with pytest.raises(ValueError, match="salt 7919 already exists"):
        run.generator(7919)
