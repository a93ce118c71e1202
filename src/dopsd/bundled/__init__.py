"""Small base models and their data, shipped inside the package so that d-OPSD runs offline on a laptop.

Each folder under ``dopsd/bundled/`` holds a built-in-family model in ``save_pretrained`` form (``model/``), its
training prompts (``train``) and a held-out set never trained on (``heldout``). ``scripts/build_base_models.py``
regenerates them from scratch with fixed seeds.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from dopsd.errors import DopsdError

BUNDLED_TASKS = {"sudoku": ("train.csv", "heldout.csv")}  # Countdown: not built yet

# d-OPSD settings sized for a 2-core CPU: a few minutes for the whole default run, evaluation included.
CPU_PRESETS = {
    "sudoku": dict(
        gen_length=20, block_length=4, steps=10, use_lora=False, learning_rate=2e-5, weight_decay=0.0,
        prompts_per_rollout=16, updates_per_rollout=1, micro_batch_size=64, passk=8, max_updates=60,
        eval_every=10, save_every=30, eval_batch_size=100,
    ),
}

# diffu-GRPO (`dopsd grpo`) on the same model and sampler settings: 8 puzzles x 6 samples a rollout, 8 inner updates
# (d1's mu for Sudoku), all 48 completions in one forward pass. lr 1e-5 / 3e-5 / 1e-4 all raised held-out accuracy
# (0.232 -> 0.283 / 0.290 / 0.299 in 64 updates, within noise of each other); 3e-5 rose steadily and scored best by cell.
GRPO_CPU_PRESETS = {
    "sudoku": dict(
        gen_length=20, block_length=4, steps=10, use_lora=False, learning_rate=3e-5, weight_decay=0.0,
        num_generations=6, prompts_per_rollout=8, inner_updates=8, micro_batch_size=48, max_updates=64,
        eval_every=16, save_every=32, eval_batch_size=100,
    ),
}
PRESETS = {"dopsd": CPU_PRESETS, "grpo": GRPO_CPU_PRESETS}


def bundle_folder(task: str) -> Path:
    if task not in BUNDLED_TASKS:
        raise DopsdError(f"no bundled model for task {task!r}; bundled: {', '.join(BUNDLED_TASKS)}")
    return Path(str(resources.files("dopsd.bundled") / task))


def bundled_model_path(task: str) -> str:
    """Folder of the bundled base model for ``task`` (load it with ``AutoModel.from_pretrained``)."""
    folder = bundle_folder(task) / "model"
    if not (folder / "config.json").is_file():
        raise DopsdError(f"the bundled {task} model is missing from {folder}: run scripts/build_base_models.py")
    return str(folder)


def bundled_data_path(task: str, split: str) -> str:
    """``split`` is ``train`` or ``heldout``."""
    folder = bundle_folder(task)
    train, heldout = BUNDLED_TASKS[task]
    return str(folder / (train if split == "train" else heldout))


def cpu_preset(task: str = "sudoku", method: str = "dopsd") -> dict:
    """The defaults of ``dopsd train`` (``method="dopsd"``) or ``dopsd grpo`` (``"grpo"``) when no model is given:
    the bundled model, its data, CPU-sized settings."""
    bundle_folder(task)
    return dict(
        model=bundled_model_path(task), task=task, train_data=bundled_data_path(task, "train"),
        eval_data=bundled_data_path(task, "heldout"), output_dir=f"runs/{method}-{task}", mixed_precision="no",
        **PRESETS[method][task],
    )
