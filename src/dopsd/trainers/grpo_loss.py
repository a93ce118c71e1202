"""The pieces of diffu-GRPO's objective, as pure functions of tensors so each can be checked by hand.

A masked diffusion LM has no cheap exact sequence likelihood; diffu-GRPO (d1) estimates a completion's per-token
log-probabilities from ONE forward pass in which every completion token is the mask token and each real prompt token
is masked with a small probability. Drawing a fresh prompt mask per inner update makes the repeated updates on one
rollout see slightly different views of it (a regulariser, d1 argues).
"""

from __future__ import annotations

import torch

from dopsd.models import DiffusionLM


def group_advantages(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """Reward minus its group's mean, groups being consecutive runs of ``group_size``; no division by the std
    (d1/Dr. GRPO: dividing re-weights prompts by how (in)consistent their rewards are)."""
    if rewards.numel() % group_size:
        raise ValueError(f"{rewards.numel()} rewards do not split into groups of {group_size}")
    groups = rewards.view(-1, group_size)
    return (groups - groups.mean(dim=1, keepdim=True)).flatten()


def clipped_surrogate(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor,
                      epsilon: float) -> torch.Tensor:
    """PPO's per-token loss ``-min(r A, clip(r, 1 - eps, 1 + eps) A)`` with ``r = exp(logp - old_logp)``.

    ``advantages`` broadcasts against the log-probs ((N, 1) for one advantage per completion).
    """
    ratio = torch.exp(logp - old_logp)
    clipped = ratio.clamp(1.0 - epsilon, 1.0 + epsilon)
    return -torch.minimum(ratio * advantages, clipped * advantages)


def clipped_tokens(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor,
                   epsilon: float) -> torch.Tensor:
    """Where the clip is active, i.e. the token's gradient is cut off: the ratio left the range on the side the
    advantage pushes it towards."""
    ratio = torch.exp(logp - old_logp)
    return ((ratio > 1.0 + epsilon) & (advantages > 0)) | ((ratio < 1.0 - epsilon) & (advantages < 0))


def k3_kl(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Schulman's k3 estimator of KL(policy || reference) per sampled token: ``exp(d) - d - 1``, d = ref - logp.
    Unbiased, and never negative (exp(d) >= 1 + d)."""
    difference = ref_logp - logp
    return torch.exp(difference) - difference - 1.0


def completion_mask(tokens: torch.Tensor, stop_ids) -> torch.Tensor:
    """(N, L) bool: positions up to and including each row's first stop token (all, if it has none). The EOS
    padding after it is not the model's choice worth rewarding or penalising token by token."""
    is_stop = torch.isin(tokens, torch.as_tensor(list(stop_ids), device=tokens.device))
    stops_before = is_stop.long().cumsum(dim=1) - is_stop.long()
    return stops_before == 0


def draw_prompt_masks(prompt_attention: torch.Tensor, ratio: float, count: int,
                      generator: torch.Generator) -> torch.Tensor:
    """(count, N, W) bool: which prompt tokens each of ``count`` passes masks, each real token independently with
    probability ``ratio``; padding (attention 0) never."""
    draws = torch.rand((count, *prompt_attention.shape), generator=generator, device=generator.device)
    return (draws.to(prompt_attention.device) < ratio) & prompt_attention.bool()


def masked_input(ids: torch.Tensor, width: int, prompt_masked: torch.Tensor, mask_id: int) -> torch.Tensor:
    """``ids`` (N, W + L) with every completion token and the chosen prompt tokens replaced by the mask token."""
    noisy = ids.clone()
    noisy[:, width:] = mask_id
    noisy[:, :width] = noisy[:, :width].masked_fill(prompt_masked, mask_id)
    return noisy


def completion_logprobs(lm: DiffusionLM, ids: torch.Tensor, attention: torch.Tensor, width: int,
                        prompt_masked: torch.Tensor) -> torch.Tensor:
    """(N, L) log-probability of each completion token of ``ids`` from one pass over :func:`masked_input`;
    only the L completion positions are projected onto the vocabulary. On a block-attention model each masked block
    reads the completion's clean blocks before it (one pass of the clean/noisy layout), as it was sampled."""
    noisy = masked_input(ids, width, prompt_masked, lm.tokens.mask)
    positions = torch.arange(width, ids.shape[1], device=ids.device)
    logits = lm.state_logits_at(noisy, positions, attention, width, clean=ids[:, width:])
    return token_logprobs(logits, ids[:, width:])


def token_logprobs(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """log_softmax(logits) at ``tokens``, in float32 at least (bf16 log-probs are too coarse for ratios)."""
    logits = logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits
    return logits.gather(-1, tokens[..., None]).squeeze(-1) - logits.logsumexp(dim=-1)
