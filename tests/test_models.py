import pytest
import torch
from conftest import IgnoresAttentionMask, fixed_logits_lm, tiny_builtin, tiny_converted_llama, tiny_llama
from transformers import AutoModel, AutoModelForMaskedLM

from dopsd import DopsdError
from dopsd.models import DiffusionLM, MaskedDiffusionTransformer, load_diffusion_lm


def random_batch(lm: DiffusionLM, batch=3, length=12, seed=0):
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(4, lm.vocab_size - 1, (batch, length), generator=generator)
    ids[:, length // 2 :] = lm.tokens.mask
    attention = torch.ones_like(ids)
    if batch > 1:
        attention[1, :3] = 0  # a left-padded row
        ids[1, :3] = lm.tokens.pad
    return ids, attention


@pytest.mark.parametrize("make_lm", [tiny_builtin, tiny_converted_llama], ids=["builtin", "converted-llama"])
def test_selected_positions_equal_rows_of_full_logits(make_lm):
    lm = make_lm()
    ids, attention = random_batch(lm)
    full = lm.logits(ids, attention)
    per_row = torch.tensor([[0, 5, 11, 5], [3, 4, 6, 10], [11, 0, 1, 2]])
    assert torch.allclose(lm.logits_at(ids, per_row, attention),
                          full.gather(1, per_row[..., None].expand(-1, -1, full.shape[-1])))
    shared = torch.arange(6, 12)
    assert torch.allclose(lm.logits_at(ids, shared, attention), full[:, 6:12])
    assert lm._checks["selection"] is True


def test_selected_positions_as_a_loaded_models_first_call_on_a_padded_batch(builtin_lm):
    """A model loaded from a folder probes padding when first given a padded batch; when that happens inside the
    selection, the probe runs on full logits (the output head not hooked yet)."""
    ids, attention = random_batch(builtin_lm)
    fresh = DiffusionLM(builtin_lm.model, builtin_lm.tokenizer)  # as loaded: padding not known
    picked = fresh.logits_at(ids, torch.arange(6, 12), attention)
    assert fresh._checks["padding"] is True
    assert torch.allclose(picked, builtin_lm.logits(ids, attention)[:, 6:12])


def test_selection_projects_only_the_selected_rows(builtin_lm):
    seen = []
    handle = builtin_lm.model.lm_head.register_forward_hook(lambda module, args, output: seen.append(output.shape))
    ids, attention = random_batch(builtin_lm)
    builtin_lm.logits_at(ids, torch.tensor([7, 8]), attention)
    handle.remove()
    assert seen[-1] == (3, 2, builtin_lm.vocab_size)


def test_model_without_head_module_falls_back_to_full_logits_and_warns_once():
    table = torch.randn(10, 5)
    lm = fixed_logits_lm(table, mask=4, eos=3)
    ids = torch.zeros(2, 10, dtype=torch.long)
    with pytest.warns(UserWarning, match="cannot project selected positions"):
        first = lm.logits_at(ids, torch.tensor([[1, 2], [9, 0]]))
    assert torch.equal(first[1, 0], table[9].double())
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lm.logits_at(ids, torch.tensor([3]))


def test_shifted_logits_read_the_previous_position(llama_lm):
    ids, _ = random_batch(llama_lm, batch=1)
    raw = llama_lm.model(**llama_lm._model_inputs(ids, None)).logits
    shifted = llama_lm.logits(ids)
    assert torch.equal(shifted[:, 0], raw[:, 0])
    assert torch.equal(shifted[:, 1:], raw[:, :-1])


def test_converted_llama_attends_to_later_positions():
    model, tokenizer = tiny_llama()
    model.double()
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    changed = ids.clone()
    changed[0, -1] = 10
    assert torch.equal(model(ids).logits[0, 0], model(changed).logits[0, 0])  # causal before conversion
    lm = tiny_converted_llama()
    assert not torch.allclose(lm.model(**lm._model_inputs(ids, None)).logits[0, 0],
                              lm.model(**lm._model_inputs(changed, None)).logits[0, 0])


def test_conversion_adds_a_mask_token_and_resizes_embeddings():
    model, tokenizer = tiny_llama()
    before = model.get_input_embeddings().weight.shape[0]
    lm = tiny_converted_llama()
    assert lm.tokens.mask == before  # the new, last id
    assert lm.vocab_size == before + 1
    assert lm.tokenizer.convert_ids_to_tokens(lm.tokens.mask) == "<|mdm_mask|>"
    assert lm.model.config.dopsd_diffusion == {"bidirectional": True, "shift_logits": True}


def test_builtin_round_trip_gives_identical_logits(tmp_path, builtin_lm):
    builtin_lm.model.save_pretrained(tmp_path)
    builtin_lm.tokenizer.save_pretrained(tmp_path)
    ids, attention = random_batch(builtin_lm)
    expected = builtin_lm.logits(ids, attention)
    loaded = load_diffusion_lm(tmp_path)
    assert isinstance(loaded.model, MaskedDiffusionTransformer)
    assert loaded.dtype == torch.float64
    assert loaded.tokens == builtin_lm.tokens
    assert torch.equal(loaded.logits(ids, attention), expected)
    for auto in (AutoModel, AutoModelForMaskedLM):
        assert torch.equal(auto.from_pretrained(tmp_path)(ids, attention_mask=attention).logits, expected)


def test_converted_round_trip_keeps_bidirectional_shifted_model(tmp_path, llama_lm):
    llama_lm.model.save_pretrained(tmp_path)
    llama_lm.tokenizer.save_pretrained(tmp_path)
    loaded = load_diffusion_lm(tmp_path)
    assert loaded.shift_logits and loaded.bidirectional_mask
    assert loaded.tokens.mask == llama_lm.tokens.mask
    ids, attention = random_batch(llama_lm)
    assert torch.equal(loaded.logits(ids, attention), llama_lm.logits(ids, attention))


def test_model_without_mask_token_is_a_clear_error(tmp_path):
    model, tokenizer = tiny_llama()
    with pytest.raises(DopsdError, match="no mask token"):
        DiffusionLM(model, tokenizer)
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    with pytest.raises(DopsdError, match="dopsd convert"):
        load_diffusion_lm(tmp_path)


def test_token_ids_can_be_overridden(tmp_path, builtin_lm):
    builtin_lm.model.save_pretrained(tmp_path)
    builtin_lm.tokenizer.save_pretrained(tmp_path)
    lm = load_diffusion_lm(tmp_path, mask_token_id=50, eos_token_id=51, pad_token_id=52)
    assert (lm.tokens.mask, lm.tokens.eos, lm.tokens.pad) == (50, 51, 52)
    assert 51 in lm.tokens.stop


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(DopsdError, match="no model folder"):
        load_diffusion_lm(tmp_path / "absent")


def test_padding_probe_detects_models_that_ignore_the_attention_mask(builtin_lm):
    assert DiffusionLM(builtin_lm.model, builtin_lm.tokenizer).handles_padding
    ignoring = DiffusionLM(IgnoresAttentionMask(builtin_lm.model), builtin_lm.tokenizer, tokens=builtin_lm.tokens)
    assert not ignoring.handles_padding
