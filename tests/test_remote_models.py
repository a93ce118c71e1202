"""LLaDA-like and Dream-like remote code (tests/doubles) through dopsd's loader under transformers 5."""

import json

import pytest
import torch
from doubles import LLADA_MASK, write_dream_like, write_llada_like
from safetensors.torch import load_file, save_file
from transformers import AutoModel

from dopsd import DopsdError
from dopsd.cli import main
from dopsd.models import build_char_tokenizer, load_diffusion_lm
from dopsd.models.compat import check_finite_logits, check_rotary_tables, repair_rotary_tables


def load(folder, **options):
    return load_diffusion_lm(folder, trust_remote_code=True, device="cpu", **options)


def test_the_doubles_break_under_transformers_5_as_the_stock_code_does(tmp_path):
    # Fresh folder names: classes nobody has fixed yet.
    with pytest.raises(AttributeError, match="all_tied_weights_keys"):
        AutoModel.from_pretrained(write_llada_like(tmp_path / "llada_unfixed"), trust_remote_code=True)
    with pytest.raises(KeyError, match="default"):
        AutoModel.from_pretrained(write_dream_like(tmp_path / "dream_unfixed"), trust_remote_code=True)


def test_llada_like_loads_with_its_fixes_and_its_saved_weights(llada_folder):
    lm = load(llada_folder)
    assert lm.compat_fixes == ("post_init", "tie_weights", "use_cache")
    saved = load_file(llada_folder / "model.safetensors")
    loaded = lm.model.state_dict()
    assert saved.keys() == loaded.keys()
    assert all(torch.equal(saved[key], loaded[key]) for key in saved)
    assert lm.tokens.mask == lm.tokenizer.convert_tokens_to_ids(LLADA_MASK)
    assert not lm.shift_logits
    assert not lm.handles_padding  # LLaDA's attention ignores the mask: equal-length batches only


def test_dream_like_loads_with_its_fixes_and_correct_rotary_tables(dream_folder):
    lm = load(dream_folder)
    assert lm.compat_fixes == ("generation_validate", "inv_freq", "rope_default", "tied_weights_list")
    tables = [module.inv_freq for module in lm.model.modules() if "inv_freq" in module._buffers]
    assert len(tables) == 3  # one per layer and the model's own
    head_dim_8 = torch.tensor([1.0, 0.1, 0.01, 0.001])  # 10000 ** (-2i / 8)
    for table in tables:
        assert torch.allclose(table, head_dim_8, rtol=1e-6, atol=0)
    assert lm.shift_logits
    assert lm.tokens.mask == lm.tokenizer.mask_token_id


def test_dream_like_gets_a_4d_boolean_mask_and_honours_padding(dream_folder):
    lm = load(dream_folder)
    lm.model.double()
    assert lm.handles_padding and lm.mask_form == "4d_bool"
    rows = [[5, 6, 7, lm.tokens.mask, lm.tokens.mask], [8, lm.tokens.mask, lm.tokens.mask]]
    ids = torch.full((2, 5), lm.tokens.pad)
    attention = torch.zeros(2, 5, dtype=torch.long)
    for index, row in enumerate(rows):
        ids[index, 5 - len(row):] = torch.tensor(row)
        attention[index, 5 - len(row):] = 1
    batched = lm.logits(ids, attention)
    for index, row in enumerate(rows):
        alone = lm.logits(torch.tensor([row]))
        # Positions after the row's first (whose shifted logits read the padding before it).
        assert torch.allclose(batched[index, 5 - len(row) + 1:], alone[0, 1:], rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("double", ["llada", "dream"])
def test_saved_remote_model_reloads_with_identical_logits(tmp_path, double, llada_folder, dream_folder):
    folder = {"llada": llada_folder, "dream": dream_folder}[double]
    lm = load(folder)
    lm.model.save_pretrained(tmp_path / "saved")  # Dream's generation config validates with strict= here
    lm.tokenizer.save_pretrained(tmp_path / "saved")
    assert any(path.name.startswith("modeling_") for path in (tmp_path / "saved").iterdir())  # code copied along
    again = load(tmp_path / "saved")
    ids = torch.tensor([[5, 6, lm.tokens.mask, lm.tokens.mask, 7]])
    assert torch.equal(again.logits(ids), lm.logits(ids))


def test_broken_rotary_tables_are_repaired_or_refused_in_one_line(dream_folder):
    lm = load(dream_folder)
    rotary = lm.model.model.rotary_emb
    good = rotary.inv_freq.clone()
    rotary.inv_freq.mul_(2.0)
    with pytest.raises(DopsdError, match="not what the config implies") as error:
        check_rotary_tables(lm.model)
    assert "\n" not in str(error.value)
    rotary.inv_freq.fill_(float("nan"))
    with pytest.raises(DopsdError, match="non-finite"):
        check_rotary_tables(lm.model)
    assert repair_rotary_tables(lm.model) == ["model.rotary_emb"]
    assert torch.equal(rotary.inv_freq, good)
    check_rotary_tables(lm.model)


def test_non_finite_logits_are_refused_in_one_line(llada_folder):
    lm = load(llada_folder)
    check_finite_logits(lm)
    with torch.no_grad():
        lm.model.get_output_embeddings().weight[3, 0] = float("nan")
    with pytest.raises(DopsdError, match="non-finite logits") as error:
        check_finite_logits(lm)
    assert "\n" not in str(error.value)


def test_llada_mask_id_missing_from_config_comes_from_the_tokenizer_never_the_class_default(tmp_path):
    folder = write_llada_like(tmp_path / "llada_nomask", mask_token_id_in_config=False)
    assert "mask_token_id" not in json.loads((folder / "config.json").read_text())
    lm = load(folder)
    assert lm.model.config.mask_token_id == 50256  # LLaDA's config class default
    assert lm.tokens.mask == lm.tokenizer.convert_tokens_to_ids(LLADA_MASK) == 99


def test_llada_mask_id_nowhere_to_be_found_is_a_one_line_cli_error(tmp_path, capsys):
    folder = write_llada_like(tmp_path / "llada_nomask_tok", mask_token_id_in_config=False)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (folder / name).unlink()
    build_char_tokenizer(with_mask=False).save_pretrained(folder)  # no <|mdm_mask|>, no mask token
    args = ["sample", "--model", str(folder), "--trust-remote-code", "--prompt", "7=", "--gen-length", "4",
            "--block-length", "4", "--device", "cpu"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "--mask-token-id" in err and "50256" in err
    assert main(args + ["--mask-token-id", "98"]) == 0


@pytest.mark.parametrize("double", ["llada", "dream"])
def test_cli_sample_and_eval_run_on_the_doubles(double, llada_folder, dream_folder, tmp_path, capsys):
    folder = str({"llada": llada_folder, "dream": dream_folder}[double])
    common = ["--model", folder, "--trust-remote-code", "--device", "cpu", "--block-length", "4"]
    assert main(["sample", *common, "--prompt", "12+3=", "--gen-length", "8", "--trajectory"]) == 0
    steps = [line for line in capsys.readouterr().out.splitlines() if line.startswith("step ")]
    assert len(steps) == 4  # 8 tokens, two a step
    completions = {}
    for batch in ("1", "4"):
        output = tmp_path / f"rows{batch}.jsonl"
        assert main(["eval", *common, "--task", "countdown", "--data", "sample", "--limit", "4", "--gen-length", "8",
                     "--batch-size", batch, "--prompt-style", "compact", "--no-progress", "--output", str(output)]) == 0
        summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert summary["n"] == 4 and summary["gen_length"] == 8
        rows = [json.loads(line) for line in output.read_text().splitlines()]
        completions[batch] = [row["completion"] for row in sorted(rows, key=lambda row: row["index"])]
    prompts = {len(row["prompt"]) for row in rows}
    assert len(prompts) > 1  # prompts of different lengths share a batch of 4
    # Batched (left-padded for Dream, grouped by length for LLaDA) or one by one: the same greedy completions.
    assert completions["1"] == completions["4"]


def test_a_tied_weights_list_ties_the_listed_weights_to_the_input_embeddings(tmp_path):
    folder = write_dream_like(tmp_path / "dream_tied")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(dict(config, tie_word_embeddings=True)))
    weights = load_file(folder / "model.safetensors")
    del weights["lm_head.weight"]
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    model = load(folder).model
    assert model.all_tied_weights_keys == {"lm_head.weight": "model.embed_tokens.weight"}
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()


def test_library_and_builtin_classes_are_never_patched():
    from transformers import LlamaForCausalLM

    from dopsd.models import MaskedDiffusionTransformer
    from dopsd.models.compat import patch_remote_code

    assert patch_remote_code(LlamaForCausalLM) == []
    assert patch_remote_code(MaskedDiffusionTransformer) == []
    assert "__dopsd_fix__" not in dir(LlamaForCausalLM.__init__)
