"""Two CPU processes (gloo) under accelerate's launcher: DDP, and FSDP2 with every forward pass in step."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

pytestmark = pytest.mark.slow  # every test here launches two processes


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


def weights(folder: Path, rank: int) -> dict:
    return torch.load(folder / f"weights_rank{rank}.pt")


def info(folder: Path, rank: int) -> dict:
    return torch.load(folder / f"info_rank{rank}.pt")


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    """Four d-OPSD updates under DDP, lockstep off (its default with replicated weights)."""
    folder = tmp_path_factory.mktemp("ddp")
    launch(folder, "4")
    return folder


def test_two_cpu_processes_train_and_hold_identical_weights(ddp_run):
    ranks = [weights(ddp_run, rank) for rank in (0, 1)]
    assert ranks[0].keys() == ranks[1].keys() and ranks[0]
    for name in ranks[0]:
        assert torch.equal(ranks[0][name], ranks[1][name]), name
    lora_b = [name for name in ranks[0] if "lora_B" in name]
    assert any(ranks[0][name].abs().sum() > 0 for name in lora_b)  # training moved the adapter off its zero init
    assert '"updates": 4' in (ddp_run / "run" / "summary.json").read_text()
    assert not (ddp_run / "run" / ".dopsd.lock").exists()  # the group's one lock, taken by rank 0, released
    assert info(ddp_run, 0)["idle_passes"] is None  # no lockstep under DDP by default


def test_a_two_process_run_stopped_and_resumed_equals_an_uninterrupted_one(ddp_run, tmp_path):
    launch(tmp_path, "1")  # stops mid-rollout: two updates per rollout, the second one still pending
    launch(tmp_path, "4", "resume")
    for rank in (0, 1):
        whole, resumed = weights(ddp_run, rank), weights(tmp_path, rank)
        assert whole.keys() == resumed.keys()
        for name in whole:
            assert torch.equal(whole[name], resumed[name]), name


def test_forward_passes_in_step_change_nothing_under_ddp(ddp_run, tmp_path):
    """Idle processes' dummy passes and zero-loss micro-batches leave the weights exactly as they were."""
    launch(tmp_path, "4", "--lockstep", "on")
    assert sum(info(tmp_path, rank)["idle_passes"] for rank in (0, 1)) > 0  # processes did wait on each other
    for rank in (0, 1):
        plain, in_step = weights(ddp_run, rank), weights(tmp_path, rank)
        for name in plain:
            assert torch.equal(plain[name], in_step[name]), name


@pytest.fixture(scope="module")
def fsdp_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fsdp")
    launch(folder, "4", "--fsdp")
    return folder


def test_fsdp_ends_with_the_weights_of_ddp(ddp_run, fsdp_run):
    """Sharded weights, every pass in step (the processes sample different numbers of steps and states)."""
    assert info(fsdp_run, 0)["distributed_type"] == "DistributedType.FSDP"
    assert sum(info(fsdp_run, rank)["idle_passes"] for rank in (0, 1)) > 0
    for rank in (0, 1):
        ddp, fsdp = weights(ddp_run, rank), weights(fsdp_run, rank)
        assert ddp.keys() == fsdp.keys()
        for name in ddp:
            torch.testing.assert_close(fsdp[name], ddp[name], rtol=1e-4, atol=1e-5, msg=name)
    checkpoint = fsdp_run / "run" / "checkpoint-4"
    saved = load_file(checkpoint / "model" / "adapter_model.safetensors")  # gathered, in save_pretrained form
    final = weights(fsdp_run, 0)
    assert saved.keys() == {name.replace(".default", "") for name in final}
    for name, value in final.items():
        assert torch.equal(saved[name.replace(".default", "")], value), name
    assert (checkpoint / "optimizer_0").is_dir()  # accelerate's sharded optimizer state


def test_an_fsdp_run_stopped_and_resumed_equals_an_uninterrupted_one(fsdp_run, tmp_path):
    launch(tmp_path, "1", "--fsdp")
    launch(tmp_path, "4", "resume", "--fsdp")
    for rank in (0, 1):
        whole, resumed = weights(fsdp_run, rank), weights(tmp_path, rank)
        for name in whole:
            assert torch.equal(whole[name], resumed[name]), name


@pytest.mark.parametrize("method", ["grpo", "sft"])
def test_the_other_methods_under_fsdp_end_with_their_ddp_weights(method, tmp_path):
    launch(tmp_path / "ddp", "3", "--method", method)
    launch(tmp_path / "fsdp", "3", "--method", method, "--fsdp")
    for rank in (0, 1):
        ddp, fsdp = weights(tmp_path / "ddp", rank), weights(tmp_path / "fsdp", rank)
        assert any(float(value.abs().sum()) > 0 for name, value in ddp.items() if "lora_B" in name)  # it trained
        for name in ddp:
            torch.testing.assert_close(fsdp[name], ddp[name], rtol=1e-4, atol=1e-5, msg=name)
