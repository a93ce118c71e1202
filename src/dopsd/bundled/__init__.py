"""Small base models and their data, shipped inside the package so that d-OPSD runs offline on a laptop.

Each folder under ``dopsd/bundled/`` holds a built-in-family model in ``save_pretrained`` form (``model/``), its
training prompts (``train``) and a held-out set never trained on (``heldout``). ``scripts/build_base_models.py``
regenerates them from scratch with fixed seeds. The settings that train them without --model are in
:mod:`dopsd.presets`.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from dopsd.errors import DopsdError

BUNDLED_PREFIX = "bundled:"  # `bundled:sudoku` names the bundled model (and, as data, its training/held-out set)
BUNDLED_TASKS = {"sudoku": ("train.csv", "heldout.csv"), "countdown": ("train.jsonl", "heldout.jsonl"),
                 "countdown-steps": ("train.jsonl", "heldout.jsonl")}


def bundle_folder(task: str) -> Path:
    if task not in BUNDLED_TASKS:
        raise DopsdError(f"no bundled model for task {task!r}; bundled: {', '.join(BUNDLED_TASKS)}")
    return Path(str(resources.files("dopsd.bundled") / task))


def bundled_model_path(task: str) -> str:
    """Folder of the bundled base model for ``task`` (load it with ``AutoModel.from_pretrained``: this registers the
    built-in family with the Auto classes)."""
    import dopsd.models  # noqa: F401
    folder = bundle_folder(task) / "model"
    if not (folder / "config.json").is_file():
        raise DopsdError(f"the bundled {task} model is missing from {folder}: run scripts/build_base_models.py")
    return str(folder)


def bundled_causal_path(task: str) -> str:
    """Folder of the bundled autoregressive model for ``task`` (OPDLM's teacher; ``AutoModelForCausalLM``)."""
    folder = bundle_folder(task) / "causal"
    if not (folder / "config.json").is_file():
        raise DopsdError(f"no bundled causal model for task {task!r} (OPDLM's default start; Sudoku has one): pass "
                         "--model with a causal LM")
    return str(folder)


def bundled_data_path(task: str, split: str) -> str:
    """``split`` is ``train`` or ``heldout``."""
    folder = bundle_folder(task)
    train, heldout = BUNDLED_TASKS[task]
    return str(folder / (train if split == "train" else heldout))
