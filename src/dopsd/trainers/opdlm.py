"""OPDLM: an autoregressive LM turned into a diffusion LM by on-policy distillation from its frozen self.

The student is the causal LM converted into a masked diffusion LM (``dopsd convert``, or on the fly): by default a
block-diffusion LM (BD3LM layout: bidirectional inside blocks of 4 tokens, causal across blocks), as the paper
trains it, or a full-attention one (``attention: full``). The teacher is the original causal LM, frozen. Per
rollout: the student samples its own responses by confidence-based block decoding (batched, trajectories recorded;
a block student with its exact block cache); ONE causal teacher pass over prompt + each final response (the clean
tokens: the paper's ``teacher_fill: clean_fill``) gives, for every response position j, the teacher's next-token
distribution read at j-1 (the shift by one). The student's inputs are the trajectory's intermediate states: on a
block student one row per trajectory stitched from one sampled state per block (``one_state_per_block``), all blocks
in one forward of the clean/noisy layout; on a full-attention student the recorded states (all, or a uniform sample).
The loss is the divergence (forward KL over the teacher's top-16 by default) at each state's masked response
positions, averaged over all of them. Only those positions are projected through the student's head, and only
response positions through the teacher's.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from dopsd.config import option
from dopsd.distill import step_divergence
from dopsd.errors import DopsdError
from dopsd.evaluation import causal_accuracy
from dopsd.models import DiffusionLM, convert_causal_lm, load_diffusion_lm
from dopsd.models.adapter import END_OF_TURN_TOKENS
from dopsd.models.causal import causal_view, check_same_tokenizer, is_causal_config, load_causal_lm
from dopsd.models.layout import FULL, AttentionLayout
from dopsd.sampling import BlockDiffusionSampler, Trajectory
from dopsd.sampling.padding import group_by_length, left_pad_with_responses, micro_batches
from dopsd.tasks import default_prompt_style, encode_prompts
from dopsd.trainers.config import DivergenceConfig, check, check_at_least_one
from dopsd.trainers.rollouts import RolloutTrainer, split_into_chunks
from dopsd.trainers.salts import STATE_CHOICE_SALT

# End-of-turn tokens ``exclude_end_of_turn`` leaves out of the loss, looked up by name: the adapter's end-of-turn
# names but a plain end-of-text, which ends a document rather than a turn.
END_OF_TURN_NAMES = tuple(name for name in END_OF_TURN_TOKENS if name != "<|endoftext|>")


@dataclass
class OPDLMConfig(DivergenceConfig):
    """OPDLM (arXiv 2606.06712): self on-policy distillation of a converted causal LM from the original. The
    divergence and top-16 are the paper's; the other shared defaults are d-OPSD's (``dopsd opdlm --help``)."""

    model: str = option("HuggingFaceTB/SmolLM2-135M-Instruct", "the student: a causal LM (converted on the fly) or "
                        "the output of `dopsd convert`", "model")
    teacher_model: str | None = option(None, "the frozen teacher: the causal LM the student was converted from "
                                       "(same tokenizer); null: `model`, which must then be a causal LM", "model")
    teacher_gguf_file: str | None = option(None, "GGUF file name inside teacher_model (e.g. SmolLM2's Q4_1 file; "
                                           "needs the gguf package)", "model")
    shift_logits: bool = option(True, "on-the-fly conversion: read position i's logits from hidden state i-1 (Dream), "
                                "keeping the head's next-token meaning (OPDLM's launchers do not shift: "
                                "student_arm_shift false)", "model")
    attention: str = option("block", "on-the-fly conversion: block (the paper's BD3LM student: bidirectional inside "
                            "blocks of block_size tokens, 4 when null, causal across blocks) or full (bidirectional "
                            "over the whole sequence); a student that is already a diffusion LM keeps its own", "model")
    output_dir: str = "runs/opdlm"
    learning_rate: float = option(1e-5, "AdamW learning rate (the paper's 1e-5)", "optimization")
    lr_scheduler: str = option("cosine", "after warmup: constant, linear or cosine (the paper's cosine; it ends at "
                               "0.1x the rate, dopsd's at 0)", "optimization")
    warmup_steps: int = option(5, "warmup updates (the paper's 5)", "optimization")
    weight_decay: float = option(0.0, "AdamW weight decay (the paper's 0)", "optimization")
    max_grad_norm: float | None = option(1.0, "gradient clipping norm (the paper's 1.0); null disables",
                                         "optimization")
    block_length: int = option(4, "tokens per block of block-diffusion decoding (a block student's block size; the "
                               "paper's 4)", "rollout")
    temperature: float = option(1.0, "sampling temperature of rollouts (the paper's 1.0)", "rollout")
    threshold: float | None = option(0.9, "rollouts decode by dynamic threshold: each step keeps every proposal "
                                     "more confident than this, at least one (the paper's low_confidence_dynamic, "
                                     "0.9); null: a fixed number of tokens a step (steps)", "rollout")
    prompts_per_rollout: int = option(128, "prompts sampled together per process per rollout (the paper's 128)",
                                      "rollout")
    updates_per_rollout: int = option(1, "optimizer updates each rollout's states are split into", "method")
    states_per_trajectory: int | None = option(
        None, "recorded intermediate states trained per trajectory, a uniform sample without replacement "
        "(null: every recorded state)", "method")
    one_state_per_block: bool = option(
        True, "block student: one training row per trajectory, each block's state drawn uniformly from the states in "
        "which it was decoded (the paper's); false: every state, one row per step rank of the blocks", "method")
    exclude_end_of_turn: bool = option(
        True, "leave positions holding an end-of-turn token (<|im_end|>, <|eot_id|>, <|end|>) out of the loss, as the "
        "paper does (exclude_im_end)", "method")
    micro_batch_size: int = option(16, "states per student forward pass, bounding memory", "method")
    divergence: str = "forward_kl"  # the paper's
    top_k_loss: int = 16  # the paper's
    # false: with true, the bundled model's responses shrank from 14 to 0-6 tokens within 10 updates (teacher NLL
    # 8-11 nats/token, against 14-16 tokens and falling NLL with false):
    # after an early stop the teacher's targets are stops again, which outnumber the one target that says "no stop".
    train_after_stop: bool = option(
        False, "also train masked positions after the student's first stop token (the teacher reads the padding as "
        "text, so targets exist there); false: only positions up to and including the first stop", "method")
    eval_teacher: bool = option(True, "evaluate the causal teacher once (greedy, left to right) on the held-out set",
                                "evaluation")

    def __post_init__(self):
        super().__post_init__()
        check_at_least_one(self, "prompts_per_rollout", "updates_per_rollout", "micro_batch_size")
        check(self.states_per_trajectory is None or self.states_per_trajectory >= 1, "states_per_trajectory",
              self.states_per_trajectory, "must be at least 1 (or null for all)")
        check(self.attention in ("block", "full"), "attention", self.attention, "must be block or full")

    def sampler_config(self, temperature: float | None = None, exact_cache: bool = False):
        """Rollout decoding: the shared settings plus the dynamic threshold; ``exact_cache``: a block student's exact
        cache when ``rollout_cache`` is null (it changes no token)."""
        config = super().sampler_config(temperature)
        cache = config.cache or ("prefix" if exact_cache else None)
        return dataclasses.replace(config, threshold=self.threshold, cache=cache)


@dataclass
class TrajectoryTargets:
    """One student trajectory, the states chosen from it, and the teacher's targets for its response positions:
    the top-k logits and their token ids (gen_length, k), or the full logits (gen_length, vocab) with ``ids`` None."""

    trajectory: Trajectory
    steps: torch.Tensor
    values: torch.Tensor
    ids: torch.Tensor | None
    limit: int
    vocab: int

    @property
    def num_steps(self) -> int:  # what split_into_chunks counts: training rows (states, or a block student's rows)
        return int(self.steps.shape[0])

    def targets_at(self, positions: torch.Tensor) -> torch.Tensor:
        """Teacher logits at response ``positions``; outside the stored top-k, -inf (never selected again)."""
        values = self.values[positions]
        if self.ids is None:
            return values
        dense = torch.full((*positions.shape, self.vocab), -torch.inf, dtype=values.dtype)
        return dense.scatter(-1, self.ids[positions], values)


def target_divergence(student_logits, teacher_logits, config: OPDLMConfig):
    """Per-position divergence between the student and the teacher's targets, (N,). The student is compared over the
    teacher's vocabulary (the mask token conversion added is not the teacher's); no pointwise clip."""
    student = student_logits[..., : teacher_logits.shape[-1]]
    return step_divergence(student, teacher_logits, clip=None, **config.divergence_options()).per_position


def load_student(config: OPDLMConfig) -> DiffusionLM:
    """A causal LM converted on the fly, or a converted / diffusion LM loaded as it is."""
    from transformers import AutoConfig

    try:
        model_config = AutoConfig.from_pretrained(config.model, trust_remote_code=config.trust_remote_code)
    except (OSError, ValueError) as error:
        raise DopsdError(f"cannot load the student from {config.model!r}: {str(error).splitlines()[0]}") from error
    if not is_causal_config(model_config):
        return load_diffusion_lm(config.model, trust_remote_code=config.trust_remote_code, dtype=config.dtype,
                                 mask_token_id=config.mask_token_id, eos_token_id=config.eos_token_id,
                                 pad_token_id=config.pad_token_id, block_size=config.block_size)
    model, tokenizer = load_causal_lm(config.model, dtype=config.dtype, role="student",
                                      trust_remote_code=config.trust_remote_code)
    layout = AttentionLayout("block", config.block_size or 4) if config.attention == "block" else FULL
    with torch.random.fork_rng(devices=[]):
        # The mask token's new embedding row is drawn at random: every run (any seed) converts to the same start.
        torch.manual_seed(0)
        model, tokenizer = convert_causal_lm(model, tokenizer, shift_logits=config.shift_logits, layout=layout)
    return DiffusionLM(model, tokenizer, shift_logits=config.shift_logits, bidirectional_mask=True)


class OPDLMTrainer(RolloutTrainer):
    """``OPDLMTrainer(config=OPDLMConfig(model=..., ...)).train()``; from Python also ``OPDLMTrainer(model=student_lm,
    task=..., config=..., teacher=(causal_model, tokenizer))``."""

    config_class = OPDLMConfig
    progress_keys = ("loss", "teacher_nll", "eval_accuracy")

    def __init__(self, *, model=None, tokenizer=None, task=None, config: OPDLMConfig | None = None,
                 teacher=None):
        config = config or self.config_class()
        if teacher is None:
            teacher = load_causal_lm(config.teacher_model or config.model, dtype=config.dtype,
                                     gguf_file=config.teacher_gguf_file, trust_remote_code=config.trust_remote_code)
        if model is None:
            model = load_student(config)
        student_tokenizer = model.tokenizer if isinstance(model, DiffusionLM) else tokenizer
        teacher_model, teacher_tokenizer = teacher
        if not is_causal_config(teacher_model.config):
            raise DopsdError(f"the teacher is a {teacher_model.config.model_type!r} model, not an autoregressive "
                             "(causal) LM: give the causal LM the student was converted from")
        mask = model.tokens.mask if isinstance(model, DiffusionLM) else student_tokenizer.mask_token_id
        check_same_tokenizer(student_tokenizer, teacher_tokenizer, mask)
        super().__init__(model=model, tokenizer=tokenizer, task=task, config=config)
        teacher_model.to(self.accelerator.device).eval()
        for parameter in teacher_model.parameters():
            parameter.requires_grad_(False)
        self.teacher_lm = causal_view(teacher_model, teacher_tokenizer, self.base_lm.tokens)
        self.state_generator = self.generator(STATE_CHOICE_SALT, on_device=False)
        self.rollout_data: list[TrajectoryTargets] = []
        self.tokens_trained = 0
        self.teacher_eval: dict | None = None
        vocab = student_tokenizer.get_vocab() if student_tokenizer is not None else {}
        self.end_of_turn = torch.tensor(sorted(vocab[name] for name in END_OF_TURN_NAMES if name in vocab)
                                        if config.exclude_end_of_turn else [], dtype=torch.long)

    def prompt_style(self) -> str:
        return self.config.prompt_style or default_prompt_style(self.base_lm)

    # ----- targets ---------------------------------------------------------------------------------------------
    @torch.no_grad()
    def teacher_targets(self, prompts: list[list[int]], responses: torch.Tensor) -> torch.Tensor:
        """(batch, gen_length, teacher vocab): for response position j, the frozen causal teacher's next-token
        logits read at position j-1 of prompt + response (the last prompt token for j = 0); one pass per batch."""
        ids, attention, width = left_pad_with_responses(prompts, responses.to(self.accelerator.device),
                                                        self.base_lm.tokens.pad)
        positions = width - 1 + torch.arange(responses.shape[1], device=ids.device)
        with self.frozen_pass(self.teacher_lm) as teacher:
            return teacher.logits_at(ids, positions, attention)

    # ----- rollout ---------------------------------------------------------------------------------------------
    def draw_rollout(self) -> tuple[list[TrajectoryTargets], list[list[tuple[int, int]]], dict]:
        """The student's samples of this process's prompts with the teacher's targets, split into
        ``updates_per_rollout`` chunks of (trajectory, training row) pairs."""
        config = self.config
        examples = self.next_examples(config.prompts_per_rollout)
        prompts = encode_prompts(self.base_lm, self.task, examples, self.prompt_style())
        with self.policy_pass() as lm:
            sampling = config.sampler_config(exact_cache=self.exact_cache)
            trajectories = BlockDiffusionSampler(lm, sampling).sample(prompts, generator=self.sample_generator)
        responses = torch.stack([t.tokens for t in trajectories])
        targets = self.teacher_targets(prompts, responses).cpu()
        log_probs = F.log_softmax(targets.float(), dim=-1)
        rollout, nll, lengths = [], [], []
        for row, trajectory in enumerate(trajectories):
            length = trajectory.response_length(self.base_lm.tokens.stop)
            limit = min(length + 1, trajectory.gen_length)  # through the first stop token
            token_nll = -log_probs[row, torch.arange(limit), trajectory.tokens[:limit]]
            nll.append(float(token_nll.mean()))
            lengths.append(length)
            rollout.append(self.trajectory_targets(trajectory, targets[row], limit))
        metrics = {
            "teacher_nll": sum(nll) / len(nll),
            "response_length": sum(lengths) / len(lengths),
            "rollout_samples": len(trajectories),
            # the training data this rollout made: prompt + response of every sample, each counted once
            "data_tokens": sum(len(t.prompt_ids) + t.gen_length for t in trajectories),
            "rollout_accuracy": sum(self.task.score(e, self.base_lm.decode(t.tokens)).correct
                                    for e, t in zip(examples, trajectories)) / len(examples),
        }
        return rollout, split_into_chunks(rollout, config.updates_per_rollout), metrics

    def trajectory_targets(self, trajectory: Trajectory, targets: torch.Tensor, limit: int) -> TrajectoryTargets:
        steps = self.block_rows(trajectory, limit) if self.base_lm.layout.is_block else \
            torch.arange(trajectory.num_recorded_steps)
        wanted = self.config.states_per_trajectory
        if wanted is not None and wanted < steps.shape[0]:
            steps = steps[torch.randperm(steps.shape[0], generator=self.state_generator)[:wanted].sort().values]
        k = self.config.top_k_loss
        if 0 < k < targets.shape[-1]:
            top = targets.topk(k, dim=-1)
            return TrajectoryTargets(trajectory, steps, top.values, top.indices, limit, targets.shape[-1])
        return TrajectoryTargets(trajectory, steps, targets, None, limit, targets.shape[-1])

    def block_rows(self, trajectory: Trajectory, limit: int) -> torch.Tensor:
        """A block student's training rows, (rows, blocks): for each row, the step before which each block's state
        is taken (``num_steps``: the finished block, nothing to learn there). Blocks past the trained positions are
        finished in every row. ``one_state_per_block``: one row, each block's state drawn uniformly; otherwise row r
        takes every block's r-th state."""
        trained = trajectory.gen_length if self.config.train_after_stop else limit
        per_block = [steps if start < trained else steps[:0]
                     for start, steps in zip(range(0, trajectory.gen_length, trajectory.block_length),
                                             trajectory.block_steps())]
        finished = trajectory.num_steps
        if self.config.one_state_per_block:
            row = [steps[int(torch.randint(len(steps), (1,), generator=self.state_generator))] if len(steps) else
                   finished for steps in per_block]
            return torch.tensor([row], dtype=torch.long)
        depth = max(max(len(steps) for steps in per_block), 1)
        return torch.tensor([[int(steps[r]) if r < len(steps) else finished for steps in per_block]
                             for r in range(depth)], dtype=torch.long)

    # ----- loss ------------------------------------------------------------------------------------------------
    def compute_update(self) -> dict:
        chunk, metrics = self.next_chunk()
        metrics.update(self.chunk_backward(chunk))
        self.tokens_trained += metrics["tokens"]
        metrics["tokens_trained"] = self.tokens_trained
        return metrics

    def loss_positions(self, item: TrajectoryTargets, step: int | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The state before ``step`` (a block student: the row of one state per block) and the response positions its
        loss covers: its masked ones (through the first stop token unless ``train_after_stop``; never an end-of-turn
        token with ``exclude_end_of_turn``)."""
        rows = torch.is_tensor(step) and step.dim() == 1
        state = item.trajectory.block_state(step) if rows else item.trajectory.state(int(step))
        masked = state == self.base_lm.tokens.mask
        if not self.config.train_after_stop:
            masked &= torch.arange(state.numel()) < item.limit
        if self.end_of_turn.numel():
            masked &= ~torch.isin(item.trajectory.tokens, self.end_of_turn)
        return state, torch.nonzero(masked).flatten()

    def chunk_backward(self, chunk: list[tuple[int, int]]) -> dict:
        if not chunk:
            self.backward_micro_batches([], None)  # joins the others' synchronisation
            return {"loss": 0.0, "states": 0, "positions": 0, "tokens": 0}
        inputs = [self.loss_positions(self.rollout_data[i], self.rollout_data[i].steps[k]) for i, k in chunk]
        total = sum(positions.numel() for _, positions in inputs)
        rows = list(range(len(chunk)))
        groups = [rows]
        if not self.base_lm.handles_padding:
            groups = group_by_length([len(self.rollout_data[i].trajectory.prompt_ids) for i, _ in chunk])

        def loss_of(batch):
            per_position = self.batch_divergence([chunk[r] for r in batch], [inputs[r] for r in batch])
            return per_position.sum() / max(total, 1), None

        results = self.backward_micro_batches(micro_batches(groups, self.config.micro_batch_size), loss_of)
        # the length of every sequence the student ran (a block student's rows hold the response twice: clean, noisy)
        copies = 2 if self.base_lm.layout.is_block else 1
        tokens = sum(len(self.rollout_data[i].trajectory.prompt_ids)
                     + copies * self.rollout_data[i].trajectory.gen_length for i, _ in chunk)
        return {"loss": sum(loss for loss, _ in results), "states": len(chunk), "positions": total, "tokens": tokens}

    def batch_divergence(self, batch: list[tuple[int, int]], inputs) -> torch.Tensor:
        """Divergence at every loss position of the micro-batch's states, (positions,); one student pass that
        projects only those positions (a block student: each block reads the finished blocks before it)."""
        device = self.accelerator.device
        items = [self.rollout_data[i] for i, _ in batch]
        states = torch.stack([state for state, _ in inputs]).to(device)
        counts = [positions.numel() for _, positions in inputs]
        width_p = max(max(counts), 1)
        padded = torch.stack([torch.cat([p, p[:1].expand(width_p - p.numel())]) if p.numel() else
                              torch.zeros(width_p, dtype=torch.long) for _, p in inputs])
        valid = torch.arange(width_p)[None, :] < torch.tensor(counts)[:, None]
        ids, attention, width = left_pad_with_responses([item.trajectory.prompt_ids for item in items], states,
                                                        self.base_lm.tokens.pad)
        clean = torch.stack([item.trajectory.tokens for item in items])
        student = self.lm.state_logits_at(ids, width + padded.to(device), attention, width, clean=clean)
        teacher = torch.cat([item.targets_at(p) for item, (_, p) in zip(items, inputs)]).to(device)
        if teacher.shape[0] == 0:
            return student.sum() * 0.0
        return target_divergence(student[valid.to(device)], teacher, self.config)

    # ----- evaluation, summary, checkpoints --------------------------------------------------------------------
    def summary(self, seconds: float) -> dict:
        summary = super().summary(seconds)
        if self.config.eval_teacher:
            if self.teacher_eval is None:
                self.teacher_eval = causal_accuracy(self.teacher_lm, self.task, self.eval_examples,
                                                    self.prompt_style(), self.config.eval_gen_length
                                                    or self.config.gen_length, self.config.eval_batch_size)
            summary["teacher_eval"] = self.teacher_eval
        summary["tokens_trained"] = self.tokens_trained
        return summary

    def train(self) -> dict:
        summary = super().train()
        if self.accelerator.is_main_process and "teacher_eval" in summary:
            print(f"OPDLM on {summary['task']}, held-out accuracy: AR teacher {summary['teacher_eval']['accuracy']:.3f}"
                  f", converted untrained {summary['eval_before']['accuracy']:.3f}, OPDLM "
                  f"{summary['eval_after']['accuracy']:.3f} (best {summary['best_eval']['accuracy']:.3f}) after "
                  f"{summary['tokens_trained']:,} training tokens", flush=True)
        return summary

    rollout_key = "rollouts"

    def method_state(self) -> dict:
        return {**super().method_state(), "tokens_trained": self.tokens_trained}

    def load_method_state(self, state: dict) -> None:
        super().load_method_state(state)
        self.tokens_trained = state["tokens_trained"]
