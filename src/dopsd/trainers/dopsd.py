"""d-OPSD: the student learns, step by step, to match itself shown part of its own future answer.

Per rollout: sample every prompt at once with batched pass@k, keep one trajectory per prompt, drop the ones the
verifier rejects (they never reach the model again), build each kept trajectory's teacher states, and split all kept
states into ``updates_per_rollout`` chunks, one optimizer update each. Per chunk, states are stacked into
micro-batches ("inputs concatenation"): one no-grad teacher pass projecting only the current block (to choose K_t),
one student pass projecting only K_t, and the divergence averaged over K_t, then steps, then trajectories.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dopsd.config import option
from dopsd.distill import (
    CLIP_MODES,
    PreparedTrajectory,
    clip_gradient_cosine,
    most_confident,
    overlap_top_k,
    prepare_trajectory,
    step_divergence,
)
from dopsd.models import DiffusionLM
from dopsd.sampling.padding import group_by_length, left_pad_with_responses, micro_batches
from dopsd.tasks import encode_prompts
from dopsd.trainers.config import DivergenceConfig, check, check_at_least_one
from dopsd.trainers.rollouts import RolloutTrainer, split_into_chunks
from dopsd.trainers.salts import TEACHER_REVEAL_SALT
from dopsd.trainers.self_rollouts import PassKConfig, SelfRollouts


@dataclass
class DOPSDConfig(DivergenceConfig, PassKConfig):
    """d-OPSD: on-policy self-distillation from the self-future (paper section 3 and appendix C). Every default is
    the paper's; each field's meaning is in its help (``dopsd train --help``)."""

    output_dir: str = "runs/dopsd"
    updates_per_rollout: int = option(4, "optimizer updates each rollout's states are split into (the authors: 4)",
                                      "method")
    micro_batch_size: int = option(16, "stacked states per forward pass, bounding memory (inputs concatenation)",
                                   "method")
    teacher_input: str = option(
        "future", "what the teacher sees beyond the student's state: future (d-OPSD: part of the trajectory's own "
        "later blocks) or reference (AR-style OPSD: a prompt that also carries the task's worked solution)", "method")
    teacher_retain_ratio: float = option(0.25, "rho: share of later-block masked positions the teacher sees filled",
                                         "method")
    clip: float | None = option(0.05, "pointwise clip on each vocabulary entry's contribution (null: off; the "
                                "paper's 0.05, off in the bundled models' preset: see docs/presets.md#d-opsd-clip)",
                                "method")
    clip_mode: str = option("all", "entries the clip may clamp: all, or overconfident (only where the student puts "
                            "more mass than the teacher, keeping the gradient where the teacher wants more)", "method")
    kt_selection: str = option(
        "teacher", "positions supervised at each step: the k most confident masked positions of the current block "
        "under the teacher or the student, or the positions the student revealed", "method")
    correct_only: bool = option(True, "train only on trajectories the task's verifier accepts (others are never run "
                                "through the model)", "method")
    skip_uninformed_states: bool = option(
        False, "drop states whose teacher input equals the student's (nothing of the future revealed: the last "
        "block's); with a fixed teacher they only pull the student back to its initial policy", "method")
    teacher: str = option("fixed", "fixed (the initial policy: adapter off, or a frozen copy), live (the current "
                          "weights) or ema (a moving average of the weights)", "method")
    ema_decay: float = option(0.99, "decay of the ema teacher", "method")
    overlap_k: int = option(20, "K of the Overlap Top-K metric", "method")

    def __post_init__(self):
        super().__post_init__()
        check_at_least_one(self, "updates_per_rollout", "micro_batch_size", "overlap_k")
        check(self.teacher_input in ("future", "reference"), "teacher_input", self.teacher_input,
              "must be future or reference")
        check(0.0 <= self.teacher_retain_ratio <= 1.0, "teacher_retain_ratio", self.teacher_retain_ratio,
              "must be in [0, 1]")
        check(self.clip is None or self.clip > 0, "clip", self.clip, "must be > 0 (or null for no clipping)")
        check(self.clip_mode in CLIP_MODES, "clip_mode", self.clip_mode, f"must be {' or '.join(CLIP_MODES)}")
        check(self.kt_selection in ("teacher", "student", "revealed"), "kt_selection", self.kt_selection,
              "must be teacher, student or revealed")
        check(self.teacher in ("fixed", "live", "ema"), "teacher", self.teacher, "must be fixed, live or ema")
        check(0.0 < self.ema_decay < 1.0, "ema_decay", self.ema_decay, "must be in (0, 1)")


class DOPSDTrainer(SelfRollouts, RolloutTrainer):
    """``DOPSDTrainer(model=..., task=..., config=DOPSDConfig(...)).train()``; see :class:`DOPSDConfig`."""

    config_class = DOPSDConfig
    block_attention_refusal = (
        "its teacher is shown the trajectory's own tokens of the blocks after the one being decoded, which "
        "block-causal attention never reads, so the teacher would equal the student and the loss would be zero; "
        "train a block model with rft, sft, grpo or opdlm")

    def __init__(self, *, model=None, tokenizer=None, task=None, config: DOPSDConfig | None = None):
        super().__init__(model=model, tokenizer=tokenizer, task=task, config=config)
        self.teacher_generator = self.generator(TEACHER_REVEAL_SALT, on_device=False)
        self.rollout_data: list[PreparedTrajectory] = []  # the kept trajectories' states, ready for the loss
        self.teacher_lm = self.build_teacher()

    # ----- teacher ---------------------------------------------------------------------------------------------
    def build_teacher(self) -> DiffusionLM | None:
        """A separate frozen model for the fixed teacher under full fine-tuning and for the EMA teacher;
        ``None`` when the teacher runs through the training model (fixed with LoRA: adapter off; live)."""
        config = self.config
        if config.teacher == "live" or (config.teacher == "fixed" and config.use_lora):
            return None
        return self.frozen_copy()

    def teacher_context(self):
        """Yields the LM to run the teacher pass with: no gradients, dropout off."""
        if self.teacher_lm is not None:
            return self.frozen_pass(self.teacher_lm)
        return self.policy_pass(initial=self.config.teacher == "fixed")

    @torch.no_grad()
    def after_optimizer_step(self) -> None:
        if self.config.teacher != "ema":
            return
        decay = self.config.ema_decay
        live = dict(self.unwrapped.named_parameters())
        for name, parameter in self.teacher_lm.model.named_parameters():
            if live[name].requires_grad:
                parameter.mul_(decay).add_(live[name].detach(), alpha=1 - decay)

    # ----- rollout ---------------------------------------------------------------------------------------------
    def draw_rollout(self) -> tuple[list[PreparedTrajectory], list[list[tuple[int, int]]], dict]:
        """Samples this process's prompts with pass@k and prepares the kept trajectories' states, split into
        ``updates_per_rollout`` chunks of (trajectory, step) pairs."""
        config = self.config
        examples, _, result, seconds = self.sample_own()
        keep = self.reaching_score_threshold(result) if config.correct_only else list(range(len(examples)))
        references = [None] * len(examples)
        if config.teacher_input == "reference":
            references = encode_prompts(self.base_lm, self.task, examples, config.prompt_style, reference=True)
        skip = config.skip_uninformed_states and config.teacher_input == "future"
        prepared = [prepare_trajectory(result.trajectories[i], config.teacher_retain_ratio, self.teacher_generator,
                                       references[i], skip_uninformed=skip) for i in keep]
        prepared = [item for item in prepared if item.num_steps > 0]
        return (prepared, split_into_chunks(prepared, config.updates_per_rollout),
                self.rollout_summary(result, len(keep), seconds))

    # ----- loss ------------------------------------------------------------------------------------------------
    def compute_update(self) -> dict:
        chunk, metrics = self.next_chunk()
        return {**metrics, **self.chunk_backward(chunk)}

    def chunk_backward(self, chunk: list[tuple[int, int]]) -> dict:
        """Backward passes of one update over the states in ``chunk``, micro-batched."""
        if not chunk:
            self.backward_micro_batches([], None)  # joins the others' synchronisation
            return {"loss": 0.0, "states": 0}
        total_weight = sum(1.0 / self.rollout_data[i].num_steps for i, _ in chunk)

        batches = self.micro_batches(chunk)

        def loss_of(batch):
            # the clip diagnostic's two extra divergence gradients on the first micro-batch only: a sample per update
            per_state, stats = self.states_loss(batch, diagnose=batch is batches[0])
            weights = torch.tensor([1.0 / self.rollout_data[i].num_steps for i, _ in batch], device=per_state.device)
            return (per_state * weights).sum() / total_weight, stats

        results = self.backward_micro_batches(batches, loss_of)
        metrics = {"loss": sum(loss for loss, _ in results)}
        for key in results[0][1]:
            if key != "positions":  # position-weighted means over the micro-batches that measured the statistic
                measured = [stats for _, stats in results if key in stats]
                metrics[key] = (sum(stats[key] * stats["positions"] for stats in measured)
                                / sum(stats["positions"] for stats in measured))
        return {**metrics, "states": len(chunk)}

    def micro_batches(self, chunk: list[tuple[int, int]]) -> list[list[tuple[int, int]]]:
        """``micro_batch_size`` states a pass; a model that ignores the attention mask (LLaDA's remote code) only
        gets states whose student and teacher prompts have one length each, so no row is ever padded."""
        groups = [chunk]
        if not self.base_lm.handles_padding:
            items = [self.rollout_data[i] for i, _ in chunk]
            keys = [(len(item.trajectory.prompt_ids), len(item.teacher_prompt)) for item in items]
            groups = [[chunk[j] for j in group] for group in group_by_length(keys)]
        return micro_batches(groups, self.config.micro_batch_size)

    def stack_inputs(self, batch):
        """Left-padded (prompt + state) inputs, attention masks and prompt widths of the student and the teacher."""
        items = [self.rollout_data[i] for i, _ in batch]
        device, pad = self.accelerator.device, self.base_lm.tokens.pad
        student = torch.stack([item.student_states[step] for item, (_, step) in zip(items, batch)]).to(device)
        teacher = torch.stack([item.teacher_states[step] for item, (_, step) in zip(items, batch)]).to(device)
        student_inputs = left_pad_with_responses([item.trajectory.prompt_ids for item in items], student, pad)
        teacher_inputs = left_pad_with_responses([item.teacher_prompt for item in items], teacher, pad)
        return student_inputs, teacher_inputs

    def states_loss(self, batch, diagnose: bool = False):
        """Per-state loss L_t (M,), and the micro-batch's clip ratio, Overlap Top-K and number of K_t positions."""
        config = self.config
        items = [self.rollout_data[i] for i, _ in batch]
        steps = [step for _, step in batch]
        (student_ids, attention, width), (teacher_ids, teacher_attention, teacher_width) = self.stack_inputs(batch)
        device = student_ids.device
        block_length = items[0].trajectory.block_length
        starts = torch.tensor([item.block_starts[s] for item, s in zip(items, steps)], device=device)
        ends = torch.tensor([item.block_ends[s] for item, s in zip(items, steps)], device=device)
        counts = torch.tensor([int(item.counts[s]) for item, s in zip(items, steps)], device=device)
        offsets = torch.arange(block_length, device=device)
        gen_length = student_ids.shape[1] - width
        block_positions = (starts[:, None] + offsets).clamp(max=gen_length - 1)
        in_block = offsets[None, :] < (ends - starts)[:, None]
        masked = in_block & (student_ids.gather(1, width + block_positions) == self.base_lm.tokens.mask)

        with self.teacher_context() as teacher_lm:
            teacher_block = teacher_lm.logits_at(teacher_ids, teacher_width + block_positions, teacher_attention)
        if config.kt_selection == "student":
            student_block = self.lm.logits_at(student_ids, width + block_positions, attention)
        if config.kt_selection == "revealed":
            k_max = int(counts.max())
            chosen = torch.stack([self.revealed_offsets(item, s, k_max) for item, s in zip(items, steps)]).to(device)
            valid = torch.arange(k_max, device=device)[None, :] < counts[:, None]
        else:
            ranking = student_block if config.kt_selection == "student" else teacher_block
            chosen, valid = most_confident(ranking, masked, counts)
        teacher_k = teacher_block.gather(1, chosen[..., None].expand(-1, -1, teacher_block.shape[-1]))
        if config.kt_selection == "student":
            student_k = student_block.gather(1, chosen[..., None].expand(-1, -1, student_block.shape[-1]))
        else:
            student_k = self.lm.logits_at(student_ids, width + block_positions.gather(1, chosen), attention)
        options = dict(config.divergence_options(), clip=config.clip, clip_mode=config.clip_mode)
        result = step_divergence(student_k[valid], teacher_k[valid], **options)
        per_position = torch.zeros(valid.shape, dtype=result.per_position.dtype, device=device)
        per_position[valid] = result.per_position
        per_state = per_position.sum(1) / counts
        stats = {"clip_ratio": float(result.clip_ratio),
                 f"overlap_top{config.overlap_k}": float(overlap_top_k(student_k[valid].detach(), teacher_k[valid],
                                                                        config.overlap_k).mean()),
                 "positions": int(valid.sum())}
        if diagnose and config.clip is not None:  # how much of the unclipped gradient's direction the clip keeps
            stats["clip_grad_cosine"] = float(clip_gradient_cosine(student_k[valid], teacher_k[valid], **options))
        return per_state, stats

    @staticmethod
    def revealed_offsets(item: PreparedTrajectory, step: int, k_max: int) -> torch.Tensor:
        """Block-relative positions the student revealed at ``step``, padded (by repetition) to ``k_max``."""
        offsets = item.trajectory.revealed_at(item.step_number(step)) - item.block_starts[step]
        return torch.cat([offsets, offsets[:1].expand(k_max - offsets.numel())])

    # ----- checkpoint state ------------------------------------------------------------------------------------
    rollout_key = "prepared"

    def method_state(self) -> dict:
        return {**super().method_state(),
                "teacher": None if self.config.teacher != "ema" else self.teacher_lm.model.state_dict()}

    def load_method_state(self, state: dict) -> None:
        super().load_method_state(state)
        if state["teacher"] is not None:
            self.teacher_lm.model.load_state_dict(state["teacher"])
