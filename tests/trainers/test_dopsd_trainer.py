import pytest
import torch
from toy import ToyTask, tiny_lm, toy_config

from dopsd import DopsdError
from dopsd.cli import main
from dopsd.trainers import DOPSDConfig, DOPSDTrainer
from dopsd.trainers.rollouts import split_into_chunks


def make_trainer(tmp_path, **overrides):
    return DOPSDTrainer(model=tiny_lm(), task=ToyTask(), config=toy_config(tmp_path, **overrides))


def snapshot(module):
    return {name: p.detach().clone() for name, p in module.named_parameters()}


def test_dropped_trajectories_cost_no_forward_pass(tmp_path):
    trainer = make_trainer(tmp_path, prompts_per_rollout=6)
    rows = []
    trainer.base_lm.model.get_base_model().register_forward_pre_hook(
        lambda module, args, kwargs: rows.append(kwargs["input_ids"].shape[0]), with_kwargs=True
    )
    trainer.rollout()
    assert len(trainer.rollout_data) == 4  # rows 1 and 4 are rejected by the verifier
    assert all(len(chunk) > 0 for chunk in trainer.pending)
    rows.clear()
    for chunk in list(trainer.pending):
        trainer.chunk_backward(chunk)
    kept_states = sum(item.num_steps for item in trainer.rollout_data)
    assert sum(rows) == 2 * kept_states  # one teacher and one student row per kept state, nothing else
    everything = make_trainer(tmp_path, prompts_per_rollout=6, correct_only=False)
    everything.rollout()
    assert len(everything.rollout_data) == 6


def test_one_update_changes_the_adapter_and_leaves_the_fixed_teacher_unchanged(tmp_path):
    trainer = make_trainer(tmp_path)
    before = snapshot(trainer.unwrapped)
    trainer.step()
    after = snapshot(trainer.unwrapped)
    lora = [n for n in before if "lora_" in n]
    base = [n for n in before if "lora_" not in n]
    assert lora and any(not torch.equal(before[n], after[n]) for n in lora)
    assert all(torch.equal(before[n], after[n]) for n in base)  # the teacher is these weights, adapter off


def test_full_fine_tuning_keeps_a_frozen_teacher(tmp_path):
    trainer = make_trainer(tmp_path, use_lora=False, learning_rate=1e-3)
    teacher_before = snapshot(trainer.teacher_lm.model)
    student_before = snapshot(trainer.unwrapped)
    trainer.step()
    assert any(not torch.equal(student_before[n], p) for n, p in trainer.unwrapped.named_parameters())
    assert all(torch.equal(teacher_before[n], p) for n, p in trainer.teacher_lm.model.named_parameters())


@pytest.mark.parametrize("selection, clip, teacher_input", [
    ("teacher", 0.05, "future"), ("student", 0.05, "future"), ("revealed", 0.05, "future"), ("teacher", None, "future"),
    ("teacher", 0.05, "reference"),
])
def test_repeated_updates_on_a_fixed_rollout_lower_the_loss(tmp_path, selection, clip, teacher_input):
    trainer = make_trainer(tmp_path, kt_selection=selection, learning_rate=3e-3, max_grad_norm=None, clip=clip,
                           teacher_input=teacher_input)
    trainer.rollout()
    everything = split_into_chunks(trainer.rollout_data, 1)[0]
    losses = []
    for _ in range(12):
        losses.append(trainer.chunk_backward(everything)["loss"])
        trainer.optimizer.step()
        trainer.optimizer.zero_grad()
    assert losses[0] > 0
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.slow
@pytest.mark.parametrize("extra", [dict(), dict(updates_per_rollout=3), dict(use_lora=False, learning_rate=1e-3)],
                         ids=["lora", "mid-rollout", "full"])
def test_resumed_run_ends_with_the_weights_of_an_uninterrupted_run(tmp_path, extra):
    whole = make_trainer(tmp_path / "a", max_updates=4, **extra)
    whole.train()
    first = make_trainer(tmp_path / "b", max_updates=2, **extra)
    first.train()
    resumed = make_trainer(tmp_path / "b", max_updates=4, resume_from="latest", **extra)
    summary = resumed.train()
    assert summary["updates"] == 4
    expected = snapshot(whole.unwrapped)
    for name, parameter in resumed.unwrapped.named_parameters():
        assert torch.equal(parameter, expected[name]), name
    assert [e["accuracy"] for e in summary_history(resumed)] == [e["accuracy"] for e in summary_history(whole)]


@pytest.mark.slow
def test_a_checkpoint_of_the_previous_format_still_resumes_exactly(tmp_path):
    """Format 2 kept the optimizer in trainer_state.pt; format 3 leaves it to accelerate's save_state."""
    import json

    whole = make_trainer(tmp_path / "a", max_updates=4)
    whole.train()
    make_trainer(tmp_path / "b", max_updates=2).train()
    checkpoint = tmp_path / "b" / "run" / "checkpoint-2"
    state = torch.load(checkpoint / "trainer_state.pt", weights_only=False)
    state["optimizer"] = torch.load(checkpoint / "optimizer.bin", weights_only=False)
    torch.save(state, checkpoint / "trainer_state.pt")
    for name in ("optimizer.bin", "random_states_0.pkl"):
        (checkpoint / name).unlink()
    description = json.loads((checkpoint / "checkpoint.json").read_text())
    (checkpoint / "checkpoint.json").write_text(json.dumps({**description, "format": 2}))
    resumed = make_trainer(tmp_path / "b", max_updates=4, resume_from="latest")
    resumed.train()
    expected = snapshot(whole.unwrapped)
    for name, parameter in resumed.unwrapped.named_parameters():
        assert torch.equal(parameter, expected[name]), name


def summary_history(trainer):
    return trainer.history


def test_output_folder_holds_config_metrics_checkpoints_and_summary(tmp_path):
    trainer = make_trainer(tmp_path, max_updates=2)
    summary = trainer.train()
    run = tmp_path / "run"
    assert (run / "config.yaml").is_file() and (run / "summary.json").is_file()
    assert (run / "checkpoint-2" / "model" / "adapter_model.safetensors").is_file()
    assert not list(run.glob("*.partial"))
    import json

    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    updates = [row for row in rows if "loss" in row]
    assert [row["update"] for row in updates] == [1, 2]
    for key in ("loss", "clip_ratio", "overlap_top20", "solved", "passk_rounds", "response_length",
                "update_seconds", "tokens_per_second"):
        assert key in updates[0]
    assert summary["eval_before"]["update"] == 0 and summary["eval_after"]["update"] == 2


def test_user_errors_end_with_one_line_and_no_checkpoint(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("passk: [\n")
    out = tmp_path / "out"
    for args in (
        ["train", "--config", str(bad), "--output-dir", str(out)],
        ["train", "--task", "sudoku", "--train-data", str(tmp_path / "absent.csv"), "--output-dir", str(out)],
        ["train", "--passk", "0", "--output-dir", str(out)],
    ):
        assert main(args) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error:") and "\n" not in err
    from conftest import tiny_llama

    model, tokenizer = tiny_llama()
    model.save_pretrained(tmp_path / "ar")
    tokenizer.save_pretrained(tmp_path / "ar")
    assert main(["train", "--model", str(tmp_path / "ar"), "--task", "sudoku", "--train-data", "sample",
                 "--eval-data", "sample", "--output-dir", str(out)]) == 2
    assert "dopsd convert" in capsys.readouterr().err
    assert not out.exists()


def test_config_rejects_out_of_range_values_naming_the_field():
    with pytest.raises(DopsdError, match="'kt_selection'"):
        DOPSDConfig(kt_selection="oracle")
    with pytest.raises(DopsdError, match="'clip'"):
        DOPSDConfig(clip=-1.0)


def test_passk_resamples_only_unsolved_prompts_together(tmp_path):
    from dopsd.sampling import passk_rollout
    from dopsd.tasks import encode_prompts

    trainer = make_trainer(tmp_path, passk=3)
    examples = trainer.train_examples
    prompts = encode_prompts(trainer.base_lm, trainer.task, examples, "compact")
    assert trainer.base_lm.handles_padding  # run the one-off probes before counting
    trainer.base_lm.logits_at(torch.tensor([prompts[0]]), torch.tensor([0]))
    batches = []
    trainer.base_lm.model.get_base_model().register_forward_pre_hook(
        lambda module, args, kwargs: batches.append(kwargs["input_ids"].shape[0]), with_kwargs=True)
    config = trainer.config
    result = passk_rollout(trainer.base_lm, trainer.task, examples, prompts, first=config.sampler_config(),
                           resample=config.sampler_config(0.9), passk=3, generator=torch.Generator().manual_seed(0))
    accepted = [e.meta["accept"] for e in examples]
    assert result.rounds == [1 if a else 3 for a in accepted]
    assert result.solved == accepted
    assert result.samples == len(examples) + 2 * accepted.count(False)
    assert set(batches) == {len(examples), accepted.count(False)}  # one batch per round, never row by row


def test_revealed_selection_uses_the_positions_the_student_revealed(tmp_path):
    trainer = make_trainer(tmp_path, kt_selection="revealed")
    trainer.rollout()
    item = trainer.rollout_data[0]
    for step in range(item.num_steps):
        offsets = trainer.revealed_offsets(item, step, int(item.counts.max()))
        expected = item.trajectory.revealed_at(step) - item.block_starts[step]
        assert offsets[: len(expected)].tolist() == expected.tolist()


def test_ema_teacher_follows_the_weights_by_the_decay(tmp_path):
    trainer = make_trainer(tmp_path, teacher="ema", ema_decay=0.5)
    teacher_before = snapshot(trainer.teacher_lm.model)
    trainer.step()
    live = dict(trainer.unwrapped.named_parameters())
    moved = 0
    for name, parameter in trainer.teacher_lm.model.named_parameters():
        if live[name].requires_grad:
            assert torch.allclose(parameter, 0.5 * teacher_before[name] + 0.5 * live[name].detach())
            moved += int(not torch.equal(parameter, teacher_before[name]))
    assert moved > 0


def test_live_teacher_trains(tmp_path):
    trainer = make_trainer(tmp_path, teacher="live")
    assert trainer.teacher_lm is None
    before = snapshot(trainer.unwrapped)
    metrics = trainer.step()
    assert metrics["loss"] != 0.0
    assert any(not torch.equal(before[n], p) for n, p in trainer.unwrapped.named_parameters())


def test_reference_teacher_sees_the_reference_prompt_before_the_unchanged_state(tmp_path):
    trainer = make_trainer(tmp_path, teacher_input="reference", correct_only=False)
    trainer.rollout()
    calls = []
    trainer.base_lm.model.get_base_model().register_forward_pre_hook(
        lambda module, args, kwargs: calls.append((kwargs["input_ids"], kwargs.get("attention_mask"))),
        with_kwargs=True)
    pairs = split_into_chunks(trainer.rollout_data, 1)[0]
    batch = [pairs[0], pairs[-1], pairs[len(pairs) // 2]]  # states of different trajectories, prompt lengths differ
    trainer.states_loss(batch)
    assert calls[0][1] is not None and calls[1][1] is not None  # prompts of different lengths: padded rows
    (teacher_ids, teacher_attention), (student_ids, student_attention) = calls[0], calls[1]
    tokenizer = trainer.base_lm.tokenizer
    for row, (i, step) in enumerate(batch):
        item = trainer.rollout_data[i]
        state = item.student_states[step].tolist()
        teacher_row = teacher_ids[row][teacher_attention[row].bool()].tolist()
        student_row = student_ids[row][student_attention[row].bool()].tolist()
        assert student_row == item.trajectory.prompt_ids.tolist() + state
        assert teacher_row == list(item.teacher_prompt) + state  # the state itself is not touched
        prompt_text = tokenizer.decode(item.trajectory.prompt_ids)
        index = next(e.index for e in trainer.train_examples if e.prompt == prompt_text)
        assert tokenizer.decode(item.teacher_prompt) == f"ref{index}|{prompt_text}"


def test_a_model_ignoring_the_attention_mask_never_gets_padded_rows(tmp_path):
    from conftest import IgnoresAttentionMask

    from dopsd.models import DiffusionLM

    inner = tiny_lm()
    lm = DiffusionLM(IgnoresAttentionMask(inner.model), inner.tokenizer, tokens=inner.tokens)
    trainer = DOPSDTrainer(model=lm, task=ToyTask(), config=toy_config(tmp_path, use_lora=False, correct_only=False,
                                                               prompts_per_rollout=6, teacher_input="reference"))
    assert not trainer.base_lm.handles_padding
    trainer.rollout()
    assert len({len(item.trajectory.prompt_ids) for item in trainer.rollout_data}) > 1
    widths = []
    inner.model.register_forward_pre_hook(
        lambda module, args, kwargs: widths.append(kwargs["input_ids"].shape), with_kwargs=True)
    everything = split_into_chunks(trainer.rollout_data, 1)[0]
    trainer.chunk_backward(everything)
    batches = trainer.micro_batches(everything)
    assert sorted(len(b) for b in batches) != [len(everything)]
    for batch in batches:
        (student, attention, _), (teacher, teacher_attention, _) = trainer.stack_inputs(batch)
        assert bool(attention.all()) and bool(teacher_attention.all())  # nothing padded
    assert sum(len(b) for b in batches) == len(everything)
    assert len(widths) == len(batches)  # one student pass per micro-batch (the frozen teacher is a copy)


def test_only_the_last_micro_batch_of_an_update_is_a_gradient_sync_boundary(tmp_path):
    trainer = make_trainer(tmp_path, use_lora=False, micro_batch_size=2, updates_per_rollout=1)
    seen = []
    backward = trainer.accelerator.backward
    trainer.accelerator.backward = lambda loss: (seen.append(trainer.accelerator.sync_gradients), backward(loss))
    metrics = trainer.step()
    assert metrics["states"] > 2 and len(seen) == -(-metrics["states"] // 2)  # several micro-batches
    assert seen == [False] * (len(seen) - 1) + [True]  # DeepSpeed steps, and DDP all-reduces, once per update
    assert trainer.accelerator.sync_gradients


def test_all_passk_rounds_keep_the_best_when_told_not_to_stop(tmp_path):
    from dopsd.sampling import passk_rollout
    from dopsd.tasks import encode_prompts

    trainer = make_trainer(tmp_path, passk=3)
    examples = trainer.train_examples
    prompts = encode_prompts(trainer.base_lm, trainer.task, examples, "compact")
    config = trainer.config
    result = passk_rollout(trainer.base_lm, trainer.task, examples, prompts, first=config.sampler_config(),
                           resample=config.sampler_config(0.9), passk=3, generator=torch.Generator().manual_seed(0),
                           stop_when_solved=False)
    assert result.rounds == [3] * len(examples) and result.samples == 3 * len(examples)
    assert result.solved == [e.meta["accept"] for e in examples]


def test_skipping_uninformed_states_trains_on_the_informed_ones_only(tmp_path):
    trainer = make_trainer(tmp_path, skip_uninformed_states=True, kt_selection="revealed", teacher_retain_ratio=0.5)
    trainer.rollout()
    assert trainer.rollout_data
    for item in trainer.rollout_data:
        assert all(not torch.equal(item.teacher_states[r], item.student_states[r]) for r in range(item.num_steps))
        assert item.num_steps < item.trajectory.num_recorded_steps  # the last block's states are gone
        for row in range(item.num_steps):
            offsets = trainer.revealed_offsets(item, row, int(item.counts.max()))
            expected = item.trajectory.revealed_at(item.step_number(row)) - item.block_starts[row]
            assert offsets[: len(expected)].tolist() == expected.tolist()
    metrics = trainer.step()
    assert metrics["states"] > 0 and 0.0 <= metrics["clip_grad_cosine"] <= 1.0 + 1e-6


def test_a_rollouts_samples_are_counted_on_the_update_that_drew_them(tmp_path):
    trainer = make_trainer(tmp_path, updates_per_rollout=2)
    first, second = trainer.step(), trainer.step()
    assert first["rollout_samples"] > 0 and "rollout_samples" not in second
    assert first["solved"] == second["solved"]  # the rollout's other statistics describe both of its updates
