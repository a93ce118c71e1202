"""Table 3, the toy verification: is the self-teacher strong enough to learn from?

On training prompts the base model samples with pass@k; from each prompt's kept trajectory a self-teacher input is
built (rho of the positions after the first block filled with the trajectory's own final tokens) and the base model
re-generates from it greedily, each block cleared when decoding reaches it (paper appendix D.2). The teacher's
accuracy is compared with the student's pass@1 and the pass@k it was built from.
"""

from __future__ import annotations

import random

import torch

from dopsd.bundled import bundled_data_path, bundled_model_path
from dopsd.distill import reveal_future
from dopsd.models import default_device, load_diffusion_lm
from dopsd.presets import cpu_preset
from dopsd.sampling import BlockDiffusionSampler, SamplerConfig, passk_rollout
from dopsd.tasks import default_prompt_style, encode_prompts, get_task, load_examples


def teacher_contexts(trajectories, block_length: int, retain_ratio: float, generator: torch.Generator):
    """(n, gen_length) self-teacher inputs at the first step: only positions after the first block are candidates."""
    rows = []
    for trajectory in trajectories:
        start = torch.full((1, trajectory.gen_length), trajectory.mask_id, dtype=torch.long)
        rows.append(reveal_future(start, trajectory.tokens, torch.tensor([block_length]), mask_id=trajectory.mask_id,
                                  retain_ratio=retain_ratio, generator=generator)[0])
    return torch.stack(rows)


def toy_verification(task_name: str, *, prompts: int = 500, seed: int = 0, ratios=(0.10, 0.25, 0.50),
                     passk: int = 8, passk_temperature: float = 0.9) -> dict:
    """Accuracies (share correct) of pass@1, pass@k and the self-teacher at each rho, on ``prompts`` training
    prompts drawn with ``seed``, with the bundled model and the sampler settings of its CPU preset."""
    preset = cpu_preset(task_name, "dopsd")
    lm = load_diffusion_lm(bundled_model_path(task_name), device=default_device())
    task = get_task(task_name)
    pool = load_examples(task, bundled_data_path(task_name, "train"), "train")
    examples = random.Random(seed).sample(pool, min(prompts, len(pool)))
    ids = encode_prompts(lm, task, examples, default_prompt_style(lm))
    greedy = SamplerConfig(gen_length=preset["gen_length"], block_length=preset["block_length"],
                           steps=preset.get("steps"))
    resample = SamplerConfig(gen_length=greedy.gen_length, block_length=greedy.block_length, steps=greedy.steps,
                             temperature=passk_temperature)
    generator = torch.Generator(device=lm.device).manual_seed(seed)  # the sampler draws its noise there
    with torch.no_grad():
        first = passk_rollout(lm, task, examples, ids, first=greedy, resample=greedy, passk=1, generator=generator)
        best = passk_rollout(lm, task, examples, ids, first=greedy, resample=resample, passk=passk,
                             generator=generator)
        result = {"task": task_name, "prompts": len(examples), "seed": seed, "passk": passk,
                  "pass@1": sum(first.solved) / len(examples), f"pass@{passk}": sum(best.solved) / len(examples),
                  "teacher": {}}
        sampler = BlockDiffusionSampler(lm, greedy)
        for ratio in ratios:
            context = teacher_contexts(best.trajectories, greedy.block_length, ratio,
                                       torch.Generator().manual_seed(seed + 1))
            regenerated = sampler.sample(ids, context=context)
            scores = [task.score(example, lm.decode(t.tokens)) for example, t in zip(examples, regenerated)]
            result["teacher"][f"{ratio:.2f}"] = sum(s.correct for s in scores) / len(examples)
    return result
