"""OPDLM: an autoregressive LM turned into a diffusion LM by on-policy distillation from its frozen self.

The student is the causal LM converted into a masked diffusion LM (``dopsd convert``, or on the fly); the teacher is
the original causal LM, frozen. Per rollout: the student samples its own responses by confidence-based block
decoding (batched, trajectories recorded); ONE causal teacher pass over prompt + each final response gives, for every
response position j, the teacher's next-token distribution read at j-1 (the shift by one); each trajectory's
recorded intermediate states (all, or a uniform sample) are the student's inputs, and the loss is the divergence
(forward KL over the teacher's top-16 by default) at each state's masked response positions, averaged over all of
them. Only those positions are projected through the student's head, and only response positions through the
teacher's.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from dopsd.config import option
from dopsd.distill import step_divergence
from dopsd.errors import DopsdError
from dopsd.models import DiffusionLM, convert_causal_lm, load_diffusion_lm
from dopsd.models.causal import causal_view, check_same_tokenizer, is_causal_config, load_causal_lm
from dopsd.sampling import BlockDiffusionSampler, Trajectory
from dopsd.sampling.padding import group_by_length, left_pad_with_responses, micro_batches
from dopsd.tasks import default_prompt_style, encode_prompts
from dopsd.trainers.base import Trainer
from dopsd.trainers.config import RolloutConfig, check, check_at_least_one
from dopsd.trainers.dopsd import split_into_chunks
from dopsd.trainers.opdlm_teacher import causal_accuracy


@dataclass
class OPDLMConfig(RolloutConfig):
    """OPDLM (arXiv 2606.06712): self on-policy distillation of a converted causal LM from the original. The
    divergence and top-16 are the paper's; the other shared defaults are d-OPSD's (``dopsd opdlm --help``)."""

    model: str = option("HuggingFaceTB/SmolLM2-135M-Instruct", "the student: a causal LM (converted on the fly) or "
                        "the output of `dopsd convert`", "model")
    teacher_model: str | None = option(None, "the frozen teacher: the causal LM the student was converted from "
                                       "(same tokenizer); null: `model`, which must then be a causal LM", "model")
    teacher_gguf_file: str | None = option(None, "GGUF file name inside teacher_model (e.g. SmolLM2's Q4_1 file; "
                                           "needs the gguf package)", "model")
    shift_logits: bool = option(True, "on-the-fly conversion: read position i's logits from hidden state i-1 (Dream), "
                                "keeping the head's next-token meaning", "model")
    output_dir: str = "runs/opdlm"
    prompts_per_rollout: int = option(1, "prompts sampled together per process per rollout", "rollout")
    updates_per_rollout: int = option(1, "optimizer updates each rollout's states are split into", "method")
    states_per_trajectory: int | None = option(
        None, "recorded intermediate states trained per trajectory, a uniform sample without replacement "
        "(null: every recorded state)", "method")
    micro_batch_size: int = option(16, "states per student forward pass, bounding memory", "method")
    divergence: str = option("forward_kl", "forward_kl (teacher || student, the paper's), reverse_kl or jsd",
                             "method")
    top_k_loss: int = option(16, "restrict both distributions to the teacher's top-k tokens, renormalised "
                             "(0: the full vocabulary)", "method")
    jsd_beta: float = option(0.5, "mixture weight of the generalized JSD", "method")
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
        check(self.divergence in ("reverse_kl", "forward_kl", "jsd"), "divergence", self.divergence,
              "must be reverse_kl, forward_kl or jsd")
        check(0.0 <= self.jsd_beta <= 1.0, "jsd_beta", self.jsd_beta, "must be in [0, 1]")
        check(self.top_k_loss >= 0, "top_k_loss", self.top_k_loss, "must be >= 0")


@dataclass
class Rollout:
    """One student trajectory, the states chosen from it, and the teacher's targets for its response positions:
    the top-k logits and their token ids (gen_length, k), or the full logits (gen_length, vocab) with ``ids`` None."""

    trajectory: Trajectory
    steps: torch.Tensor
    values: torch.Tensor
    ids: torch.Tensor | None
    limit: int
    vocab: int

    @property
    def num_steps(self) -> int:  # what split_into_chunks counts
        return int(self.steps.numel())

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
    return step_divergence(student, teacher_logits, kind=config.divergence, top_k=config.top_k_loss, clip=None,
                           beta=config.jsd_beta).per_position


def load_student(config: OPDLMConfig) -> DiffusionLM:
    """A causal LM converted on the fly, or a converted / diffusion LM loaded as it is."""
    from transformers import AutoConfig

    try:
        model_config = AutoConfig.from_pretrained(config.model, trust_remote_code=config.trust_remote_code)
    except (OSError, ValueError) as error:
        raise DopsdError(f"cannot load the student from {config.model!r}: {str(error).splitlines()[0]}") from error
    if not is_causal_config(model_config):
        return load_diffusion_lm(config.model, trust_remote_code=config.trust_remote_code, dtype=config.dtype)
    model, tokenizer = load_causal_lm(config.model, dtype=config.dtype, role="student")
    with torch.random.fork_rng(devices=[]):
        # The mask token's new embedding row is drawn at random: every run (any seed) converts to the same start.
        torch.manual_seed(0)
        model, tokenizer = convert_causal_lm(model, tokenizer, shift_logits=config.shift_logits)
    return DiffusionLM(model, tokenizer, shift_logits=config.shift_logits, bidirectional_mask=True)


class OPDLMTrainer(Trainer):
    """``OPDLMTrainer(config=OPDLMConfig(model=..., ...)).train()``; from Python also ``OPDLMTrainer(student_lm,
    task=..., config=..., teacher=(causal_model, tokenizer))``."""

    config_class = OPDLMConfig
    progress_keys = ("loss", "teacher_nll", "eval_accuracy")

    def __init__(self, model=None, tokenizer=None, task=None, config: OPDLMConfig | None = None, teacher=None):
        config = config or self.config_class()
        if teacher is None:
            teacher = load_causal_lm(config.teacher_model or config.model, dtype=config.dtype,
                                     gguf_file=config.teacher_gguf_file)
        if model is None:
            model = load_student(config)
        student_tokenizer = model.tokenizer if isinstance(model, DiffusionLM) else tokenizer
        teacher_model, teacher_tokenizer = teacher
        if not is_causal_config(teacher_model.config):
            raise DopsdError(f"the teacher is a {teacher_model.config.model_type!r} model, not an autoregressive "
                             "(causal) LM: give the causal LM the student was converted from")
        mask = model.tokens.mask if isinstance(model, DiffusionLM) else student_tokenizer.mask_token_id
        check_same_tokenizer(student_tokenizer, teacher_tokenizer, mask)
        super().__init__(model, tokenizer, task, config)
        teacher_model.to(self.accelerator.device).eval()
        for parameter in teacher_model.parameters():
            parameter.requires_grad_(False)
        self.teacher_lm = causal_view(teacher_model, teacher_tokenizer, self.base_lm.tokens)
        self.sample_generator = self.generator(7919)
        self.state_generator = self.generator(104729, on_device=False)
        self.rollouts: list[Rollout] = []
        self.pending: list[list[tuple[int, int]]] = []
        self.rollout_metrics: dict = {}
        self.tokens_trained = 0
        self.teacher_eval: dict | None = None

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
    def rollout(self) -> float:
        config = self.config
        began = time.perf_counter()
        examples = self.next_examples(config.prompts_per_rollout)
        prompts = encode_prompts(self.base_lm, self.task, examples, self.prompt_style())
        with self.frozen_pass() as lm:
            trajectories = BlockDiffusionSampler(lm, config.sampler_config()).sample(
                prompts, generator=self.sample_generator)
        responses = torch.stack([t.tokens for t in trajectories])
        targets = self.teacher_targets(prompts, responses).cpu()
        log_probs = F.log_softmax(targets.float(), dim=-1)
        self.rollouts, nll, lengths = [], [], []
        for row, trajectory in enumerate(trajectories):
            length = trajectory.response_length(self.base_lm.tokens.stop)
            limit = min(length + 1, trajectory.gen_length)  # through the first stop token
            token_nll = -log_probs[row, torch.arange(limit), trajectory.tokens[:limit]]
            nll.append(float(token_nll.mean()))
            lengths.append(length)
            self.rollouts.append(self.make_rollout(trajectory, targets[row], limit))
        self.pending = split_into_chunks(self.rollouts, config.updates_per_rollout)
        seconds = time.perf_counter() - began
        self.rollout_metrics = {
            "teacher_nll": sum(nll) / len(nll),
            "response_length": sum(lengths) / len(lengths),
            "rollout_samples": len(trajectories),
            # the training data this rollout made: prompt + response of every sample, each counted once
            "data_tokens": sum(len(t.prompt_ids) + t.gen_length for t in trajectories),
            "rollout_accuracy": sum(self.task.score(e, self.base_lm.decode(t.tokens)).correct
                                    for e, t in zip(examples, trajectories)) / len(examples),
        }
        return seconds

    def make_rollout(self, trajectory: Trajectory, targets: torch.Tensor, limit: int) -> Rollout:
        steps = torch.arange(trajectory.num_recorded_steps)
        wanted = self.config.states_per_trajectory
        if wanted is not None and wanted < steps.numel():
            steps = torch.randperm(steps.numel(), generator=self.state_generator)[:wanted].sort().values
        k = self.config.top_k_loss
        if 0 < k < targets.shape[-1]:
            top = targets.topk(k, dim=-1)
            return Rollout(trajectory, steps, top.values, top.indices, limit, targets.shape[-1])
        return Rollout(trajectory, steps, targets, None, limit, targets.shape[-1])

    # ----- loss ------------------------------------------------------------------------------------------------
    def compute_update(self) -> dict:
        chunk, metrics = self.next_chunk()
        metrics.update(self.chunk_backward(chunk))
        self.tokens_trained += metrics["tokens"]
        metrics["tokens_trained"] = self.tokens_trained
        return metrics

    def loss_positions(self, item: Rollout, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The state before ``step`` and the response positions its loss covers: its masked ones (through the first
        stop token unless ``train_after_stop``)."""
        state = item.trajectory.state(int(step))
        masked = state == self.base_lm.tokens.mask
        if not self.config.train_after_stop:
            masked &= torch.arange(state.numel()) < item.limit
        return state, torch.nonzero(masked).flatten()

    def chunk_backward(self, chunk: list[tuple[int, int]]) -> dict:
        if not chunk:
            self.backward_micro_batches([], None)  # joins the others' synchronisation
            return {"loss": 0.0, "states": 0, "positions": 0, "tokens": 0}
        inputs = [self.loss_positions(self.rollouts[i], self.rollouts[i].steps[k]) for i, k in chunk]
        total = sum(positions.numel() for _, positions in inputs)
        rows = list(range(len(chunk)))
        groups = [rows]
        if not self.base_lm.handles_padding:
            groups = group_by_length([len(self.rollouts[i].trajectory.prompt_ids) for i, _ in chunk])

        def loss_of(batch):
            per_position = self.batch_divergence([chunk[r] for r in batch], [inputs[r] for r in batch])
            return per_position.sum() / max(total, 1), None

        results = self.backward_micro_batches(micro_batches(groups, self.config.micro_batch_size), loss_of)
        tokens = sum(len(self.rollouts[i].trajectory.prompt_ids) + self.rollouts[i].trajectory.gen_length
                     for i, _ in chunk)
        return {"loss": sum(loss for loss, _ in results), "states": len(chunk), "positions": total, "tokens": tokens}

    def batch_divergence(self, batch: list[tuple[int, int]], inputs) -> torch.Tensor:
        """Divergence at every loss position of the micro-batch's states, (positions,); one student pass that
        projects only those positions."""
        device = self.accelerator.device
        items = [self.rollouts[i] for i, _ in batch]
        states = torch.stack([state for state, _ in inputs]).to(device)
        counts = [positions.numel() for _, positions in inputs]
        width_p = max(max(counts), 1)
        padded = torch.stack([torch.cat([p, p[:1].expand(width_p - p.numel())]) if p.numel() else
                              torch.zeros(width_p, dtype=torch.long) for _, p in inputs])
        valid = torch.arange(width_p)[None, :] < torch.tensor(counts)[:, None]
        ids, attention, width = left_pad_with_responses([item.trajectory.prompt_ids for item in items], states,
                                                        self.base_lm.tokens.pad)
        student = self.lm.logits_at(ids, width + padded.to(device), attention)
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

    def method_state(self) -> dict:
        return {**super().method_state(), "rollouts": self.rollouts, "pending": self.pending,
                "rollout_metrics": self.rollout_metrics, "tokens_trained": self.tokens_trained}

    def load_method_state(self, state: dict) -> None:
        super().load_method_state(state)
        self.rollouts, self.pending = state["rollouts"], state["pending"]
        self.rollout_metrics, self.tokens_trained = state["rollout_metrics"], state["tokens_trained"]
