import json

import pytest
import torch

from dopsd.cli import main
from dopsd.models import create_builtin_model
from dopsd.sampling.padding import left_pad_with_responses
from dopsd.tasks import sample_data_path
from dopsd.trainers import SFTConfig, SFTTrainer


def make(tmp_path, **overrides):
    values = dict(model="unused", task="sudoku", train_data=sample_data_path("sudoku"),
                  eval_data=sample_data_path("sudoku"),
                  eval_limit=8, output_dir=str(tmp_path / "sft"), max_updates=2, use_lora=False, learning_rate=3e-3,
                  gen_length=20, block_length=4, batch_size=8, eval_every=2, save_every=2, progress=False,
                  mixed_precision="no")
    values.update(overrides)
    lm = create_builtin_model(seed=0, hidden_size=32, num_hidden_layers=2, num_attention_heads=2)
    return SFTTrainer(model=lm, task=None, config=SFTConfig(**values))


def test_batches_are_prompt_then_eos_padded_reference(tmp_path):
    trainer = make(tmp_path)
    example = trainer.train_examples[0]
    ids, attention, width = left_pad_with_responses(trainer.encode_prompts([example]),
                                                    trainer.encode_responses([example]), trainer.base_lm.tokens.pad)
    tokenizer = trainer.base_lm.tokenizer
    assert tokenizer.decode(ids[0, :width]) == example.prompt + "="
    response = ids[0, width:].tolist()
    assert tokenizer.decode(response[:16]) == example.answer
    assert response[16:] == [tokenizer.eos_token_id] * 4
    assert bool(attention.all())


@pytest.mark.slow
def test_an_update_changes_parameters_and_training_lowers_the_loss(tmp_path):
    trainer = make(tmp_path)
    before = {n: p.detach().clone() for n, p in trainer.unwrapped.named_parameters()}
    losses = [trainer.step()["loss"] for _ in range(40)]
    assert any(not torch.equal(before[n], p) for n, p in trainer.unwrapped.named_parameters())
    assert sum(losses[-10:]) / 10 < 0.7 * sum(losses[:10]) / 10


def test_sft_cli_writes_the_run_folder_with_a_plot(tmp_path, capsys):
    model = tmp_path / "m"
    main(["create-model", str(model), "--hidden-size", "32", "--layers", "1", "--heads", "2"])
    out = tmp_path / "run"
    assert main(["sft", "--model", str(model), "--task", "sudoku", "--train-data", "sample", "--eval-data", "sample",
                 "--eval-limit", "4", "--output-dir", str(out), "--max-updates", "2", "--gen-length", "20",
                 "--block-length", "4", "--batch-size", "4", "--use-lora", "false", "--progress", "false"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1].startswith("SFT on sudoku: held-out accuracy")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["updates"] == 2 and (out / "training.png").stat().st_size > 1000
    assert (out / "checkpoint-2" / "model" / "model.safetensors").is_file()


def test_a_model_ignoring_the_attention_mask_trains_on_unpadded_rows_with_the_same_loss(tmp_path):
    from conftest import IgnoresAttentionMask

    from dopsd.models import DiffusionLM

    def trainer(wrap: bool):
        lm = create_builtin_model(seed=0, hidden_size=32, num_hidden_layers=2, num_attention_heads=2)
        lm.model.double()
        if wrap:
            lm = DiffusionLM(IgnoresAttentionMask(lm.model), lm.tokenizer, tokens=lm.tokens)
        values = dict(task="countdown", train_data=sample_data_path("countdown"),
                      eval_data=sample_data_path("countdown"),
                      gen_length=16, output_dir=str(tmp_path / f"sft{wrap}"))
        return make(tmp_path, **values) if not wrap else SFTTrainer(model=lm, config=SFTConfig(**{
            **dict(model="unused", eval_limit=8, max_updates=2, use_lora=False, learning_rate=3e-3, block_length=4,
                   batch_size=8, progress=False, mixed_precision="no"), **values}))

    honest, blind = trainer(False), trainer(True)
    honest.unwrapped.double()
    assert honest.base_lm.handles_padding and not blind.base_lm.handles_padding
    seen = []
    blind.base_lm.model.inner.register_forward_pre_hook(lambda m, a, k: seen.append(k["input_ids"]), with_kwargs=True)
    losses = [t.compute_update()["loss"] for t in (honest, blind)]
    # one pass per prompt length, none of them padded
    assert len(seen) > 1 and all(bool((ids[:, 0] != blind.base_lm.tokens.pad).all()) for ids in seen)
    assert losses[0] == pytest.approx(losses[1], rel=1e-6)  # the cross-entropy runs in float32
    for (name, a), (_, b) in zip(honest.unwrapped.named_parameters(), blind.base_lm.model.inner.named_parameters()):
        assert torch.allclose(a.grad, b.grad, rtol=1e-5, atol=1e-7), name
