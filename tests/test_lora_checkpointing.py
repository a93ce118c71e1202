"""LoRA targets and gradient checkpointing on any architecture (dopsd.models.lora / dopsd.models.checkpointing)."""

import copy

import pytest
import torch
from conftest import FixedLogits, tiny_builtin, tiny_llama
from peft import LoraConfig, get_peft_model

from dopsd import DopsdError
from dopsd.models import load_diffusion_lm
from dopsd.models.checkpointing import enable_gradient_checkpointing
from dopsd.models.lora import describe_targets, lora_target_modules

LLADA_SEVEN = ("q_proj", "k_proj", "v_proj", "attn_out", "ff_proj", "up_proj", "ff_out")
DREAM_SEVEN = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def load(folder):
    lm = load_diffusion_lm(folder, trust_remote_code=True, device="cpu")
    lm.model.double()
    return lm


def adapted(peft_model) -> set[str]:
    prefix = "base_model.model."
    return {name[len(prefix):] for name, module in peft_model.named_modules() if hasattr(module, "lora_A")
            and name.startswith(prefix)}


def test_llada_like_adapts_exactly_the_seven_projections_per_layer_never_the_head(llada_folder):
    model = load(llada_folder).model
    names = lora_target_modules(model)
    assert names == [f"model.transformer.blocks.{i}.{kind}" for i in range(2)
                     for kind in ("attn_out", "ff_out", "q_proj", "k_proj", "v_proj", "ff_proj", "up_proj")]
    assert sorted(names) == sorted(f"model.transformer.blocks.{i}.{k}" for i in range(2) for k in LLADA_SEVEN)
    assert "model.transformer.ff_out" not in names  # the output head shares the down projection's name
    assert describe_targets(names) == "14 modules: attn_out, ff_out, ff_proj, k_proj, q_proj, up_proj, v_proj"
    wrapped = get_peft_model(model, LoraConfig(r=2, lora_alpha=4, target_modules=names))
    assert adapted(wrapped) == set(names)


def test_dream_like_adapts_its_seven_projections(dream_folder):
    names = lora_target_modules(load(dream_folder).model)
    assert sorted(names) == sorted(f"model.layers.{i}.{part}.{kind}" for i in range(2)
                                   for part, kinds in (("self_attn", DREAM_SEVEN[:4]), ("mlp", DREAM_SEVEN[4:]))
                                   for kind in kinds)


def test_builtin_map_and_all_linear_fallback():
    builtin = lora_target_modules(tiny_builtin().model)
    assert sorted({n.rsplit(".", 1)[-1] for n in builtin}) == ["down", "gate_up", "out", "qkv"]
    assert len(builtin) == 8
    llama, _ = tiny_llama()  # "llama" has no map: every linear layer but lm_head
    names = lora_target_modules(llama)
    assert "lm_head" not in names and len(names) == 14
    assert {n.rsplit(".", 1)[-1] for n in names} == set(DREAM_SEVEN)


def loss_and_grads(model, ids):
    model.train()
    model.zero_grad()
    logits = model(input_ids=ids).logits
    loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), ids.flatten().roll(1)) + logits.pow(2).mean()
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_checkpointing_llada_like_wraps_its_blocks_with_the_same_loss_and_gradients(llada_folder, lora):
    model = load(llada_folder).model
    if lora:
        model = get_peft_model(model, LoraConfig(r=2, lora_alpha=4, target_modules=lora_target_modules(model)))
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                torch.nn.init.normal_(parameter)  # non-zero B: gradients reach A too
    checkpointed = copy.deepcopy(model)
    assert enable_gradient_checkpointing(checkpointed) == "blocks"
    ids = torch.randint(0, 98, (2, 9), generator=torch.Generator().manual_seed(0))
    calls = []
    block = (checkpointed.get_base_model() if lora else checkpointed).model.transformer.blocks[1]
    block.ff_norm.register_forward_hook(lambda *args: calls.append(1))
    loss, grads = loss_and_grads(model, ids)
    loss_ckpt, grads_ckpt = loss_and_grads(checkpointed, ids)
    assert len(calls) == 2  # the block ran again during backward: activations were not kept
    assert torch.equal(loss, loss_ckpt)
    assert grads.keys() == grads_ckpt.keys() and len(grads) > 0
    for name in grads:
        assert torch.allclose(grads[name], grads_ckpt[name], rtol=1e-12, atol=1e-14), name
    with torch.no_grad():  # no recomputation (and no checkpoint) outside training with gradients
        calls.clear()
        checkpointed(input_ids=ids)
        assert len(calls) == 1


def test_checkpointing_uses_the_models_own_switch_when_it_has_transformers_one(dream_folder):
    model = load(dream_folder).model
    plain = copy.deepcopy(model)
    assert enable_gradient_checkpointing(model) == "model"
    assert model.model.gradient_checkpointing
    ids = torch.randint(0, 98, (2, 7), generator=torch.Generator().manual_seed(1))
    loss, grads = loss_and_grads(plain, ids)
    loss_ckpt, grads_ckpt = loss_and_grads(model, ids)
    assert torch.equal(loss, loss_ckpt)
    assert all(torch.allclose(grads[n], grads_ckpt[n], rtol=1e-12, atol=1e-14) for n in grads)


def test_checkpointing_a_model_without_blocks_is_refused_in_one_line():
    with pytest.raises(DopsdError, match="no transformer blocks") as error:
        enable_gradient_checkpointing(FixedLogits(torch.zeros(4, 3)))
    assert "\n" not in str(error.value)


def test_a_copy_of_a_checkpointed_model_runs_its_own_weights(llada_folder):
    """The frozen teacher and reference are deep copies taken after checkpointing is on: they must not run the
    training model's blocks."""
    model = load(llada_folder).model
    assert enable_gradient_checkpointing(model) == "blocks"
    frozen = copy.deepcopy(model).eval()
    ids = torch.randint(0, 98, (2, 9), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        before = frozen(input_ids=ids).logits.clone()
        for parameter in model.parameters():
            parameter.add_(0.5)
        assert torch.equal(frozen(input_ids=ids).logits, before)
        assert not torch.equal(model(input_ids=ids).logits, before)
    loss, grads = loss_and_grads(frozen, ids)  # the copy still checkpoints its own blocks when it trains
    assert torch.isfinite(loss) and len(grads) > 0
