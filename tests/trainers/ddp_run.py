"""Run under ``accelerate launch --multi_gpu --num_processes 2`` (gloo on the CPU): d-OPSD updates, then each process
saves its weights. Arguments: FOLDER [MAX_UPDATES [resume]]."""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1]))

from toy import ToyTask, tiny_lm, toy_config  # noqa: E402

from dopsd.trainers import DOPSDTrainer  # noqa: E402

folder = Path(sys.argv[1])
max_updates = int(sys.argv[2]) if len(sys.argv) > 2 else 2
resume = {"resume_from": "latest"} if sys.argv[3:] == ["resume"] else {}
# Processes get different prompts, so different numbers of kept states and sampling steps.
trainer = DOPSDTrainer(tiny_lm(), task=ToyTask(), config=toy_config(
    folder, max_updates=max_updates, prompts_per_rollout=2, updates_per_rollout=2, micro_batch_size=3, save_every=1,
    eval_every=2, **resume))
trainer.train()
weights = {name: p.detach().clone() for name, p in trainer.unwrapped.named_parameters() if p.requires_grad}
torch.save(weights, folder / f"weights_rank{trainer.accelerator.process_index}.pt")
