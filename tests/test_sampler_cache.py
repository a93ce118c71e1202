"""The block KV cache: exact where claimed (one step per block), batching still exact with it, the cached pass equal
to the full pass on an unchanged sequence, and a documented fallback for models that cannot take a cache."""

import pytest
import torch
from conftest import IgnoresAttentionMask, tiny_builtin, tiny_converted_llama

from dopsd.config import ConfigError
from dopsd.models import DiffusionLM
from dopsd.models.cache import BlockCache, cache_supported
from dopsd.sampling import BlockDiffusionSampler, SamplerConfig

PROMPTS = ["12+3=", "7=", "1000-999="]
MODELS = pytest.mark.parametrize("make_lm", [tiny_builtin, tiny_converted_llama], ids=["builtin", "converted-llama"])


def encode(lm, texts=PROMPTS):
    return [lm.tokenizer(text)["input_ids"] for text in texts]


def decode_all(lm, cache, steps, temperature=0.0, prompts=None):
    config = SamplerConfig(gen_length=12, block_length=4, steps=steps, temperature=temperature, cache=cache)
    return BlockDiffusionSampler(lm, config).sample(prompts or encode(lm), seed=5)


def same(a, b):
    return torch.equal(a.tokens, b.tokens) and torch.equal(a.reveal_step, b.reveal_step)


@MODELS
@pytest.mark.parametrize("mode", ["prefix", "dual"])
@pytest.mark.parametrize("temperature", [0.0, 0.8])
def test_one_step_per_block_decodes_exactly_the_uncached_tokens(make_lm, mode, temperature):
    lm = make_lm()
    plain = decode_all(lm, None, steps=3, temperature=temperature)
    cached = decode_all(lm, mode, steps=3, temperature=temperature)
    assert all(same(a, b) for a, b in zip(plain, cached))


@MODELS
@pytest.mark.parametrize("mode", ["prefix", "dual"])
def test_cached_batches_equal_rows_one_by_one(make_lm, mode):
    lm = make_lm()
    batch = decode_all(lm, mode, steps=12)
    for prompt, trajectory in zip(encode(lm), batch):
        assert same(decode_all(lm, mode, steps=12, prompts=[prompt])[0], trajectory)


@MODELS
@pytest.mark.parametrize("mode", ["prefix", "dual"])
def test_a_cached_step_over_a_changed_block_sees_the_new_tokens(make_lm, mode):
    lm = make_lm()
    sequence = torch.tensor([encode(lm)[2] + [lm.tokens.mask] * 8])
    start, end = len(encode(lm)[2]), len(encode(lm)[2]) + 4
    cache = BlockCache(lm, mode)
    with torch.no_grad():
        first = cache.begin_block(sequence, None, start, end)
        assert torch.allclose(first, lm.logits(sequence)[:, start:end])
        changed = sequence.clone()
        changed[0, start] = encode(lm)[0][0]
        later = cache.step(changed)
        # the block's own tokens are recomputed: the step differs from the unchanged sequence's logits
        assert not torch.allclose(later, cache.step(sequence))
        assert torch.allclose(cache.step(sequence), first)


def test_a_model_that_cannot_take_a_cache_decodes_without_it():
    inner = tiny_builtin()
    lm = DiffusionLM(IgnoresAttentionMask(inner.model), inner.tokenizer, tokens=inner.tokens, handles_padding=True)
    with pytest.warns(UserWarning, match="block KV cache is not usable"):
        cached = decode_all(lm, "dual", steps=12, prompts=encode(inner)[:1])
    assert not cache_supported(lm)
    assert same(cached[0], decode_all(lm, None, steps=12, prompts=encode(inner)[:1])[0])


def test_unknown_cache_mode_names_the_field():
    with pytest.raises(ConfigError, match="cache"):
        SamplerConfig(cache="triple")


def test_rollout_cache_reaches_the_rollouts_sampler_and_is_checked():
    from dopsd.trainers.dopsd import DOPSDConfig
    from dopsd.trainers.grpo import GRPOConfig

    for config_class in (DOPSDConfig, GRPOConfig):
        config = config_class(rollout_cache="dual")
        assert config.sampler_config().cache == "dual"
        assert config.sampler_config(0.9).cache == "dual"
        assert config.eval_sampler_config().cache is None  # held-out evaluation stays uncached
        with pytest.raises(ConfigError, match="cache"):
            config_class(rollout_cache="triple")


def test_the_sample_command_takes_the_cache(tmp_path, capsys):
    from dopsd.cli import main

    folder = tmp_path / "random"
    assert main(["create-model", str(folder), "--hidden-size", "32", "--layers", "2", "--heads", "2"]) == 0
    capsys.readouterr()
    args = ["sample", "--model", str(folder), "--prompt", "12+3=", "--gen-length", "12", "--block-length", "4",
            "--steps", "3", "--device", "cpu"]
    assert main(args) == 0
    plain = capsys.readouterr().out
    for mode in ("prefix", "dual"):  # one step per block: exactly the uncached text
        assert main(args + ["--cache", mode]) == 0
        assert capsys.readouterr().out == plain
    with pytest.raises(SystemExit) as refused:
        main(args + ["--cache", "triple"])
    assert refused.value.code == 2
    assert capsys.readouterr().err.startswith("error: ")
