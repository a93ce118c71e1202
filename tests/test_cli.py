import re

import pytest
from conftest import tiny_llama

from dopsd.cli import main


@pytest.fixture
def random_model(tmp_path):
    folder = tmp_path / "random"
    assert main(["create-model", str(folder), "--hidden-size", "32", "--layers", "2", "--heads", "2"]) == 0
    return folder


def test_sample_from_a_random_builtin_model(random_model, capsys):
    args = ["sample", "--model", str(random_model), "--prompt", "12+3=", "--gen-length", "12", "--block-length", "4"]
    assert main(args + ["--steps", "6", "--trajectory"]) == 0
    lines = capsys.readouterr().out.splitlines()
    step_lines = [line for line in lines if line.startswith("step ")]
    assert len(step_lines) == 6
    for line in step_lines:
        assert len(re.findall(r"\[[^\]]*\]", line.split(" | ", 1)[1])) >= 2  # two tokens revealed per step
    assert "░" in step_lines[0] and "░" not in step_lines[-1]
    assert main(args) == 0
    assert capsys.readouterr().out.strip() == lines[-1].strip()


def test_sample_from_a_converted_tiny_llama(tmp_path, capsys):
    model, tokenizer = tiny_llama()
    model.save_pretrained(tmp_path / "llama")
    tokenizer.save_pretrained(tmp_path / "llama")
    assert main(["convert", "--model", str(tmp_path / "llama"), "--output", str(tmp_path / "mdm")]) == 0
    assert "mask token id 99" in capsys.readouterr().out
    args = ["sample", "--model", str(tmp_path / "mdm"), "--prompt", "7=", "--gen-length", "8", "--block-length", "8"]
    assert main(args + ["--temperature", "0.7", "--seed", "1", "--trajectory"]) == 0
    assert len([line for line in capsys.readouterr().out.splitlines() if line.startswith("step ")]) == 4


def test_user_errors_are_one_line(tmp_path, capsys):
    model, tokenizer = tiny_llama()
    model.save_pretrained(tmp_path / "llama")
    tokenizer.save_pretrained(tmp_path / "llama")
    for args in (
        ["sample", "--model", str(tmp_path / "missing"), "--prompt", "x"],
        ["sample", "--model", str(tmp_path / "llama"), "--prompt", "x"],
    ):
        assert main(args) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err


def test_out_of_range_option_names_the_field(random_model, capsys):
    assert main(["sample", "--model", str(random_model), "--prompt", "x", "--steps", "1000"]) == 2
    assert "'steps'" in capsys.readouterr().err


def test_the_command_line_answers_help_without_importing_torch():
    import subprocess
    import sys

    code = ("import sys\nfrom dopsd.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit as e:\n"
            "    assert e.code == 0\nheavy = [m for m in ('torch', 'transformers', 'accelerate') if m in sys.modules]\n"
            "assert not heavy, heavy\ntry:\n    main(['nosuch'])\nexcept SystemExit as e:\n    assert e.code == 2\n"
            "assert 'torch' not in sys.modules\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "usage: dopsd" in result.stdout and result.stderr.strip().startswith("error: argument COMMAND")


@pytest.mark.parametrize("task", ["sudoku", "countdown"])
def test_sample_with_a_task_writes_the_prompt_as_eval_does(task, tmp_path, capsys):
    """`sample --task T --prompt QUESTION` gives the completion `eval --task T` gives for that question (greedy): the
    prompt is written as the task writes it (sudoku's '=' suffix, countdown's 'NUMBERS>TARGET='), the question typed
    bare, as a data row holds it; the model's own task is named on stderr when --task is left out."""
    import csv
    import json

    from dopsd.bundled import bundled_data_path

    rows = tmp_path / "rows.jsonl"
    assert main(["eval", "--model", f"bundled:{task}", "--task", task, "--data", f"bundled:{task}", "--limit", "1",
                 "--output", str(rows), "--no-progress"]) == 0
    completion = json.loads(rows.read_text().splitlines()[0])["completion"]
    source = bundled_data_path(task, "heldout")
    if task == "sudoku":
        with open(source, newline="") as handle:
            question = next(csv.DictReader(handle))["Puzzle"]
    else:
        row = json.loads(open(source).readline())
        question = f"{row['input']}>{row['output']}"
    capsys.readouterr()
    assert main(["sample", "--model", f"bundled:{task}", "--task", task, "--prompt", question]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == completion.strip()
    assert "compact style" in captured.err and ("=" if task == "sudoku" else ">") in captured.err
    assert main(["sample", "--model", f"bundled:{task}", "--prompt", question]) == 0
    assert f"trained on task {task}" in capsys.readouterr().err


def test_sample_and_eval_help_say_how_a_task_prompt_is_written(capsys):
    for command in ("sample", "eval"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert "bundled:sudoku" in text and "16 digits 0-4" in text and "NUMBERS>TARGET" in text
