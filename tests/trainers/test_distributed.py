import os
import shutil
import subprocess
import sys
from pathlib import Path

import torch


def launch(folder: Path, *arguments: str) -> None:
    """Two processes of ddp_run.py under accelerate's launcher."""
    launcher = shutil.which("accelerate")
    assert launcher, "accelerate's launcher must be installed with dopsd"
    script = Path(__file__).parent / "ddp_run.py"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    result = subprocess.run(
        # On a CPU-only machine `--cpu` launches a single process unless MPI is set up; `--multi_gpu` starts two
        # torchrun workers, which the trainer joins into a gloo group on the CPU.
        [launcher, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
         "--dynamo_backend", "no", str(script), str(folder), *arguments],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]


def test_two_cpu_processes_train_and_hold_identical_weights(tmp_path):
    launch(tmp_path)
    ranks = [torch.load(tmp_path / f"weights_rank{rank}.pt") for rank in (0, 1)]
    assert ranks[0].keys() == ranks[1].keys() and ranks[0]
    for name in ranks[0]:
        assert torch.equal(ranks[0][name], ranks[1][name]), name
    lora_b = [name for name in ranks[0] if "lora_B" in name]
    assert any(ranks[0][name].abs().sum() > 0 for name in lora_b)  # training moved the adapter off its zero init
    summary = (tmp_path / "run" / "summary.json").read_text()
    assert '"updates": 2' in summary


def test_a_two_process_run_stopped_and_resumed_equals_an_uninterrupted_one(tmp_path):
    launch(tmp_path / "whole", "4")
    launch(tmp_path / "parts", "1")  # stops mid-rollout: two updates per rollout, the second one still pending
    launch(tmp_path / "parts", "4", "resume")
    for rank in (0, 1):
        whole = torch.load(tmp_path / "whole" / f"weights_rank{rank}.pt")
        resumed = torch.load(tmp_path / "parts" / f"weights_rank{rank}.pt")
        assert whole.keys() == resumed.keys()
        for name in whole:
            assert torch.equal(whole[name], resumed[name]), name
