"""Forward passes in step across processes, for weights sharded over them (FSDP; DeepSpeed ZeRO-3 is refused).

Sharded weights are gathered inside every forward pass, a collective call that every process must make together.
A rollout does not give every process the same work: pass@k stops early where prompts are solved, models that ignore
the attention mask are batched by prompt length, and updates have as many micro-batches as their kept states need.
So, with sharded weights, each forward pass first asks the others whether they still have work (a one-number
all-reduce), and a process whose phase is over keeps answering with forward passes on a two-token dummy input until
every process is done (:meth:`Lockstep.finish`). Backward passes cannot be padded that way; the trainer agrees on a
number of micro-batches before an update's backward passes instead (:meth:`Lockstep.agree_count`) and pads with
zero losses, so every process runs the same forward-backward sequence.

Under DDP (replicated weights) this is not needed and stays off: no-grad passes run on the bare model, and only the
gradient all-reduce at an update's last micro-batch is collective.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from accelerate.utils import DistributedType

from dopsd.errors import DopsdError

LOCKSTEP_CHOICES = ("auto", "on", "off")


def weights_sharded(accelerator) -> bool:
    """Whether each process holds only a shard of the weights (FSDP, or DeepSpeed ZeRO stage 3)."""
    if accelerator.distributed_type == DistributedType.FSDP:
        return True
    if accelerator.distributed_type == DistributedType.DEEPSPEED:
        return accelerator.state.deepspeed_plugin.zero_stage == 3
    return False


def prepare_deepspeed(accelerator) -> None:
    """DeepSpeed settings dopsd needs: ZeRO-3 is refused, and the micro-batch size that accelerate leaves as "auto"
    (to take from a dataloader dopsd does not use) is set to 1 (DeepSpeed only reports with it; dopsd sizes its own
    micro-batches and accumulates over them itself)."""
    if accelerator.distributed_type != DistributedType.DEEPSPEED:
        return
    plugin = accelerator.state.deepspeed_plugin
    if plugin.zero_stage == 3:
        raise DopsdError("DeepSpeed ZeRO-3 is not supported: it gathers weights module by module, so processes in "
                         "step would still gather different modules (the adapter off in one, on in another); use "
                         "FSDP2 (configs/accelerate/fsdp2.yaml) to shard weights, or ZeRO-2")
    if plugin.deepspeed_config.get("train_micro_batch_size_per_gpu", "auto") == "auto":
        plugin.deepspeed_config["train_micro_batch_size_per_gpu"] = 1


def lockstep_wanted(setting: str, accelerator) -> bool:
    if setting not in LOCKSTEP_CHOICES:
        raise DopsdError(f"lockstep must be one of {', '.join(LOCKSTEP_CHOICES)}, not {setting!r}")
    if accelerator.num_processes == 1:
        return False
    if setting == "off" and weights_sharded(accelerator):
        raise DopsdError("lockstep off cannot work with sharded weights (FSDP): processes would gather "
                         "weights out of step; use lockstep auto")
    return setting == "on" or (setting == "auto" and weights_sharded(accelerator))


class Lockstep:
    """Wraps the prepared model as the adapter's runner; every call is one forward pass taken in step."""

    def __init__(self, module, device: torch.device, dummy_ids: list[int]):
        self.module = module
        self.device = device
        self.dummy = torch.tensor([dummy_ids], device=device)
        self.idle_passes = 0  # forward passes run on the dummy input (a measure of load imbalance)
        # FSDP2's root module keeps its gathered weights after a forward pass (to reuse them in backward), so
        # whether the next pass gathers them would depend on what this process ran before. Every module gives
        # them back after each pass instead: every pass makes the same collective calls on every process. (This
        # also keeps PEFT's switching of the adapter's requires_grad, for the initial policy, on the sharded
        # parameters, from which FSDP2 copies it to the gathered ones.)
        if hasattr(module, "set_reshard_after_forward"):
            module.set_reshard_after_forward(True)

    def __call__(self, *args, **kwargs):
        self._others_working(True)
        return self.module(*args, **kwargs)

    def _others_working(self, working: bool) -> bool:
        flag = torch.tensor([int(working)], device=self.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())

    def finish(self) -> None:
        """Ends a phase: dummy forward passes while any other process still runs its own."""
        while self._others_working(False):
            # no gradients, and no draw from the random streams (dropout), so that idle passes change nothing
            with torch.no_grad(), torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
                self.module(input_ids=self.dummy)
            self.idle_passes += 1

    def agree_count(self, count: int) -> int:
        """The largest ``count`` over the processes (after ending the phase before it)."""
        self.finish()
        value = torch.tensor([count], device=self.device)
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return int(value.item())
