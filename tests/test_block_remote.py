"""Block-diffusion remote code through dopsd: the SDAR-like double (SDAR/TraDo/OPDLM's student) and dllm's A2D-Qwen3
as shipped (tests/doubles), under transformers 5: loading, the exact KV cache with SDAR's ``store_kv``, batching,
every command on the SDAR double, and one-line errors for what cannot run."""

import json

import pytest
import torch
from doubles import SDAR_MASK, write_a2d_like, write_sdar_like
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoModelForMaskedLM

from dopsd import DopsdError
from dopsd.cli import main
from dopsd.models import DiffusionLM, load_diffusion_lm
from dopsd.models.block_cache import ExactBlockCache
from dopsd.models.cache import make_cache
from dopsd.sampling import BlockDiffusionSampler, SamplerConfig

PROMPTS = ["12+3=", "7=", "1000-999="]


@pytest.fixture(scope="module")
def sdar_folder(tmp_path_factory):
    return write_sdar_like(tmp_path_factory.mktemp("block_doubles") / "sdar_like")


@pytest.fixture(scope="module")
def a2d_folder(tmp_path_factory):
    return write_a2d_like(tmp_path_factory.mktemp("block_doubles") / "a2d_like")


def load(folder, **options):
    return load_diffusion_lm(folder, trust_remote_code=True, device="cpu", **options)


@pytest.fixture(scope="module")
def sdar_lm(sdar_folder):
    lm = load(sdar_folder, block_size=4)
    lm.model.double()
    return lm


# ----- loading -----------------------------------------------------------------------------------------------------
def test_the_sdar_double_breaks_under_transformers_5_as_the_shipped_code_does(tmp_path):
    with pytest.raises(ImportError, match="LossKwargs"):
        AutoModelForCausalLM.from_pretrained(write_sdar_like(tmp_path / "sdar_unfixed"), trust_remote_code=True)


def test_sdar_like_loads_as_a_block_model_with_its_fixes(sdar_folder):
    lm = load(sdar_folder, block_size=4)
    assert type(lm.model).__name__ == "SDARForCausalLM"  # the LM, not the headless AutoModel backbone
    assert lm.compat_fixes == ("fuse_cross_entropy", "inv_freq", "loss_kwargs", "rope_default", "tied_weights_list")
    assert lm.layout.is_block and lm.layout.block_size == 4
    assert lm.tokens.mask == lm.tokenizer.convert_tokens_to_ids(SDAR_MASK)  # by name: neither declared nor in config
    assert lm.handles_padding and lm.mask_form == "4d_bool"
    additive = DiffusionLM(lm.model, lm.tokenizer, tokens=lm.tokens, layout=lm.layout, mask_form="4d_additive")
    assert not additive.handles_padding  # SDAR reads an additive mask's zeros as "hidden"
    saved = load_file(sdar_folder / "model.safetensors")
    loaded = lm.model.state_dict()
    assert saved.keys() == loaded.keys() and all(torch.equal(saved[k], loaded[k]) for k in saved)
    lm.model.train()
    ids = torch.tensor([[5, 6, lm.tokens.mask, lm.tokens.mask]])
    assert lm.logits(ids, response_start=2).shape == (1, 4, lm.vocab_size)  # fused cross-entropy off: logits kept
    assert load(sdar_folder, block_size=4, mask_token_id=3).tokens.mask == 3


def test_sdar_without_a_block_size_is_refused_in_one_line(sdar_folder):
    with pytest.raises(DopsdError, match="--block-size") as error:
        load(sdar_folder)
    assert "\n" not in str(error.value)


def test_a_sdar_block_model_pads_left_exactly(sdar_lm):
    lm = sdar_lm
    rows = [[5, 6, 7, lm.tokens.mask, lm.tokens.mask], [8, lm.tokens.mask, lm.tokens.mask]]
    ids = torch.full((2, 5), lm.tokens.pad)
    attention = torch.zeros(2, 5, dtype=torch.long)
    for index, row in enumerate(rows):
        ids[index, 5 - len(row):] = torch.tensor(row)
        attention[index, 5 - len(row):] = 1
    batched = lm.logits(ids, attention, response_start=3)
    for index, row in enumerate(rows):
        alone = lm.logits(torch.tensor([row]), response_start=len(row) - 2)
        assert torch.allclose(batched[index, 5 - len(row):], alone[0], rtol=1e-10, atol=1e-10)


# ----- the exact cache with store_kv ---------------------------------------------------------------------------------
def decode(lm, cache, steps, prompts=None, temperature=0.0):
    config = SamplerConfig(gen_length=12, block_length=4, steps=steps, temperature=temperature, cache=cache)
    prompts = prompts or [lm.tokenizer(text)["input_ids"] for text in PROMPTS]
    return BlockDiffusionSampler(lm, config).sample(prompts, seed=5)


def test_sdar_gets_the_exact_cache_and_is_asked_to_store(sdar_lm):
    cache = make_cache(sdar_lm, "prefix", 3)
    assert isinstance(cache, ExactBlockCache) and cache.store_kv


@pytest.mark.parametrize("steps", [3, 12])
def test_sdar_cached_decoding_is_uncached_decoding_at_temperature_0(sdar_lm, steps):
    plain = decode(sdar_lm, None, steps)
    for mode in ("prefix", "dual"):
        cached = decode(sdar_lm, mode, steps)
        assert all(torch.equal(a.tokens, b.tokens) and torch.equal(a.reveal_step, b.reveal_step)
                   for a, b in zip(plain, cached))


def test_sdar_cached_batch_with_left_padding_equals_prompts_one_by_one(sdar_lm):
    batch = decode(sdar_lm, "prefix", 12)
    prompts = [sdar_lm.tokenizer(text)["input_ids"] for text in PROMPTS]
    assert len({len(p) for p in prompts}) > 1
    for prompt, trajectory in zip(prompts, batch):
        alone = decode(sdar_lm, "prefix", 12, prompts=[prompt])[0]
        assert torch.equal(alone.tokens, trajectory.tokens)


def test_without_store_kv_the_cache_would_not_be_exact(sdar_lm):
    """The reason for ``store_kv=True``: SDAR's forward stores nothing otherwise."""
    sequence = torch.tensor([[5, 6, 7] + [sdar_lm.tokens.mask] * 8])
    want = sdar_lm.logits(sequence, response_start=3)[:, 7:11]
    for store in (True, False):
        cache = ExactBlockCache(sdar_lm, 3)
        cache.store_kv = store
        cache.begin_block(sequence, None, 3, 7)
        assert bool(cache.kept) == store  # nothing kept without store_kv
        got = cache.begin_block(sequence, None, 7, 11)
        assert torch.allclose(got, want, rtol=1e-10, atol=1e-10) == store


# ----- every command on the SDAR double -----------------------------------------------------------------------------
def test_cli_sample_and_eval_run_on_the_sdar_double(sdar_folder, tmp_path, capsys):
    common = ["--model", str(sdar_folder), "--trust-remote-code", "--block-size", "4", "--device", "cpu"]
    assert main(["sample", *common, "--prompt", "12+3=", "--gen-length", "8", "--block-length", "4",
                 "--trajectory"]) == 0
    steps = [line for line in capsys.readouterr().out.splitlines() if line.startswith("step ")]
    assert len(steps) == 4
    completions = {}
    for batch in ("1", "4"):
        output = tmp_path / f"rows{batch}.jsonl"
        # no --block-length: it defaults to the model's block size
        assert main(["eval", *common, "--task", "countdown", "--data", "sample", "--limit", "4", "--gen-length", "8",
                     "--batch-size", batch, "--prompt-style", "compact", "--no-progress", "--cache", "prefix",
                     "--output", str(output)]) == 0
        summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert summary["n"] == 4
        rows = [json.loads(line) for line in output.read_text().splitlines()]
        completions[batch] = [row["completion"] for row in sorted(rows, key=lambda row: row["index"])]
    assert completions["1"] == completions["4"]


TRAINING = {
    "grpo": ["--num-generations", "2", "--prompts-per-rollout", "2", "--inner-updates", "1"],
    "rft": ["--passk", "2", "--prompts-per-rollout", "3"],
    "sft": ["--batch-size", "4"],
}


@pytest.mark.parametrize("command", sorted(TRAINING))
def test_each_training_command_runs_on_the_sdar_double(command, sdar_folder, tmp_path, capsys):
    out = tmp_path / "run"
    arguments = [command, "--model", str(sdar_folder), "--trust-remote-code", "--block-size", "4", "--task",
                 "countdown", "--train-data", "sample", "--eval-data", "sample", "--eval-limit", "4",
                 "--prompt-style", "compact", "--gen-length", "12", "--block-length", "4", "--max-updates", "1",
                 "--lora-r", "2", "--output-dir", str(out), "--progress", "false", *TRAINING[command]]
    assert main(arguments) == 0
    assert "LoRA adapts 14 modules" in capsys.readouterr().out  # q/k/v/o, gate/up/down in each of two layers
    assert json.loads((out / "summary.json").read_text())["updates"] == 1


def test_opdlm_trains_the_sdar_double_from_a_causal_teacher(sdar_folder, tmp_path, capsys):
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(sdar_folder)  # the same vocabulary, <|MASK|> included
    torch.manual_seed(0)
    teacher = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                                           num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=2,
                                           pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id))
    teacher.save_pretrained(tmp_path / "teacher")
    tokenizer.save_pretrained(tmp_path / "teacher")
    out = tmp_path / "run"
    assert main(["opdlm", "--model", str(sdar_folder), "--trust-remote-code", "--block-size", "4", "--teacher-model",
                 str(tmp_path / "teacher"), "--task", "countdown", "--train-data", "sample", "--eval-data", "sample",
                 "--eval-limit", "4", "--prompt-style", "compact", "--gen-length", "12", "--prompts-per-rollout", "2",
                 "--max-updates", "1", "--lora-r", "2", "--output-dir", str(out), "--progress", "false"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["updates"] == 1 and summary["attention"] == "block (block size 4)"
    assert summary["tokens_trained"] > 0


def test_dopsd_train_refuses_the_sdar_double_in_one_line(sdar_folder, tmp_path, capsys):
    assert main(["train", "--model", str(sdar_folder), "--trust-remote-code", "--block-size", "4", "--task",
                 "countdown", "--train-data", "sample", "--eval-data", "sample", "--gen-length", "8",
                 "--block-length", "4", "--output-dir", str(tmp_path / "run"), "--progress", "false"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "block-attention" in err
    assert not (tmp_path / "run").exists()  # refused before anything is written


# ----- flash-attn missing -------------------------------------------------------------------------------------------
def test_remote_code_that_needs_flash_attn_is_one_error_line(tmp_path, capsys):
    folder = write_sdar_like(tmp_path / "sdar_flash", flash_attn_import=True)
    assert "from flash_attn.ops.triton.layer_norm import" in (folder / "modeling_sdar.py").read_text()
    with pytest.raises(DopsdError, match="flash-attn"):
        load(folder, block_size=4)
    assert main(["sample", "--model", str(folder), "--trust-remote-code", "--block-size", "4", "--device", "cpu",
                 "--prompt", "7=", "--gen-length", "4"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "pip install flash-attn" in err
    assert "Traceback" not in err


# ----- dllm's A2D-Qwen3 -----------------------------------------------------------------------------------------------
def test_the_a2d_double_breaks_under_transformers_5_as_the_shipped_code_does(tmp_path):
    model = AutoModelForMaskedLM.from_pretrained(write_a2d_like(tmp_path / "a2d_unfixed"), trust_remote_code=True)
    with pytest.raises(AttributeError, match="attention_type"):
        model(torch.tensor([[1, 2, 3]]))


def test_a2d_loads_full_by_default_and_block_with_a_block_size(a2d_folder):
    full = load(a2d_folder)
    assert full.compat_fixes == ("attention_type",)
    assert not full.layout.is_block and full.tokens.mask == full.tokenizer.mask_token_id
    assert all(layer.attention_type == "full_attention" for layer in full.model.model.layers)
    assert full.handles_padding
    block = load(a2d_folder, block_size=4)
    assert block.layout.block_size == 4 and block.handles_padding
    block.model.double()
    ids = torch.tensor([[5, 6, 7, block.tokens.mask, block.tokens.mask, block.tokens.mask, block.tokens.mask, 8]])
    logits = block.logits(ids, response_start=3)
    changed = ids.clone()
    changed[0, 7] = 9  # a later block: invisible to the first response block
    assert torch.equal(block.logits(changed, response_start=3)[:, :7], logits[:, :7])
    plain = decode(block, None, 3)
    cached = decode(block, "prefix", 3)
    assert all(torch.equal(a.tokens, b.tokens) for a, b in zip(plain, cached))


def test_cli_sample_runs_on_the_a2d_double(a2d_folder, capsys):
    assert main(["sample", "--model", str(a2d_folder), "--trust-remote-code", "--block-size", "4", "--device", "cpu",
                 "--prompt", "12+3=", "--gen-length", "8"]) == 0
