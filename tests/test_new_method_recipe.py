"""docs/training.md's "Adding a method", followed to the letter: one file with an ``XConfig`` and an ``XTrainer``, one
``Method(...)`` entry in ``dopsd.methods.METHODS``, and nothing else; the method is then a ``dopsd`` subcommand that
trains a real model (a backward pass through it, the optimizer step, metrics, a checkpoint)."""

from __future__ import annotations

import json
import textwrap

import pytest
import torch
import yaml
from safetensors.torch import load_file

from dopsd.cli import main
from dopsd.methods import METHODS, Method
from dopsd.models import create_builtin_model

# The one file: trainers/<name>.py in the recipe; here a module on sys.path, outside the package.
METHOD_FILE = '''
"""Masked-diffusion fine-tuning at one fixed masking ratio: the smallest real method."""

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from dopsd.config import option
from dopsd.sampling.padding import group_by_length, left_pad_with_responses
from dopsd.tasks import default_prompt_style, encode_prompts
from dopsd.trainers import Trainer, TrainingConfig
from dopsd.trainers.config import check

FIXED_MASK_SALT = 271828  # this method's one random stream


@dataclass
class FixedMaskConfig(TrainingConfig):
    """Fixed-ratio masked-diffusion fine-tuning on the task's reference completions."""

    output_dir: str = "runs/fixed-mask"
    fixed_mask_ratio: float = option(0.5, "share of each reference completion's tokens masked", "method")

    def __post_init__(self):
        super().__post_init__()
        check(0.0 < self.fixed_mask_ratio <= 1.0, "fixed_mask_ratio", self.fixed_mask_ratio, "must be in (0, 1]")


class FixedMaskTrainer(Trainer):
    config_class = FixedMaskConfig

    def __init__(self, *, model=None, tokenizer=None, task=None, config=None):
        super().__init__(model=model, tokenizer=tokenizer, task=task, config=config)
        self.mask_generator = self.generator(FIXED_MASK_SALT)

    def compute_update(self) -> dict:
        lm, config = self.base_lm, self.config
        examples = self.next_examples(4)
        prompts = encode_prompts(lm, self.task, examples, config.prompt_style)
        style = config.prompt_style or default_prompt_style(lm)
        responses = [lm.tokenizer(self.task.reference_completion(example, style), add_special_tokens=False)["input_ids"]
                     for example in examples]
        responses = torch.tensor([r + [lm.tokens.eos] * (config.gen_length - len(r)) for r in responses],
                                 device=self.accelerator.device)
        masked = torch.rand(responses.shape, generator=self.mask_generator,
                            device=responses.device) < config.fixed_mask_ratio
        noisy = torch.where(masked, torch.full_like(responses, lm.tokens.mask), responses)
        positions = torch.arange(config.gen_length, device=responses.device)

        def loss_of(rows):
            ids, attention, width = left_pad_with_responses([prompts[i] for i in rows], noisy[rows], lm.tokens.pad)
            logits = self.lm.logits_at(ids, width + positions, attention, width)
            cross_entropy = F.cross_entropy(logits.float().transpose(1, 2), responses[rows], reduction="none")
            return (cross_entropy * masked[rows]).sum() / masked.sum().clamp(min=1), None

        groups = [list(range(len(examples)))] if lm.handles_padding else group_by_length(map(len, prompts))
        results = self.backward_micro_batches(groups, loss_of)
        return {"loss": sum(loss for loss, _ in results), "mask_ratio": float(masked.float().mean())}
'''


@pytest.fixture
def fixed_mask_method(tmp_path, monkeypatch):
    """The recipe's two steps: the method's file, and its one registry entry."""
    folder = tmp_path / "method"
    folder.mkdir()
    (folder / "recipe_fixed_mask.py").write_text(textwrap.dedent(METHOD_FILE))
    monkeypatch.syspath_prepend(str(folder))
    entry = Method(name="fixed-mask", command="fixed-mask", label="Fixed-mask", summary="fixed-ratio masked diffusion",
                   description="Masked-diffusion fine-tuning at a fixed masking ratio.",
                   trainer="recipe_fixed_mask:FixedMaskTrainer")
    monkeypatch.setitem(METHODS, entry.name, entry)
    return entry


def test_a_method_written_by_the_recipe_trains_from_the_command_line(fixed_mask_method, tmp_path, capsys):
    lm = create_builtin_model(seed=0, hidden_size=32, num_hidden_layers=1, num_attention_heads=2)
    model = tmp_path / "model"
    lm.model.save_pretrained(model)
    lm.tokenizer.save_pretrained(model)

    with pytest.raises(SystemExit) as exit_info:
        main(["fixed-mask", "--help"])
    assert exit_info.value.code == 0
    assert "--fixed-mask-ratio X" in capsys.readouterr().out

    import dopsd.trainers

    assert dopsd.trainers.FixedMaskTrainer is fixed_mask_method.trainer_class()

    out = tmp_path / "run"
    assert main(["fixed-mask", "--model", str(model), "--task", "sudoku", "--train-data", "sample",
                 "--validation-size", "4", "--output-dir", str(out), "--max-updates", "2", "--gen-length", "20",
                 "--block-length", "4", "--use-lora", "false", "--learning-rate", "1e-2", "--weight-decay", "0",
                 "--fixed-mask-ratio", "0.7", "--report-to", "none", "--mixed-precision", "no",
                 "--progress", "false"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("Fixed-mask on sudoku: held-out accuracy")

    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    updates = [row for row in rows if "loss" in row]
    assert [row["update"] for row in updates] == [1, 2]
    assert all(row["loss"] > 0 and row["grad_norm"] > 0 for row in updates)
    assert yaml.safe_load((out / "config.yaml").read_text())["fixed_mask_ratio"] == 0.7

    # no weight decay: only the backward passes' gradients can have moved the weights
    before = load_file(model / "model.safetensors")
    after = load_file(out / "checkpoint-2" / "model" / "model.safetensors")
    assert before.keys() == after.keys()
    assert any(not torch.equal(before[name], after[name]) for name in before)


def test_a_method_without_a_preset_entry_runs_on_the_task_and_shared_presets(fixed_mask_method):
    from dopsd.bundled import bundled_model_path
    from dopsd.presets import METHOD_PRESETS, bundled_preset

    assert fixed_mask_method.name not in METHOD_PRESETS
    preset = bundled_preset(fixed_mask_method, {"task": "countdown"})
    assert preset["model"] == bundled_model_path("countdown") and preset["output_dir"] == "runs/fixed-mask-countdown"
    config = fixed_mask_method.config_class()(**preset)  # a valid config: `dopsd fixed-mask` runs with no arguments
    assert config.fixed_mask_ratio == 0.5 and config.use_lora is False
