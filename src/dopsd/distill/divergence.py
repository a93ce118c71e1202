"""Step-level divergences between the student's and the teacher's distributions (paper eq. 11, appendix C.1).

Both distributions can be restricted to the teacher's top-k tokens and renormalised there (the authors' runs use 20),
and each vocabulary entry's contribution can be clamped from above (pointwise clipping) before the sum. Gradients
flow only through the student: teacher logits are detached here whatever the caller passes.

Each divergence is written as a sum of per-entry terms that are never negative: KL(p || q) as
sum_v [p log(p/q) - p + q] (the extra terms sum to zero), JSD entry by entry. Clamping the plain signed terms
p log(p/q) from above would leave the negative ones unclamped, so the loss could fall below zero and the student
would learn to chase it; in this form a clipped loss is still >= 0 and still minimised at student = teacher.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

DIVERGENCES = ("reverse_kl", "forward_kl", "jsd")
# Which entries the pointwise clip may clamp: every one, or only those where the student puts more probability
# than the teacher (the entries where the teacher, having seen the future, wants more mass on a token keep their
# whole gradient: they are the informative ones).
CLIP_MODES = ("all", "overconfident")


@dataclass
class DivergenceResult:
    """Per-position divergence (N,) and the share of summed vocabulary terms that the clip changed (a scalar)."""

    per_position: torch.Tensor
    clip_ratio: torch.Tensor


def restrict_to_teacher_top_k(student_logits, teacher_logits, top_k: int):
    """Both logit sets gathered at the teacher's ``top_k`` tokens (all tokens when ``top_k`` is 0)."""
    if top_k <= 0 or top_k >= teacher_logits.shape[-1]:
        return student_logits, teacher_logits
    index = teacher_logits.topk(top_k, dim=-1).indices
    return student_logits.gather(-1, index), teacher_logits.gather(-1, index)


def _kl_terms(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """Non-negative summands of KL(p || q), one per vocabulary entry: p log(p/q) - p + q."""
    p, q = log_p.exp(), log_q.exp()
    return p * (log_p - log_q) - p + q


def divergence_terms(student_log_probs, teacher_log_probs, kind: str, beta: float) -> torch.Tensor:
    """Per-vocabulary-entry terms whose sum over the last dimension is the divergence."""
    if kind == "reverse_kl":
        return _kl_terms(student_log_probs, teacher_log_probs)
    if kind == "forward_kl":
        return _kl_terms(teacher_log_probs, student_log_probs)
    if kind == "jsd":
        # Generalized JSD with mixture m = beta * teacher + (1 - beta) * student (as in GKD).
        if beta <= 0.0:
            return _kl_terms(student_log_probs, teacher_log_probs)
        if beta >= 1.0:
            return _kl_terms(teacher_log_probs, student_log_probs)
        log_mixture = torch.logsumexp(
            torch.stack([teacher_log_probs + torch.log(torch.tensor(beta)),
                         student_log_probs + torch.log(torch.tensor(1 - beta))]),
            dim=0,
        )
        # Per entry, beta*t*log(t/m) + (1-beta)*s*log(s/m) >= 0 by convexity of x log x (the -p + q parts cancel).
        return beta * _kl_terms(teacher_log_probs, log_mixture) + (1 - beta) * _kl_terms(student_log_probs, log_mixture)
    raise ValueError(f"unknown divergence {kind!r}: use one of {', '.join(DIVERGENCES)}")


def step_divergence(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    *,
    kind: str = "reverse_kl",
    top_k: int = 20,
    clip: float | None = 0.05,
    beta: float = 0.5,
    clip_mode: str = "all",
) -> DivergenceResult:
    """D(P_student || P_teacher) at each of N positions, from (N, vocab) logits; ``clip_mode`` (:data:`CLIP_MODES`)
    says which entries ``clip`` may clamp."""
    student, teacher = restrict_to_teacher_top_k(student_logits.float(), teacher_logits.detach().float(), top_k)
    student_log_probs, teacher_log_probs = F.log_softmax(student, dim=-1), F.log_softmax(teacher, dim=-1)
    terms = divergence_terms(student_log_probs, teacher_log_probs, kind, beta)
    if clip is None:
        return DivergenceResult(terms.sum(dim=-1), terms.new_zeros(()))
    if clip_mode not in CLIP_MODES:
        raise ValueError(f"unknown clip mode {clip_mode!r}: use one of {', '.join(CLIP_MODES)}")
    clipped = terms > clip
    if clip_mode == "overconfident":
        clipped = clipped & (student_log_probs > teacher_log_probs)
    ratio = clipped.float().mean() if terms.numel() else terms.new_zeros(())
    return DivergenceResult(torch.where(clipped, terms.new_tensor(clip), terms).sum(dim=-1), ratio)


def clip_gradient_cosine(student_logits: torch.Tensor, teacher_logits: torch.Tensor, **options) -> torch.Tensor:
    """Cosine between the gradients, with respect to the student's logits, of the summed divergence as configured
    (``options`` of :func:`step_divergence`) and of the same divergence unclipped: 1 when the clip changes no
    direction, lower the more of the signal it removes. A diagnostic: no gradient reaches the model through it."""
    with torch.enable_grad():
        student = student_logits.detach().float().requires_grad_(True)
        clipped = torch.autograd.grad(step_divergence(student, teacher_logits, **options).per_position.sum(),
                                      student)[0]
        plain = torch.autograd.grad(step_divergence(student, teacher_logits, **{**options, "clip": None})
                                    .per_position.sum(), student)[0]
    return F.cosine_similarity(clipped.flatten(), plain.flatten(), dim=0, eps=1e-12)


def overlap_top_k(student_logits: torch.Tensor, teacher_logits: torch.Tensor, k: int = 20) -> torch.Tensor:
    """Overlap Top-K (paper eq. 13): share of the student's top-k tokens also in the teacher's top-k, per position."""
    k = min(k, student_logits.shape[-1])
    student_top = student_logits.topk(k, dim=-1).indices
    teacher_top = teacher_logits.topk(k, dim=-1).indices
    shared = (student_top[..., :, None] == teacher_top[..., None, :]).any(dim=-1)
    return shared.float().mean(dim=-1)
