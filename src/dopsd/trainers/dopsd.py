"""d-OPSD: the student learns, step by step, to match itself shown part of its own future answer.

Per rollout: sample every prompt at once with batched pass@k, keep one trajectory per prompt, drop the ones the
verifier rejects (they never reach the model again), build each kept trajectory's teacher states, and split all kept
states into ``updates_per_rollout`` chunks, one optimizer update each. Per chunk, states are stacked into
micro-batches ("inputs concatenation"): one no-grad teacher pass projecting only the current block (to choose K_t),
one student pass projecting only K_t, and the divergence averaged over K_t, then steps, then trajectories.
"""

from __future__ import annotations

import contextlib
import copy
import time
from dataclasses import dataclass

import torch

from dopsd.distill import most_confident, overlap_top_k, reveal_future, step_divergence
from dopsd.evaluation import default_prompt_style, encode_prompts
from dopsd.models import DiffusionLM
from dopsd.sampling import Trajectory
from dopsd.sampling.padding import left_pad_with_responses
from dopsd.trainers.base import Trainer
from dopsd.trainers.config import DOPSDConfig
from dopsd.trainers.rollout import passk_rollout


@dataclass
class PreparedTrajectory:
    """A kept trajectory with everything its states need for the loss, built once per rollout."""

    trajectory: Trajectory
    student_states: torch.Tensor  # (steps, gen_length)
    teacher_states: torch.Tensor  # (steps, gen_length)
    block_starts: torch.Tensor  # (steps,)
    block_ends: torch.Tensor  # (steps,)
    counts: torch.Tensor  # (steps,) positions the student revealed at each step = |K_t|
    teacher_prompt_ids: list[int] | None = None  # AR-style OPSD's prompt with a reference solution; None: the student's

    @property
    def teacher_prompt(self) -> list[int]:
        return self.trajectory.prompt_ids if self.teacher_prompt_ids is None else self.teacher_prompt_ids

    @property
    def num_steps(self) -> int:
        return self.student_states.shape[0]


def prepare_trajectory(trajectory: Trajectory, retain_ratio: float, generator: torch.Generator,
                       reference_prompt: list[int] | None = None) -> PreparedTrajectory:
    """The teacher sees part of the trajectory's own future (d-OPSD), or, given ``reference_prompt`` (AR-style OPSD),
    the student's states unchanged after that prompt: positions then shift by the prompts' length difference."""
    steps = trajectory.num_recorded_steps
    bounds = torch.tensor([trajectory.block_bounds(step) for step in range(steps)], dtype=torch.long).view(-1, 2)
    counts = torch.bincount(trajectory.reveal_step[trajectory.reveal_step < steps], minlength=steps)
    states = trajectory.states()
    if reference_prompt is not None:
        return PreparedTrajectory(trajectory, states, states, bounds[:, 0], bounds[:, 1], counts, reference_prompt)
    teacher = reveal_future(states, trajectory.tokens, bounds[:, 1], mask_id=trajectory.mask_id,
                            retain_ratio=retain_ratio, generator=generator)
    return PreparedTrajectory(trajectory, states, teacher, bounds[:, 0], bounds[:, 1], counts)


def split_into_chunks(prepared: list[PreparedTrajectory], chunks: int) -> list[list[tuple[int, int]]]:
    """All (trajectory, step) pairs in order, cut into ``chunks`` contiguous pieces of near-equal size."""
    pairs = [(i, step) for i, item in enumerate(prepared) for step in range(item.num_steps)]
    size, extra = divmod(len(pairs), chunks)
    pieces, start = [], 0
    for index in range(chunks):
        end = start + size + (1 if index < extra else 0)
        pieces.append(pairs[start:end])
        start = end
    return pieces


class DOPSDTrainer(Trainer):
    """``DOPSDTrainer(model, tokenizer, task, DOPSDConfig(...)).train()``; see :class:`DOPSDConfig`."""

    config_class = DOPSDConfig

    def __init__(self, model=None, tokenizer=None, task=None, config: DOPSDConfig | None = None):
        super().__init__(model, tokenizer, task, config)
        rank, seed = self.accelerator.process_index, self.config.seed
        self.sample_generator = torch.Generator(device=self.accelerator.device).manual_seed(seed * 7919 + rank)
        self.teacher_generator = torch.Generator().manual_seed(seed * 104729 + rank)
        self.prepared: list[PreparedTrajectory] = []
        self.pending: list[list[tuple[int, int]]] = []
        self.rollout_metrics: dict = {}
        self.teacher_lm = self.build_teacher()

    # ----- teacher ---------------------------------------------------------------------------------------------
    def build_teacher(self) -> DiffusionLM | None:
        """A separate frozen model for the fixed teacher under full fine-tuning and for the EMA teacher;
        ``None`` when the teacher runs through the training model (fixed with LoRA: adapter off; live)."""
        config = self.config
        if config.teacher == "live" or (config.teacher == "fixed" and config.use_lora):
            return None
        frozen = copy.deepcopy(self.unwrapped).eval()
        for parameter in frozen.parameters():
            parameter.requires_grad_(False)
        return self.base_lm.rewrap(frozen)

    @contextlib.contextmanager
    def teacher_context(self):
        """Yields the LM to run the teacher pass with: no gradients, dropout off."""
        if self.teacher_lm is not None:
            with torch.no_grad():
                yield self.teacher_lm
            return
        self.model.eval()
        adapter_off = self.unwrapped.disable_adapter() if self.config.teacher == "fixed" else contextlib.nullcontext()
        try:
            with torch.no_grad(), adapter_off, self.accelerator.autocast():
                yield self.base_lm
        finally:
            self.model.train()

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
    def score_threshold(self) -> float:
        if self.config.score_threshold is not None:
            return self.config.score_threshold
        return getattr(self.task, "filter_threshold", self.task.correct_threshold)

    def rollout(self) -> float:
        """Samples this process's prompts with pass@k, prepares the kept trajectories' states; returns seconds."""
        config = self.config
        began = time.perf_counter()
        examples = self.next_examples(config.prompts_per_rollout)
        style = config.prompt_style or default_prompt_style(self.base_lm)
        prompts = encode_prompts(self.base_lm, self.task, examples, style)
        self.model.eval()
        with self.accelerator.autocast():
            result = passk_rollout(self.base_lm, self.task, examples, prompts, first=config.sampler_config(),
                                   resample=config.sampler_config(config.passk_temperature), passk=config.passk,
                                   generator=self.sample_generator)
        self.model.train()
        threshold = self.score_threshold()
        keep = [i for i, score in enumerate(result.scores) if score >= threshold or not config.correct_only]
        references = [None] * len(examples)
        if config.teacher_input == "reference":
            references = encode_prompts(self.base_lm, self.task, examples, style, reference=True)
        self.prepared = [prepare_trajectory(result.trajectories[i], config.teacher_retain_ratio,
                                            self.teacher_generator, references[i]) for i in keep]
        self.pending = split_into_chunks(self.prepared, config.updates_per_rollout)
        seconds = time.perf_counter() - began
        lengths = [self.response_length(t) for t in result.trajectories]
        self.rollout_metrics = {
            "solved": sum(result.solved) / len(result.solved),
            "kept": len(keep) / len(result.scores),
            "mean_score": sum(result.scores) / len(result.scores),
            "passk_rounds": sum(result.rounds) / len(result.rounds),
            "response_length": sum(lengths) / len(lengths),
            "rollout_samples": result.samples,
            "tokens_per_second": result.decoded_tokens / seconds if seconds else 0.0,
        }
        return seconds

    def response_length(self, trajectory: Trajectory) -> int:
        stops = torch.isin(trajectory.tokens, torch.tensor(self.base_lm.tokens.stop))
        return int(torch.nonzero(stops)[0]) if bool(stops.any()) else trajectory.gen_length

    # ----- loss ------------------------------------------------------------------------------------------------
    def compute_update(self) -> dict:
        metrics = {}
        if not self.pending:
            metrics["rollout_seconds"] = self.rollout()
        chunk = self.pending.pop(0)
        metrics.update(self.rollout_metrics)
        metrics.update(self.chunk_backward(chunk))
        return metrics

    def chunk_backward(self, chunk: list[tuple[int, int]]) -> dict:
        """Backward passes of one update over the states in ``chunk``, micro-batched."""
        if not chunk:
            self.accelerator.backward(self.zero_loss())
            return {"loss": 0.0, "states": 0}
        total_weight = sum(1.0 / self.prepared[i].num_steps for i, _ in chunk)
        batches = self.micro_batches(chunk)
        loss_sum, clip_sum, overlap_sum, positions = 0.0, 0.0, 0.0, 0
        for index, batch in enumerate(batches):
            sync = index == len(batches) - 1
            context = contextlib.nullcontext() if sync else self.accelerator.no_sync(self.model)
            with context:
                per_state, clip_ratio, overlap, count = self.states_loss(batch)
                batch_weights = torch.tensor([1.0 / self.prepared[i].num_steps for i, _ in batch],
                                             device=per_state.device)
                loss = (per_state * batch_weights).sum() / total_weight
                self.accelerator.backward(loss)
            loss_sum += float(loss.detach())
            clip_sum += float(clip_ratio) * count
            overlap_sum += float(overlap) * count
            positions += count
        return {"loss": loss_sum, "clip_ratio": clip_sum / positions, f"overlap_top{self.config.overlap_k}":
                overlap_sum / positions, "states": len(chunk)}

    def micro_batches(self, chunk: list[tuple[int, int]]) -> list[list[tuple[int, int]]]:
        """``micro_batch_size`` states a pass; a model that ignores the attention mask (LLaDA's remote code) only
        gets states whose student and teacher prompts have one length each, so no row is ever padded."""
        groups = {None: chunk}
        if not self.base_lm.handles_padding:
            groups = {}
            for pair in chunk:
                item = self.prepared[pair[0]]
                groups.setdefault((len(item.trajectory.prompt_ids), len(item.teacher_prompt)), []).append(pair)
        size = self.config.micro_batch_size
        return [group[start : start + size] for group in groups.values() for start in range(0, len(group), size)]

    def stack_inputs(self, batch):
        """Left-padded (prompt + state) inputs, attention masks and prompt widths of the student and the teacher."""
        items = [self.prepared[i] for i, _ in batch]
        device, pad = self.accelerator.device, self.base_lm.tokens.pad
        student = torch.stack([item.student_states[step] for item, (_, step) in zip(items, batch)]).to(device)
        teacher = torch.stack([item.teacher_states[step] for item, (_, step) in zip(items, batch)]).to(device)
        student_inputs = left_pad_with_responses([item.trajectory.prompt_ids for item in items], student, pad)
        teacher_inputs = left_pad_with_responses([item.teacher_prompt for item in items], teacher, pad)
        return student_inputs, teacher_inputs

    def states_loss(self, batch):
        """Per-state loss L_t (M,), and the micro-batch's clip ratio, Overlap Top-K and number of K_t positions."""
        config = self.config
        items = [self.prepared[i] for i, _ in batch]
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
        result = step_divergence(student_k[valid], teacher_k[valid], kind=config.divergence, top_k=config.top_k_loss,
                                 clip=config.clip, beta=config.jsd_beta)
        per_position = torch.zeros(valid.shape, dtype=result.per_position.dtype, device=device)
        per_position[valid] = result.per_position
        per_state = per_position.sum(1) / counts
        overlap = overlap_top_k(student_k[valid].detach(), teacher_k[valid], config.overlap_k).mean()
        return per_state, result.clip_ratio.detach(), overlap, int(valid.sum())

    @staticmethod
    def revealed_offsets(item: PreparedTrajectory, step: int, k_max: int) -> torch.Tensor:
        """Block-relative positions the student revealed at ``step``, padded (by repetition) to ``k_max``."""
        offsets = item.trajectory.revealed_at(step) - item.block_starts[step]
        return torch.cat([offsets, offsets[:1].expand(k_max - offsets.numel())])

    # ----- checkpoint state ------------------------------------------------------------------------------------
    def method_state(self) -> dict:
        return {
            "sample_generator": self.sample_generator.get_state(),
            "teacher_generator": self.teacher_generator.get_state(),
            "prepared": self.prepared,
            "pending": self.pending,
            "rollout_metrics": self.rollout_metrics,
            "teacher": None if self.config.teacher != "ema" else self.teacher_lm.model.state_dict(),
        }

    def load_method_state(self, state: dict) -> None:
        self.sample_generator.set_state(state["sample_generator"])
        self.teacher_generator.set_state(state["teacher_generator"])
        self.prepared, self.pending = state["prepared"], state["pending"]
        self.rollout_metrics = state["rollout_metrics"]
        if state["teacher"] is not None:
            self.teacher_lm.model.load_state_dict(state["teacher"])
