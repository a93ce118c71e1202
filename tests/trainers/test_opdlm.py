"""OPDLM on a hand-built tiny Llama: the teacher is the causal model, the student its converted copy (float64)."""

import copy
import json

import pytest
import torch
from conftest import tiny_llama

from dopsd.cli import main
from dopsd.models import DiffusionLM, build_char_tokenizer, convert_causal_lm, load_diffusion_lm
from dopsd.models.layout import FULL, AttentionLayout
from dopsd.models.tokenizer import CHARACTERS
from dopsd.sampling import Trajectory
from dopsd.tasks import sample_data_path
from dopsd.trainers import OPDLMConfig, OPDLMTrainer
from dopsd.trainers.opdlm import target_divergence


def pair(seed: int = 0, layout=FULL):
    """(student DiffusionLM, (teacher, teacher tokenizer)): the same weights, the student converted."""
    teacher, tokenizer = tiny_llama(seed)
    teacher.double()
    torch.manual_seed(seed)  # the mask token's new embedding row is drawn at random
    student, student_tokenizer = convert_causal_lm(copy.deepcopy(teacher), copy.deepcopy(tokenizer), layout=layout)
    return DiffusionLM(student, student_tokenizer, shift_logits=True, bidirectional_mask=True), (teacher, tokenizer)


def make(tmp_path, seed: int = 0, layout=FULL, **overrides):
    data = sample_data_path("sudoku")
    values = dict(model="unused", task="sudoku", train_data=data, eval_data=data, eval_limit=4,
                  output_dir=str(tmp_path / "run"), max_updates=2, use_lora=False, learning_rate=1e-3, gen_length=20,
                  block_length=4, prompts_per_rollout=3, states_per_trajectory=4, micro_batch_size=5, eval_every=2,
                  save_every=2, progress=False, mixed_precision="no", prompt_style="compact", seed=1,
                  threshold=None)
    values.update(overrides)
    student, teacher = pair(seed, layout)
    return OPDLMTrainer(model=student, config=OPDLMConfig(**values), teacher=teacher)


@pytest.fixture
def trainer(tmp_path):
    return make(tmp_path)


def test_targets_are_the_causal_models_next_token_logits_one_position_to_the_left(trainer):
    teacher = trainer.teacher_lm.model
    prompts = [[5, 9, 14, 20, 7], [11, 3]]  # different lengths: the batch is left-padded
    responses = torch.tensor([[30, 31, 1, 1], [40, 8, 9, 1]])
    targets = trainer.teacher_targets(prompts, responses)
    assert targets.shape == (2, 4, teacher.config.vocab_size)
    for row, prompt in enumerate(prompts):
        sequence = torch.tensor([prompt + responses[row].tolist()])
        with torch.no_grad():
            full = teacher(input_ids=sequence).logits[0]
        for j in range(4):  # response position j is predicted at sequence position len(prompt) + j - 1
            torch.testing.assert_close(targets[row, j], full[len(prompt) + j - 1], rtol=1e-12, atol=1e-12)
    assert not torch.allclose(targets[0, 1], targets[0, 0])


def test_the_teacher_never_changes_and_an_update_changes_the_student(trainer):
    teacher_before = {n: p.clone() for n, p in trainer.teacher_lm.model.named_parameters()}
    student_before = {n: p.clone() for n, p in trainer.unwrapped.named_parameters()}
    for _ in range(2):
        metrics = trainer.step()
    assert metrics["loss"] > 0 and metrics["positions"] > 0 and metrics["teacher_nll"] > 0
    assert all(torch.equal(p, teacher_before[n]) for n, p in trainer.teacher_lm.model.named_parameters())
    assert not any(p.requires_grad for p in trainer.teacher_lm.model.parameters())
    assert any(not torch.equal(p, student_before[n]) for n, p in trainer.unwrapped.named_parameters())
    # every trajectory contributes its sampled states: min(states_per_trajectory, recorded steps), sorted
    for item in trainer.rollout_data:
        assert item.steps.numel() == min(4, item.trajectory.num_recorded_steps)
        assert torch.equal(item.steps, item.steps.sort().values)


def test_the_loss_and_its_gradient_come_only_from_masked_positions(trainer):
    trainer.rollout()
    index, step = 0, int(trainer.rollout_data[0].steps[1])
    item = trainer.rollout_data[index]
    state, positions = trainer.loss_positions(item, step)
    masked = torch.nonzero(state == trainer.base_lm.tokens.mask).flatten()
    masked = masked[masked < item.limit]  # through the first stop token (train_after_stop false)
    assert torch.equal(positions, masked) and 0 < masked.numel() < state.numel()
    seen = []
    head = trainer.unwrapped.get_output_embeddings()
    handle = head.register_forward_hook(lambda module, args, output: seen.append(output.shape))
    loss = lambda: trainer.chunk_backward([(index, 1)])["loss"]  # noqa: E731
    base = loss()
    handle.remove()
    assert seen[-1][:2] == (1, masked.numel())  # the head projects the masked positions only
    revealed = int(torch.nonzero(state != trainer.base_lm.tokens.mask).flatten()[0])
    saved = item.values.clone()
    # one target logit changed (a shift of a whole row would leave its softmax, so any loss, unchanged)
    item.values[revealed, 0] += 5.0  # a target where the state is already revealed: no effect
    assert loss() == base
    item.values[int(masked[0]), 0] += 5.0
    assert loss() != base
    item.values.copy_(saved)


def test_top16_forward_kl_is_its_closed_form_and_survives_the_top_k_storage(tmp_path):
    config = OPDLMConfig(model="unused", gen_length=8, block_length=4)
    generator = torch.Generator().manual_seed(0)
    teacher = torch.randn(3, 40, generator=generator, dtype=torch.float64) * 3
    student = torch.randn(3, 41, generator=generator, dtype=torch.float64) * 3  # one more column: the mask token
    top = teacher.topk(16, dim=-1).indices
    p = torch.softmax(teacher.gather(1, top), -1)
    q = torch.softmax(student.gather(1, top), -1)
    expected = (p * (p.log() - q.log())).sum(-1)
    # step_divergence computes in float32
    close = dict(rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(target_divergence(student, teacher, config).double(), expected, **close)
    from dopsd.trainers.opdlm import TrajectoryTargets

    stored = TrajectoryTargets(None, torch.arange(1), teacher.topk(16, -1).values, top, 8, 40)
    rebuilt = stored.targets_at(torch.arange(3))
    torch.testing.assert_close(target_divergence(student, rebuilt, config).double(), expected, **close)
    full = OPDLMConfig(model="unused", gen_length=8, block_length=4, top_k_loss=0)
    p, log_q = torch.softmax(teacher, -1), torch.log_softmax(student[:, :40], -1)
    torch.testing.assert_close(target_divergence(student, teacher, full).double(), (p * (p.log() - log_q)).sum(-1),
                               **close)


@pytest.mark.parametrize("after_stop", [False, True])
def test_positions_after_the_first_stop_are_trained_only_on_request(tmp_path, after_stop):
    trainer = make(tmp_path, train_after_stop=after_stop, states_per_trajectory=None)
    trainer.rollout()
    eos = trainer.base_lm.tokens.eos
    item = trainer.rollout_data[0]
    item.trajectory.tokens[5] = eos  # a stop at position 5: later positions are after it
    item.limit = 6
    assert item.steps.numel() == item.trajectory.num_recorded_steps
    state, positions = trainer.loss_positions(item, 0)  # state 0: every position masked
    expected = torch.arange(20) if after_stop else torch.arange(6)
    assert torch.equal(positions, expected) and bool((state == trainer.base_lm.tokens.mask).all())


@pytest.mark.slow
@pytest.mark.parametrize("extra", [dict(updates_per_rollout=2), dict(use_lora=True, lora_r=4, lora_alpha=8)],
                         ids=["mid-rollout", "lora-rollout-per-update"])
def test_resumed_run_ends_with_the_weights_of_an_uninterrupted_run(tmp_path, extra):
    whole = make(tmp_path / "a", max_updates=4, **extra)
    whole.train()
    make(tmp_path / "b", max_updates=2, **extra).train()
    resumed = make(tmp_path / "b", max_updates=4, resume_from="latest", **extra)
    summary = resumed.train()
    expected = dict(whole.unwrapped.named_parameters())
    for name, parameter in resumed.unwrapped.named_parameters():
        assert torch.equal(parameter, expected[name]), name
    assert summary["tokens_trained"] == whole.tokens_trained > 0


def save_llama(folder, tokenizer=None, seed: int = 0):
    model, default = tiny_llama(seed)
    model.save_pretrained(folder)
    (tokenizer or default).save_pretrained(folder)
    return str(folder)


def test_cli_converts_a_causal_lm_on_the_fly_and_reports_the_teacher(tmp_path, capsys):
    causal = save_llama(tmp_path / "causal")
    out = tmp_path / "run"
    assert main(["opdlm", "--model", causal, "--task", "sudoku", "--train-data", "sample", "--eval-data", "sample",
                 "--eval-limit", "4", "--output-dir", str(out), "--max-updates", "2", "--gen-length", "20",
                 "--block-length", "4", "--prompts-per-rollout", "2", "--states-per-trajectory", "3",
                 "--prompt-style", "compact", "--use-lora", "false", "--progress", "false"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1].startswith("OPDLM on sudoku: held-out accuracy")
    assert any(line.startswith("OPDLM on sudoku, held-out accuracy: AR teacher") for line in lines)
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["teacher_eval"]) == {"accuracy", "mean_score", "n"} and summary["tokens_trained"] > 0
    saved = load_diffusion_lm(out / "checkpoint-2" / "model")  # the trained student loads as a diffusion LM
    assert saved.shift_logits and saved.bidirectional_mask


@pytest.mark.parametrize("case", ["other tokenizer", "converted teacher", "diffusion teacher"])
def test_a_wrong_teacher_is_one_error_line(tmp_path, capsys, case):
    student = tmp_path / "student"
    lm, _ = pair()
    lm.model.save_pretrained(student)
    lm.tokenizer.save_pretrained(student)
    if case == "other tokenizer":
        teacher = save_llama(tmp_path / "teacher", build_char_tokenizer(CHARACTERS[::-1], with_mask=False))
    elif case == "converted teacher":
        teacher = str(student)
    else:
        from dopsd.bundled import bundled_model_path

        teacher = bundled_model_path("sudoku")
    out = tmp_path / "run"
    code = main(["opdlm", "--model", str(student), "--teacher-model", teacher, "--task", "sudoku", "--train-data",
                 "sample", "--eval-data", "sample", "--output-dir", str(out), "--progress", "false"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error: ") and "\n" not in err
    assert ("tokenizer differs" in err) == (case == "other tokenizer")
    assert ("not an autoregressive" in err) == (case != "other tokenizer")
    assert not out.exists()


@pytest.mark.slow
def test_the_default_run_converts_the_bundled_causal_model(tmp_path, capsys):
    from transformers import AutoModelForCausalLM, LlamaForCausalLM

    from dopsd.bundled import bundled_causal_path

    causal = AutoModelForCausalLM.from_pretrained(bundled_causal_path("sudoku"))
    assert isinstance(causal, LlamaForCausalLM) and sum(p.numel() for p in causal.parameters()) < 3_000_000
    out = tmp_path / "run"
    assert main(["opdlm", "--output-dir", str(out), "--max-updates", "1", "--eval-limit", "8",
                 "--prompts-per-rollout", "2", "--progress", "false"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["task"] == "sudoku" and summary["updates"] == 1 and summary["teacher_eval"]["n"] == 8
    # the teacher solves puzzles the converted, untrained student cannot
    assert summary["teacher_eval"]["accuracy"] > summary["eval_before"]["accuracy"]
    assert "OPDLM on sudoku: held-out accuracy" in capsys.readouterr().out
    assert main(["opdlm", "--task", "countdown"]) == 2  # no bundled causal Countdown model: one error line
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: no bundled causal model") and "\n" not in err


BLOCK = AttentionLayout("block", 4)


def hand_trajectory(mask_id: int) -> Trajectory:
    # 8 positions in blocks of 4, one token a step: block 0 decoded at steps 0-3, block 1 at steps 4-7
    return Trajectory(prompt_ids=torch.tensor([5, 6]), tokens=torch.tensor([10, 11, 12, 13, 14, 15, 16, 17]),
                      reveal_step=torch.tensor([2, 0, 3, 1, 4, 7, 5, 6]), num_steps=8, num_recorded_steps=8,
                      block_length=4, mask_id=mask_id)


def test_block_rows_and_states_by_hand(tmp_path):
    trainer = make(tmp_path, layout=BLOCK, one_state_per_block=False)
    trajectory = hand_trajectory(99)
    assert torch.equal(trainer.block_rows(trajectory, limit=8),
                       torch.tensor([[0, 4], [1, 5], [2, 6], [3, 7]]))
    # positions from 4 on are not trained (limit 4): block 1 is finished in every row
    assert torch.equal(trainer.block_rows(trajectory, limit=4), torch.tensor([[0, 8], [1, 8], [2, 8], [3, 8]]))
    assert torch.equal(trajectory.block_state(torch.tensor([2, 5])),
                       torch.tensor([99, 11, 99, 13, 14, 99, 99, 99]))
    one = make(tmp_path / "one", layout=BLOCK)  # the default: one state per block, drawn from the block's own steps
    rows = torch.cat([one.block_rows(trajectory, limit=8) for _ in range(40)])
    assert rows.shape == (40, 2)
    assert set(rows[:, 0].tolist()) == {0, 1, 2, 3} and set(rows[:, 1].tolist()) == {4, 5, 6, 7}


def test_block_student_loss_is_the_block_by_block_divergence(tmp_path):
    trainer = make(tmp_path, layout=BLOCK)
    assert trainer.base_lm.layout == BLOCK
    trainer.rollout()
    assert all(item.steps.shape == (1, 5) for item in trainer.rollout_data)  # one stitched row per trajectory
    chunk = [(0, 0), (1, 0), (2, 0)]
    inputs = [trainer.loss_positions(trainer.rollout_data[i], trainer.rollout_data[i].steps[k]) for i, k in chunk]
    together = trainer.batch_divergence(chunk, inputs)
    lm, expected = trainer.lm, []
    for (i, _), (state, positions) in zip(chunk, inputs):
        item = trainer.rollout_data[i]
        prompt, clean = item.trajectory.prompt_ids, item.trajectory.tokens
        for position in positions.tolist():  # the state's block, the finished blocks before it, nothing after
            start = position - position % 4
            response = clean.clone()
            response[start:start + 4] = state[start:start + 4]
            ids = torch.cat([prompt, response])[None]
            student = lm.logits(ids, response_start=len(prompt))[0, len(prompt) + position]
            teacher = item.targets_at(torch.tensor([position]))
            expected.append(target_divergence(student[None], teacher, trainer.config))
    torch.testing.assert_close(together, torch.cat(expected), rtol=1e-9, atol=1e-9)


def test_block_student_trains_and_counts_both_copies(tmp_path):
    trainer = make(tmp_path, layout=BLOCK, max_updates=1)
    before = {n: p.clone() for n, p in trainer.unwrapped.named_parameters()}
    metrics = trainer.step()
    assert metrics["loss"] > 0 and metrics["states"] == 3
    assert metrics["tokens"] == sum(len(item.trajectory.prompt_ids) + 2 * 20 for item in trainer.rollout_data)
    assert any(not torch.equal(p, before[n]) for n, p in trainer.unwrapped.named_parameters())


def test_cli_converts_to_a_block_student_by_default(tmp_path, capsys):
    causal = save_llama(tmp_path / "causal")
    out = tmp_path / "run"
    assert main(["opdlm", "--model", causal, "--task", "sudoku", "--train-data", "sample", "--eval-data", "sample",
                 "--eval-limit", "4", "--output-dir", str(out), "--max-updates", "1", "--gen-length", "20",
                 "--prompts-per-rollout", "2", "--prompt-style", "compact", "--use-lora", "false",
                 "--progress", "false"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["attention"] == "block (block size 4)"
    assert "block_size: 4" in (out / "config.yaml").read_text()
    assert load_diffusion_lm(out / "checkpoint-1" / "model").layout == BLOCK
    capsys.readouterr()
    code = main(["opdlm", "--model", causal, "--block-length", "8", "--task", "sudoku", "--train-data", "sample",
                 "--eval-data", "sample", "--output-dir", str(tmp_path / "bad")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err == "error: this model attends in blocks of 4 tokens: decode with --block-length 4 (got 8)"
    assert not (tmp_path / "bad").exists()
