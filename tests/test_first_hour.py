"""What a new user does first: evaluate a bundled model by name, give a prompt from a file, score partial output."""

import io
import json

import pytest

from dopsd.bundled import bundled_data_path, bundled_model_path
from dopsd.cli import main
from dopsd.models.loading import resolve_model_path
from dopsd.tasks import get_task, load_examples


def test_bundled_models_and_data_are_addressed_by_name():
    assert resolve_model_path("bundled:sudoku") == bundled_model_path("sudoku")
    task = get_task("countdown")
    train = load_examples(task, "bundled:countdown", "train")
    held_out = load_examples(task, "bundled:countdown", "test")
    assert len(held_out) == 1000 and len(train) == len(load_examples(task, bundled_data_path("countdown", "train"),
                                                                     "train"))


def test_a_training_checkpoint_folder_means_its_model(tmp_path):
    (tmp_path / "checkpoint-8" / "model").mkdir(parents=True)
    assert resolve_model_path(tmp_path / "checkpoint-8") == str(tmp_path / "checkpoint-8" / "model")
    assert resolve_model_path(tmp_path) == str(tmp_path)  # a folder without model/ is itself


@pytest.mark.slow
def test_eval_of_a_bundled_model_uses_its_own_lengths(capsys):
    assert main(["eval", "--model", "bundled:sudoku", "--task", "sudoku", "--data", "bundled:sudoku", "--limit", "50",
                 "--no-progress"]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out.strip().splitlines()[-1])
    assert summary["gen_length"] == 20 and summary["n"] == 50
    assert "using the model's own gen_length 20 and block_length 4" in captured.err
    assert main(["eval", "--model", "bundled:sudoku", "--task", "sudoku", "--data", "bundled:sudoku", "--limit", "50",
                 "--no-progress", "--gen-length", "20", "--block-length", "4"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["accuracy"] == summary["accuracy"]


def test_a_prompt_from_a_file_or_standard_input_equals_the_same_prompt_inline(tmp_path, capsys, monkeypatch):
    (tmp_path / "p.txt").write_text("3102200002100320=")
    common = ["sample", "--model", "bundled:sudoku"]
    outputs = []
    for source in (["--prompt", "3102200002100320="], ["--prompt-file", str(tmp_path / "p.txt")], ["--prompt", "-"]):
        monkeypatch.setattr("sys.stdin", io.StringIO("3102200002100320="))
        assert main(common + source) == 0
        outputs.append(capsys.readouterr().out)
    assert outputs[0] == outputs[1] == outputs[2] and outputs[0].strip()


def test_scoring_part_of_a_data_set_says_what_is_missing(tmp_path, capsys):
    path = tmp_path / "one.jsonl"
    path.write_text('{"index": 3, "completion": "whatever"}\n')
    assert main(["score", "--task", "sudoku", "--data", "sample", "--completions", str(path)]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert (summary["n"], summary["missing"]) == (1, 31)
    assert "warning: 31 of the 32 data rows have no completion" in captured.err


def test_create_model_writes_into_a_new_folder_only(tmp_path, capsys):
    target = tmp_path / "m"
    assert main(["create-model", str(target), "--hidden-size", "32", "--layers", "1", "--heads", "2"]) == 0
    written = sorted(p.name for p in target.iterdir())
    assert "config.json" in written and "model.safetensors" in written
    assert main(["create-model", str(target)]) == 2
    assert sorted(p.name for p in target.iterdir()) == written


def test_interrupting_a_training_run_says_how_to_continue(monkeypatch, capsys, tmp_path):
    """The hint is the run's own (tests/trainers/test_run_failures.py): --resume-from latest once a checkpoint
    exists; an interrupt before the run began (loading) promises nothing to resume."""
    from dopsd.cli import train

    def interrupted(method, args):
        raise KeyboardInterrupt

    monkeypatch.setattr(train, "run_method", interrupted)
    assert main(["train"]) == 130
    assert capsys.readouterr().err == "interrupted\n"

    def interrupted_after_a_checkpoint(method, args):
        error = KeyboardInterrupt()
        error.advice = train.interrupted_advice(checkpointed)
        raise error

    checkpointed = tmp_path
    (checkpointed / "checkpoint-3").mkdir()
    monkeypatch.setattr(train, "run_method", interrupted_after_a_checkpoint)
    assert main(["train"]) == 130
    assert "continue the run from checkpoint-3 with the same command and --resume-from latest" in \
        capsys.readouterr().err


def test_a_read_only_output_place_is_refused_before_any_work(tmp_path, monkeypatch, capsys):
    import os

    real_access = os.access
    monkeypatch.setattr(os, "access",
                        lambda path, mode: False if str(path) == str(tmp_path) else real_access(path, mode))
    for arguments in (["train", "--output-dir", str(tmp_path / "run")],
                      ["eval", "--model", "bundled:sudoku", "--task", "sudoku", "--data", "sample", "--output",
                       str(tmp_path / "rows.jsonl")]):
        assert main(arguments) == 2
        assert "is not writable" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
