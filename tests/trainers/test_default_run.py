"""The built-in default: `dopsd train` with no model runs d-OPSD on the bundled Sudoku model (CI-sized here)."""

import json

import pytest
from transformers import AutoModel

from dopsd.bundled import BUNDLED_TASKS, bundled_data_path, bundled_model_path
from dopsd.cli import main
from dopsd.evaluation import evaluate
from dopsd.models import MaskedDiffusionTransformer, load_diffusion_lm
from dopsd.sampling import SamplerConfig
from dopsd.tasks import get_task

TASKS = sorted(BUNDLED_TASKS)
GEN_LENGTH = {"sudoku": 20, "countdown": 16, "countdown-steps": 24}


@pytest.mark.parametrize("name", TASKS)
def test_bundled_model_loads_offline_with_auto_classes(name):
    model = AutoModel.from_pretrained(bundled_model_path(name))
    assert isinstance(model, MaskedDiffusionTransformer)
    assert sum(p.numel() for p in model.parameters()) < 3_000_000


@pytest.mark.parametrize("name", TASKS)
def test_bundled_splits_never_overlap(name):
    task = get_task(name)
    train = {(e.prompt, e.answer) for e in task.load(bundled_data_path(name, "train"))}
    heldout = {(e.prompt, e.answer) for e in task.load(bundled_data_path(name, "heldout"))}
    assert len(heldout) == 1000 and not train & heldout


@pytest.mark.slow
@pytest.mark.parametrize("name", TASKS)
def test_default_run_writes_its_folder_and_reports_the_evaluated_numbers(tmp_path, capsys, name):
    out = tmp_path / "run"
    assert main(["train", "--task", name, "--output-dir", str(out), "--max-updates", "2", "--eval-limit", "16",
                 "--prompts-per-rollout", "4", "--passk", "2", "--progress", "false"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1].startswith(f"d-OPSD on {name}: held-out accuracy")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["updates"] == 2 and summary["task"] == name
    assert (out / "training.png").stat().st_size > 1000 and (out / "config.yaml").is_file()
    # the reported final accuracy is what evaluating the saved checkpoint gives
    lm = load_diffusion_lm(out / "checkpoint-2" / "model")
    task = get_task(name)
    examples = task.load(bundled_data_path(name, "heldout"), limit=16)
    sampler = SamplerConfig(gen_length=GEN_LENGTH[name], block_length=4)
    _, result = evaluate(lm, task, examples, sampler, progress=False)
    assert result.accuracy == summary["eval_after"]["accuracy"]
    assert result.mean_score == summary["eval_after"]["mean_score"]
    base = load_diffusion_lm(bundled_model_path(name))
    _, before = evaluate(base, task, examples, sampler, progress=False)
    assert before.mean_score == summary["eval_before"]["mean_score"]
