"""Run under ``accelerate launch --multi_gpu --num_processes 2`` (gloo on the CPU): updates of a method, then each
process saves the full weights it ends with. Arguments: FOLDER [MAX_UPDATES [resume]] [--fsdp]
[--lockstep on/off/auto] [--method dopsd/grpo/sft] [--set key=value ...]."""

import argparse
import ast
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1]))

from toy import ToyTask, tiny_lm, toy_config  # noqa: E402

import dopsd.trainers.base  # noqa: E402
from dopsd.trainers import DOPSDTrainer  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument("folder", type=Path)
parser.add_argument("max_updates", type=int, nargs="?", default=2)
parser.add_argument("resume", nargs="?")
parser.add_argument("--fsdp", action="store_true")
parser.add_argument("--lockstep", default="auto")
parser.add_argument("--method", default="dopsd", choices=["dopsd", "grpo", "sft"])
parser.add_argument("--set", nargs="*", default=[], help="config overrides, key=value (values as Python literals)")
args = parser.parse_args()


def fsdp_on_the_cpu():
    """accelerate's launcher makes FSDP runs on GPUs only (on the CPU its state stays MULTI_CPU); FSDP2's
    ``fully_shard`` itself runs on the CPU with gloo, so the state is switched to FSDP2 by hand after start-up."""
    from accelerate import Accelerator, FullyShardedDataParallelPlugin
    from accelerate.state import PartialState
    from accelerate.utils import DistributedType

    class CPUFSDPAccelerator(Accelerator):
        def __init__(self, *arguments, **keywords):
            super().__init__(*arguments, **keywords)
            self.state.fsdp_plugin = FullyShardedDataParallelPlugin(fsdp_version=2)
            self.state.distributed_type = DistributedType.FSDP
            PartialState._shared_state["distributed_type"] = DistributedType.FSDP

    dopsd.trainers.base.Accelerator = CPUFSDPAccelerator


if args.fsdp:
    fsdp_on_the_cpu()
resume = {"resume_from": "latest"} if args.resume == "resume" else {}
overrides = {key: ast.literal_eval(value) for key, value in (item.split("=", 1) for item in args.set)}
# Processes get different prompts, so different numbers of kept states and sampling steps.
common = dict(max_updates=args.max_updates, save_every=1, eval_every=2, lockstep=args.lockstep, **resume, **overrides)
if args.method == "dopsd":
    trainer = DOPSDTrainer(model=tiny_lm(), task=ToyTask(), config=toy_config(
        args.folder, prompts_per_rollout=2, updates_per_rollout=2, micro_batch_size=3, **common))
elif args.method == "grpo":
    from test_grpo import DigitShareTask, GRPOTrainer, grpo_config

    trainer = GRPOTrainer(model=tiny_lm(), task=DigitShareTask(), config=grpo_config(args.folder, **common))
else:
    from test_sft import make

    trainer = make(args.folder, use_lora=True, batch_size=3, output_dir=str(args.folder / "run"), **common)
trainer.train()
weights = {}
for name, parameter in trainer.unwrapped.named_parameters():
    if parameter.requires_grad:  # a sharded parameter is gathered whole (a collective: every process, same order)
        full = parameter.full_tensor() if hasattr(parameter, "full_tensor") else parameter
        weights[name] = full.detach().clone()
rank = trainer.accelerator.process_index
torch.save(weights, args.folder / f"weights_rank{rank}.pt")
idle = trainer.lockstep.idle_passes if trainer.lockstep is not None else None
backend = torch.distributed.get_backend() if torch.distributed.is_initialized() else None
torch.save({"idle_passes": idle, "distributed_type": str(trainer.accelerator.distributed_type), "backend": backend,
            "device": str(trainer.accelerator.device)}, args.folder / f"info_rank{rank}.pt")
trainer.accelerator.end_training()  # as `dopsd train` does: a process exiting with the gloo group alive can abort
