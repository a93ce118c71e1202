"""dopsd bench compares like with like: the naive procedure decodes the same tokens at temperature 0 and computes the
same loss (times |K_t|: it sums over K_t where dopsd averages) with the same gradient direction."""

import json

import pytest
import torch
from conftest import tiny_builtin, tiny_converted_llama

from dopsd.bench import naive_loss, naive_rollout
from dopsd.bench.dopsd_side import dopsd_loss
from dopsd.bench.run import BenchSettings, run_bench
from dopsd.cli import main
from dopsd.distill import prepare_trajectory
from dopsd.sampling import BlockDiffusionSampler, SamplerConfig

CONFIG = SamplerConfig(gen_length=12, block_length=4, steps=6, record_until_eos=False)


def prompt(lm):
    return lm.tokenizer("12+3=")["input_ids"]


@pytest.mark.parametrize("make_lm", [tiny_builtin, tiny_converted_llama], ids=["builtin", "converted-llama"])
def test_naive_rollout_decodes_what_the_sampler_decodes_at_temperature_zero(make_lm):
    lm = make_lm()
    ours = BlockDiffusionSampler(lm, CONFIG).sample([prompt(lm)])[0]
    theirs = naive_rollout(lm, prompt(lm), CONFIG)
    assert torch.equal(ours.tokens, theirs.tokens)
    assert torch.equal(ours.reveal_step, theirs.reveal_step)
    assert ours.num_steps == theirs.num_steps == 6


def gradients(lm):
    return torch.cat([p.grad.flatten() for p in lm.model.parameters() if p.grad is not None])


@pytest.mark.parametrize("make_lm", [tiny_builtin, tiny_converted_llama], ids=["builtin", "converted-llama"])
def test_both_losses_agree_up_to_the_tokens_per_step(make_lm):
    lm = make_lm()
    with torch.no_grad():  # sharper distributions than the initialisation's, so the divergence is far from zero
        for parameter in lm.model.parameters():
            parameter.mul_(8.0) if parameter.dim() > 1 else None
    trajectory = BlockDiffusionSampler(lm, CONFIG).sample([prompt(lm)])[0]
    prepared = prepare_trajectory(trajectory, 0.5, torch.Generator().manual_seed(0))
    assert not torch.equal(prepared.teacher_states, prepared.student_states)
    ours = dopsd_loss(lm, prepared, micro_batch_size=4)
    ours_grad = gradients(lm)
    lm.model.zero_grad(set_to_none=True)
    theirs = naive_loss(lm, prepared, chunks=4)
    theirs_grad = gradients(lm)
    assert ours > 1e-4
    # float32 divergence; 12 tokens in 6 steps: |K_t| = 2 at every step
    assert theirs == pytest.approx(2 * ours, rel=1e-6)
    # same direction, twice the length (the divergence runs in float32, so equal to float32 precision)
    assert float(torch.nn.functional.cosine_similarity(theirs_grad, ours_grad, dim=0)) > 1 - 1e-9
    assert float(theirs_grad.norm() / ours_grad.norm()) == pytest.approx(2.0, rel=1e-5)
    lm.model.zero_grad(set_to_none=True)
    assert naive_loss(lm, prepared, chunks=3, weight=0.0) == 0.0  # an incorrect trajectory: run, multiplied by zero
    assert float(gradients(lm).abs().max()) == 0.0


@pytest.mark.slow
def test_bench_runs_both_sides_at_a_toy_size():
    settings = BenchSettings(shape="tiny", layers=1, prompt_length=6, gen_length=8, block_length=4, steps=4,
                             repeats=2, warmup=1, naive_repeats=2, also_cache=("dual",))
    results = run_bench(settings)
    assert results["states"] == 4
    # the other cache mode's rollout, measured in the same process; its sum adds dopsd's (only) loss
    assert results["rollout"]["dopsd:dual"]["seconds"]["runs"] == 2
    assert results["sum"]["dopsd:dual"]["min"] == pytest.approx(
        results["rollout"]["dopsd:dual"]["seconds"]["min"] + results["loss"]["dopsd"]["seconds"]["min"])
    for phase in ("rollout", "loss"):
        for side in ("dopsd", "naive"):
            seconds = results[phase][side]["seconds"]
            assert 0 < seconds["min"] <= seconds["median"] and seconds["runs"] == 2
            assert results[phase][side]["flops"] > 0
    # the naive side projects every position onto the vocabulary: more FLOPs for the same work
    assert results["rollout"]["naive"]["flops"] > results["rollout"]["dopsd"]["flops"]
    value = results["loss_value"]
    assert value["naive"] == pytest.approx(2 * value["dopsd"], rel=1e-3)


@pytest.mark.slow
def test_bench_command_prints_the_table_or_json(capsys):
    args = ["bench", "--layers", "1", "--prompt-length", "4", "--gen-length", "4", "--block-length", "4",
            "--steps", "2", "--repeats", "1", "--warmup", "0", "--device", "cpu"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "naive/dopsd" in out and "rollout (s)" in out and "loss + backward (s)" in out
    assert "prompt, solved round 5 (s)" in out and "pass@8 unsolved" in out
    assert main(args + ["--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert set(results["rollout"]) == {"dopsd", "naive"}
    assert main(args + ["--cache", "dual", "--dopsd-only"]) == 0
    out = capsys.readouterr().out
    assert "cache dual" in out and "naive/dopsd" in out and "pass@" not in out


def test_default_settings_are_a_users_and_fit_the_time_budget():
    """The dopsd side decodes with the cache, micro-batch and pass@k temperature a d-OPSD run uses by default; the
    default workload is half the issue's response, and the naive side (minutes a run on a CPU) runs once."""
    from dopsd.trainers.dopsd import DOPSDConfig

    settings, config = BenchSettings(), DOPSDConfig()
    assert settings.cache == config.rollout_cache is None
    assert settings.micro_batch_size == config.micro_batch_size
    assert settings.temperature == config.passk_temperature
    assert (settings.prompt_length, settings.gen_length, settings.block_length, settings.steps) == (100, 64, 32, 32)
    assert (settings.warmup, settings.repeats, settings.naive_warmup, settings.naive_repeats) == (1, 3, 0, 1)


def test_bench_refuses_bad_settings_in_one_line(capsys):
    assert main(["bench", "--steps", "1000", "--device", "cpu"]) == 2
    assert capsys.readouterr().err.startswith("error: ")
    assert main(["bench", "--repeats", "0", "--device", "cpu"]) == 2
    assert main(["bench", "--naive-repeats", "0", "--device", "cpu"]) == 2
    assert main(["bench", "--naive-warmup", "-1", "--device", "cpu"]) == 2
    assert main(["bench", "--solved-round", "9", "--device", "cpu"]) == 2


@pytest.mark.slow
@pytest.mark.parametrize("shape", ["tiny", "smollm2-135m"], ids=["builtin", "converted-llama"])
def test_block_bench_times_the_exact_cache_against_the_same_model_uncached(shape):
    """A block shape: the rollout with the exact block cache and without it, forwards and tokens per forward; the
    bench's own temperature-0 check finds both decode the same tokens. No timing assertion: speed lives in the
    bench's output."""
    from dopsd.bench.report import format_table

    settings = BenchSettings(shape=shape, layers=1, prompt_length=6, gen_length=8, block_length=4, steps=4, batch=2,
                             warmup=0, repeats=2, attention="block", block_size=4)
    results = run_bench(settings)
    assert results["block"] == {"attention": "block", "block_size": 4}
    assert results["identical_at_temperature_0"] is True
    cached, uncached = results["rollout"]["cached"], results["rollout"]["uncached"]
    for side in (cached, uncached):
        assert 0 < side["seconds"]["min"] <= side["seconds"]["median"] and side["seconds"]["runs"] == 2
    # 2 blocks of 2 steps: 4 forwards a rollout either way (the probes ran before the count began)
    assert cached["forwards"] == uncached["forwards"] == 4
    # uncached, every forward runs prompt + response; cached: prompt + block 0, block 0, block 0 + block 1, block 1
    assert uncached["tokens_per_forward"] == 6 + 8
    assert cached["tokens_per_forward"] == (10 + 4 + 8 + 4) / 4
    assert results["speedup"]["min"] == pytest.approx(uncached["seconds"]["min"] / cached["seconds"]["min"])
    table = format_table(results)
    assert "block attention (block size 4)" in table and "uncached/cached" in table
    assert "tokens per forward" in table and "forwards per rollout" in table
    assert "decode the same tokens at temperature 0: yes" in table
    assert "naive" not in table and "loss" not in table


def test_block_bench_decodes_what_the_uncached_sampler_decodes_at_temperature_zero():
    """The bench's setting at temperature 0, checked outside the bench: its model and prompts, cache on and off."""
    from dopsd.bench.shapes import build_model

    settings = BenchSettings(shape="tiny", layers=1, prompt_length=6, gen_length=8, block_length=4, steps=4,
                             temperature=0.0, batch=3, attention="block", block_size=4)
    lm = build_model("tiny", layers=1, max_positions=14, layout=settings.layout())
    with torch.no_grad():  # sharper distributions than the initialisation's: tokens that depend on their context
        for parameter in lm.model.parameters():
            parameter.mul_(8.0) if parameter.dim() > 1 else None
    prompts = list(torch.randint(0, lm.vocab_size - 3, (3, 6), generator=torch.Generator().manual_seed(0)))
    cached = BlockDiffusionSampler(lm, settings.sampler_config("prefix")).sample(prompts)
    uncached = BlockDiffusionSampler(lm, settings.sampler_config("none")).sample(prompts)
    assert len({tuple(t.tokens.tolist()) for t in uncached}) == 3  # three different responses
    for ours, theirs in zip(cached, uncached):
        assert torch.equal(ours.tokens, theirs.tokens) and torch.equal(ours.reveal_step, theirs.reveal_step)


@pytest.mark.slow
def test_bench_command_runs_a_block_shape(capsys, tmp_path):
    args = ["bench", "--attention", "block", "--block-size", "4", "--layers", "1", "--prompt-length", "4",
            "--gen-length", "4", "--steps", "2", "--repeats", "1", "--warmup", "0", "--device", "cpu"]
    saved = tmp_path / "block.json"
    assert main(args + ["--save", str(saved)]) == 0  # the block length defaults to the block size
    out = capsys.readouterr().out
    assert "in blocks of 4" in out and "cached min" in out and "tokens per forward" in out
    results = json.loads(saved.read_text())
    assert set(results["rollout"]) == {"cached", "uncached"} and results["settings"]["block_size"] == 4
    assert main(args + ["--block-length", "2"]) == 2  # a block model decodes one model block per sampler block
    assert "--block-length 4" in capsys.readouterr().err
    assert main(args + ["--also-cache", "dual"]) == 2


@pytest.mark.parametrize("make_lm", [tiny_builtin, tiny_converted_llama], ids=["builtin", "converted-llama"])
def test_with_lora_only_the_adapter_gets_gradients_on_both_sides(make_lm):
    """--lora: the paper's projections carry the adapter, the teacher passes run with it switched off, and both
    losses' backward reaches the adapter's weights only; the losses still agree up to the tokens per step."""
    from dopsd.bench.lora import AdapterOffView, adapter_off, attach_lora, is_adapter, paper_alpha
    from dopsd.models.lora import lora_target_modules

    base = make_lm()
    with torch.no_grad():
        for parameter in base.model.parameters():
            parameter.mul_(8.0) if parameter.dim() > 1 else None
    trajectory = BlockDiffusionSampler(base, CONFIG).sample([prompt(base)])[0]
    prepared = prepare_trajectory(trajectory, 0.5, torch.Generator().manual_seed(0))
    ids = torch.cat([torch.as_tensor(prepared.trajectory.prompt_ids), prepared.student_states[0]])[None]
    with torch.no_grad():
        before = base.logits(ids)
    targets = lora_target_modules(base.model)
    lm, facts = attach_lora(base, 4)
    assert paper_alpha(128) == 64 and facts["alpha"] == 2.0 and facts["rank"] == 4
    assert facts["modules"] == len(targets) and 0 < facts["trainable_parameters"] < facts["total_parameters"]
    with torch.no_grad():  # a trained adapter: the student differs from the teacher (the model without it)
        for name, parameter in lm.model.named_parameters():
            if ".lora_B." in name:
                parameter.normal_(0, 0.5)
        assert not torch.allclose(lm.logits(ids), before)
    with adapter_off(lm):
        assert torch.allclose(lm.logits(ids), before)
    assert torch.allclose(AdapterOffView(lm).logits(ids), before)
    trainable = {name for name, p in lm.model.named_parameters() if p.requires_grad}
    assert trainable and all(is_adapter(name) for name in trainable)

    def held():
        names = {name for name, p in lm.model.named_parameters() if p.grad is not None and p.grad.abs().max() > 0}
        lm.model.zero_grad(set_to_none=True)
        return names

    ours = dopsd_loss(lm, prepared, micro_batch_size=4)
    ours_held = held()
    theirs = naive_loss(lm, prepared, chunks=4, teacher=AdapterOffView(lm))
    theirs_held = held()
    assert ours > 1e-4 and theirs == pytest.approx(2 * ours, rel=1e-6)
    # every adapted module's B (and, B being nonzero, A) gets a gradient; no weight of the model does
    assert ours_held == theirs_held == trainable
    assert {name.split(".lora_")[0].removeprefix("base_model.model.") for name in ours_held} == set(targets)


@pytest.mark.slow
def test_bench_with_lora_reports_what_it_trained():
    from dopsd.bench.report import format_table

    settings = BenchSettings(shape="tiny", layers=1, prompt_length=6, gen_length=8, block_length=4, steps=4,
                             repeats=1, warmup=0, lora=8)
    results = run_bench(settings)
    trained = results["trained"]
    assert trained["lora"]["rank"] == 8 and trained["lora"]["alpha"] == 4.0
    assert trained["lora"]["targets"] == "4 modules: down, gate_up, out, qkv"  # the built-in family's fused seven
    assert trained["parameters"] == trained["lora"]["trainable_parameters"]
    assert trained["gradients"]["dopsd"] == trained["gradients"]["naive"] == {"tensors": 8, "adapter_only": True}
    for phase in ("rollout", "loss"):
        for side in ("dopsd", "naive"):
            assert results[phase][side]["seconds"]["runs"] == 1 and results[phase][side]["flops"] > 0
    assert results["loss_value"]["naive"] == pytest.approx(2 * results["loss_value"]["dopsd"], rel=1e-3)
    table = format_table(results)
    assert "trains a LoRA adapter only (both sides): r 8, alpha 4" in table
    assert "gradients held: dopsd adapter only and naive adapter only" in table
    # every weight trained: the same bench, every body and head weight holding a gradient
    full = run_bench(BenchSettings(**{**results["settings"], "lora": None}))
    assert full["trained"]["lora"] is None and full["trained"]["gradients"]["dopsd"]["adapter_only"] is False
    assert full["trained"]["parameters"] > 100 * trained["parameters"]
    assert "loss backward trains every weight (both sides)" in format_table(full)
    # the adapter's matmuls run in the rollout; the frozen body's backward computes no weight gradients
    assert results["rollout"]["dopsd"]["flops"] > full["rollout"]["dopsd"]["flops"]
    assert results["loss"]["dopsd"]["flops"] < full["loss"]["dopsd"]["flops"]


def test_bench_command_takes_lora_and_refuses_bad_lora_settings(capsys):
    args = ["bench", "--layers", "1", "--prompt-length", "4", "--gen-length", "4", "--block-length", "4",
            "--steps", "2", "--repeats", "1", "--warmup", "0", "--device", "cpu", "--dopsd-only"]
    assert main(args + ["--lora", "4", "--lora-alpha", "16", "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert results["settings"]["lora"] == 4 and results["trained"]["lora"]["alpha"] == 16
    assert set(results["trained"]["gradients"]) == {"dopsd"}
    assert main(args + ["--lora", "0"]) == 2
    assert main(args + ["--lora-alpha", "16"]) == 2
    assert "--lora-alpha needs --lora" in capsys.readouterr().err
    assert main(args + ["--lora", "4", "--attention", "block", "--block-size", "4"]) == 2
