"""diffu-GRPO (d1), the RLVR baseline the d-OPSD paper compares with.

Per rollout: ``prompts_per_rollout`` prompts, each sampled ``num_generations`` times in one batched sampler call, are
rewarded by the task's verifier (plus format credit); advantages are rewards minus their group's mean. The rollout
then serves ``inner_updates`` optimizer updates (its chunks are their indices). Their prompt masks, and the
old-policy and reference log-probs under each mask, are fixed at rollout time, so an update only runs the policy's
one forward pass per completion (in micro-batches) and the clipped surrogate plus beta times the k3 KL, averaged over
each completion's tokens up to its first stop token, then over completions.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from dopsd.config import option
from dopsd.models import DiffusionLM
from dopsd.sampling import BlockDiffusionSampler
from dopsd.sampling.padding import group_by_length, left_pad_with_responses, micro_batches
from dopsd.tasks import default_prompt_style, encode_prompts
from dopsd.trainers.config import RolloutConfig, check, check_at_least_one
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
from dopsd.trainers.rollouts import RolloutTrainer
from dopsd.trainers.salts import PROMPT_MASK_SALT


@dataclass
class GRPOConfig(RolloutConfig):
    """diffu-GRPO. Defaults are d1's for GSM8K/MATH unless the field's help says otherwise (``dopsd grpo --help``)."""

    output_dir: str = "runs/grpo"
    learning_rate: float = option(3e-6, "AdamW learning rate (3e-6: d1's LoRA setting as scripts built on d1 use it; "
                                  "the d-OPSD paper gives none)", "optimization")
    temperature: float = option(0.9, "sampling temperature of rollouts (the group needs varied completions)",
                                "rollout")
    num_generations: int = option(6, "G: completions sampled per prompt, forming one advantage group", "rollout")
    prompts_per_rollout: int = option(2, "prompts per process per rollout; each process samples prompts_per_rollout "
                                      "* G completions (d1: 2 per GPU)", "rollout")
    inner_updates: int = option(12, "mu: optimizer updates per rollout, each over all its completions with a fresh "
                                "prompt mask (d1: 12 for GSM8K/MATH, 8 for Countdown and Sudoku); max_updates counts "
                                "these", "method")
    micro_batch_size: int = option(6, "completions per forward pass, bounding memory", "method")
    epsilon: float = option(0.2, "PPO clip range of the probability ratio", "method")
    beta: float = option(0.04, "weight of the k3 KL to the reference, the initial policy (0 skips the reference "
                         "passes)", "method")
    prompt_mask_ratio: float = option(0.15, "probability of masking each real prompt token in the log-prob pass",
                                      "method")
    correctness_reward_scale: float | None = option(
        None, "factor on the task's correctness reward (null: 2.0 for GSM8K and MATH500, 1.0 for Countdown and "
        "Sudoku, as d1); instruct prompts also earn up to 1.5 for the answer tags", "method")

    def __post_init__(self):
        super().__post_init__()
        check_at_least_one(self, "prompts_per_rollout", "inner_updates", "micro_batch_size")
        check(self.num_generations >= 2, "num_generations", self.num_generations,
              "must be at least 2 (a group to compare)")
        check(0.0 < self.epsilon < 1.0, "epsilon", self.epsilon, "must be in (0, 1)")
        check(self.beta >= 0, "beta", self.beta, "must be >= 0")
        check(0.0 <= self.prompt_mask_ratio < 1.0, "prompt_mask_ratio", self.prompt_mask_ratio, "must be in [0, 1)")
        check(self.correctness_reward_scale is None or self.correctness_reward_scale > 0, "correctness_reward_scale",
              self.correctness_reward_scale, "must be > 0 (or null)")


@dataclass
class RewardedCompletions:
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


class GRPOTrainer(RolloutTrainer):
    """``GRPOTrainer(model=..., task=..., config=GRPOConfig(...)).train()``; see :class:`GRPOConfig`."""

    config_class = GRPOConfig
    progress_keys = ("loss", "reward_mean", "eval_accuracy")

    def __init__(self, *, model=None, tokenizer=None, task=None, config: GRPOConfig | None = None):
        super().__init__(model=model, tokenizer=tokenizer, task=task, config=config)
        self.mask_generator = self.generator(PROMPT_MASK_SALT)
        self.rollout_data: RewardedCompletions | None = None
        self.reference_lm = self.build_reference()

    # ----- reference -------------------------------------------------------------------------------------------
    def build_reference(self) -> DiffusionLM | None:
        """A frozen copy of the initial weights under full fine-tuning; ``None`` with LoRA (the adapter is switched
        off instead) or when ``beta`` is 0 (no reference needed)."""
        if self.config.beta == 0 or self.config.use_lora:
            return None
        return self.frozen_copy()

    # ----- rollout ---------------------------------------------------------------------------------------------
    def draw_rollout(self) -> tuple[RewardedCompletions, list[int], dict]:
        """Samples G completions for each of this process's prompts, rewards them, fixes the inner updates' prompt
        masks and their old-policy and reference log-probs; its chunks are the inner updates' indices."""
        config, lm = self.config, self.base_lm
        began = time.perf_counter()
        examples = self.next_examples(config.prompts_per_rollout)
        style = config.prompt_style or default_prompt_style(lm)
        prompts = encode_prompts(lm, self.task, examples, style)
        group = config.num_generations
        repeated_examples = [example for example in examples for _ in range(group)]
        repeated_prompts = [prompt for prompt in prompts for _ in range(group)]
        with self.policy_pass() as policy:
            trajectories = BlockDiffusionSampler(policy, config.sampler_config()).sample(
                repeated_prompts, generator=self.sample_generator)
        sampled = torch.stack([t.tokens for t in trajectories]).to(self.accelerator.device)
        completions = [lm.decode(tokens) for tokens in sampled]
        scale = correctness_scale(self.task.name, config.correctness_reward_scale)
        rewards = torch.tensor([rollout_reward(self.task, example, text, style, scale)
                                for example, text in zip(repeated_examples, completions)], dtype=torch.float32)
        correct = [self.task.score(example, text).correct for example, text in zip(repeated_examples, completions)]
        ids, attention, width = left_pad_with_responses(repeated_prompts, sampled, lm.tokens.pad)
        masks = draw_prompt_masks(attention[:, :width], config.prompt_mask_ratio, config.inner_updates,
                                  self.mask_generator)
        batch = RewardedCompletions(ids, attention, width, completion_mask(sampled, lm.tokens.stop),
                                    group_advantages(rewards, group).to(ids.device), masks, None, None)
        if config.inner_updates > 1:
            batch.old_logps = self.frozen_logprobs(batch, reference=False)
        if config.beta > 0:
            batch.ref_logps = self.frozen_logprobs(batch, reference=True)
        seconds = time.perf_counter() - began
        stops = torch.isin(sampled, torch.tensor(lm.tokens.stop, device=sampled.device)).any(dim=1)
        lengths = batch.completion_mask.sum(dim=1) - stops.long()
        metrics = {
            "rollout_samples": batch.size,
            "reward_mean": float(rewards.mean()),
            "reward_std": float(rewards.std()) if rewards.numel() > 1 else 0.0,
            "rollout_accuracy": sum(correct) / len(correct),
            "response_length": float(lengths.float().mean()),
            "tokens_per_second": sampled.numel() / seconds if seconds else 0.0,
        }
        return batch, list(range(config.inner_updates)), metrics

    def row_batches(self, batch: RewardedCompletions) -> list[tuple[torch.Tensor, int]]:
        """Micro-batches as (row indices, leading padding columns to drop). A model that ignores the attention mask
        (LLaDA's remote code) only gets rows of one prompt length, trimmed so that none is padded."""
        size = self.config.micro_batch_size
        groups, trims = [list(range(batch.size))], [0]
        if not self.base_lm.handles_padding:
            lengths = batch.attention[:, : batch.width].sum(dim=1).tolist()
            groups = group_by_length(lengths)
            trims = [batch.width - int(lengths[group[0]]) for group in groups]
        return [(torch.tensor(rows, device=batch.ids.device), trim)
                for group, trim in zip(groups, trims) for rows in micro_batches([group], size)]

    def rows_logprobs(self, lm: DiffusionLM, batch: RewardedCompletions, rows: torch.Tensor, trim: int,
                      index: int) -> torch.Tensor:
        """(rows, L) log-probs of the chosen completions under inner update ``index``'s prompt mask."""
        return completion_logprobs(lm, batch.ids[rows, trim:], batch.attention[rows, trim:], batch.width - trim,
                                   batch.prompt_masks[index, rows, trim:])

    def frozen_logprobs(self, batch: RewardedCompletions, reference: bool) -> torch.Tensor:
        """(mu, N, L) no-grad log-probs of ``batch``'s completions under each inner update's prompt mask, by the
        reference (the initial policy) or by the current policy."""
        passes = torch.zeros((batch.prompt_masks.shape[0], batch.size, batch.completion_mask.shape[1]),
                             device=batch.ids.device)
        if reference and self.reference_lm is not None:
            frozen = self.frozen_pass(self.reference_lm)
        else:
            frozen = self.policy_pass(initial=reference)
        with frozen as lm:
            for index in range(passes.shape[0]):
                for rows, trim in self.row_batches(batch):
                    passes[index, rows] = self.rows_logprobs(lm, batch, rows, trim, index).float()
        return passes

    # ----- loss ------------------------------------------------------------------------------------------------
    def compute_update(self) -> dict:
        index, metrics = self.next_chunk()
        return {**metrics, **self.inner_update_backward(index)}

    def inner_update_backward(self, index: int) -> dict:
        """Backward passes of inner update ``index`` over every completion of the rollout, micro-batched; gradients
        are synchronised across processes on the last micro-batch only."""
        batch = self.rollout_data

        def loss_of(micro_batch):
            rows, trim = micro_batch
            per_completion, kl, clipped, count = self.completions_loss(index, rows, trim)
            return per_completion.sum() / batch.size, (kl, clipped, count)

        results = self.backward_micro_batches(self.row_batches(batch), loss_of)
        tokens = sum(count for _, (_, _, count) in results)
        return {"loss": sum(loss for loss, _ in results), "clip_ratio": sum(c for _, (_, c, _) in results) / tokens,
                "kl": sum(kl for _, (kl, _, _) in results) / tokens, "inner_update": index}

    def completions_loss(self, index: int, rows: torch.Tensor, trim: int = 0):
        """Per-completion loss (its tokens' mean), and the summed KL, number of clipped tokens and token count."""
        config, batch = self.config, self.rollout_data
        logp = self.rows_logprobs(self.lm, batch, rows, trim, index)
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
    rollout_key = "batch"

    def load_method_state(self, state: dict) -> None:
        super().load_method_state(state)
        if "inner_index" in state and self.rollout_data is not None:  # from before inner updates were chunks
            self.pending = list(range(state["inner_index"], self.config.inner_updates))
