"""The built-in default: `dopsd train` with no model runs d-OPSD on the bundled Sudoku model (CI-sized here)."""

import json

from transformers import AutoModel

from dopsd.bundled import bundled_data_path, bundled_model_path
from dopsd.cli import main
from dopsd.evaluation import evaluate
from dopsd.models import MaskedDiffusionTransformer, load_diffusion_lm
from dopsd.sampling import SamplerConfig
from dopsd.tasks import get_task


def test_bundled_model_loads_offline_with_auto_classes():
    model = AutoModel.from_pretrained(bundled_model_path("sudoku"))
    assert isinstance(model, MaskedDiffusionTransformer)
    assert sum(p.numel() for p in model.parameters()) < 3_000_000


def test_bundled_splits_never_overlap():
    task = get_task("sudoku")
    train = {e.prompt for e in task.load(bundled_data_path("sudoku", "train"))}
    heldout = {e.prompt for e in task.load(bundled_data_path("sudoku", "heldout"))}
    assert len(heldout) == 200 and not train & heldout


def test_default_run_writes_its_folder_and_reports_the_evaluated_numbers(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--output-dir", str(out), "--max-updates", "2", "--eval-limit", "16",
                 "--prompts-per-rollout", "4", "--passk", "2", "--progress", "false"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1].startswith("d-OPSD on sudoku: held-out accuracy")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["updates"] == 2 and summary["task"] == "sudoku"
    assert (out / "training.png").stat().st_size > 1000 and (out / "config.yaml").is_file()
    # the reported final accuracy is what evaluating the saved checkpoint gives
    lm = load_diffusion_lm(out / "checkpoint-2" / "model")
    task = get_task("sudoku")
    examples = task.load(bundled_data_path("sudoku", "heldout"), limit=16)
    _, result = evaluate(lm, task, examples, SamplerConfig(gen_length=20, block_length=4), progress=False)
    assert result.accuracy == summary["eval_after"]["accuracy"]
    assert result.mean_score == summary["eval_after"]["mean_score"]
    base = load_diffusion_lm(bundled_model_path("sudoku"))
    _, before = evaluate(base, task, examples, SamplerConfig(gen_length=20, block_length=4), progress=False)
    assert before.mean_score == summary["eval_before"]["mean_score"]
