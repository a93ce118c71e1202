"""The naive procedure dopsd is measured against, written from a description of the d-OPSD
authors' code: one prompt at a time; every denoising step computes full-vocabulary logits at every position of the
sequence, a float64 softmax over all of them, and keeps the most confident masked positions of the current block;
the loss stacks every recorded state of a trajectory, splits the stack into chunks and runs each chunk's teacher and
student passes with full logits, summing the divergence over K_t, and an incorrect trajectory is run all the same with
its loss multiplied by zero.

Same rules as dopsd's sampler and loss otherwise (the mask token is never proposed; K_t = the teacher's most confident
masked positions of the current block; teacher top-k restriction and pointwise clipping), so at temperature 0 both
decode the same tokens and their losses differ only by the documented factor: the naive loss sums over K_t where
dopsd averages, so it is |K_t| (the tokens per step) times dopsd's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from dopsd.distill.teacher import PreparedTrajectory
from dopsd.models.adapter import DiffusionLM
from dopsd.sampling.sampler import SamplerConfig
from dopsd.sampling.schedule import plan_blocks
from dopsd.sampling.trajectory import Trajectory, recorded_steps


@torch.no_grad()
def naive_rollout(lm: DiffusionLM, prompt, config: SamplerConfig, generator: torch.Generator | None = None
                  ) -> Trajectory:
    """One trajectory for one prompt, decoded with full logits at every position at every step."""
    mask = lm.tokens.mask
    prompt = torch.as_tensor(prompt, dtype=torch.long, device=lm.device).flatten()
    start = prompt.numel()
    sequence = torch.cat([prompt, torch.full((config.gen_length,), mask, device=lm.device)])[None]
    reveal = torch.full((config.gen_length,), -1, dtype=torch.long)
    step = 0
    for block in plan_blocks(config.gen_length, config.block_length, config.total_steps):
        for count in block.tokens_per_step:
            logits = lm.logits(sequence).to(torch.float64)
            logits[..., mask] = -torch.inf
            if config.temperature > 0:
                uniform = torch.rand(logits.shape, dtype=torch.float64, device=logits.device, generator=generator)
                proposal = (logits / config.temperature - torch.log(-torch.log(uniform))).argmax(-1)
            else:
                proposal = logits.argmax(-1)
            probabilities = torch.softmax(logits, dim=-1)
            confidence = probabilities.gather(-1, proposal[..., None]).squeeze(-1)
            outside = torch.ones_like(confidence, dtype=torch.bool)
            outside[:, start + block.start : start + block.end] = False
            confidence = confidence.masked_fill(outside | (sequence != mask), -torch.inf)
            chosen = confidence[0].topk(count).indices
            sequence[0, chosen] = proposal[0, chosen]
            reveal[(chosen - start).cpu()] = step
            step += 1
    tokens = sequence[0, start:].cpu()
    return Trajectory(prompt_ids=prompt.cpu(), tokens=tokens, reveal_step=reveal, num_steps=step,
                      num_recorded_steps=recorded_steps(tokens, reveal, step, lm.tokens.stop),
                      block_length=config.block_length, mask_id=mask)


def naive_loss(lm: DiffusionLM, prepared: PreparedTrajectory, *, chunks: int = 4, top_k: int = 20,
               clip: float | None = 0.05, weight: float = 1.0, teacher: DiffusionLM | None = None) -> float:
    """Runs forward and backward over every state of ``prepared`` in ``chunks`` pieces; returns the loss.

    Loss = mean over states of the sum over K_t of reverse KL(student || teacher) on the teacher's top-k tokens,
    each vocabulary entry's term clipped at ``clip``; times ``weight`` (0 for an incorrect trajectory, run anyway).
    """
    teacher = teacher or lm
    device, mask = lm.device, lm.tokens.mask
    steps = prepared.num_steps
    width, teacher_width = len(prepared.trajectory.prompt_ids), len(prepared.teacher_prompt)
    student_inputs = torch.cat([torch.as_tensor(prepared.trajectory.prompt_ids).expand(steps, -1),
                                prepared.student_states], dim=1).to(device)
    teacher_inputs = torch.cat([torch.as_tensor(prepared.teacher_prompt).expand(steps, -1),
                                prepared.teacher_states], dim=1).to(device)
    total = 0.0
    for rows in torch.arange(steps).tensor_split(chunks):
        if rows.numel() == 0:
            continue
        with torch.no_grad():
            teacher_logits = teacher.logits(teacher_inputs[rows])
        student_logits = lm.logits(student_inputs[rows])
        loss = student_logits.new_zeros((), dtype=torch.float32)
        for row, step in enumerate(rows.tolist()):
            begin, end = int(prepared.block_starts[step]), int(prepared.block_ends[step])
            block = teacher_logits[row, teacher_width + begin : teacher_width + end].float()
            still_masked = student_inputs[rows[row], width + begin : width + end] == mask
            confidence = block.softmax(-1).amax(-1).masked_fill(~still_masked, -torch.inf)
            chosen = confidence.topk(int(prepared.counts[step])).indices
            loss = loss + _summed_divergence(student_logits[row, width + begin + chosen],
                                             teacher_logits[row, teacher_width + begin + chosen], top_k, clip)
        loss = loss * weight / steps
        loss.backward()
        total += float(loss.detach())
    return total


def _summed_divergence(student: torch.Tensor, teacher: torch.Tensor, top_k: int, clip: float | None) -> torch.Tensor:
    """Sum over positions of reverse KL on the teacher's top-k tokens, entries p log(p/q) - p + q clipped."""
    student, teacher = student.float(), teacher.detach().float()
    if 0 < top_k < teacher.shape[-1]:
        index = teacher.topk(top_k, dim=-1).indices
        student, teacher = student.gather(-1, index), teacher.gather(-1, index)
    log_p, log_q = F.log_softmax(student, -1), F.log_softmax(teacher, -1)
    terms = log_p.exp() * (log_p - log_q) - log_p.exp() + log_q.exp()
    if clip is not None:
        terms = terms.clamp(max=clip)
    return terms.sum()
