"""``dopsd image-opsd`` and ``dopsd image-fm`` on the command line: listed by ``dopsd --help``, every field a flag,
one closing paragraph with the numbers before and after, mistakes as one error line."""

import json
import subprocess
import sys

import pytest
from image_doubles import classifier_folder_fixture, model_folder_fixture  # noqa: F401  (fixtures)

from dopsd.cli import main


def test_the_image_commands_are_listed_without_importing_torch():
    code = ("import sys; from dopsd.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "assert 'torch' not in sys.modules and 'diffusers' not in sys.modules")
    listing = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "image-opsd" in listing and "image-fm" in listing


def test_image_opsd_help_lists_its_fields(capsys):
    with pytest.raises(SystemExit):
        main(["image-opsd", "--help"])
    text = capsys.readouterr().out
    assert "--ema-decay X" in text and "(default 0.99)" in text and "--concept TEXT" in text
    assert "bundled 4-step digit generator" in text
    # the run's fields, shared with the language commands (dopsd.trainers.config.RunConfig)
    assert "--warmup-steps N" in text and "--lr-scheduler TEXT" in text and "--keep-best" in text


@pytest.mark.slow
@pytest.mark.parametrize("command", ["image-opsd", "image-fm"])
def test_a_run_from_the_command_line(command, model_folder, classifier_folder, tmp_path, capsys):
    out = tmp_path / "run"
    assert main([command, "--model", str(model_folder), "--classifier", str(classifier_folder), "--max-updates", "1",
                 "--batch-size", "2", "--eval-samples-per-prompt", "1", "--eval-many-steps", "5", "--output-dir",
                 str(out), "--progress", "false", "--report-to", "none"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    summary = json.loads(lines[-2])
    assert summary["updates"] == 1 and summary["after"]["many_step"]["steps"] == 5
    assert "fidelity" in lines[-1] and "at 4 steps" in lines[-1] and "at 5 steps" in lines[-1]
    assert (out / "samples.png").is_file() and (out / "training.png").is_file()


@pytest.mark.parametrize("arguments, message", [
    (["image-opsd", "--concept", "wavy", "--model", "m"], "'concept' = 'wavy' must be one of"),
    (["image-fm", "--ema-decay", "0.5"], "unknown option --ema-decay"),
    (["image-opsd", "--model", "no/such/folder"], "no image model at no/such/folder"),
])
def test_mistakes_are_one_error_line(arguments, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(arguments) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and message in err
