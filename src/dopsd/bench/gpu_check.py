"""One command that proves dopsd on a GPU in ten minutes (``scripts/gpu_check.py``), and its CPU dry run.

Five parts run one after the other, each in a child process of its own (spawned: a part that runs out of memory,
hangs or dies takes nothing else down, and its GPU memory is freed when it ends), each with a time budget:

1. ``environment``: torch, CUDA, GPUs, transformers, accelerate, peft, gguf versions;
2. ``bench``: :func:`dopsd.bench.run.run_bench` at the 135M and 8B shapes, full attention (dopsd against the naive
   procedure, the rollout without and with its cache) and block-causal (the exact block cache against uncached);
3. ``update``: d-OPSD updates at the 8B shape with the paper's settings, random weights, and the largest
   micro-batch that fits;
4. ``end_to_end``: SmolLM2-135M-Instruct (the offline GGUF) converted and trained by OPDLM, then by d-OPSD on short
   arithmetic, accuracies before and after;
5. ``distributed``: the two-process DDP and FSDP2 equivalence checks of ``tests/trainers/test_distributed.py``, on
   NCCL (two GPUs or more).

A part is made of steps (one bench shape, one phase of the update...). A step that would not fit in what is left of
its part's budget, or in the GPU's memory, is skipped with a line saying why; an out-of-memory error is caught and
reported as a skip; any other error is reported with its message (``failed``) and the next step runs. A part still
running at its deadline is killed: the steps it finished are kept, the others are reported as skipped. Time a part
does not use goes to the next one.

The child writes its record (status, seconds, data, Markdown text of every step) to a JSON file after each step; the
parent gathers the records into one report, ``gpu-check-DATE.md`` and ``.json``, and prints the Markdown.

``dry_run``: the same parts at toy shapes on the CPU in float32 (the ``llama-toy`` shape for both bench shapes and
the update, the bundled causal Sudoku model in place of SmolLM2, the two processes on gloo), a few steps each.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

PARTS = ("environment", "bench", "update", "end_to_end", "distributed")
TITLES = {
    "environment": "Environment",
    "bench": "dopsd bench at the 135M and 8B shapes",
    "update": "d-OPSD updates at the 8B shape (random weights, the paper's settings)",
    "end_to_end": "A real model end to end: SmolLM2-135M-Instruct, OPDLM then d-OPSD",
    "distributed": "Two processes: DDP and FSDP2 equivalence",
}
# Shares of the whole budget; what a part leaves unused goes to the next one.
SHARES = {"environment": 0.05, "bench": 0.37, "update": 0.22, "end_to_end": 0.28, "distributed": 0.08}
GRACE_S = 10.0  # a part past its deadline by this much is killed
STATUSES = ("ran", "partial", "skipped", "failed")


@dataclass(frozen=True)
class Plan:
    """Every size the check runs at: :data:`GPU_PLAN` on a GPU, :data:`DRY_PLAN` on the CPU."""

    dry_run: bool
    device: str
    dtype: str
    budget_s: float
    # 2. bench: (label, shape built) pairs; full attention and block-causal for each
    bench_shapes: tuple = (("smollm2-135m", "smollm2-135m"), ("llada-8b", "llada-8b"))
    bench_prompt: int = 100
    bench_gen: int = 128
    bench_steps: int = 64
    bench_block: int = 32
    bench_block_size: int = 4
    bench_batch: int = 8
    bench_micro_batch: int = 16
    bench_warmup: int = 1
    bench_repeats: int = 3
    bench_naive_repeats: int = 2
    # 3. d-OPSD update at the 8B shape: the paper's LoRA r 128 on the seven projections, responses of 256 in blocks
    # of 32, 128 steps, pass@8, micro-batches of 16, one prompt a rollout per GPU split over 4 updates
    update_shape: str = "llada-8b"
    update_prompt: int = 128
    update_gen: int = 256
    update_block: int = 32
    update_steps: int = 128
    update_passk: int = 8
    update_lora_r: int = 128
    update_micro_batch: int = 16
    update_updates: int = 4
    update_ladder: tuple = (8, 16, 24, 32, 48, 64, 96, 128)
    # 4. end to end: arithmetic questions, OPDLM, then d-OPSD
    e2e_train: int = 512
    e2e_eval: int = 128
    e2e_gen: int = 16
    e2e_block: int = 8
    e2e_opdlm_updates: int = 30
    e2e_opdlm_prompts: int = 32
    e2e_opdlm_states: int = 4
    e2e_dopsd_updates: int = 24
    e2e_dopsd_prompts: int = 16
    e2e_dopsd_passk: int = 8
    e2e_dopsd_lr: float = 1e-4
    e2e_micro_batch: int = 64
    # 5. distributed
    dist_updates: int = 4
    # seconds a step needs at least (skipped when less is left) and GiB of GPU memory it needs
    estimates: dict = field(default_factory=lambda: {
        "bench:smollm2-135m:full": (20, 4), "bench:smollm2-135m:block": (10, 4),
        "bench:llada-8b:full": (60, 60), "bench:llada-8b:block": (30, 24),
        "update:build": (15, 40), "update:rollout": (20, 0), "update:updates": (10, 0), "update:micro_batch": (10, 0),
        "end_to_end:model": (20, 2), "end_to_end:opdlm": (30, 0), "end_to_end:dopsd": (25, 0),
        "distributed:ddp": (20, 0), "distributed:fsdp2": (20, 0),
    })


GPU_PLAN = Plan(dry_run=False, device="cuda", dtype="bfloat16", budget_s=570.0)
DRY_PLAN = Plan(
    dry_run=True, device="cpu", dtype="float32", budget_s=270.0,
    bench_shapes=(("smollm2-135m", "llama-toy"), ("llada-8b", "llama-toy")),
    bench_prompt=16, bench_gen=16, bench_steps=8, bench_block=8, bench_batch=2, bench_micro_batch=4,
    bench_warmup=0, bench_repeats=1, bench_naive_repeats=1,
    update_shape="llama-toy", update_prompt=16, update_gen=16, update_block=4, update_steps=8, update_passk=2,
    update_lora_r=8, update_micro_batch=2, update_updates=2, update_ladder=(2, 4, 8),
    e2e_train=32, e2e_eval=8, e2e_gen=8, e2e_block=4, e2e_opdlm_updates=2, e2e_opdlm_prompts=4, e2e_opdlm_states=2,
    e2e_dopsd_updates=2, e2e_dopsd_prompts=2, e2e_dopsd_passk=2, e2e_micro_batch=8,
    dist_updates=2,
    estimates={key: (2, 0) for key in GPU_PLAN.estimates},
)


class Skip(Exception):
    """Raised inside a step (or a part) to skip it with the message as its reason."""


# ----- the child's side ----------------------------------------------------------------------------------------
class PartRecord:
    """A part's record, written to ``path`` after every step so that the parent keeps it if the part is killed."""

    def __init__(self, name: str, path: Path, deadline: float, plan: Plan):
        self.name, self.path, self.deadline, self.plan = name, path, deadline, plan
        self.began = time.time()
        self.data = {"status": "running", "steps": {}, "notes": []}
        self.save()

    def left(self) -> float:
        return self.deadline - time.time()

    def expect(self, *keys: tuple[str, str]) -> None:
        """Declares the part's steps (key, title) before any runs, so that a killed part reports the rest."""
        for key, title in keys:
            self.data["steps"][key] = {"title": title, "status": "pending"}
        self.save()

    def note(self, line: str) -> None:
        self.data["notes"].append(line)
        self.save()

    def step(self, key: str, function, title: str | None = None):
        """Runs ``function() -> (data, text, headline)`` as step ``key`` unless too little time or memory is left;
        returns its data (None when skipped or failed)."""
        entry = self.data["steps"].setdefault(key, {"title": title or key, "status": "pending"})
        seconds_needed, gib_needed = self.plan.estimates.get(f"{self.name}:{key}", (0, 0))
        entry.update(status="running", began=time.time() - self.began)
        self.save()
        left = self.left()
        if left < seconds_needed:
            return self._end(entry, "skipped", reason=f"not started: {left:.0f} s left of the part's budget, it "
                             f"needs about {seconds_needed} s")
        total = gpu_memory_gib(self.plan)
        if gib_needed and total is not None and total < gib_needed:
            return self._end(entry, "skipped", reason=f"not started: it needs about {gib_needed} GiB of GPU memory, "
                             f"this GPU has {total:.0f} GiB")
        began = time.perf_counter()
        try:
            data, text, headline = function()
        except Skip as reason:
            return self._end(entry, "skipped", began, reason=str(reason))
        except Exception as error:  # noqa: BLE001 -- every error is reported, the next step runs
            if is_out_of_memory(error):
                free_memory()
                return self._end(entry, "skipped", began, reason=f"out of memory: {first_line(error)}")
            return self._end(entry, "failed", began, reason=f"{type(error).__name__}: {first_line(error)}",
                             traceback=traceback.format_exc()[-4000:])
        self._end(entry, "ran", began, data=data, text=text, headline=headline)
        return data

    def _end(self, entry: dict, status: str, began: float | None = None, **fields):
        entry.update(status=status, seconds=time.perf_counter() - began if began else 0.0, **fields)
        self.save()
        return None

    def finish(self, status: str | None = None, reason: str | None = None) -> None:
        steps = self.data["steps"].values()
        for entry in steps:
            if entry["status"] in ("pending", "running"):
                entry.update(status="skipped", reason=entry.get("reason") or reason or "not reached")
        self.data["status"] = status or part_status([entry["status"] for entry in steps])
        if reason:
            self.data["reason"] = reason
        self.save()

    def save(self) -> None:
        partial = self.path.with_suffix(".partial")
        partial.write_text(json.dumps(self.data, indent=1, default=str))
        partial.replace(self.path)


def part_status(statuses: list[str]) -> str:
    if "failed" in statuses:
        return "failed"
    if statuses and all(status == "skipped" for status in statuses):
        return "skipped"
    return "partial" if "skipped" in statuses else "ran"


def is_out_of_memory(error: BaseException) -> bool:
    import torch

    return isinstance(error, torch.OutOfMemoryError) or "out of memory" in str(error).lower()


def free_memory() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:300] if text else type(error).__name__


def gpu_memory_gib(plan: Plan) -> float | None:
    if plan.device != "cuda":
        return None
    import torch

    return torch.cuda.get_device_properties(0).total_memory / 2**30 if torch.cuda.is_available() else None


def _child(name: str, plan: dict, path: str, deadline: float, workdir: str, repo: str) -> None:
    """The body of a part's process: a session of its own (the parent kills the whole group at the deadline)."""
    with contextlib.suppress(OSError):
        os.setsid()
    plan = Plan(**{**plan, "bench_shapes": tuple(tuple(pair) for pair in plan["bench_shapes"]),
                   "update_ladder": tuple(plan["update_ladder"])})
    record = PartRecord(name, Path(path), deadline, plan)
    from dopsd.bench import gpu_parts

    try:
        getattr(gpu_parts, name)(record, plan, Path(workdir), Path(repo))
    except Skip as reason:
        record.finish("skipped", str(reason))
        return
    except Exception as error:  # noqa: BLE001
        record.data["traceback"] = traceback.format_exc()[-4000:]
        record.finish("failed", f"{type(error).__name__}: {first_line(error)}")
        return
    record.finish()


# ----- the parent's side ---------------------------------------------------------------------------------------
def run_part(name: str, plan: Plan, budget: float, workdir: Path, repo: Path, log=print, target=None) -> dict:
    """Runs one part in a spawned process for at most ``budget`` seconds (plus a grace); returns its record.
    ``target``: the process's function (tests), :func:`_child` by default."""
    path = workdir / f"part-{name}.json"
    began = time.perf_counter()
    if budget < 3:
        record = {"status": "skipped", "reason": f"not started: {max(budget, 0):.0f} s of the budget left",
                  "steps": {}, "notes": []}
    else:
        deadline = time.time() + budget
        context = multiprocessing.get_context("spawn")
        process = context.Process(target=target or _child, args=(name, dataclasses.asdict(plan), str(path), deadline,
                                                       str(workdir), str(repo)), name=f"gpu-check-{name}")
        process.start()
        try:
            process.join(budget + GRACE_S)
        finally:
            killed = process.is_alive()
            if killed:
                kill_group(process.pid)
                process.join(10)
        record = read_record(path)
        if killed:
            record["status"] = "running"
            reason = f"killed at its deadline ({budget:.0f} s): it ran past its budget"
            for entry in record["steps"].values():
                if entry["status"] in ("pending", "running"):
                    entry.update(status="skipped", reason=reason if entry["status"] == "running" else "not reached")
            record["status"] = part_status([entry["status"] for entry in record["steps"].values()] or ["skipped"])
            record["reason"] = reason
        elif record["status"] == "running":  # the process died without finishing its record
            record["status"] = "failed"
            record["reason"] = f"the part's process ended with exit code {process.exitcode}"
            for entry in record["steps"].values():
                if entry["status"] in ("pending", "running"):
                    entry.update(status="skipped", reason="not reached: the part's process died")
    record.update(title=TITLES[name], budget_s=budget, seconds=time.perf_counter() - began)
    log(f"gpu-check: {name}: {record['status']} in {record['seconds']:.0f} s (budget {budget:.0f} s)"
        + (f": {record['reason']}" if record.get("reason") else ""))
    return record


def read_record(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {"status": "running", "steps": {}, "notes": []}


def kill_group(pid: int) -> None:
    for kill in (lambda: os.killpg(pid, signal.SIGKILL), lambda: os.kill(pid, signal.SIGKILL)):
        with contextlib.suppress(OSError):
            kill()


def run_check(*, dry_run: bool, output: str | Path | None = None, budget: float | None = None,
              parts: tuple[str, ...] = PARTS, repo: str | Path | None = None, keep_work: bool = False,
              log=print) -> tuple[Path, Path, dict]:
    """Runs the check; returns (Markdown path, JSON path, report). ``output``: the report's folder (default
    ``docs/results/gpu`` of ``repo`` for a real run, a new temporary folder for a dry run)."""
    plan = DRY_PLAN if dry_run else GPU_PLAN
    if budget is not None:
        plan = dataclasses.replace(plan, budget_s=float(budget))
    repo = Path(repo) if repo else Path(__file__).resolve().parents[3]
    if output is None:
        output = tempfile.mkdtemp(prefix="dopsd-gpu-check-") if dry_run else repo / "docs" / "results" / "gpu"
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the GPU machine reaches no hub: never wait on one
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    workdir = Path(tempfile.mkdtemp(prefix="dopsd-gpu-check-work-"))
    started = datetime.now(timezone.utc)
    began = time.perf_counter()
    report = {"format": 1, "date": started.isoformat(timespec="seconds"), "dry_run": dry_run,
              "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]), "commit": git_commit(repo),
              "budget_s": plan.budget_s, "plan": dataclasses.asdict(plan), "parts": {}}
    carried = 0.0
    try:
        for name in PARTS:
            if name not in parts:
                report["parts"][name] = {"title": TITLES[name], "status": "skipped",
                                         "reason": "not asked for (--parts)",
                                         "steps": {}, "notes": [], "budget_s": 0.0, "seconds": 0.0}
                continue
            left = plan.budget_s - (time.perf_counter() - began)
            share = min(plan.budget_s * SHARES[name] + carried, left)
            record = run_part(name, plan, share, workdir, repo, log)
            carried = max(share - record["seconds"], 0.0)
            report["parts"][name] = record
    finally:
        report["wall_s"] = time.perf_counter() - began
        if not keep_work:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            report["workdir"] = str(workdir)
    stem = f"gpu-check-{started.strftime('%Y%m%d-%H%M%S')}" + ("-dry-run" if dry_run else "")
    markdown, data = output / f"{stem}.md", output / f"{stem}.json"
    data.write_text(json.dumps(report, indent=1, default=str) + "\n")
    markdown.write_text(format_report(report))
    return markdown, data, report


def git_commit(repo: Path) -> str:
    try:
        head = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (head + (" (with uncommitted changes)" if dirty else "")) if head else "unknown"


# ----- the report ----------------------------------------------------------------------------------------------
def format_report(report: dict) -> str:
    parts = report["parts"]
    device = parts.get("environment", {}).get("steps", {}).get("versions", {}).get("headline") or "unknown device"
    kind = "dry run on the CPU (toy shapes: the layout of a GPU report, none of its numbers)" if report["dry_run"] \
        else "GPU run"
    lines = [f"# dopsd GPU check, {report['date']}", "",
             f"- {kind}; {device}",
             f"- command: `{report['command']}`; dopsd commit {report['commit']}",
             f"- wall time {report['wall_s']:.0f} s of a {report['budget_s']:.0f} s budget", "",
             "| part | status | seconds (budget) | result |", "|---|---|---|---|"]
    for index, name in enumerate(PARTS, 1):
        part = parts[name]
        lines.append(f"| {index}. {part['title']} | {part['status']} | {part['seconds']:.0f} ({part['budget_s']:.0f}) "
                     f"| {_cell(part_headline(part))} |")
    for index, name in enumerate(PARTS, 1):
        part = parts[name]
        lines += ["", f"## {index}. {part['title']}", "",
                  f"Status: **{part['status']}**, {part['seconds']:.0f} s of a {part['budget_s']:.0f} s budget"
                  + (f"; {part['reason']}" if part.get("reason") else "") + "."]
        for note in part.get("notes", []):
            lines += ["", note]
        for key, step in part["steps"].items():
            lines += ["", f"### {step.get('title', key)}", ""]
            if step["status"] != "ran":
                lines.append(f"{step['status']}: {step.get('reason', '')}")
                if step.get("traceback"):
                    lines += ["", "```", step["traceback"].rstrip(), "```"]
                continue
            lines.append(f"ran in {step['seconds']:.1f} s.")
            if step.get("text"):
                lines += ["", step["text"].rstrip()]
        if part.get("traceback"):
            lines += ["", "```", part["traceback"].rstrip(), "```"]
    return "\n".join(lines) + "\n"


def part_headline(part: dict) -> str:
    heads = [step["headline"] for step in part["steps"].values() if step["status"] == "ran" and step.get("headline")]
    skipped = [key for key, step in part["steps"].items() if step["status"] != "ran"]
    text = "; ".join(heads)
    if skipped and heads:
        text += f" (not run: {', '.join(skipped)})"
    return text or part.get("reason") or next((step.get("reason") for step in part["steps"].values()), "")


def _cell(text: str) -> str:
    return (text or "").replace("|", "\\|").replace("\n", " ")
