"""RFT: d-OPSD's rollouts and kept set, the masked-diffusion loss on the kept responses only."""

import pytest
import torch
from toy import ToyTask, tiny_lm, toy_data

from dopsd.trainers import RFTConfig, RFTTrainer
from dopsd.trainers.sft import masked_diffusion_backward


def rft(folder, accept=(True, False, True, True, False, True), **overrides):
    data = str(toy_data(folder, accept))
    values = dict(model="unused", train_data=data, eval_data=data, output_dir=str(folder / "run"), max_updates=2,
                  gen_length=12, block_length=4, steps=6, passk=2, prompts_per_rollout=6, use_lora=False,
                  learning_rate=1e-2, weight_decay=0.0, eval_every=2, save_every=2, progress=False,
                  mixed_precision="no", seed=3)
    values.update(overrides)
    return RFTTrainer(model=tiny_lm(), task=ToyTask(), config=RFTConfig(**values))


def test_an_update_trains_on_the_solved_trajectories_only(tmp_path, monkeypatch):
    trainer = rft(tmp_path)
    seen = []

    def spy(owner, prompts, responses, generator, eps):
        seen.append((prompts, responses.clone()))
        return masked_diffusion_backward(owner, prompts, responses, generator, eps)

    monkeypatch.setattr("dopsd.trainers.rft.masked_diffusion_backward", spy)
    before = {n: p.detach().clone() for n, p in trainer.unwrapped.named_parameters()}
    metrics = trainer.step()
    accepted = [e for e in trainer.train_examples if e.meta["accept"]]
    assert metrics["trained"] == len(accepted) == 4 and metrics["kept"] == 4 / 6
    [(prompts, responses)] = seen
    tokenizer = trainer.base_lm.tokenizer
    assert sorted(tokenizer.decode(p) for p in prompts) == sorted(e.prompt for e in accepted)
    assert responses.shape == (4, 12)
    assert any(not torch.equal(before[n], p) for n, p in trainer.unwrapped.named_parameters())


def test_nothing_solved_is_a_zero_update(tmp_path):
    trainer = rft(tmp_path, accept=(False,) * 6)
    before = {n: p.detach().clone() for n, p in trainer.unwrapped.named_parameters()}
    metrics = trainer.step()
    assert (metrics["trained"], metrics["loss"], metrics["kept"]) == (0, 0.0, 0.0)
    assert all(torch.equal(before[n], p) for n, p in trainer.unwrapped.named_parameters())


@pytest.mark.slow
def test_a_resumed_rft_run_ends_with_the_weights_of_an_uninterrupted_one(tmp_path):
    whole = rft(tmp_path / "a", max_updates=4)
    whole.train()
    first = rft(tmp_path / "b", max_updates=2)
    first.train()
    resumed = rft(tmp_path / "b", max_updates=4, resume_from="latest")
    resumed.train()
    for (name, a), (_, b) in zip(whole.unwrapped.named_parameters(), resumed.unwrapped.named_parameters()):
        assert torch.equal(a, b), name
