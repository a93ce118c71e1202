"""A LoRA run's checkpoint evaluates directly, and `dopsd export` turns it into a full model that evaluates the same."""

import json

import pytest

from dopsd.cli import main


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("lora")
    assert main(["create-model", str(root / "base"), "--hidden-size", "32", "--layers", "2", "--heads", "2"]) == 0
    assert main(["sft", "--model", str(root / "base"), "--task", "sudoku", "--train-data", "sample", "--eval-data",
                 "sample", "--eval-limit", "4", "--gen-length", "20", "--block-length", "4", "--batch-size", "8",
                 "--max-updates", "2", "--use-lora", "--lora-r", "4", "--lora-alpha", "8", "--learning-rate", "0.05",
                 "--output-dir", str(root / "run"), "--progress", "false"]) == 0
    return root


def completions(model: str, out) -> list[str]:
    assert main(["eval", "--model", model, "--task", "sudoku", "--data", "sample", "--limit", "12", "--no-progress",
                 "--output", str(out)]) == 0
    return [json.loads(line)["completion"] for line in out.read_text().splitlines()]


def test_a_lora_checkpoint_evaluates_like_its_exported_merge(lora_run, tmp_path, capsys):
    checkpoint = lora_run / "run" / "checkpoint-2"
    assert (checkpoint / "model" / "adapter_config.json").is_file()
    assert not (checkpoint / "model" / "config.json").exists()  # an adapter, not a whole model
    adapted = completions(str(checkpoint), tmp_path / "adapter.jsonl")
    base = completions(str(lora_run / "base"), tmp_path / "base.jsonl")
    assert main(["export", str(checkpoint), str(tmp_path / "merged")]) == 0
    merged = tmp_path / "merged"
    assert (merged / "config.json").is_file() and (merged / "model.safetensors").is_file()
    assert not (merged / "adapter_config.json").exists()
    assert completions(str(merged), tmp_path / "merged.jsonl") == adapted
    assert adapted != base  # the adapter changed what the model writes
    card = (merged / "README.md").read_text()
    assert "LoRA adapter merged into" in card and "| task | sudoku |" in card and "| eval after | 2 |" in card
    assert "The weights are those of update 2 of the training run" in card
    assert json.loads((merged / "sampling.json").read_text())["gen_length"] == 20
    assert main(["export", str(checkpoint), str(merged)]) == 2  # never over an earlier export


def test_export_pushes_the_folder_to_the_hub(lora_run, tmp_path, monkeypatch, capsys):
    import huggingface_hub

    calls = []
    monkeypatch.setattr("dopsd.hub.hub_unreachable", lambda: None)
    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", lambda self, repo, exist_ok: calls.append(("create", repo)))
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder",
                        lambda self, repo_id, folder_path, commit_message: calls.append(
                            ("upload", repo_id, sorted(p.name for p in __import__("pathlib").Path(folder_path).iterdir()))))
    out = tmp_path / "pushed"
    assert main(["export", str(lora_run / "run" / "checkpoint-2"), str(out), "--push-to-hub", "me/sudoku-sft"]) == 0
    assert calls[0] == ("create", "me/sudoku-sft")
    assert calls[1][:2] == ("upload", "me/sudoku-sft") and "README.md" in calls[1][2] and "config.json" in calls[1][2]
