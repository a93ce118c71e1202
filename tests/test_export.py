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


@pytest.mark.slow
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
    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo",
                        lambda self, repo, exist_ok: calls.append(("create", repo)))
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder",
                        lambda self, repo_id, folder_path, commit_message: calls.append(
                            ("upload", repo_id,
                             sorted(p.name for p in __import__("pathlib").Path(folder_path).iterdir()))))
    out = tmp_path / "pushed"
    assert main(["export", str(lora_run / "run" / "checkpoint-2"), str(out), "--push-to-hub", "me/sudoku-sft"]) == 0
    assert calls[0] == ("create", "me/sudoku-sft")
    assert calls[1][:2] == ("upload", "me/sudoku-sft") and "README.md" in calls[1][2] and "config.json" in calls[1][2]


@pytest.fixture(scope="module")
def block_run(tmp_path_factory):
    """A full fine-tuning (no LoRA) SFT run of a block-attention built-in model."""
    root = tmp_path_factory.mktemp("block")
    assert main(["create-model", str(root / "base"), "--hidden-size", "32", "--layers", "2", "--heads", "2",
                 "--block-size", "4"]) == 0
    assert main(["sft", "--model", str(root / "base"), "--task", "sudoku", "--train-data", "sample", "--eval-data",
                 "sample", "--eval-limit", "4", "--gen-length", "20", "--block-length", "4", "--batch-size", "4",
                 "--max-updates", "1", "--use-lora", "false", "--output-dir", str(root / "run"),
                 "--progress", "false"]) == 0
    return root


# Run in a fresh interpreter where dopsd cannot be imported at all: transformers alone loads the export.
PLAIN_TRANSFORMERS = """
import sys

sys.modules["dopsd"] = None  # any import of dopsd, direct or indirect, fails
import torch
from transformers import AutoModel, AutoTokenizer

folder, inputs, out = sys.argv[1:]
model = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
given = torch.load(inputs)
ids = tokenizer(given["text"], return_tensors="pt")["input_ids"]
assert ids.tolist() == given["ids"].tolist(), (ids, given["ids"])
with torch.no_grad():
    logits = model(ids, attention_mask=given.get("mask")).logits
torch.save({"logits": logits, "class": type(model).__module__}, out)
"""


def plain_transformers_logits(folder, text: str, ids, mask, tmp_path):
    import os
    import subprocess
    import sys

    import torch

    inputs, out = tmp_path / "inputs.pt", tmp_path / "out.pt"
    torch.save({"text": text, "ids": ids, **({"mask": mask} if mask is not None else {})}, inputs)
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    result = subprocess.run([sys.executable, "-c", PLAIN_TRANSFORMERS, str(folder), str(inputs), str(out)], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "custom code" not in result.stderr  # no interactive question about running the code
    saved = torch.load(out)
    assert saved["class"].startswith("transformers_modules.")  # the code shipped in the folder, not dopsd's
    return saved["logits"]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["lora, full attention", "no lora, block attention"])
def test_an_exported_builtin_model_loads_with_transformers_alone(kind, lora_run, block_run, tmp_path, capsys):
    """The export carries the built-in family's code (no dopsd import in it) and an auto_map: a fresh interpreter
    that never imports dopsd loads it with AutoModel(trust_remote_code=True) and gives dopsd's logits; dopsd loads
    the export as it loaded the checkpoint; the card gives the loading line, no local paths, the settings used."""
    import torch

    from dopsd.models import load_diffusion_lm
    from dopsd.models.export import BUILTIN_CODE_FILE

    root = lora_run if kind.startswith("lora") else block_run
    checkpoint = root / "run" / ("checkpoint-2" if kind.startswith("lora") else "checkpoint-1")
    out = tmp_path / "exported"
    assert main(["export", str(checkpoint), str(out)]) == 0
    code = (out / BUILTIN_CODE_FILE).read_text()
    assert "import dopsd" not in code and "from dopsd" not in code
    assert json.loads((out / "config.json").read_text())["auto_map"]["AutoModel"] == \
        "modeling_dopsd_mdm.MaskedDiffusionTransformer"

    trained, exported = load_diffusion_lm(checkpoint), load_diffusion_lm(out)
    assert type(exported.model) is type(trained.model) and exported.layout == trained.layout
    assert exported.layout.is_block == kind.endswith("block attention")
    # with --trust-remote-code too, dopsd runs its own code for its own family, not the copy in the folder
    assert type(load_diffusion_lm(out, trust_remote_code=True).model) is type(trained.model)
    text = "1020030031004230="
    ids = torch.tensor([trained.tokenizer(text)["input_ids"]])
    start = ids.shape[1] - 8
    mask = exported.layout.mask(None, ids.shape[1], start, 1, ids.device) if exported.layout.is_block else None
    with torch.no_grad():
        ours = trained.logits(ids, response_start=start)
        assert torch.equal(exported.logits(ids, response_start=start), ours)  # dopsd loads the export identically
    plain = plain_transformers_logits(out, text, ids, mask, tmp_path)
    assert torch.allclose(plain, ours, atol=1e-5, rtol=1e-5)

    card = (out / "README.md").read_text()
    assert 'AutoModel.from_pretrained("exported", trust_remote_code=True)' in card
    assert str(tmp_path) not in card and str(root) not in card and "/tmp" not in card
    assert "| model | base (a local path) |" in card and "| train_data | sample |" in card
    assert ("| lora_r |" in card) == kind.startswith("lora") and ("| lora_alpha |" in card) == kind.startswith("lora")
    assert ("blocks of 4 tokens" in card) == kind.endswith("block attention")
    # a model trained from the export saves no pointer to code its checkpoints do not hold
    assert "auto_map" not in exported.model.config.to_dict()
