"""One d-OPSD update on the LLaDA-like and Dream-like remote-code doubles, LoRA on the paper's seven projections."""

import pytest
import torch
from toy import ToyTask, toy_config

from dopsd.models import load_diffusion_lm
from dopsd.models.lora import lora_target_modules
from dopsd.trainers import DOPSDTrainer


@pytest.mark.parametrize("double", ["llada", "dream"])
def test_one_dopsd_update_trains_the_adapter_on_the_seven_projections(tmp_path, double, llada_folder, dream_folder):
    folder = {"llada": llada_folder, "dream": dream_folder}[double]
    lm = load_diffusion_lm(folder, trust_remote_code=True, device="cpu")
    targets = lora_target_modules(lm.model)
    config = toy_config(tmp_path, lora_target_modules=targets, prompt_style="compact", teacher_retain_ratio=0.5)
    trainer = DOPSDTrainer(model=lm, task=ToyTask(), config=config)
    adapted = {name.removeprefix("base_model.model.") for name, module in trainer.unwrapped.named_modules()
               if hasattr(module, "lora_A")}
    assert adapted == set(targets) and len(adapted) == 14
    before = {name: p.detach().clone() for name, p in trainer.unwrapped.named_parameters()}
    metrics = trainer.step()
    after = dict(trainer.unwrapped.named_parameters())
    lora = [name for name in before if "lora_" in name]
    assert any(not torch.equal(before[name], after[name]) for name in lora)
    assert all(torch.equal(before[name], after[name]) for name in before if "lora_" not in name)
    assert metrics["kept"] > 0 and torch.isfinite(torch.tensor(metrics["loss"]))
