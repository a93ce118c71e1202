import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "export_results.py"


def load_script():
    spec = importlib.util.spec_from_file_location("export_results", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_run(folder: Path, summary_updates: int, logged: int) -> None:
    (folder / "checkpoint-2" / "model").mkdir(parents=True)
    (folder / "checkpoint-2" / "optimizer.bin").write_bytes(b"x")
    (folder / "config.yaml").write_text(f"max_updates: {logged}\nseed: 0\n")
    (folder / "summary.json").write_text(json.dumps({"updates": summary_updates}))
    (folder / f"best-L32-update{summary_updates}.json").write_text("{}")
    (folder / "best-L20.json").write_text("{}")  # the older name, without an update: kept
    (folder / "metrics.jsonl").write_text("".join(json.dumps({"update": u, "loss": u / 10}) + "\n"
                                                  for u in range(logged + 1)))


def test_export_copies_finished_runs_cut_at_their_summary_without_checkpoints(tmp_path):
    export = load_script()
    source, target = tmp_path / "work" / "sudoku", tmp_path / "docs" / "sudoku"
    make_run(source / "rft-seed0", summary_updates=2, logged=3)  # being continued: logged past its summary
    (source / "rft-seed0" / "best-L32-update3.json").write_text("{}")  # past the summary: left behind
    with (source / "rft-seed0" / "metrics.jsonl").open("a") as metrics:
        metrics.write('\n{"update": 4, "lo')  # a blank line, and a line being written
    (source / "sft-seed0").mkdir(parents=True)  # started, not finished: no summary
    (source / "base-L20.json").write_text("{}")
    make_run(target / "grpo-seed0", summary_updates=4, logged=4)
    make_run(source / "grpo-seed0", summary_updates=2, logged=2)  # shorter than the destination's: left alone
    export.main([str(tmp_path / "work"), str(tmp_path / "docs"), "sudoku"])
    run = target / "rft-seed0"
    assert sorted(path.name for path in run.iterdir()) == ["best-L20.json", "best-L32-update2.json", "config.yaml",
                                                           "metrics.jsonl", "summary.json"]
    assert [json.loads(line)["update"] for line in (run / "metrics.jsonl").read_text().splitlines()] == [0, 1, 2]
    assert (run / "config.yaml").read_text() == "max_updates: 2\nseed: 0\n"  # the run as its summary stands
    assert not (target / "sft-seed0").exists() and (target / "base-L20.json").is_file()
    assert json.loads((target / "grpo-seed0" / "summary.json").read_text())["updates"] == 4
    export.main([str(tmp_path / "work"), str(tmp_path / "docs"), "sudoku", "--replace"])
    assert json.loads((target / "grpo-seed0" / "summary.json").read_text())["updates"] == 2
    assert not (target / "grpo-seed0" / "checkpoint-2").exists()


def test_export_leaves_the_target_as_it_was_when_a_run_cannot_be_read(tmp_path):
    export = load_script()
    source, target = tmp_path / "work" / "sudoku", tmp_path / "docs" / "sudoku"
    make_run(target / "rft-seed0", summary_updates=2, logged=2)
    before = {path.name: path.read_bytes() for path in (target / "rft-seed0").iterdir() if path.is_file()}
    make_run(source / "rft-seed0", summary_updates=4, logged=4)
    (source / "rft-seed0" / "metrics.jsonl").write_text('{"update": 0}\nnot json\n{"update": 1}\n')
    with pytest.raises(ValueError, match="line 2 is not JSON"):
        export.export_task(source, target)
    assert {path.name: path.read_bytes() for path in (target / "rft-seed0").iterdir() if path.is_file()} == before
    with pytest.raises(SystemExit):  # a task folder that is not there: an error, nothing created
        export.main([str(tmp_path / "work"), str(tmp_path / "docs"), "countdown"])
    assert not (tmp_path / "docs" / "countdown").exists()


def test_protocol_status_skips_runs_without_an_evaluation(tmp_path):
    spec = importlib.util.spec_from_file_location("protocol_status", SCRIPT.parent / "protocol_status.py")
    status = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(status)
    rows = [{"update": 0, "eval_accuracy": 0.2, "eval_mean_score": 0.5}]
    rows += [{"update": update, "loss": 0.1} for update in range(1, 4)]
    rows += [{"update": 4, "eval_accuracy": 0.3, "eval_mean_score": 0.6}]
    for seed, lines in ((0, rows), (1, rows)):
        (tmp_path / f"rft-test-lr5e-05-seed{seed}").mkdir()
        (tmp_path / f"rft-test-lr5e-05-seed{seed}" / "metrics.jsonl").write_text(
            "".join(json.dumps(row) + "\n" for row in lines))
    (tmp_path / "sft-test-lr5e-05-seed0").mkdir()
    (tmp_path / "sft-test-lr5e-05-seed0" / "metrics.jsonl").write_text("")  # started, nothing evaluated yet
    lines = status.status(tmp_path)
    assert lines == ["rft-test-lr5e-05: updates [4, 4], last 100 0.250, gain n/a, best 0.300"]
