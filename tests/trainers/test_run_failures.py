"""Runs that go wrong end in one clear error and leave their folder usable: a non-finite loss, gradient or weight
stops the run before anything of it is saved; Ctrl-C says what can be done next; a finished run is not resumed
without a higher update budget; a run of several processes prints its summary once."""

import math

import pytest
import torch
from safetensors.torch import load_file
from toy import ToyTask, tiny_lm, toy_config

from dopsd.errors import DopsdError
from dopsd.trainers import DOPSDTrainer
from dopsd.trainers.finite import NonFiniteError
from dopsd.trainers.lock import LOCK_NAME
from dopsd.trainers.metrics import read_metrics


def trainer(folder, **overrides):
    values = dict(use_lora=False, max_updates=3, save_every=1, eval_every=1)
    values.update(overrides)
    return DOPSDTrainer(model=tiny_lm(), task=ToyTask(), config=toy_config(folder, **values))


def poison_update(run, update: int, what: str) -> None:
    """Makes update ``update`` of ``run`` non-finite: its loss, its gradients, or the weights its step leaves."""
    compute, after = run.compute_update, run.after_optimizer_step

    def compute_update():
        metrics = compute()
        if run.update + 1 == update:
            if what == "loss":
                metrics["loss"] = math.nan
            if what == "gradient":
                next(p for p in run.trainable_parameters() if p.grad is not None).grad.fill_(math.inf)
        return metrics

    def after_optimizer_step():
        after()
        if run.update + 1 == update and what == "weights":
            with torch.no_grad():
                run.trainable_parameters()[0].fill_(math.nan)

    run.compute_update, run.after_optimizer_step = compute_update, after_optimizer_step


def saved(folder) -> dict:
    return {path.relative_to(folder).as_posix(): path.stat().st_mtime_ns for path in folder.rglob("*")}


@pytest.mark.parametrize("what, message", [
    ("loss", "update 2: the loss is nan"),
    ("gradient", "update 2: the gradient norm is (inf|nan)"),
    ("weights", "update 2 left weights that are not finite"),
])
def test_a_non_finite_update_stops_the_run_and_keeps_the_last_finite_checkpoint(tmp_path, what, message):
    run = trainer(tmp_path)
    poison_update(run, 2, what)
    before_step = {}
    original_step = run.step

    def step():
        if run.update == 1:
            before_step.update({k: v.clone() for k, v in run.unwrapped.state_dict().items()})
        return original_step()

    run.step = step
    with pytest.raises(NonFiniteError, match=message + ".*last checkpoint \\(checkpoint-1\\) and best weights are as "
                       "they were"):
        run.train()
    folder = tmp_path / "run"
    assert sorted(p.name for p in folder.glob("checkpoint-*")) == ["checkpoint-1"]  # no checkpoint-2, no .partial
    weights = load_file(folder / "checkpoint-1" / "model" / "model.safetensors")
    assert all(torch.isfinite(value).all() for value in weights.values())
    assert all(torch.equal(weights[name], before_step[name]) for name in weights)  # the weights of update 1
    if (folder / "best").exists():
        best = load_file(folder / "best" / "model.safetensors")
        assert all(torch.isfinite(value).all() for value in best.values())
    rows = read_metrics(folder / "metrics.jsonl")
    if what != "weights":  # stopped before the step: update 2 never logged
        assert max(row["update"] for row in rows) == 1
    assert not (folder / "summary.json").exists() and not (folder / LOCK_NAME).exists()
    resumed = trainer(tmp_path, resume_from="latest").train()  # the folder resumes from its last finite checkpoint
    assert resumed["updates"] == 3


def test_without_clipping_non_finite_gradients_are_still_found(tmp_path):
    run = trainer(tmp_path, max_grad_norm=None)
    poison_update(run, 1, "gradient")
    with pytest.raises(NonFiniteError, match="update 1: a gradient is not finite.*no checkpoint yet"):
        run.train()
    assert not list((tmp_path / "run").glob("checkpoint-*"))


def test_resuming_a_finished_run_asks_for_a_higher_update_budget(tmp_path):
    trainer(tmp_path, max_updates=1).train()
    folder = tmp_path / "run"
    before = saved(folder)
    with pytest.raises(DopsdError, match="checkpoint-1 is the end of a finished run \\(1 updates\\) and max_updates "
                                         "is 1: to continue it, raise --max-updates above 1"):
        trainer(tmp_path, max_updates=1, resume_from="latest")
    assert saved(folder) == before
    assert trainer(tmp_path, max_updates=2, resume_from="latest").train()["updates"] == 2


def test_a_run_stopped_between_its_last_checkpoint_and_its_summary_still_finishes(tmp_path):
    """Not a finished run: no summary.json yet, so resuming at max_updates writes it (as experiments rely on)."""
    trainer(tmp_path, max_updates=1).train()
    (tmp_path / "run" / "summary.json").unlink()
    assert trainer(tmp_path, max_updates=1, resume_from="latest").train()["updates"] == 1


def interrupt_at(run, update: int) -> None:
    compute = run.compute_update

    def compute_update():
        if run.update + 1 == update:
            raise KeyboardInterrupt
        return compute()

    run.compute_update = compute_update


def test_ctrl_c_advice_matches_what_the_folder_holds(tmp_path):
    from dopsd.cli.train import interrupted_advice

    folder = tmp_path / "run"
    assert interrupted_advice(folder) == "nothing was written: run the same command again"
    run = trainer(tmp_path)
    interrupt_at(run, 1)  # before the first checkpoint
    with pytest.raises(KeyboardInterrupt):
        run.train()
    advice = interrupted_advice(folder)
    assert "--resume-from" not in advice and "no checkpoint was saved yet" in advice
    assert "--overwrite-output-dir" in advice and not (folder / LOCK_NAME).exists()
    with pytest.raises(DopsdError, match="no complete checkpoint"):  # what the old advice led to
        trainer(tmp_path, resume_from="latest")
    run = trainer(tmp_path, overwrite_output_dir=True)  # what the advice says works
    interrupt_at(run, 2)
    with pytest.raises(KeyboardInterrupt):
        run.train()
    assert interrupted_advice(folder) == ("continue the run from checkpoint-1 with the same command and "
                                          "--resume-from latest")
    assert trainer(tmp_path, resume_from="latest").train()["updates"] == 3


def test_the_command_line_prints_the_interrupt_advice(monkeypatch, capsys):
    from dopsd import cli

    def interrupted(args):
        error = KeyboardInterrupt()
        error.advice = "continue the run from checkpoint-4 with the same command and --resume-from latest"
        raise error

    monkeypatch.setattr(cli.evaluate, "run_eval", interrupted)  # read when main builds its parser
    assert cli.main(["eval", "--model", "m", "--task", "sudoku"]) == 130
    assert capsys.readouterr().err == ("interrupted (continue the run from checkpoint-4 with the same command and "
                                       "--resume-from latest)\n")


def test_only_the_main_process_prints_the_summary(monkeypatch, capsys, tmp_path):
    import argparse

    from dopsd.cli import train as cli_train
    from dopsd.methods import Method, get_method

    method = get_method("sft")
    config_class = method.trainer_class().config_class

    class Accelerator:
        is_main_process = False
        ended = False

        def end_training(self):
            Accelerator.ended = True

    class OtherProcess:
        def __init__(self, config):
            self.config, self.accelerator, self.output_dir = config, Accelerator(), tmp_path

        def train(self):
            return {"eval_before": {}, "eval_after": {}, "best_eval": {}}

    OtherProcess.config_class = config_class
    monkeypatch.setattr(Method, "trainer_class", lambda self: OtherProcess)
    arguments = argparse.Namespace(overrides=["--model", "m", "--task", "sudoku", "--output-dir", str(tmp_path)])
    assert cli_train.run_method(method, arguments) == 0
    assert capsys.readouterr().out == "" and Accelerator.ended


@pytest.mark.parametrize("rank, printed", [("0", True), ("1", False)])
def test_an_error_every_process_raises_is_printed_once(monkeypatch, capsys, rank, printed):
    from dopsd import cli

    def stopped(args):
        raise NonFiniteError("update 2: the loss is nan; the run stopped")

    monkeypatch.setattr(cli.evaluate, "run_eval", stopped)
    monkeypatch.setenv("RANK", rank)  # as accelerate's launcher sets it
    assert cli.main(["eval", "--model", "m", "--task", "sudoku"]) == 2
    assert capsys.readouterr().err == ("error: update 2: the loss is nan; the run stopped\n" if printed else "")
