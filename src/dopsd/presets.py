"""Every CPU preset: the settings a training command uses when neither ``--config`` nor ``--model`` names what to
train, sized for a 2-core laptop CPU.

A text method's preset (:func:`cpu_preset`) is, in order, the bundled model and data of its task, the task's sampler
lengths (:data:`TASK_PRESETS`), what every method shares (:data:`SHARED_PRESET`), the method's own settings
(:data:`METHOD_PRESETS`) and the rate the protocol chose for the method on that task where it differs
(:data:`TASK_METHOD_PRESETS`); later ones win. An image method's preset (:func:`image_preset`) is the bundled 4-step
generator and the method's own settings (the image configs' defaults are already CPU-sized).

Every value that is not the paper's default has a section in ``docs/presets.md``: the paper's value, ours, and the
measured reason with the committed runs it comes from. The protocol's arms (:mod:`dopsd.experiments.protocol`) write
their settings out in full and do not read these.
"""

from __future__ import annotations

from dopsd.bundled import bundle_folder, bundled_causal_path, bundled_data_path, bundled_model_path
from dopsd.image import bundled as image_bundled
from dopsd.methods import Method, get_method

# The sampler on each task's bundled model: responses in blocks of 4, steps left at the default (two tokens a step).
# docs/presets.md#cpu-sizing
TASK_PRESETS = {
    "sudoku": dict(gen_length=20, block_length=4),
    "countdown": dict(gen_length=16, block_length=4),
    "countdown-steps": dict(gen_length=24, block_length=4),  # answers of at most 22 characters, then end-of-text
}
# What every text method shares: full fine-tuning, no weight decay, evaluation on 1,000 held-out examples
# (docs/presets.md#cpu-sizing) and the update budget (docs/presets.md#update-budget).
SHARED_PRESET = dict(use_lora=False, weight_decay=0.0, max_updates=160, eval_every=20, save_every=40,
                     eval_batch_size=250)
# Each method's own settings, keyed by registry name (dopsd.methods); a method may also change the shared budget.
METHOD_PRESETS = {
    # docs/presets.md#d-opsd-rho, #d-opsd-score-threshold, #d-opsd-clip, #d-opsd-learning-rate
    "dopsd": dict(learning_rate=1.5e-4, clip=None, prompts_per_rollout=16, updates_per_rollout=1,
                  micro_batch_size=64, passk=8, teacher_retain_ratio=0.5, score_threshold=1.0),
    # docs/presets.md#diffu-grpo-rollouts-and-learning-rate
    "grpo": dict(learning_rate=9e-5, num_generations=6, prompts_per_rollout=16, inner_updates=1, micro_batch_size=48),
    # docs/presets.md#rft-rollouts-and-learning-rate
    "rft": dict(learning_rate=5e-5, prompts_per_rollout=16, passk=8, score_threshold=1.0),
    # docs/presets.md#sft-learning-rate
    "sft": dict(learning_rate=1.5e-4, batch_size=16),
    # docs/presets.md#opdlm
    "opdlm": dict(prompt_style="compact", learning_rate=1e-3, prompts_per_rollout=16, states_per_trajectory=4,
                  micro_batch_size=64, max_updates=200, eval_every=50, save_every=100),
}
# Where the protocol chose another learning rate on a task than the method's own preset (which is Sudoku's choice):
# docs/presets.md#d-opsd-learning-rate
TASK_METHOD_PRESETS = {("countdown-steps", "dopsd"): dict(learning_rate=5e-5)}  # protocol v2, two validation seeds

# What a method's --help says about its no-argument settings, by modality
NOTES = {
    "text": "Without --config or --model, the bundled base model of --task (sudoku, countdown or countdown-steps) is "
            "trained with settings sized for a laptop CPU.",
    "image": "Without --config or --model, the bundled 4-step digit generator learns --concept from --target-images "
             "target images with settings sized for a laptop CPU.",
}


def cpu_preset(task: str = "sudoku", method: str = "dopsd") -> dict:
    """The settings of a registered text method (``dopsd.methods``: ``dopsd`` for ``dopsd train``, ``grpo``,
    ``sft``...) when no model is given: the bundled model, its data, CPU-sized settings, then the method's own."""
    entry = get_method(method)
    bundle_folder(task)
    model = bundled_causal_path(task) if entry.bundled_model == "causal" else bundled_model_path(task)
    return {
        **dict(model=model, task=task, train_data=bundled_data_path(task, "train"),
               eval_data=bundled_data_path(task, "heldout"), output_dir=f"runs/{method}-{task}", mixed_precision="no",
               **TASK_PRESETS[task], **SHARED_PRESET),
        **METHOD_PRESETS.get(method, {}),
        **TASK_METHOD_PRESETS.get((task, method), {}),
    }


def image_preset(method: str) -> dict:
    """An image method's settings when no model is given: the bundled 4-step generator, then the method's own."""
    return {"model": image_bundled.bundled_image_path("model"), **METHOD_PRESETS.get(method, {})}


def bundled_preset(method: Method, values: dict) -> dict:
    """``method``'s settings when neither a config file nor --model names what to train (``values``: the command
    line's, whose --task picks a text method's bundled model; default sudoku)."""
    if method.modality == "image":
        return image_preset(method.name)
    return cpu_preset(str(values.get("task", "sudoku")), method.name)


def preset_note(method: Method) -> str:
    return NOTES[method.modality]
