import json
import math

import pytest
import torch
from conftest import tiny_builtin
from toy import ToyTask, tiny_lm, toy_data

from dopsd.cli import main
from dopsd.config import ConfigError
from dopsd.sampling import BlockDiffusionSampler
from dopsd.sampling.padding import left_pad_with_responses
from dopsd.tasks import Example, get_task
from dopsd.trainers import GRPOConfig, GRPOTrainer
from dopsd.trainers.grpo_loss import (
    clipped_surrogate,
    clipped_tokens,
    completion_logprobs,
    completion_mask,
    draw_prompt_masks,
    group_advantages,
    k3_kl,
    masked_input,
)
from dopsd.trainers.grpo_rewards import correctness_scale, format_reward, rollout_reward


class DigitShareTask(ToyTask):
    """Scores a completion by its share of digits, so samples of one prompt earn different rewards."""

    name = "digits"
    correct_threshold = 0.5

    def score_answer(self, example: Example, answer: str) -> float:
        return sum(char.isdigit() for char in answer) / max(len(answer), 1)


def grpo_config(folder, **overrides) -> GRPOConfig:
    data = str(toy_data(folder))
    values = dict(
        model="unused", task="digits", train_data=data, eval_data=data, output_dir=str(folder / "run"),
        max_updates=2, gen_length=12, block_length=4, steps=6, num_generations=3, prompts_per_rollout=2,
        inner_updates=2, micro_batch_size=4, lora_r=4, lora_alpha=8, learning_rate=1e-2, eval_every=2,
        save_every=2, progress=False, mixed_precision="no", seed=3,
    )
    values.update(overrides)
    return GRPOConfig(**values)


def make_trainer(tmp_path, **overrides) -> GRPOTrainer:
    return GRPOTrainer(model=tiny_lm(), task=DigitShareTask(), config=grpo_config(tmp_path, **overrides))


def snapshot(module):
    return {name: p.detach().clone() for name, p in module.named_parameters()}


# ----- pure pieces on hand-built tensors ---------------------------------------------------------------------------
def test_advantages_subtract_each_groups_mean_without_dividing_by_its_std():
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0, 2.0, 2.0, 2.0, 2.0])
    assert group_advantages(rewards, 4).tolist() == [0.5, -0.5, -0.5, 0.5, 0.0, 0.0, 0.0, 0.0]
    assert group_advantages(torch.tensor([0.0, 10.0, 3.0, 1.0]), 2).tolist() == [-5.0, 5.0, 1.0, -1.0]
    with pytest.raises(ValueError):
        group_advantages(torch.zeros(5), 2)


def test_clipped_surrogate_takes_the_pessimistic_side_of_the_clip():
    ratios = torch.tensor([[1.0, 1.1, 1.5, 0.5]], dtype=torch.float64)
    old = torch.zeros_like(ratios)
    logp = ratios.log()
    positive = clipped_surrogate(logp, old, torch.tensor([[1.0]], dtype=torch.float64), 0.2)
    assert torch.allclose(positive, -torch.tensor([[1.0, 1.1, 1.2, 0.5]], dtype=torch.float64))
    negative = clipped_surrogate(logp, old, torch.tensor([[-2.0]], dtype=torch.float64), 0.2)
    assert torch.allclose(negative, torch.tensor([[2.0, 2.2, 3.0, 1.6]], dtype=torch.float64))
    assert clipped_tokens(logp, old, torch.tensor([[1.0]]), 0.2).tolist() == [[False, False, True, False]]
    assert clipped_tokens(logp, old, torch.tensor([[-2.0]]), 0.2).tolist() == [[False, False, False, True]]
    # A clipped token passes no gradient; an unclipped one passes d(-rA)/dlogp = -rA.
    logp.requires_grad_(True)
    clipped_surrogate(logp, old, torch.tensor([[1.0]], dtype=torch.float64), 0.2).sum().backward()
    assert torch.allclose(logp.grad, torch.tensor([[-1.0, -1.1, 0.0, -0.5]], dtype=torch.float64))


def test_k3_estimator_value_zero_at_equality_and_never_negative():
    value = k3_kl(torch.tensor(math.log(0.5)), torch.tensor(math.log(0.25)))
    assert value.item() == pytest.approx(0.5 - math.log(0.5) - 1)  # exp(d) - d - 1, d = log(ref / policy) = log 1/2
    same = torch.randn(100)
    assert torch.equal(k3_kl(same, same), torch.zeros(100))
    generator = torch.Generator().manual_seed(0)
    assert bool((k3_kl(torch.randn(1000, generator=generator), torch.randn(1000, generator=generator)) >= 0).all())


def test_completion_mask_runs_up_to_and_including_the_first_stop_token():
    eos, end_of_turn = 2, 9
    tokens = torch.tensor([[5, 6, eos, eos, eos], [eos, 5, 5, 5, 5], [5, 5, 5, 5, 5], [5, end_of_turn, 5, eos, 5]])
    assert completion_mask(tokens, (eos, end_of_turn)).int().tolist() == [
        [1, 1, 1, 0, 0], [1, 0, 0, 0, 0], [1, 1, 1, 1, 1], [1, 1, 0, 0, 0]]


def test_format_and_correctness_rewards():
    tidy = "<reasoning>\nstep one\nstep two\n</reasoning>\n<answer>\n\\boxed{42}\n</answer>"
    assert format_reward(tidy) == 1.5  # multi-line reasoning matches (DOTALL)
    assert format_reward("x <reasoning>a\nb</reasoning> <answer>1</answer> y") == 1.0
    assert format_reward("<answer>1</answer>") == 0.25
    assert format_reward("42") == 0.0
    assert correctness_scale("gsm8k") == correctness_scale("math500") == 2.0
    assert correctness_scale("sudoku") == correctness_scale("countdown") == 1.0 and correctness_scale("gsm8k", 3) == 3
    gsm8k = get_task("gsm8k")
    example = Example(index=0, prompt="q", answer="42")
    assert rollout_reward(gsm8k, example, tidy, "instruct", 2.0) == 3.5
    assert rollout_reward(gsm8k, example, tidy, "compact", 2.0) == 2.0


def test_config_rejects_out_of_range_values_naming_the_field():
    for field, value in (("num_generations", 1), ("inner_updates", 0), ("epsilon", 0.0), ("beta", -0.1),
                         ("prompt_mask_ratio", 1.0), ("correctness_reward_scale", 0.0), ("temperature", -1.0)):
        with pytest.raises(ConfigError, match=f"'{field}'"):
            GRPOConfig(**{field: value})


# ----- the masked log-probability ----------------------------------------------------------------------------------
def padded_batch(lm, generator):
    prompts = [[5, 6, 7, 8, 9, 10], [11, 12], [13, 14, 15, 16]]
    completions = torch.randint(5, 20, (3, 5), generator=generator)
    return left_pad_with_responses(prompts, completions, lm.tokens.pad)


def test_masked_logprobs_mask_the_completion_and_some_prompt_tokens_never_padding():
    lm = tiny_builtin()
    generator = torch.Generator().manual_seed(0)
    ids, attention, width = padded_batch(lm, generator)
    masks = draw_prompt_masks(attention[:, :width], 0.15, 4000, generator)
    real = attention[:, :width].bool().expand_as(masks)
    assert not bool(masks[~real].any())
    assert masks[real].float().mean().item() == pytest.approx(0.15, abs=0.01)
    noisy = masked_input(ids, width, masks[0], lm.tokens.mask)
    assert bool((noisy[:, width:] == lm.tokens.mask).all())
    assert torch.equal(noisy[:, :width][~masks[0]], ids[:, :width][~masks[0]])
    assert bool((noisy[:, :width][masks[0]] == lm.tokens.mask).all())
    logp = completion_logprobs(lm, ids, attention, width, masks[0])
    full = torch.log_softmax(lm.logits(noisy, attention), dim=-1)[:, width:]
    expected = full.gather(-1, ids[:, width:, None]).squeeze(-1)
    assert logp.shape == (3, 5) and torch.allclose(logp, expected)


# ----- the trainer -------------------------------------------------------------------------------------------------
def test_rollout_samples_each_prompt_g_times_in_one_sampler_call(tmp_path, monkeypatch):
    calls = []
    original = BlockDiffusionSampler.sample
    monkeypatch.setattr(BlockDiffusionSampler, "sample", lambda self, prompts, **kw: calls.append(len(prompts))
                        or original(self, prompts, **kw))
    trainer = make_trainer(tmp_path, prompts_per_rollout=2, num_generations=3, inner_updates=3)
    metrics = trainer.step()
    batch = trainer.rollout_data
    assert calls == [6] and metrics["rollout_samples"] == 6
    prompts = batch.ids[:, : batch.width]
    assert torch.equal(prompts[0], prompts[2]) and torch.equal(prompts[3], prompts[5])
    assert batch.prompt_masks.shape == (3, 6, batch.width) and batch.old_logps.shape == (3, 6, 12)
    assert not torch.equal(batch.prompt_masks[0], batch.prompt_masks[1])  # a fresh mask per inner update
    assert torch.allclose(batch.advantages.view(2, 3).sum(1), torch.zeros(2), atol=1e-6)
    assert metrics["clip_ratio"] == 0.0  # the first inner update runs the policy that sampled
    assert "rollout_samples" not in trainer.step()


@pytest.mark.parametrize("use_lora", [True, False], ids=["lora", "full"])
def test_one_update_changes_the_trainable_weights_and_never_the_reference(tmp_path, use_lora):
    trainer = make_trainer(tmp_path, use_lora=use_lora, learning_rate=1e-2 if use_lora else 1e-3)
    before = snapshot(trainer.unwrapped)
    trainer.step()
    assert bool(trainer.rollout_data.advantages.abs().sum() > 0)
    reference_before = trainer.frozen_logprobs(trainer.rollout_data, reference=True)
    assert torch.equal(reference_before, trainer.rollout_data.ref_logps)
    trainer.step()
    after = snapshot(trainer.unwrapped)
    trainable = [n for n, p in trainer.unwrapped.named_parameters() if p.requires_grad]
    assert any(not torch.equal(before[n], after[n]) for n in trainable)
    if use_lora:
        assert all(torch.equal(before[n], after[n]) for n in before if "lora_" not in n)
    assert torch.equal(trainer.frozen_logprobs(trainer.rollout_data, reference=True), reference_before)
    assert not torch.equal(trainer.frozen_logprobs(trainer.rollout_data, reference=False),
                           trainer.rollout_data.old_logps)


@pytest.mark.parametrize("use_lora", [True, False], ids=["lora", "full"])
def test_the_kl_term_sends_gradient_to_the_policy_only(tmp_path, use_lora):
    trainer = make_trainer(tmp_path, use_lora=use_lora, beta=0.5)
    trainer.rollout()
    with torch.no_grad():  # move the policy away from the reference, so the KL has a gradient
        for name, parameter in trainer.unwrapped.named_parameters():
            if parameter.requires_grad:
                parameter.add_(0.05 * torch.randn_like(parameter))
    trainer.rollout_data.advantages.zero_()  # the loss is beta * k3 alone
    metrics = trainer.inner_update_backward(1)
    assert metrics["kl"] > 0 and metrics["loss"] > 0 and metrics["clip_ratio"] == 0.0
    assert not trainer.rollout_data.ref_logps.requires_grad
    grads = [p.grad for p in trainer.unwrapped.parameters() if p.requires_grad]
    assert any(g is not None and bool(g.abs().sum() > 0) for g in grads)
    assert all(p.grad is None for p in trainer.unwrapped.parameters() if not p.requires_grad)
    if not use_lora:
        assert all(p.grad is None for p in trainer.reference_lm.model.parameters())


@pytest.mark.slow
def test_resumed_run_ends_with_the_weights_of_an_uninterrupted_run(tmp_path):
    extra = dict(inner_updates=3, max_grad_norm=None)
    whole = make_trainer(tmp_path / "a", max_updates=4, **extra)
    whole.train()
    first = make_trainer(tmp_path / "b", max_updates=2, **extra)  # stops inside the first rollout's 3 updates
    first.train()
    resumed = make_trainer(tmp_path / "b", max_updates=4, resume_from="latest", **extra)
    assert resumed.train()["updates"] == 4
    expected = snapshot(whole.unwrapped)
    for name, parameter in resumed.unwrapped.named_parameters():
        assert torch.equal(parameter, expected[name]), name
    rows = [json.loads(line) for line in (tmp_path / "b" / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [row["inner_update"] for row in rows if "loss" in row] == [0, 1, 2, 0]


def test_grpo_cli_writes_the_run_folder_and_rejects_bad_values_in_one_line(tmp_path, capsys):
    model = tmp_path / "m"
    assert main(["create-model", str(model), "--hidden-size", "32", "--layers", "1", "--heads", "2"]) == 0
    out = tmp_path / "run"
    assert main(["grpo", "--model", str(model), "--task", "sudoku", "--train-data", "sample", "--eval-data", "sample",
                 "--eval-limit", "4", "--output-dir", str(out), "--max-updates", "2", "--gen-length", "20",
                 "--block-length", "4", "--steps", "10", "--num-generations", "2", "--prompts-per-rollout", "2",
                 "--inner-updates", "2", "--use-lora", "false", "--progress", "false"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("diffu-GRPO on sudoku: held-out accuracy")
    assert json.loads((out / "summary.json").read_text())["updates"] == 2
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert {"loss", "reward_mean", "reward_std", "rollout_accuracy", "clip_ratio", "kl", "response_length"} <= set(
        next(row for row in rows if "loss" in row))
    assert main(["grpo", "--epsilon", "-1", "--output-dir", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "'epsilon'" in err and "\n" not in err
    assert not (tmp_path / "bad").exists()


def test_a_model_ignoring_the_attention_mask_gets_unpadded_rows_and_the_same_logprobs(tmp_path):
    from conftest import IgnoresAttentionMask

    from dopsd.models import DiffusionLM
    from dopsd.trainers.grpo_loss import completion_logprobs

    inner = tiny_lm()
    inner.model.double()
    lm = DiffusionLM(IgnoresAttentionMask(inner.model), inner.tokenizer, tokens=inner.tokens)
    trainer = GRPOTrainer(model=lm, task=DigitShareTask(),
                          config=grpo_config(tmp_path, use_lora=False, prompts_per_rollout=3))
    assert not trainer.base_lm.handles_padding
    trainer.rollout()
    batch = trainer.rollout_data
    assert not bool(batch.attention.all())  # the stored rollout is padded: prompts of different lengths
    seen = []
    inner.model.register_forward_pre_hook(lambda module, args, kwargs: seen.append(kwargs["input_ids"]),
                                          with_kwargs=True)
    grouped = trainer.frozen_logprobs(trainer.rollout_data, reference=False)
    assert seen and all(bool((ids[:, 0] != inner.tokens.pad).all()) for ids in seen)  # no row starts with padding
    padded = torch.stack([completion_logprobs(inner, batch.ids, batch.attention, batch.width, masks).float()
                          for masks in batch.prompt_masks])  # the inner model honours the mask: padding is fine
    assert torch.allclose(grouped, padded, atol=1e-5)
    trainer.step()  # the loss passes take the same grouped path
