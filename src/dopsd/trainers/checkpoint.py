"""Resumable checkpoints: weights in ``save_pretrained`` form, plus everything else needed to continue exactly.

A checkpoint is written to ``checkpoint-N.partial`` and renamed to ``checkpoint-N`` only when complete, so an
interrupted save never leaves a folder that looks usable.
"""

from __future__ import annotations

import json
import pickle
import random
import re
import shutil
import types
from pathlib import Path

import numpy as np
import torch

from dopsd.errors import DopsdError

PREFIX = "checkpoint-"
BEST = "best"
RUN_FILES = ("config.yaml", "metrics.jsonl", "summary.json", "training.png", "tensorboard", "wandb", BEST,
             f"{BEST}.partial")
DESCRIPTION = "checkpoint.json"  # which trainer wrote the checkpoint, at which update, with how many processes
FORMAT = 3  # 3: the optimizer in accelerate's save_state files; 2: in trainer_state.pt (still read); 1 (before
READABLE = (2, 3)  # checkpoint.json) saved random streams by other names
CHECKPOINT_NAME = re.compile(rf"{PREFIX}\d+(\.partial)?")


def rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def checkpoint_folder(output_dir: str | Path, update: int) -> Path:
    return Path(output_dir) / f"{PREFIX}{update}"


def checkpoint_update(folder: Path) -> int:
    """The update a checkpoint folder was saved at (the inverse of :func:`checkpoint_folder`)."""
    return int(Path(folder).name[len(PREFIX):])


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    folders = [p for p in Path(output_dir).glob(f"{PREFIX}*") if p.is_dir() and p.name[len(PREFIX):].isdigit()]
    return max(folders, key=checkpoint_update, default=None)


def resolve_resume(output_dir: str | Path, resume_from: str | None) -> Path | None:
    if resume_from is None:
        return None
    folder = latest_checkpoint(output_dir) if resume_from == "latest" else Path(resume_from)
    if folder is None or not (folder / "trainer_state.pt").is_file():
        raise DopsdError(f"no complete checkpoint to resume from at {resume_from!r} (output dir {output_dir})")
    return folder


def run_files(output_dir: str | Path) -> list[str]:
    """What an earlier run left in ``output_dir`` (its logs, plot, summary, best weights and checkpoints)."""
    folder = Path(output_dir)
    if not folder.is_dir():
        return []
    checkpoints = sorted(p.name for p in folder.iterdir() if CHECKPOINT_NAME.fullmatch(p.name))
    return [name for name in RUN_FILES if (folder / name).exists()] + checkpoints


def clear_run(output_dir: str | Path) -> None:
    """Removes what :func:`run_files` lists, and nothing else in the folder."""
    for name in run_files(output_dir):
        path = Path(output_dir) / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()


def write_description(folder: Path, trainer: str, update: int, num_processes: int) -> None:
    description = {"format": FORMAT, "trainer": trainer, "update": update, "num_processes": num_processes}
    (folder / DESCRIPTION).write_text(json.dumps(description) + "\n")


def check_resumable(folder: Path, trainer: str, num_processes: int, sharded: bool = False) -> None:
    """Refuses, before anything is written, a checkpoint this trainer cannot continue exactly."""
    path = folder / DESCRIPTION
    if not path.is_file():
        raise DopsdError(f"{folder} was written by an earlier dopsd version that this one cannot resume exactly: "
                         "start a new run (its model/ folder still loads as --model)")
    description = json.loads(path.read_text())
    if description.get("format") not in READABLE:
        raise DopsdError(f"{folder} has checkpoint format {description.get('format')}, this dopsd reads "
                         f"{' and '.join(map(str, READABLE))}")
    if description["trainer"] != trainer:
        raise DopsdError(f"{folder} was written by {description['trainer']}, not {trainer}: resume it with the "
                         "command that wrote it, or start from its weights with --model")
    if description["format"] == 2 and sharded:
        raise DopsdError(f"{folder} has checkpoint format 2 (the optimizer in trainer_state.pt), which resumes only "
                         "with replicated weights: resume it under DDP or on one process")
    if description["num_processes"] != num_processes:
        raise DopsdError(f"{folder} was written by {description['num_processes']} processes; resume with as many")


def check_not_finished(folder: Path, max_updates: int) -> None:
    """Refuses to resume a finished run (its folder holds ``summary.json``) from a checkpoint at or past
    ``max_updates``: nothing would be trained, and the old summary would be printed as if it were new."""
    update = json.loads((folder / DESCRIPTION).read_text()).get("update", -1)
    if update >= max_updates and (folder.parent / "summary.json").is_file():
        raise DopsdError(f"{folder} is the end of a finished run ({update} updates) and max_updates is {max_updates}: "
                         f"to continue it, raise --max-updates above {update}")


def begin(folder: Path) -> Path:
    """The temporary folder a checkpoint is written into."""
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    return partial


def commit(partial: Path, folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)


# Classes a checkpoint pickles that were renamed since (issue 32): (module, old name) -> new name, so that a run
# saved before a rename still resumes.
RENAMED = {("dopsd.trainers.grpo", "RolloutBatch"): "RewardedCompletions",
           ("dopsd.trainers.opdlm", "Rollout"): "TrajectoryTargets",
           ("dopsd.sampling.passk", "RolloutResult"): "PassKResult"}


class RenamingUnpickler(pickle.Unpickler):
    """An unpickler that reads a renamed class (:data:`RENAMED`) under its new name."""

    def find_class(self, module: str, name: str):
        return super().find_class(module, RENAMED.get((module, name), name))


renaming_pickle = types.ModuleType("renaming_pickle")  # what torch.load takes as its pickle module
renaming_pickle.Unpickler = RenamingUnpickler
renaming_pickle.load = lambda file, **kwargs: RenamingUnpickler(file, **kwargs).load()


def load_pickled(path: Path):
    return torch.load(path, weights_only=False, pickle_module=renaming_pickle)


def load_state(folder: Path, rank: int) -> dict:
    state = load_pickled(folder / "trainer_state.pt")
    rank_file = folder / f"rng_rank{rank}.pt"
    state["rank"] = load_pickled(rank_file) if rank_file.exists() else None
    return state
