"""One writer per run folder: a live run's folder is refused (its pid and host named), --overwrite-output-dir
included; the lock of a killed run is stale and the next run takes the folder over; a finished run leaves no lock."""

import multiprocessing
import os
import signal
import socket
import subprocess
import sys

import pytest
from toy import ToyTask, tiny_lm, toy_config

from dopsd.trainers import DOPSDTrainer, lock
from dopsd.trainers.lock import LOCK_NAME, RunFolderInUse, RunLock, check_free, hold_run_folder


def trainer(folder, **overrides):
    return DOPSDTrainer(model=tiny_lm(), task=ToyTask(), config=toy_config(folder, use_lora=False, **overrides))


def files(folder) -> dict:
    return {path.name: path.stat().st_mtime_ns for path in folder.iterdir()}


def hold_until_killed(folder, ready) -> None:
    """A run's process, as far as the folder can tell: it holds the lock and writes, until it is killed."""
    with hold_run_folder(folder):
        (folder / "metrics.jsonl").write_text('{"update": 0, "eval_accuracy": 0.5}\n')
        ready.set()
        signal.pause()


@pytest.fixture
def live_run(tmp_path):
    """A process (forked: no second start-up of torch) holding ``tmp_path/run`` until the test kills it."""
    folder = tmp_path / "run"
    context = multiprocessing.get_context("fork")
    ready = context.Event()
    process = context.Process(target=hold_until_killed, args=(folder, ready), daemon=True)
    process.start()
    assert ready.wait(30), "the holding process did not start"
    yield folder, process
    if process.is_alive():
        process.kill()
    process.join()


def test_a_live_run_refuses_a_second_writer_and_a_killed_ones_lock_is_taken_over(live_run, capsys):
    folder, process = live_run
    before = files(folder)
    owner = f"pid {process.pid} on host {socket.gethostname()}"
    for overrides in ({}, {"overwrite_output_dir": True}, {"resume_from": "latest"}):
        with pytest.raises(RunFolderInUse, match=f"is in use by a live run \\({owner}"):
            trainer(folder.parent, **overrides)
    assert files(folder) == before  # refused before anything was written or deleted
    os.kill(process.pid, signal.SIGKILL)  # the run crashes: its lock file stays behind
    process.join()
    assert (folder / LOCK_NAME).exists()
    summary = trainer(folder.parent, overwrite_output_dir=True).train()  # the stale lock does not stop a new run
    assert summary["updates"] == 2
    assert f"the lock of pid {process.pid} on host {socket.gethostname()} is stale" in capsys.readouterr().err
    assert not (folder / LOCK_NAME).exists()  # released at the end


def test_the_refusal_reaches_the_command_line_as_one_line(live_run, tmp_path, capsys):
    from dopsd.cli import main

    folder, process = live_run
    data = tmp_path / "toy.jsonl"
    data.write_text('{"prompt": "1=", "accept": true}\n')
    code = main(["sft", "--model", "/nonexistent/model", "--train-data", str(data), "--output-dir", str(folder),
                 "--overwrite-output-dir"])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith(f"error: {folder} is in use by a live run (pid {process.pid} on host")


def test_one_lock_per_folder_in_one_process_too(tmp_path):
    first = RunLock(tmp_path).acquire()
    with pytest.raises(RunFolderInUse, match=f"pid {os.getpid()}"):
        RunLock(tmp_path).acquire()
    with pytest.raises(RunFolderInUse):
        check_free(tmp_path)
    first.release()
    assert not (tmp_path / LOCK_NAME).exists()
    check_free(tmp_path)
    RunLock(tmp_path).acquire().release()


def test_without_flock_the_holders_pid_decides(tmp_path, monkeypatch):
    monkeypatch.setattr(lock, "fcntl", None)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    path = tmp_path / LOCK_NAME
    path.write_text(f'{{"pid": {gone.pid}, "host": "{socket.gethostname()}"}}\n')
    check_free(tmp_path)  # a dead pid on this host: stale
    RunLock(tmp_path).acquire().release()
    path.write_text(f'{{"pid": {os.getppid()}, "host": "{socket.gethostname()}"}}\n')  # alive
    with pytest.raises(RunFolderInUse, match=f"pid {os.getppid()}"):
        RunLock(tmp_path).acquire()
    path.write_text(f'{{"pid": {gone.pid}, "host": "elsewhere"}}\n')  # another host's process: cannot tell
    with pytest.raises(RunFolderInUse, match="on host elsewhere.*delete"):
        check_free(tmp_path)


@pytest.mark.slow
def test_a_killed_dopsd_run_leaves_a_stale_lock_and_a_live_one_refuses(tmp_path):
    """The whole command in its own process: SFT on the bundled Sudoku model, killed while it runs."""
    import time

    folder = tmp_path / "run"
    command = [sys.executable, "-c", "import sys; from dopsd.cli import main; sys.exit(main(sys.argv[1:]))", "sft",
               "--output-dir", str(folder), "--eval-limit", "8", "--progress", "false", "--report-to", "none"]
    live = subprocess.Popen(command + ["--max-updates", "100000"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not (folder / "metrics.jsonl").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert (folder / LOCK_NAME).exists() and live.poll() is None
        second = subprocess.run(command + ["--max-updates", "1", "--overwrite-output-dir"], capture_output=True,
                                text=True, timeout=120)
        assert second.returncode == 2 and f"in use by a live run (pid {live.pid}" in second.stderr
        live.send_signal(signal.SIGKILL)
        live.wait()
        assert (folder / LOCK_NAME).exists()  # a crash leaves the lock file behind
        third = subprocess.run(command + ["--max-updates", "1", "--overwrite-output-dir"], capture_output=True,
                               text=True, timeout=300)
        assert third.returncode == 0, third.stderr
        assert f"the lock of pid {live.pid}" in third.stderr and "is stale" in third.stderr
        assert not (folder / LOCK_NAME).exists()
    finally:
        if live.poll() is None:
            live.kill()
            live.wait()
