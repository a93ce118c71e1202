import math

import pytest
import torch

from dopsd.distill.divergence import overlap_top_k, step_divergence


def kl(p, q):
    return sum(pi * math.log(pi / qi) for pi, qi in zip(p, q) if pi > 0)


P_STUDENT = [0.5, 0.3, 0.2]
P_TEACHER = [0.2, 0.2, 0.6]


def logits(probabilities):
    return torch.log(torch.tensor([probabilities], dtype=torch.float64))


def test_reverse_and_forward_kl_equal_their_closed_forms():
    s, t = logits(P_STUDENT), logits(P_TEACHER)
    reverse = step_divergence(s, t, kind="reverse_kl", top_k=0, clip=None).per_position
    forward = step_divergence(s, t, kind="forward_kl", top_k=0, clip=None).per_position
    assert reverse.item() == pytest.approx(kl(P_STUDENT, P_TEACHER), abs=1e-6)
    assert forward.item() == pytest.approx(kl(P_TEACHER, P_STUDENT), abs=1e-6)


def test_generalized_jsd_equals_its_closed_form():
    beta = 0.3
    mixture = [beta * t + (1 - beta) * s for s, t in zip(P_STUDENT, P_TEACHER)]
    expected = beta * kl(P_TEACHER, mixture) + (1 - beta) * kl(P_STUDENT, mixture)
    value = step_divergence(logits(P_STUDENT), logits(P_TEACHER), kind="jsd", beta=beta, top_k=0, clip=None)
    assert value.per_position.item() == pytest.approx(expected, abs=1e-6)


def test_top_k_renormalises_over_the_teachers_top_tokens():
    student = [0.1, 0.4, 0.3, 0.2]
    teacher = [0.4, 0.1, 0.3, 0.2]
    # teacher's top-2 tokens are 0 and 2; renormalised there
    s2 = [0.1 / 0.4, 0.3 / 0.4]
    t2 = [0.4 / 0.7, 0.3 / 0.7]
    value = step_divergence(logits(student), logits(teacher), kind="reverse_kl", top_k=2, clip=None)
    assert value.per_position.item() == pytest.approx(kl(s2, t2), abs=1e-6)


def test_pointwise_clip_caps_each_non_negative_vocabulary_term():
    s, t = P_STUDENT, P_TEACHER
    terms = [si * math.log(si / ti) - si + ti for si, ti in zip(s, t)]  # 0.158, 0.022, 0.180
    assert all(term >= 0 for term in terms) and sum(terms) == pytest.approx(kl(s, t))
    clip = 0.05
    result = step_divergence(logits(s), logits(t), kind="reverse_kl", top_k=0, clip=clip)
    assert result.per_position.item() == pytest.approx(sum(min(term, clip) for term in terms), abs=1e-6)
    assert result.clip_ratio.item() == pytest.approx(2 / 3)


@pytest.mark.parametrize("kind", ["reverse_kl", "forward_kl", "jsd"])
def test_clipped_divergences_are_never_negative(kind):
    generator = torch.Generator().manual_seed(0)
    student, teacher = torch.randn(50, 30, generator=generator) * 3, torch.randn(50, 30, generator=generator) * 3
    value = step_divergence(student, teacher, kind=kind, top_k=20, clip=0.05).per_position
    assert bool((value >= -1e-6).all())


def test_top_k_and_clip_together():
    student = [0.1, 0.4, 0.3, 0.2]
    teacher = [0.4, 0.1, 0.3, 0.2]
    s2, t2 = [0.25, 0.75], [4 / 7, 3 / 7]  # renormalised over the teacher's top-2 tokens (0 and 2)
    terms = [si * math.log(si / ti) - si + ti for si, ti in zip(s2, t2)]  # 0.114, 0.098
    result = step_divergence(logits(student), logits(teacher), kind="reverse_kl", top_k=2, clip=0.1)
    assert result.per_position.item() == pytest.approx(min(terms[0], 0.1) + min(terms[1], 0.1), abs=1e-6)
    assert result.clip_ratio.item() == pytest.approx(0.5)
    assert sum(terms) == pytest.approx(kl(s2, t2), abs=1e-9)


def test_gradient_reaches_the_student_only():
    student = torch.randn(5, 7, requires_grad=True)
    teacher = torch.randn(5, 7, requires_grad=True)
    step_divergence(student, teacher, top_k=4).per_position.mean().backward()
    assert student.grad is not None and student.grad.abs().sum() > 0
    assert teacher.grad is None


def test_identical_distributions_have_zero_divergence_and_full_overlap():
    x = torch.randn(3, 50)
    for kind in ("reverse_kl", "forward_kl", "jsd"):
        assert torch.allclose(step_divergence(x, x, kind=kind).per_position, torch.zeros(3), atol=1e-6)
    assert torch.equal(overlap_top_k(x, x, k=20), torch.ones(3))


def test_overlap_counts_shared_top_k_tokens():
    student = torch.tensor([[5.0, 4.0, 3.0, 2.0, 1.0]])
    teacher = torch.tensor([[5.0, 1.0, 4.0, 2.0, 3.0]])
    # student top-2 {0, 1}, teacher top-2 {0, 2}: one of two shared
    assert overlap_top_k(student, teacher, k=2).item() == 0.5


def test_the_overconfident_clip_clamps_only_where_the_student_is_above_the_teacher():
    from dopsd.distill import clip_gradient_cosine

    student, teacher = logits(P_STUDENT), logits(P_TEACHER)
    # reverse KL terms s log(s/t) - s + t: entry 0 (s > t) 0.1581, entry 1 (s > t) 0.0216, entry 2 (s < t) 0.1803
    terms = [s * math.log(s / t) - s + t for s, t in zip(P_STUDENT, P_TEACHER)]
    every = step_divergence(student, teacher, top_k=0, clip=0.05).per_position.item()
    only_over = step_divergence(student, teacher, top_k=0, clip=0.05, clip_mode="overconfident").per_position.item()
    assert every == pytest.approx(0.05 + terms[1] + 0.05)
    assert only_over == pytest.approx(0.05 + terms[1] + terms[2])  # the entry the teacher wants more of stays whole
    assert clip_gradient_cosine(student, teacher, top_k=0, clip=10.0).item() == pytest.approx(1.0)
    kept = clip_gradient_cosine(student, teacher, top_k=0, clip=0.05, clip_mode="overconfident").item()
    assert clip_gradient_cosine(student, teacher, top_k=0, clip=0.05).item() < kept < 1.0
    with pytest.raises(ValueError, match="clip mode"):
        step_divergence(student, teacher, clip=0.05, clip_mode="sometimes")
