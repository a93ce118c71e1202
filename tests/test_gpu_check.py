"""scripts/gpu_check.py: its CPU dry run writes the report's full layout, and the pieces that keep a GPU run from
crashing (time and memory skips, the out-of-memory catch, the micro-batch search) behave."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from dopsd.bench.gpu_check import DRY_PLAN, PARTS, STATUSES, PartRecord, Skip, format_report, part_status
from dopsd.bench.gpu_parts import ShortArithmetic, arithmetic_rows, largest_micro_batch, write_arithmetic
from dopsd.tasks import load_examples

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_dry_run_writes_every_part_of_the_report(tmp_path):
    results = REPO / "docs" / "results" / "gpu"
    before = sorted(results.iterdir()) if results.is_dir() else []
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    began = time.perf_counter()
    run = subprocess.run([sys.executable, str(REPO / "scripts" / "gpu_check.py"), "--dry-run", "--output",
                          str(tmp_path)], capture_output=True, text=True, timeout=330, env=env, cwd=tmp_path)
    seconds = time.perf_counter() - began
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert seconds < 300
    markdowns = sorted(tmp_path.glob("gpu-check-*-dry-run.md"))
    jsons = sorted(tmp_path.glob("gpu-check-*-dry-run.json"))
    assert len(markdowns) == len(jsons) == 1
    report = json.loads(jsons[0].read_text())
    text = markdowns[0].read_text()
    assert report["dry_run"] and text in run.stdout  # printed as written
    assert list(report["parts"]) == list(PARTS)
    for index, name in enumerate(PARTS, 1):
        part = report["parts"][name]
        assert f"## {index}. {part['title']}" in text
        assert part["status"] in ("ran", "partial", "skipped"), (name, part.get("reason"), part)
        if part["status"] == "skipped":
            assert part.get("reason"), name
        assert part["steps"] or part["status"] == "skipped"
        for key, step in part["steps"].items():
            assert step["status"] in ("ran", "skipped"), (name, key, step)
            if step["status"] == "ran":
                assert step["text"] and step["headline"] and step["title"] in text
            else:
                assert step["reason"]
    # on the CPU every part but the two-process one (which needs accelerate's launcher) runs at toy shapes
    for name in ("environment", "bench", "update", "end_to_end"):
        assert report["parts"][name]["status"] == "ran", (name, report["parts"][name])
    bench = report["parts"]["bench"]["steps"]
    assert set(bench) == {"smollm2-135m:full", "smollm2-135m:block", "llada-8b:full", "llada-8b:block"}
    assert bench["llada-8b:block"]["data"]["summary"]["identical"]
    update = report["parts"]["update"]["steps"]
    assert update["micro_batch"]["data"]["largest"] == 8  # every state of the toy rollout fits
    assert (sorted(results.iterdir()) if results.is_dir() else []) == before  # a dry run writes nothing into docs


def sleepy_part(name, plan, path, deadline, workdir, repo):
    """A part whose second step outlives any budget (run in a spawned process by the test below)."""
    import os

    os.setsid()
    record = PartRecord(name, Path(path), deadline, SimpleNamespace(device="cpu", estimates={}))
    record.expect(("quick", "Quick"), ("slow", "Slow"), ("never", "Never reached"))
    record.step("quick", lambda: ({}, "done", "quick done"))
    record.step("slow", lambda: time.sleep(600))


@pytest.mark.slow
def test_a_part_past_its_deadline_is_killed_and_keeps_the_steps_it_finished(tmp_path, monkeypatch):
    from dopsd.bench import gpu_check

    monkeypatch.setattr(gpu_check, "GRACE_S", 1.0)
    began = time.perf_counter()
    record = gpu_check.run_part("update", DRY_PLAN, 20.0, tmp_path, REPO, log=lambda line: None, target=sleepy_part)
    assert time.perf_counter() - began < 40
    assert record["status"] == "partial" and "killed at its deadline (20 s)" in record["reason"]
    steps = record["steps"]
    assert steps["quick"]["status"] == "ran" and steps["quick"]["headline"] == "quick done"
    assert steps["slow"]["status"] == "skipped" and "killed at its deadline" in steps["slow"]["reason"]
    assert steps["never"] == {**steps["never"], "status": "skipped", "reason": "not reached"}


def record_for(tmp_path, seconds=60.0, **estimates) -> PartRecord:
    plan = SimpleNamespace(**{**DRY_PLAN.__dict__, "estimates": estimates})
    return PartRecord("update", tmp_path / "part.json", time.time() + seconds, plan)


def test_a_step_is_skipped_with_its_reason_and_an_error_never_stops_the_next(tmp_path):
    record = record_for(tmp_path, seconds=30, **{"update:slow": (600, 0)})
    record.expect(("slow", "Slow"), ("oom", "Out of memory"), ("bug", "A bug"), ("skip", "Skips"), ("fine", "Fine"))

    def out_of_memory():
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    def skip():
        raise Skip("nothing to do here")

    assert record.step("slow", lambda: ({}, "", "")) is None
    assert record.step("oom", out_of_memory) is None
    assert record.step("bug", lambda: 1 / 0) is None
    assert record.step("skip", skip) is None
    assert record.step("fine", lambda: ({"x": 1}, "text", "headline")) == {"x": 1}
    record.finish()
    steps = json.loads((tmp_path / "part.json").read_text())["steps"]
    assert steps["slow"]["status"] == "skipped" and "needs about 600 s" in steps["slow"]["reason"]
    assert steps["oom"]["status"] == "skipped" and steps["oom"]["reason"].startswith("out of memory")
    assert steps["bug"]["status"] == "failed" and "ZeroDivisionError" in steps["bug"]["reason"]
    assert steps["skip"] == {**steps["skip"], "status": "skipped", "reason": "nothing to do here"}
    assert steps["fine"]["status"] == "ran" and steps["fine"]["headline"] == "headline"
    assert json.loads((tmp_path / "part.json").read_text())["status"] == "failed"
    assert [part_status(s) for s in (["ran"], ["ran", "skipped"], ["skipped"], ["ran", "failed"])] == \
        ["ran", "partial", "skipped", "failed"]


def test_the_micro_batch_search_stops_at_the_first_out_of_memory(tmp_path):
    tried = []

    def chunk_backward(chunk):
        tried.append(len(chunk))
        if len(chunk) > 16:
            raise torch.OutOfMemoryError("CUDA out of memory")

    trainer = SimpleNamespace(
        rollout_data=[SimpleNamespace(num_steps=128)], config=SimpleNamespace(micro_batch_size=16),
        chunk_backward=chunk_backward, trainable_parameters=lambda: [torch.zeros(3)],
        optimizer=SimpleNamespace(zero_grad=lambda set_to_none: None, state={}),
        accelerator=SimpleNamespace(gradient_state=SimpleNamespace(_set_sync_gradients=lambda value: None)))
    plan = SimpleNamespace(update_ladder=(8, 16, 24, 32, 48))
    data, text, headline = largest_micro_batch(record_for(tmp_path), plan, {"trainer": trainer,
                                                                              "device": torch.device("cpu")})
    assert tried == [8, 16, 24]
    assert data["largest"] == 16 and data["first_out_of_memory"] == 24
    assert "24 runs out of memory (caught)" in text and headline == "largest micro-batch 16 (24 OOM)"


def test_the_arithmetic_questions_are_distinct_and_scored_right(tmp_path):
    rows = arithmetic_rows(640, seed=1)
    assert len({row["question"] for row in rows}) == 640
    train, held_out = write_arithmetic(tmp_path, 20, 10)
    task = ShortArithmetic()
    examples = load_examples(task, str(held_out), "test")
    assert len(examples) == 10
    assert not {e.prompt for e in examples} & {e.prompt for e in load_examples(task, str(train), "train")}
    for example in examples:
        a, operator, b = example.prompt.removeprefix("What is ").rstrip("?").split()
        value = {"+": int(a) + int(b), "-": int(a) - int(b), "*": int(a) * int(b)}[operator]
        assert example.answer == str(value)
        assert task.score(example, str(value)).correct and not task.score(example, str(value + 1)).correct
    example = examples[0]
    a, operator, b = example.prompt.removeprefix("What is ").rstrip("?").split()
    for reply, correct in ((f"{a} {operator} {b} = {example.answer}", True), (f"The answer is {example.answer}.", True),
                           (f"{a} {operator} {b} = {int(example.answer) + 1}\n\nSo {example.answer}", False),
                           (f"{a} and {b}", False), ("", False)):
        assert task.score(example, reply).correct == correct, reply


def test_the_report_lists_every_part_with_its_status():
    steps = {"a": {"title": "Step A", "status": "ran", "seconds": 1.0, "text": "body", "headline": "A done"},
             "b": {"title": "Step B", "status": "skipped", "reason": "out of memory: tried 80 GiB"}}
    parts = {name: {"title": name.title(), "status": status, "seconds": 1.0, "budget_s": 10.0, "steps": steps,
                    "notes": []} for name, status in zip(PARTS, ("ran", "partial", "skipped", "failed", "ran"))}
    report = {"date": "today", "dry_run": True, "command": "gpu_check.py --dry-run", "commit": "abc", "wall_s": 5.0,
              "budget_s": 270.0, "parts": parts}
    text = format_report(report)
    for index, name in enumerate(PARTS, 1):
        assert f"## {index}. {name.title()}" in text
    assert "A done (not run: b)" in text and "skipped: out of memory: tried 80 GiB" in text
    assert set(STATUSES) >= {part["status"] for part in parts.values()}
