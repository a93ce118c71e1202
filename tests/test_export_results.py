import importlib.util
import json
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "export_results.py"


def load_script():
    spec = importlib.util.spec_from_file_location("export_results", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_run(folder: Path, summary_updates: int, logged: int) -> None:
    (folder / "checkpoint-2" / "model").mkdir(parents=True)
    (folder / "checkpoint-2" / "optimizer.bin").write_bytes(b"x")
    (folder / "config.yaml").write_text("seed: 0\n")
    (folder / "summary.json").write_text(json.dumps({"updates": summary_updates}))
    (folder / f"best-L32-update{summary_updates}.json").write_text("{}")
    (folder / "metrics.jsonl").write_text("".join(json.dumps({"update": u, "loss": u / 10}) + "\n"
                                                  for u in range(logged + 1)))


def test_export_copies_finished_runs_cut_at_their_summary_without_checkpoints(tmp_path):
    export = load_script()
    source, target = tmp_path / "work" / "sudoku", tmp_path / "docs" / "sudoku"
    make_run(source / "rft-seed0", summary_updates=2, logged=3)  # being continued: logged past its summary
    (source / "sft-seed0").mkdir(parents=True)  # started, not finished: no summary
    (source / "base-L20.json").write_text("{}")
    make_run(target / "grpo-seed0", summary_updates=4, logged=4)
    make_run(source / "grpo-seed0", summary_updates=2, logged=2)  # shorter than the destination's: left alone
    export.main([str(tmp_path / "work"), str(tmp_path / "docs"), "sudoku"])
    run = target / "rft-seed0"
    assert sorted(path.name for path in run.iterdir()) == ["best-L32-update2.json", "config.yaml", "metrics.jsonl",
                                                           "summary.json"]
    assert [json.loads(line)["update"] for line in (run / "metrics.jsonl").read_text().splitlines()] == [0, 1, 2]
    assert not (target / "sft-seed0").exists() and (target / "base-L20.json").is_file()
    assert json.loads((target / "grpo-seed0" / "summary.json").read_text())["updates"] == 4
    export.main([str(tmp_path / "work"), str(tmp_path / "docs"), "sudoku", "--replace"])
    assert json.loads((target / "grpo-seed0" / "summary.json").read_text())["updates"] == 2
    assert not (target / "grpo-seed0" / "checkpoint-2").exists()
