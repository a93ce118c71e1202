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
    assert theirs == pytest.approx(2 * ours, rel=1e-6)  # float32 divergence; 12 tokens in 6 steps: |K_t| = 2 at every step
    # same direction, twice the length (the divergence runs in float32, so equal to float32 precision)
    assert float(torch.nn.functional.cosine_similarity(theirs_grad, ours_grad, dim=0)) > 1 - 1e-9
    assert float(theirs_grad.norm() / ours_grad.norm()) == pytest.approx(2.0, rel=1e-5)
    lm.model.zero_grad(set_to_none=True)
    assert naive_loss(lm, prepared, chunks=3, weight=0.0) == 0.0  # an incorrect trajectory: run, multiplied by zero
    assert float(gradients(lm).abs().max()) == 0.0


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
