"""Small base models and their data, shipped inside the package so that d-OPSD runs offline on a laptop.

Each folder under ``dopsd/bundled/`` holds a built-in-family model in ``save_pretrained`` form (``model/``), its
training prompts (``train``) and a held-out set never trained on (``heldout``). ``scripts/build_base_models.py``
regenerates them from scratch with fixed seeds.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from dopsd.errors import DopsdError

BUNDLED_PREFIX = "bundled:"  # `bundled:sudoku` names the bundled model (and, as data, its training/held-out set)
BUNDLED_TASKS = {"sudoku": ("train.csv", "heldout.csv"), "countdown": ("train.jsonl", "heldout.jsonl"),
                 "countdown-steps": ("train.jsonl", "heldout.jsonl")}

# What every method shares on a bundled model, sized for a 2-core CPU: the sampler (responses in blocks of 4; steps
# left at the default, two tokens a step), full fine-tuning, the update budget and evaluation on 1,000 held-out examples.
TASK_PRESETS = {
    "sudoku": dict(gen_length=20, block_length=4),
    "countdown": dict(gen_length=16, block_length=4),
    "countdown-steps": dict(gen_length=24, block_length=4),  # answers of at most 22 characters, then end-of-text
}
# 160 updates: the protocol's budget (docs/results.md); at 80 the best evaluations sat at the budget's end.
SHARED_PRESET = dict(use_lora=False, weight_decay=0.0, max_updates=160, eval_every=20, save_every=40,
                     eval_batch_size=250)
# Where the protocol chose another learning rate on a task than the method's own preset (which is Sudoku's choice):
# d-OPSD on Countdown-steps, 1.67e-5 (validation 0.390; 1.5e-4 tied at 0.390 and 5e-5 reached 0.380; a tie goes to
# the smaller rate). RFT, diffu-GRPO and SFT chose their presets' rates on both tasks.
TASK_METHOD_PRESETS = {("countdown-steps", "dopsd"): dict(learning_rate=1.67e-5)}

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


def cpu_preset(task: str = "sudoku", method: str = "dopsd") -> dict:
    """The settings of a registered method (``dopsd.methods``: ``dopsd`` for ``dopsd train``, ``grpo``, ``sft``...)
    when no model is given: the bundled model, its data, CPU-sized settings, then the method's own preset."""
    from dopsd.methods import get_method

    entry = get_method(method)
    method_preset = entry.cpu_preset
    bundle_folder(task)
    model = bundled_causal_path(task) if entry.bundled_model == "causal" else bundled_model_path(task)
    return {  # a method's preset may also change the shared update budget (OPDLM's does)
        **dict(model=model, task=task, train_data=bundled_data_path(task, "train"),
               eval_data=bundled_data_path(task, "heldout"), output_dir=f"runs/{method}-{task}", mixed_precision="no",
               **TASK_PRESETS[task], **SHARED_PRESET),
        **method_preset,
        **TASK_METHOD_PRESETS.get((task, method), {}),
    }


def cpu_preset_for(method, values: dict) -> dict:
    """A text method's no-argument preset: :func:`cpu_preset` of the command line's --task (default sudoku)."""
    return cpu_preset(str(values.get("task", "sudoku")), method.name)
