import math

import pytest
import torch
from conftest import IgnoresAttentionMask, fixed_logits_lm, tiny_builtin, tiny_converted_llama

from dopsd.config import ConfigError
from dopsd.models import DiffusionLM
from dopsd.sampling import BlockDiffusionSampler, SamplerConfig, plan_blocks

PROMPTS = ["12+3=", "7=", "1000-999=", "3102200002100320="]

# Every sampler option, each at temperature 0 and above 0.
OPTIONS = [
    dict(temperature=0.0),
    dict(temperature=0.8),
    dict(temperature=0.0, remasking="random"),
    dict(temperature=0.8, remasking="random"),
    dict(temperature=0.0, threshold=0.02),
    dict(temperature=0.8, threshold=0.02),
]


def encode(lm: DiffusionLM, texts=PROMPTS):
    return [lm.tokenizer(text)["input_ids"] for text in texts]


def same(a, b) -> bool:
    return torch.equal(a.tokens, b.tokens) and torch.equal(a.reveal_step, b.reveal_step) and a.num_steps == b.num_steps


@pytest.mark.parametrize("make_lm", [tiny_builtin, tiny_converted_llama], ids=["builtin", "converted-llama"])
@pytest.mark.parametrize("options", [dict(), dict(threshold=0.02)], ids=["fixed-k", "threshold"])
def test_batch_equals_rows_one_by_one_at_temperature_zero(make_lm, options):
    lm = make_lm()
    sampler = BlockDiffusionSampler(lm, SamplerConfig(gen_length=20, block_length=8, steps=10, **options))
    batch = sampler.sample(encode(lm))
    assert len({len(p) for p in encode(lm)}) > 1
    for prompt, trajectory in zip(encode(lm), batch):
        assert same(sampler.sample([prompt])[0], trajectory)


def test_model_ignoring_attention_masks_still_batches_correctly(builtin_lm):
    ignoring = DiffusionLM(IgnoresAttentionMask(builtin_lm.model), builtin_lm.tokenizer, tokens=builtin_lm.tokens)
    sampler = BlockDiffusionSampler(ignoring, SamplerConfig(gen_length=12, block_length=4, steps=6))
    prompts = encode(builtin_lm, ["12+3=", "7=", "45+6=", "8="])
    calls = []
    batch = sampler.sample(prompts, on_step=lambda steps, response, active: calls.append(response.shape[0]))
    assert not ignoring.handles_padding
    assert set(calls) == {2}  # two groups of two equal-length prompts, never a padded batch
    for prompt, trajectory in zip(prompts, batch):
        assert same(sampler.sample([prompt])[0], trajectory)


@pytest.mark.parametrize("options", OPTIONS)
def test_rebuilt_states_equal_the_sampler_states(builtin_lm, options):
    sampler = BlockDiffusionSampler(builtin_lm, SamplerConfig(gen_length=20, block_length=8, steps=10, **options))
    seen = []
    trajectories = sampler.sample(
        encode(builtin_lm), seed=3, on_step=lambda steps, response, active: seen.append((steps, response, active))
    )
    checked = 0
    for steps, response, active in seen:
        for row in torch.nonzero(active).flatten().tolist():
            assert torch.equal(trajectories[row].state(int(steps[row])), response[row])
            checked += 1
    assert checked == sum(t.num_steps for t in trajectories)
    for trajectory in trajectories:
        assert torch.equal(trajectory.state(trajectory.num_steps), trajectory.tokens)
        assert torch.equal(trajectory.states(torch.arange(trajectory.num_steps))[4], trajectory.state(4))
        assert not bool((trajectory.tokens == builtin_lm.tokens.mask).any())
        assert int(trajectory.reveal_step.min()) == 0 and int(trajectory.reveal_step.max()) == trajectory.num_steps - 1


@pytest.mark.parametrize("options", [o for o in OPTIONS if "threshold" not in o])
def test_each_step_reveals_exactly_k_positions_inside_the_current_block(builtin_lm, options):
    config = SamplerConfig(gen_length=22, block_length=8, steps=9, **options)
    trajectories = BlockDiffusionSampler(builtin_lm, config).sample(encode(builtin_lm), seed=1)
    schedule = [(plan.start, plan.end, k) for plan in plan_blocks(22, 8, 9) for k in plan.tokens_per_step]
    for trajectory in trajectories:
        assert trajectory.num_steps == 9
        for step, (start, end, k) in enumerate(schedule):
            revealed = trajectory.revealed_at(step)
            assert len(revealed) == k
            assert bool(((revealed >= start) & (revealed < end)).all())
            assert trajectory.block_bounds(step) == (start, end)


@pytest.mark.parametrize("options", [o for o in OPTIONS if "threshold" in o])
def test_threshold_decoding_stays_in_the_block_and_reveals_at_least_one(builtin_lm, options):
    config = SamplerConfig(gen_length=16, block_length=8, **options)
    for trajectory in BlockDiffusionSampler(builtin_lm, config).sample(encode(builtin_lm), seed=0):
        blocks = [trajectory.block_bounds(step)[0] for step in range(trajectory.num_steps)]
        assert blocks == sorted(blocks)
        assert all(len(trajectory.revealed_at(step)) >= 1 for step in range(trajectory.num_steps))


def test_threshold_reveals_every_confident_position_at_once():
    # vocabulary: 0 'a', 1 'b', 2 eos, 3 mask; response positions 0-3 are certain of 'a', 4-5 unsure
    certain = torch.tensor([30.0, 0.0, 0.0, 0.0])
    unsure = torch.tensor([0.1, 0.0, 0.0, 0.0])
    table = torch.stack([certain] + [certain] * 4 + [unsure] * 2)  # row 0: the prompt
    lm = fixed_logits_lm(table, mask=3, eos=2)
    sampler = BlockDiffusionSampler(lm, SamplerConfig(gen_length=6, block_length=6, threshold=0.9))
    trajectory = sampler.sample([[0]])[0]
    assert trajectory.revealed_at(0).tolist() == [0, 1, 2, 3]
    assert trajectory.num_steps == 3


@pytest.mark.parametrize("options", [o for o in OPTIONS if o["temperature"] > 0])
def test_seeded_sampling_is_reproducible(builtin_lm, options):
    sampler = BlockDiffusionSampler(builtin_lm, SamplerConfig(gen_length=16, block_length=8, steps=8, **options))
    first, again, other = (sampler.sample(encode(builtin_lm), seed=s) for s in (7, 7, 8))
    assert all(same(a, b) for a, b in zip(first, again))
    assert not all(same(a, b) for a, b in zip(first, other))


def test_gumbel_max_samples_from_the_tempered_softmax():
    # one response position; vocabulary 0 'a', 1 'b', 2 eos, 3 mask (never proposed despite its huge logit)
    logits = torch.tensor([[0.0, math.log(3.0), -1e9, 50.0]] * 2)  # prompt row, response row
    lm = fixed_logits_lm(logits, mask=3, eos=2)
    for temperature, expected_b in ((1.0, 0.75), (2.0, math.sqrt(3) / (1 + math.sqrt(3)))):
        sampler = BlockDiffusionSampler(
            lm, SamplerConfig(gen_length=1, block_length=1, steps=1, temperature=temperature))
        draws = torch.cat([t.tokens for t in sampler.sample([[0]] * 4000, seed=0)])
        assert set(draws.tolist()) <= {0, 1}
        assert abs(float((draws == 1).double().mean()) - expected_b) < 0.03
    greedy = BlockDiffusionSampler(lm, SamplerConfig(gen_length=1, block_length=1, steps=1)).sample([[0]])[0]
    assert greedy.tokens.tolist() == [1]


def test_low_confidence_order_and_recording_stops_after_the_first_eos():
    # vocabulary 0 'a', 1 'b', 2 eos, 3 mask. Confidence order: pos 3 (eos), 0, 1, 2, 4 (eos), 5 (eos).
    def row(token, logit):
        values = torch.zeros(4)
        values[token] = logit
        return values

    prompt = row(0, 0.0)
    table = torch.stack([prompt, row(0, 5.0), row(0, 4.0), row(1, 3.0), row(2, 6.0), row(2, 2.0), row(2, 1.0)])
    lm = fixed_logits_lm(table, mask=3, eos=2)
    config = SamplerConfig(gen_length=6, block_length=6, steps=6)
    trajectory = BlockDiffusionSampler(lm, config).sample([[0]])[0]
    assert trajectory.tokens.tolist() == [0, 0, 1, 2, 2, 2]
    assert trajectory.reveal_step.tolist() == [1, 2, 3, 0, 4, 5]
    assert trajectory.num_recorded_steps == 4
    assert trajectory.states().shape == (4, 6)
    unrecorded = BlockDiffusionSampler(lm, SamplerConfig(gen_length=6, block_length=6, steps=6, record_until_eos=False))
    assert unrecorded.sample([[0]])[0].num_recorded_steps == 6


@pytest.mark.parametrize(
    "field, options",
    [
        ("steps", dict(gen_length=64, block_length=32, steps=1)),
        ("temperature", dict(temperature=-1.0)),
        ("remasking", dict(remasking="lowest")),
        ("threshold", dict(threshold=1.5)),
        ("threshold", dict(threshold=0.9, remasking="random")),
        ("gen_length", dict(gen_length=0)),
    ],
)
def test_config_values_out_of_range_name_the_field(field, options):
    with pytest.raises(ConfigError, match=f"'{field}'"):
        SamplerConfig(**options)


def test_default_is_the_paper_setting():
    config = SamplerConfig()
    assert (config.gen_length, config.block_length, config.total_steps, config.temperature) == (256, 32, 128, 0.0)
    assert config.remasking == "low_confidence"


def test_context_is_seen_ahead_and_cleared_when_its_block_is_decoded(builtin_lm):
    config = SamplerConfig(gen_length=12, block_length=4, steps=6)
    sampler = BlockDiffusionSampler(builtin_lm, config)
    prompts = encode(builtin_lm)
    mask = builtin_lm.tokens.mask
    context = torch.full((len(prompts), 12), mask)
    context[:, 5] = 7  # block 1
    context[:, 10:] = 9  # block 2
    context[1] = mask  # a row with no context
    seen = []
    batch = sampler.sample(prompts, context=context, on_step=lambda steps, response, active: seen.append(response))
    blocks_first_step = {0: seen[0], 1: seen[2], 2: seen[4]}  # 2 steps per block
    assert torch.equal(blocks_first_step[0][:, 4:], context[:, 4:])  # later blocks carry the context
    assert (blocks_first_step[1][:, 4:8] == mask).all()  # the block being decoded starts from masks
    assert torch.equal(blocks_first_step[1][:, 8:], context[:, 8:])
    assert (blocks_first_step[2][:, 8:] == mask).all()
    for row, trajectory in enumerate(batch):
        assert (trajectory.reveal_step >= 0).all()  # every position was decoded, none handed over
        assert same(sampler.sample([prompts[row]], context=context[row : row + 1])[0], trajectory)
    plain = sampler.sample(prompts)
    assert same(plain[1], batch[1])  # no context = all masks
    assert any(not same(a, b) for a, b in zip(plain, batch))  # the context changed what the model decoded
    with pytest.raises(ValueError, match="context must be"):
        sampler.sample(prompts, context=context[:, :8])
