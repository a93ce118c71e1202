"""diffu-GRPO (d1), the RLVR baseline d-OPSD is compared with (NOTES section 6).

Per rollout: ``prompts_per_rollout`` prompts, each sampled ``num_generations`` times in one batched sampler call, are
rewarded by the task's verifier (plus format credit); advantages are rewards minus their group's mean. The rollout
then serves ``inner_updates`` optimizer updates. Their prompt masks, and the old-policy and reference log-probs under
each mask, are fixed at rollout time, so an update only runs the policy's one forward pass per completion (in
micro-batches) and the clipped surrogate plus beta times the k3 KL, averaged over each completion's tokens up to its
first stop token, then over completions.
"""

from __future__ import annotations

import contextlib
import copy
import time
from dataclasses import dataclass

import torch

from dopsd.config import ConfigError
from dopsd.evaluation import default_prompt_style, encode_prompts
from dopsd.models import DiffusionLM
from dopsd.sampling import BlockDiffusionSampler, SamplerConfig
from dopsd.sampling.padding import left_pad_with_responses
from dopsd.trainers.base import Trainer
from dopsd.trainers.config import TrainingConfig
from dopsd.trainers.grpo_loss import (
    clipped_surrogate,
    clipped_tokens,
    completion_logprobs,
    completion_mask,
    draw_prompt_masks,
    group_advantages,
    k3_kl,
)
from dopsd.trainers.grpo_rewards import correctness_scale, rollout_reward


@dataclass
class GRPOConfig(TrainingConfig):
    """diffu-GRPO. Defaults are d1's for GSM8K/MATH unless the line says otherwise.

    Args:
        learning_rate: AdamW learning rate (3e-6, d1's LoRA setting as scripts built on d1 use it; NOTES gives none).
        gen_length: Response length of rollouts (256).
        block_length: Block length of rollouts (32).
        steps: Denoising steps of rollouts (``None``: ``gen_length / 2``, two tokens a step).
        temperature: Sampling temperature of rollouts (0.9; the group needs varied completions).
        num_generations: G, completions sampled per prompt, forming one advantage group (6).
        prompts_per_rollout: Prompts per process per rollout; each process samples ``prompts_per_rollout * G``
            completions (d1: 2 per GPU).
        inner_updates: mu, optimizer updates per rollout, each over all its completions with a fresh prompt mask
            (12 for GSM8K/MATH; d1 uses 8 for Countdown and Sudoku). ``max_updates`` counts these updates.
        micro_batch_size: Completions per forward pass, bounding memory.
        epsilon: PPO clip range of the probability ratio (0.2).
        beta: Weight of the k3 KL to the reference, the initial policy (0.04; 0 skips the reference passes).
        prompt_mask_ratio: Probability of masking each real prompt token in the log-prob pass (0.15).
        correctness_reward_scale: Factor on the task's correctness reward (``None``: 2.0 for GSM8K and MATH500,
            1.0 for Countdown and Sudoku, as d1). ``instruct`` prompts also earn up to 1.5 for the answer tags.
    """

    output_dir: str = "runs/grpo"
    learning_rate: float = 3e-6
    gen_length: int = 256
    block_length: int = 32
    steps: int | None = None
    temperature: float = 0.9
    num_generations: int = 6
    prompts_per_rollout: int = 2
    inner_updates: int = 12
    micro_batch_size: int = 6
    epsilon: float = 0.2
    beta: float = 0.04
    prompt_mask_ratio: float = 0.15
    correctness_reward_scale: float | None = None

    def __post_init__(self):
        super().__post_init__()
        self.sampler_config()  # validates gen_length, block_length, steps, temperature
        for name in ("prompts_per_rollout", "inner_updates", "micro_batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(name, getattr(self, name), "must be at least 1")
        if self.num_generations < 2:
            raise ConfigError("num_generations", self.num_generations, "must be at least 2 (a group to compare)")
        if not 0.0 < self.epsilon < 1.0:
            raise ConfigError("epsilon", self.epsilon, "must be in (0, 1)")
        if self.beta < 0:
            raise ConfigError("beta", self.beta, "must be >= 0")
        if not 0.0 <= self.prompt_mask_ratio < 1.0:
            raise ConfigError("prompt_mask_ratio", self.prompt_mask_ratio, "must be in [0, 1)")
        if self.correctness_reward_scale is not None and self.correctness_reward_scale <= 0:
            raise ConfigError("correctness_reward_scale", self.correctness_reward_scale, "must be > 0 (or null)")

    def sampler_config(self) -> SamplerConfig:
        return SamplerConfig(gen_length=self.gen_length, block_length=self.block_length, steps=self.steps,
                             temperature=self.temperature)


@dataclass
class RolloutBatch:
    """One rollout's completions and everything its inner updates need, fixed when it was sampled."""

    ids: torch.Tensor  # (N, W + L) left-padded prompt, then the sampled completion
    attention: torch.Tensor  # (N, W + L), 0 on padding
    width: int  # W, the prompt width
    completion_mask: torch.Tensor  # (N, L) tokens up to and including the first stop token
    advantages: torch.Tensor  # (N,)
    prompt_masks: torch.Tensor  # (mu, N, W) prompt tokens masked in inner update k
    old_logps: torch.Tensor | None  # (mu, N, L) policy at rollout time under mask k; None when mu = 1
    ref_logps: torch.Tensor | None  # (mu, N, L) reference under mask k; None when beta = 0

    @property
    def size(self) -> int:
        return self.ids.shape[0]


class GRPOTrainer(Trainer):
    """``GRPOTrainer(model, tokenizer, task, GRPOConfig(...)).train()``; see :class:`GRPOConfig`."""

    config_class = GRPOConfig
    progress_keys = ("loss", "reward_mean", "eval_accuracy")

    def __init__(self, model=None, tokenizer=None, task=None, config: GRPOConfig | None = None):
        super().__init__(model, tokenizer, task, config)
        rank, seed, device = self.accelerator.process_index, self.config.seed, self.accelerator.device
        self.sample_generator = torch.Generator(device=device).manual_seed(seed * 7919 + rank)
        self.mask_generator = torch.Generator(device=device).manual_seed(seed * 104729 + rank)
        self.batch: RolloutBatch | None = None
        self.inner_index = 0
        self.rollout_metrics: dict = {}
        self.reference_lm = self.build_reference()

    # ----- reference -------------------------------------------------------------------------------------------
    def build_reference(self) -> DiffusionLM | None:
        """A frozen copy of the initial weights under full fine-tuning; ``None`` with LoRA (the adapter is switched
        off instead) or when ``beta`` is 0 (no reference needed)."""
        if self.config.beta == 0 or self.config.use_lora:
            return None
        frozen = copy.deepcopy(self.unwrapped).eval()
        for parameter in frozen.parameters():
            parameter.requires_grad_(False)
        return self.base_lm.rewrap(frozen)

    @contextlib.contextmanager
    def frozen_pass(self, reference: bool):
        """Yields the LM for a no-grad pass of the current policy, or of the reference; dropout off."""
        if reference and self.reference_lm is not None:
            with torch.no_grad(), self.accelerator.autocast():
                yield self.reference_lm
            return
        self.model.eval()
        adapter_off = self.unwrapped.disable_adapter() if reference else contextlib.nullcontext()
        try:
            with torch.no_grad(), adapter_off, self.accelerator.autocast():
                yield self.base_lm
        finally:
            self.model.train()

    # ----- rollout ---------------------------------------------------------------------------------------------
    def rollout(self) -> float:
        """Samples G completions for each of this process's prompts, rewards them, fixes the inner updates' prompt
        masks and their old-policy and reference log-probs; returns the seconds it took."""
        config, lm = self.config, self.base_lm
        began = time.perf_counter()
        examples = self.next_examples(config.prompts_per_rollout)
        style = config.prompt_style or default_prompt_style(lm)
        prompts = encode_prompts(lm, self.task, examples, style)
        group = config.num_generations
        repeated_examples = [example for example in examples for _ in range(group)]
        repeated_prompts = [prompt for prompt in prompts for _ in range(group)]
        self.model.eval()
        with self.accelerator.autocast():
            trajectories = BlockDiffusionSampler(lm, config.sampler_config()).sample(
                repeated_prompts, generator=self.sample_generator)
        self.model.train()
        sampled = torch.stack([t.tokens for t in trajectories]).to(self.accelerator.device)
        completions = [lm.decode(tokens) for tokens in sampled]
        scale = correctness_scale(self.task.name, config.correctness_reward_scale)
        rewards = torch.tensor([rollout_reward(self.task, example, text, style, scale)
                                for example, text in zip(repeated_examples, completions)], dtype=torch.float32)
        correct = [self.task.score(example, text).correct for example, text in zip(repeated_examples, completions)]
        ids, attention, width = left_pad_with_responses(repeated_prompts, sampled, lm.tokens.pad)
        masks = draw_prompt_masks(attention[:, :width], config.prompt_mask_ratio, config.inner_updates,
                                  self.mask_generator)
        self.batch = RolloutBatch(ids, attention, width, completion_mask(sampled, lm.tokens.stop),
                                  group_advantages(rewards, group).to(ids.device), masks, None, None)
        if config.inner_updates > 1:
            self.batch.old_logps = self.frozen_logprobs(reference=False)
        if config.beta > 0:
            self.batch.ref_logps = self.frozen_logprobs(reference=True)
        self.inner_index = 0
        seconds = time.perf_counter() - began
        stops = torch.isin(sampled, torch.tensor(lm.tokens.stop, device=sampled.device)).any(dim=1)
        lengths = self.batch.completion_mask.sum(dim=1) - stops.long()
        self.rollout_metrics = {
            "reward_mean": float(rewards.mean()),
            "reward_std": float(rewards.std()) if rewards.numel() > 1 else 0.0,
            "rollout_accuracy": sum(correct) / len(correct),
            "response_length": float(lengths.float().mean()),
            "tokens_per_second": sampled.numel() / seconds if seconds else 0.0,
        }
        return seconds

    def row_batches(self) -> list[tuple[torch.Tensor, int]]:
        """Micro-batches as (row indices, leading padding columns to drop). A model that ignores the attention mask
        (LLaDA's remote code) only gets rows of one prompt length, trimmed so that none is padded."""
        batch, size = self.batch, self.config.micro_batch_size
        prompt_lengths = batch.attention[:, : batch.width].sum(dim=1).tolist()
        groups = {0: list(range(batch.size))}
        if not self.base_lm.handles_padding:
            groups = {}
            for row, length in enumerate(prompt_lengths):
                groups.setdefault(batch.width - int(length), []).append(row)
        return [(torch.tensor(rows[start : start + size], device=batch.ids.device), trim)
                for trim, rows in groups.items() for start in range(0, len(rows), size)]

    def rows_logprobs(self, lm: DiffusionLM, rows: torch.Tensor, trim: int, index: int) -> torch.Tensor:
        """(rows, L) log-probs of the chosen completions under inner update ``index``'s prompt mask."""
        batch = self.batch
        return completion_logprobs(lm, batch.ids[rows, trim:], batch.attention[rows, trim:], batch.width - trim,
                                   batch.prompt_masks[index, rows, trim:])

    def frozen_logprobs(self, reference: bool) -> torch.Tensor:
        """(mu, N, L) no-grad log-probs of the rollout's completions under each inner update's prompt mask."""
        batch = self.batch
        passes = torch.zeros((batch.prompt_masks.shape[0], batch.size, batch.completion_mask.shape[1]),
                             device=batch.ids.device)
        with self.frozen_pass(reference) as lm:
            for index in range(passes.shape[0]):
                for rows, trim in self.row_batches():
                    passes[index, rows] = self.rows_logprobs(lm, rows, trim, index).float()
        return passes

    # ----- loss ------------------------------------------------------------------------------------------------
    def compute_update(self) -> dict:
        metrics = {}
        if self.batch is None or self.inner_index >= self.config.inner_updates:
            metrics["rollout_seconds"] = self.rollout()
            metrics["rollout_samples"] = self.batch.size
        metrics.update(self.rollout_metrics)
        metrics.update(self.inner_update_backward(self.inner_index))
        self.inner_index += 1
        return metrics

    def inner_update_backward(self, index: int) -> dict:
        """Backward passes of inner update ``index`` over every completion of the rollout, micro-batched; gradients
        are synchronised across processes on the last micro-batch only."""
        batch = self.batch
        micro_batches = self.row_batches()
        loss_sum, kl_sum, clipped_sum, tokens = 0.0, 0.0, 0.0, 0
        for number, (rows, trim) in enumerate(micro_batches):
            last = number == len(micro_batches) - 1
            with contextlib.nullcontext() if last else self.accelerator.no_sync(self.model):
                per_completion, kl, clipped, count = self.completions_loss(index, rows, trim)
                loss = per_completion.sum() / batch.size
                self.accelerator.backward(loss)
            loss_sum += float(loss.detach())
            kl_sum += kl
            clipped_sum += clipped
            tokens += count
        return {"loss": loss_sum, "clip_ratio": clipped_sum / tokens, "kl": kl_sum / tokens, "inner_update": index}

    def completions_loss(self, index: int, rows: torch.Tensor, trim: int = 0):
        """Per-completion loss (its tokens' mean), and the summed KL, number of clipped tokens and token count."""
        config, batch = self.config, self.batch
        logp = self.rows_logprobs(self.lm, rows, trim, index)
        old = logp.detach() if batch.old_logps is None else batch.old_logps[index, rows]
        advantages = batch.advantages[rows, None]
        per_token = clipped_surrogate(logp, old, advantages, config.epsilon)
        mask = batch.completion_mask[rows]
        kl_total = 0.0
        if batch.ref_logps is not None:
            kl = k3_kl(logp, batch.ref_logps[index, rows])
            per_token = per_token + config.beta * kl
            kl_total = float((kl.detach() * mask).sum())
        clipped = float((clipped_tokens(logp.detach(), old, advantages, config.epsilon) & mask).sum())
        per_completion = (per_token * mask).sum(dim=1) / mask.sum(dim=1)
        return per_completion, kl_total, clipped, int(mask.sum())

    # ----- checkpoint state ------------------------------------------------------------------------------------
    def method_state(self) -> dict:
        return {
            "sample_generator": self.sample_generator.get_state(),
            "mask_generator": self.mask_generator.get_state(),
            "batch": self.batch,
            "inner_index": self.inner_index,
            "rollout_metrics": self.rollout_metrics,
        }

    def load_method_state(self, state: dict) -> None:
        self.sample_generator.set_state(state["sample_generator"])
        self.mask_generator.set_state(state["mask_generator"])
        self.batch, self.inner_index = state["batch"], state["inner_index"]
        self.rollout_metrics = state["rollout_metrics"]
