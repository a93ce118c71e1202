"""The registry of training methods: the one place that names them.

The CLI builds one subcommand per entry (every config field a flag), the experiment runner trains runs by method
name, and the bundled CPU presets are each entry's ``cpu_preset`` on top of the task's. Adding a method is one file
(``trainers/<name>.py`` with its ``XConfig`` and ``XTrainer``) plus one entry here. Nothing heavy is imported until a
trainer is asked for, so the registry costs nothing to read.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field

from dopsd.errors import DopsdError


@dataclass(frozen=True)
class Method:
    """One training method.

    Args:
        name: Registry key, used in run folders and by the experiment runner.
        command: The ``dopsd`` subcommand that runs it.
        label: How tables and closing summaries name it.
        summary: One line for ``dopsd --help``.
        description: The subcommand's ``--help`` paragraph.
        trainer: ``module:Class`` of its trainer; the trainer's ``config_class`` is its config.
        cpu_preset: Its settings on a bundled base model (on top of ``dopsd.bundled``'s per-task and shared ones),
            with the reason for each one that is not the method's default.
        bundled_model: Which bundled model it starts from: ``diffusion`` (the masked diffusion base model) or
            ``causal`` (the autoregressive model OPDLM converts and distils).
        modality: ``text`` (a masked diffusion LM on a task) or ``image`` (the in-context few-step image generator of
            :mod:`dopsd.image`): says where its no-argument preset comes from (:data:`MODALITIES`).
    """

    name: str
    command: str
    label: str
    summary: str
    description: str
    trainer: str
    cpu_preset: dict = field(default_factory=dict)
    bundled_model: str = "diffusion"
    modality: str = "text"

    def trainer_class(self):
        module, _, name = self.trainer.partition(":")
        return getattr(importlib.import_module(module), name)

    def config_class(self):
        return self.trainer_class().config_class

    def bundled_preset(self, values: dict) -> dict:
        """Its settings when neither a config file nor --model names what to train (``values``: the command line's)."""
        module, _, name = MODALITIES[self.modality][0].partition(":")
        return getattr(importlib.import_module(module), name)(self, values)

    @property
    def bundled_note(self) -> str:
        return MODALITIES[self.modality][1]


BUNDLED_NOTE = ("Without --config or --model, the bundled base model of --task (sudoku, countdown or countdown-steps) "
                "is trained with settings sized for a laptop CPU.")
# modality -> (``module:function(method, values)`` giving its no-argument preset, what --help says about it)
MODALITIES = {
    "text": ("dopsd.bundled:cpu_preset_for", BUNDLED_NOTE),
    "image": ("dopsd.image.bundled:cpu_preset_for", "Without --config or --model, the bundled 4-step digit generator "
              "learns --concept from --target-images target images with settings sized for a laptop CPU."),
}

METHODS = {method.name: method for method in (
    Method(
        name="dopsd",
        command="train",
        label="d-OPSD",
        summary="train with d-OPSD (no arguments: the bundled Sudoku model on this CPU)",
        description="Run d-OPSD: the student samples its own denoising trajectory, the same model shown part of that "
        "trajectory's final answer is the teacher, and the student matches it on the positions each step decides.",
        trainer="dopsd.trainers.dopsd:DOPSDTrainer",
        # rho 0.5: at 0.25 the 1M-parameter model's self-teacher is barely better than its own pass@1 (`dopsd
        # experiment toy`); score threshold 1.0 (Sudoku's own is 0.25): only solved trajectories are distilled.
        # No pointwise clip and lr 1.5e-4: the protocol's choice (`dopsd experiment protocol`, docs/results.md): on 300
        # validation puzzles no clip reached 0.350 at 5e-5 against 0.333 with the paper's clip 0.05, whose gradient
        # kept a cosine of 0.33 with the unclipped one; without the clip 1.5e-4 reached 0.363 (5e-5: 0.350).
        cpu_preset=dict(learning_rate=1.5e-4, clip=None, prompts_per_rollout=16, updates_per_rollout=1,
                        micro_batch_size=64, passk=8, teacher_retain_ratio=0.5, score_threshold=1.0),
    ),
    Method(
        name="grpo",
        command="grpo",
        label="diffu-GRPO",
        summary="train with diffu-GRPO, the RLVR baseline (no arguments: the bundled Sudoku model on this CPU)",
        description="Run diffu-GRPO (d1): G completions per prompt, group-mean advantages, mu inner updates with "
        "random prompt masks, the clipped surrogate plus beta times the k3 KL to the initial policy.",
        trainer="dopsd.trainers.grpo:GRPOTrainer",
        # The protocol's row (docs/results.md): d-OPSD's rollouts per update (16 prompts x 6 samples, all 96
        # completions in two forward passes) and one update per rollout, at the rate its sweep chose (9e-5: 0.350 on
        # validation, against 0.320 at 3e-5). d1's schedule reuses a rollout for 8 updates: --prompts-per-rollout 8
        # --inner-updates 8.
        cpu_preset=dict(learning_rate=9e-5, num_generations=6, prompts_per_rollout=16, inner_updates=1,
                        micro_batch_size=48),
    ),
    Method(
        name="rft",
        command="rft",
        label="RFT",
        summary="rejection-sampling fine-tuning on the model's own solved pass@k trajectories (d-OPSD without teacher)",
        description="Run RFT / STaR: d-OPSD's pass@k rollouts and kept set, the masked-diffusion loss on the kept "
        "final responses, no teacher; the baseline that has exactly d-OPSD's information.",
        trainer="dopsd.trainers.rft:RFTTrainer",
        # d-OPSD's preset (prompts, pass@k, solved trajectories only), so that the two differ only in the loss; lr
        # 5e-5, the protocol's choice (0.350 on validation; 1.67e-5: 0.343, 1.5e-4: 0.330).
        cpu_preset=dict(learning_rate=5e-5, prompts_per_rollout=16, passk=8, score_threshold=1.0),
    ),
    Method(
        name="sft",
        command="sft",
        label="SFT",
        summary="masked-diffusion supervised fine-tuning (LLaDA's objective)",
        description="Run masked-diffusion SFT on the task's reference completions: each response token masked with "
        "probability t ~ U(eps, 1), cross-entropy on the masked tokens weighted by 1/t.",
        trainer="dopsd.trainers.sft:SFTTrainer",
        # The same number of prompts per update as d-OPSD's preset, on the reference solutions; lr 1.5e-4, the
        # protocol's choice (0.413 on validation; 5e-5: 0.410, 1.67e-5: 0.357).
        cpu_preset=dict(learning_rate=1.5e-4, batch_size=16),
    ),
    Method(
        name="opdlm",
        command="opdlm",
        label="OPDLM",
        summary="turn a causal LM into a diffusion LM by on-policy distillation from its frozen self (no arguments: "
        "the bundled causal Sudoku model on this CPU)",
        description="Run OPDLM: the converted causal LM (the student) samples its own responses by confidence-based "
        "block decoding; one pass of the frozen original over prompt + response gives each position's next-token "
        "target (read one position to the left), matched at the masked positions of the recorded states.",
        trainer="dopsd.trainers.opdlm:OPDLMTrainer",
        # The bundled models read compact prompts; 16 prompts a rollout as d-OPSD's preset (a block student trains one
        # stitched row per trajectory, a full-attention one 4 of each trajectory's ~10 states), all in one update and
        # one pass. lr 1e-3: chosen for the full-attention student (after 200 updates held-out accuracy on 200 puzzles
        # was 0.25 at 1e-3, 0.105 at 3e-3; 0.15 vs 0.145 at 3e-4 and 1e-3 after 100), kept for the block student,
        # which reaches 0.48 with it (docs/results.md, OPDLM). 200 updates fit 10 minutes.
        cpu_preset=dict(prompt_style="compact", learning_rate=1e-3, prompts_per_rollout=16, states_per_trajectory=4,
                        micro_batch_size=64, max_updates=200, eval_every=50, save_every=100),
        bundled_model="causal",
    ),
    Method(
        name="image-opsd",
        command="image-opsd",
        label="D-OPSD (image)",
        summary="teach a few-step image generator a new concept by on-policy self-distillation (no arguments: the "
        "bundled 4-step digit generator learns 'framed' on this CPU)",
        description="Run D-OPSD for a few-step image generator: the student rolls out its own 4-step samples from the "
        "text alone, the EMA teacher (the same model) sees the text plus a target image of the concept in context, "
        "and the student's velocities are matched to the teacher's on the student's own roll-out states.",
        trainer="dopsd.image.opsd:ImageOPSDTrainer",
        modality="image",
    ),
    Method(
        name="image-fm",
        command="image-fm",
        label="FM fine-tuning (image)",
        summary="the baseline of image-opsd: plain flow-matching fine-tuning on the same target images",
        description="Run flow-matching fine-tuning of a few-step image generator on the target images of a new "
        "concept and their prompts: the usual objective, as many updates and images as image-opsd's.",
        trainer="dopsd.image.fm:ImageFMTrainer",
        modality="image",
    ),
)}


def get_method(name: str) -> Method:
    if name not in METHODS:
        raise DopsdError(f"unknown method {name!r}: choose one of {', '.join(METHODS)}")
    return METHODS[name]
