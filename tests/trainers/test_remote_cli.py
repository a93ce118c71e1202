"""Every training command runs on the LLaDA-like and Dream-like remote-code doubles, as their folders ship."""

import json

import pytest
import yaml

from dopsd.cli import main
from dopsd.methods import METHODS

SETTINGS = {
    "dopsd": ["--passk", "2", "--prompts-per-rollout", "3", "--updates-per-rollout", "1", "--teacher-retain-ratio",
              "0.5"],
    "grpo": ["--num-generations", "2", "--prompts-per-rollout", "2", "--inner-updates", "1"],
    "rft": ["--passk", "2", "--prompts-per-rollout", "3"],
    "sft": ["--batch-size", "4"],
}


# OPDLM distils a causal LM into its converted self: its teacher cannot be a diffusion LM like these doubles; the
# image methods train an image generator.
@pytest.mark.parametrize("method", sorted({name for name, method in METHODS.items() if method.modality == "text"}
                                          - {"opdlm"}))
@pytest.mark.parametrize("double", ["llada", "dream"])
def test_each_training_command_runs_on_each_double(method, double, llada_folder, dream_folder, tmp_path, capsys):
    folder = {"llada": llada_folder, "dream": dream_folder}[double]
    out = tmp_path / "run"
    # Countdown prompts differ in length: the mask-ignoring LLaDA-like double must get unpadded rows throughout.
    arguments = [METHODS[method].command, "--model", str(folder), "--trust-remote-code", "--task", "countdown",
                 "--train-data", "sample", "--eval-data", "sample", "--eval-limit", "4", "--prompt-style", "compact",
                 "--gen-length", "12", "--block-length", "4", "--max-updates", "1", "--lora-r", "2",
                 "--output-dir", str(out), "--progress", "false", *SETTINGS[method]]
    assert main(arguments) == 0
    captured = capsys.readouterr().out
    assert "LoRA adapts 14 modules" in captured  # the paper's seven projection kinds in each of two layers
    summary = json.loads((out / "summary.json").read_text())
    assert summary["updates"] == 1
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert len(config["lora_target_modules"]) == 14 and config["trust_remote_code"] is True
