"""Block-attention (block-diffusion) models: the mask, the exact block cache, the one-pass clean/noisy layout, the
conversion, and the checks that refuse what a block model cannot do."""

from __future__ import annotations

import pytest
import torch
from conftest import tiny_llama

from dopsd.errors import DopsdError
from dopsd.models import DiffusionLM, convert_causal_lm, create_builtin_model, load_diffusion_lm
from dopsd.models.layout import AttentionLayout, layout_from_config
from dopsd.sampling import BlockDiffusionSampler
from dopsd.sampling.sampler import SamplerConfig

BLOCK = AttentionLayout("block", 4)


def block_builtin(seed: int = 0) -> DiffusionLM:
    lm = create_builtin_model(seed=seed, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                              attention_layout="block", block_size=4)
    lm.model.double()
    return lm


def block_llama(seed: int = 0, shift: bool = True) -> DiffusionLM:
    model, tokenizer = convert_causal_lm(*tiny_llama(seed), shift_logits=shift, layout=BLOCK)
    model.double()
    return DiffusionLM(model, tokenizer, shift_logits=shift, bidirectional_mask=True)


MODELS = {"builtin": block_builtin, "llama-shifted": block_llama, "llama": lambda: block_llama(shift=False)}
PROMPTS = [[5, 6, 7], [8, 9, 10, 11, 12, 13], [7], [20, 21, 22, 23]]


def test_block_mask_by_hand():
    # prompt of 3 columns (one of them padding), response of 4 in blocks of 2: prompt blocks -2 ([0]) and -1 ([1, 2])
    keys = torch.tensor([[0, 1, 1, 1, 1, 1, 1]])
    got = AttentionLayout("block", 2).mask(keys, 7, 3)[0, 0].int()
    want = torch.tensor([
        [1, 0, 0, 0, 0, 0, 0],  # padding sees itself only
        [0, 1, 1, 0, 0, 0, 0],
        [0, 1, 1, 0, 0, 0, 0],
        [0, 1, 1, 1, 1, 0, 0],
        [0, 1, 1, 1, 1, 0, 0],
        [0, 1, 1, 1, 1, 1, 1],
        [0, 1, 1, 1, 1, 1, 1],
    ])
    assert torch.equal(got, want)
    rows = AttentionLayout("block", 2).mask(keys, 7, 3, first_query=3)[0, 0].int()
    assert torch.equal(rows, want[3:])


def test_clean_noisy_mask_by_hand():
    # prompt 1, response 4 in blocks of 2: columns [p | c0 c1 c2 c3 | n0 n1 n2 n3]
    got = AttentionLayout("block", 2).clean_noisy_mask(None, 1, 4)[0, 0].int()
    want = torch.tensor([
        [1, 0, 0, 0, 0, 0, 0, 0, 0],
        [1, 1, 1, 0, 0, 0, 0, 0, 0],
        [1, 1, 1, 0, 0, 0, 0, 0, 0],
        [1, 1, 1, 1, 1, 0, 0, 0, 0],
        [1, 1, 1, 1, 1, 0, 0, 0, 0],
        [1, 0, 0, 0, 0, 1, 1, 0, 0],  # noisy block 0: prompt + itself
        [1, 0, 0, 0, 0, 1, 1, 0, 0],
        [1, 1, 1, 0, 0, 0, 0, 1, 1],  # noisy block 1: prompt + clean block 0 + itself
        [1, 1, 1, 0, 0, 0, 0, 1, 1],
    ])
    assert torch.equal(got, want)


@pytest.mark.parametrize("name", MODELS)
def test_earlier_blocks_never_see_later_ones(name):
    lm = MODELS[name]()
    ids = torch.tensor([[5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]])
    changed = ids.clone()
    changed[0, 7:] = torch.tensor([30, 31, 32, 33])  # the response's second block (response starts at column 3)
    before, after = lm.logits(ids, response_start=3), lm.logits(changed, response_start=3)
    assert torch.allclose(before[:, :7], after[:, :7], atol=1e-12)
    assert not torch.allclose(before[:, 7:], after[:, 7:])
    # and inside a block attention is bidirectional: changing a block's last token changes its first position
    inside = ids.clone()
    inside[0, 6] = 40
    assert not torch.allclose(lm.logits(inside, response_start=3)[:, 4], before[:, 4])


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_cached_decoding_equals_uncached(name, temperature):
    lm = MODELS[name]()
    results = []
    for cache in (None, "prefix", "dual"):
        config = SamplerConfig(gen_length=12, block_length=4, steps=6, temperature=temperature, cache=cache)
        trajectories = BlockDiffusionSampler(lm, config).sample(PROMPTS, seed=3)
        results.append((torch.stack([t.tokens for t in trajectories]),
                        torch.stack([t.reveal_step for t in trajectories])))
    assert lm._checks["kv_cache"] is True
    for tokens, reveal in results[1:]:
        assert torch.equal(tokens, results[0][0]) and torch.equal(reveal, results[0][1])


@pytest.mark.parametrize("name", MODELS)
def test_threshold_decoding_cached_equals_uncached(name):
    lm = MODELS[name]()
    runs = [torch.stack([t.tokens for t in BlockDiffusionSampler(lm, SamplerConfig(
        gen_length=8, block_length=4, threshold=0.05, cache=cache)).sample(PROMPTS)]) for cache in (None, "prefix")]
    assert torch.equal(runs[0], runs[1])


@pytest.mark.parametrize("name", MODELS)
def test_a_batch_equals_its_prompts_one_by_one(name):
    lm = MODELS[name]()
    config = SamplerConfig(gen_length=12, block_length=4, steps=6, cache="prefix")
    batch = BlockDiffusionSampler(lm, config).sample(PROMPTS)
    for prompt, together in zip(PROMPTS, batch):
        alone = BlockDiffusionSampler(lm, config).sample([prompt])[0]
        assert torch.equal(alone.tokens, together.tokens)
        assert torch.equal(alone.reveal_step, together.reveal_step)


def per_block_logits(lm, prompt, clean, state):
    """The reference of the one-pass layout: one pass per block, the blocks before it clean, read at the block."""
    size, gen_length = lm.layout.block_size, clean.numel()
    out = []
    for start in range(0, gen_length, size):
        response = clean.clone()
        response[start : start + size] = state[start : start + size]
        ids = torch.cat([torch.tensor(prompt), response])[None]
        out.append(lm.logits(ids, response_start=len(prompt))[0, len(prompt) + start : len(prompt) + start + size])
    return torch.cat(out)


@pytest.mark.parametrize("name", MODELS)
def test_one_pass_layout_equals_the_block_by_block_computation(name):
    from dopsd.sampling.padding import left_pad_with_responses

    lm = MODELS[name]()
    generator = torch.Generator().manual_seed(0)
    gen_length, mask = 12, lm.tokens.mask
    clean = torch.randint(4, 40, (len(PROMPTS), gen_length), generator=generator)
    state = torch.where(torch.rand(clean.shape, generator=generator) < 0.5, torch.full_like(clean, mask), clean)
    ids, attention, width = left_pad_with_responses(PROMPTS, state, lm.tokens.pad)
    positions = width + torch.arange(gen_length)
    together = lm.state_logits_at(ids, positions, attention, width, clean=clean)
    for row, prompt in enumerate(PROMPTS):
        want = per_block_logits(lm, prompt, clean[row], state[row])
        assert torch.allclose(together[row], want, atol=1e-5, rtol=0)
    # selected positions only (repeats allowed), per row
    picked = torch.tensor([[0, 5, 5], [11, 4, 3], [8, 0, 1], [2, 2, 9]]) + width
    assert torch.allclose(lm.state_logits_at(ids, picked, attention, width, clean=clean),
                          together.gather(1, (picked - width)[..., None].expand(-1, -1, together.shape[-1])),
                          atol=1e-10)


def test_full_attention_ignores_clean():
    lm = create_builtin_model(seed=0, hidden_size=32, num_hidden_layers=2, num_attention_heads=4)
    ids = torch.tensor([[5, 6, 7, lm.tokens.mask, 9]])
    positions = torch.tensor([3, 4])
    assert torch.equal(lm.state_logits_at(ids, positions, None, 3, clean=torch.tensor([[1, 2]])),
                       lm.logits_at(ids, positions))


def test_block_model_needs_response_start():
    with pytest.raises(ValueError, match="response_start"):
        block_builtin().logits(torch.tensor([[5, 6, 7]]))


def test_block_length_must_equal_the_block_size():
    with pytest.raises(DopsdError, match="--block-length 4"):
        BlockDiffusionSampler(block_builtin(), SamplerConfig(gen_length=16, block_length=8))


def test_layout_from_configs():
    class Config:
        model_type = "llama"
        block_size = 8  # a field of that name on another model type is never read

    assert layout_from_config(Config()) is None
    Config.model_type = "sdar"
    assert layout_from_config(Config()) == AttentionLayout("block", 8)
    Config.dopsd_diffusion = {"bidirectional": True, "attention": "full", "block_size": None}
    assert layout_from_config(Config()) == AttentionLayout("full")
    with pytest.raises(DopsdError):
        AttentionLayout("block", 0)


def test_converted_block_model_reloads_with_the_same_behaviour(tmp_path):
    lm = block_llama()
    lm.model.save_pretrained(tmp_path)
    lm.tokenizer.save_pretrained(tmp_path)
    loaded = load_diffusion_lm(tmp_path, dtype="float64")
    assert loaded.layout == BLOCK and loaded.shift_logits
    ids = torch.tensor([[5, 6, 7, 8, lm.tokens.mask, 10, 11, 12, 13]])
    assert torch.allclose(loaded.logits(ids, response_start=2), lm.logits(ids, response_start=2), atol=1e-10)


def test_convert_command_writes_a_block_model(tmp_path, capsys):
    from dopsd.cli import main

    source = tmp_path / "causal"
    model, tokenizer = tiny_llama()
    model.save_pretrained(source)
    tokenizer.save_pretrained(source)
    assert main(["convert", "--model", str(source), "--output", str(tmp_path / "out"), "--attention", "block",
                 "--block-size", "2"]) == 0
    assert "block (block size 2)" in capsys.readouterr().out
    assert load_diffusion_lm(tmp_path / "out").layout == AttentionLayout("block", 2)
    # --block-size on loading overrides what the config says
    assert load_diffusion_lm(tmp_path / "out", block_size=4).layout == BLOCK


def test_create_model_makes_a_block_model(tmp_path, capsys):
    from dopsd.cli import main

    assert main(["create-model", str(tmp_path / "m"), "--hidden-size", "32", "--layers", "1", "--heads", "2",
                 "--block-size", "2"]) == 0
    assert "attention block (block size 2)" in capsys.readouterr().out
    assert load_diffusion_lm(tmp_path / "m").layout == AttentionLayout("block", 2)
    assert main(["create-model", str(tmp_path / "bad"), "--block-size", "0"]) == 2
    assert not (tmp_path / "bad").exists()


def test_a_model_that_ignores_the_mask_cannot_be_declared_block(tmp_path):
    from doubles import write_llada_like

    folder = tmp_path / "llada"
    write_llada_like(folder)
    lm = load_diffusion_lm(folder, trust_remote_code=True, block_size=4, check=False)
    with pytest.raises(DopsdError, match="ignores the attention mask"):
        lm.logits(torch.tensor([[5, 6, 7, 8]]), response_start=2)


def test_opdlm_passes_the_block_size_to_a_diffusion_student(tmp_path):
    from dopsd.trainers.opdlm import OPDLMConfig, load_student

    lm = create_builtin_model(seed=0, hidden_size=32, num_hidden_layers=1, num_attention_heads=2)
    lm.model.save_pretrained(tmp_path)
    lm.tokenizer.save_pretrained(tmp_path)
    config = OPDLMConfig(model=str(tmp_path), block_size=4, gen_length=8, block_length=4)
    assert load_student(config).layout == BLOCK


@pytest.mark.parametrize("family", ["qwen2", "qwen3"])
def test_qwen_families_convert_to_exact_block_models(family, tmp_path):
    from transformers import Qwen2Config, Qwen2ForCausalLM, Qwen3Config, Qwen3ForCausalLM

    from dopsd.models import build_char_tokenizer

    tokenizer = build_char_tokenizer(with_mask=False)
    config_class, model_class = {"qwen2": (Qwen2Config, Qwen2ForCausalLM),
                                 "qwen3": (Qwen3Config, Qwen3ForCausalLM)}[family]
    torch.manual_seed(0)
    causal = model_class(config_class(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                                      num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=8,
                                      pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id))
    model, tokenizer = convert_causal_lm(causal, tokenizer, layout=BLOCK)
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    lm = load_diffusion_lm(tmp_path, dtype="float64")
    assert lm.layout == BLOCK
    ids = torch.tensor([[5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]])
    changed = ids.clone()
    changed[0, 7:] = 30
    assert torch.allclose(lm.logits(ids, response_start=3)[:, :7], lm.logits(changed, response_start=3)[:, :7],
                          atol=1e-12)
    runs = [torch.stack([t.tokens for t in BlockDiffusionSampler(lm, SamplerConfig(
        gen_length=8, block_length=4, steps=4, cache=cache)).sample(PROMPTS)]) for cache in (None, "prefix")]
    assert torch.equal(runs[0], runs[1]) and lm._checks["kv_cache"] is True
