"""Timing, peak memory and FLOP counting for the bench."""

from __future__ import annotations

import ctypes
import gc
import os
import statistics
import threading
import time
from collections.abc import Callable

import torch

# Dense bf16 tensor-core peaks (FLOP/s) by device name, for MFU; --peak-tflops overrides.
PEAK_BF16 = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "A10G": 125e12, "4090": 165e12}


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _release_freed_memory() -> None:
    """Hands memory freed by earlier phases back to the OS (glibc keeps it otherwise), so that one phase's resident
    set does not hide the next one's peak."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakMemory:
    """Peak memory of a block: the CUDA allocator's peak on a GPU, else the process's resident set sampled every
    2 ms (minus what was resident when the block began), in bytes."""

    def __init__(self, device: torch.device):
        self.device, self.peak = device, 0

    def __enter__(self):
        if self.device.type == "cuda":
            synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.base = torch.cuda.memory_allocated(self.device)
            return self
        gc.collect()
        _release_freed_memory()
        self.base = _rss_bytes()
        self.top, self.running = self.base, True
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()
        return self

    def _watch(self):
        while self.running:
            self.top = max(self.top, _rss_bytes())
            time.sleep(0.002)

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            synchronize(self.device)
            self.peak = torch.cuda.max_memory_allocated(self.device) - self.base
        else:
            self.running = False
            self.thread.join()
            self.peak = max(self.top, _rss_bytes()) - self.base
        return False


class FlopCounter:
    """Counts matmul FLOPs of every forward of ``lm`` from the shapes it sees: 2 x body parameters per input token,
    2 x head parameters per projected row, attention 4 x hidden per (query, key) pair per layer; a forward run with
    gradients enabled adds twice its count for the backward (the weights' and the activations' gradients), or once
    when the body and head are ``frozen`` (a LoRA model: the activations' gradients only). A LoRA adapter's matmuls
    are counted where they run (2 x its parameters per token, the backward twice that), so a teacher pass with the
    adapter switched off counts none."""

    def __init__(self, lm, body: int, head: int, frozen: bool = False):
        self.lm, self.body, self.head_rows_flops = lm, body, 2 * head
        config = lm.model.config
        self.attention = 4 * config.hidden_size * config.num_hidden_layers
        self.backward = 1 if frozen else 2
        self.flops = 0.0

    def __enter__(self):
        model = self.lm.model
        self.handles = [model.register_forward_pre_hook(self._body, with_kwargs=True),
                        model.get_output_embeddings().register_forward_hook(self._head)]
        self.handles += [module.register_forward_hook(self._adapter) for name, module in model.named_modules()
                         if isinstance(module, torch.nn.Linear) and (".lora_A." in name or ".lora_B." in name)]
        return self

    def _factor(self):
        return 1 + self.backward if torch.is_grad_enabled() else 1

    def _body(self, module, args, kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        batch, queries = ids.shape
        cache = kwargs.get("past_key_values", kwargs.get("cache"))  # transformers 5's Llama calls it cache
        keys = queries + (cache.get_seq_length() if cache is not None and hasattr(cache, "get_seq_length") else 0)
        self.flops += self._factor() * (2 * self.body * batch * queries + self.attention * batch * queries * keys)

    def _head(self, module, args, output):  # after the head: rows it actually projected (logits_at gathers first)
        self.flops += self._factor() * self.head_rows_flops * output.shape[:-1].numel()

    def _adapter(self, module, args, output):
        factor = 3 if torch.is_grad_enabled() else 1
        self.flops += factor * 2 * module.weight.numel() * output.shape[:-1].numel()

    def __exit__(self, *exc):
        for handle in self.handles:
            handle.remove()
        return False


def timed(function: Callable[[], object], device: torch.device, *, warmup: int, repeats: int):
    """Runs ``function`` ``warmup`` times unmeasured, then ``repeats`` times; returns (seconds per run, peak memory
    over the measured runs in bytes, the last result)."""
    result = None
    for _ in range(warmup):
        result = function()
    seconds = []
    with PeakMemory(device) as memory:
        for _ in range(repeats):
            synchronize(device)
            began = time.perf_counter()
            result = function()
            synchronize(device)
            seconds.append(time.perf_counter() - began)
    return seconds, memory.peak, result


def summary(seconds: list[float]) -> dict:
    return {"min": min(seconds), "median": statistics.median(seconds), "runs": len(seconds)}


class ForwardCounter:
    """Counts the forward passes of ``lm`` and the token positions each one runs (per row: a batch of B rows running
    L positions counts L), from the ``input_ids`` the model sees; what the block bench reports as tokens per forward."""

    def __init__(self, lm):
        self.lm, self.forwards, self.positions = lm, 0, 0

    def __enter__(self):
        self.handle = self.lm.model.register_forward_pre_hook(self._count, with_kwargs=True)
        return self

    def _count(self, module, args, kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        self.forwards += 1
        self.positions += ids.shape[1]

    def __exit__(self, *exc):
        self.handle.remove()
        return False
