"""The registry of training methods: the one place that names them.

The CLI builds one subcommand per entry (every config field a flag), the experiment runner trains runs by method
name, and :mod:`dopsd.presets` keeps each entry's CPU preset by its name. Adding a method is one file
(``trainers/<name>.py`` with its ``XConfig`` and ``XTrainer``) plus one entry here (and, for settings of its own on the
bundled models, one in ``dopsd.presets.METHOD_PRESETS``). Nothing heavy is imported until a trainer is asked for, so the
registry costs nothing to read.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

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
        bundled_model: Which bundled model it starts from: ``diffusion`` (the masked diffusion base model) or
            ``causal`` (the autoregressive model OPDLM converts and distils).
        modality: ``text`` (a masked diffusion LM on a task) or ``image`` (the in-context few-step image generator of
            :mod:`dopsd.image`): says which kind of no-argument preset it takes (:func:`dopsd.presets.bundled_preset`).
    """

    name: str
    command: str
    label: str
    summary: str
    description: str
    trainer: str
    bundled_model: str = "diffusion"
    modality: str = "text"

    def trainer_class(self):
        module, _, name = self.trainer.partition(":")
        return getattr(importlib.import_module(module), name)

    def config_class(self):
        return self.trainer_class().config_class


METHODS = {method.name: method for method in (
    Method(
        name="dopsd",
        command="train",
        label="d-OPSD",
        summary="train with d-OPSD (no arguments: the bundled Sudoku model on this CPU)",
        description="Run d-OPSD: the student samples its own denoising trajectory, the same model shown part of that "
        "trajectory's final answer is the teacher, and the student matches it on the positions each step decides.",
        trainer="dopsd.trainers.dopsd:DOPSDTrainer",
    ),
    Method(
        name="grpo",
        command="grpo",
        label="diffu-GRPO",
        summary="train with diffu-GRPO, the RLVR baseline (no arguments: the bundled Sudoku model on this CPU)",
        description="Run diffu-GRPO (d1): G completions per prompt, group-mean advantages, mu inner updates with "
        "random prompt masks, the clipped surrogate plus beta times the k3 KL to the initial policy.",
        trainer="dopsd.trainers.grpo:GRPOTrainer",
    ),
    Method(
        name="rft",
        command="rft",
        label="RFT",
        summary="rejection-sampling fine-tuning on the model's own solved pass@k trajectories (d-OPSD without teacher)",
        description="Run RFT / STaR: d-OPSD's pass@k rollouts and kept set, the masked-diffusion loss on the kept "
        "final responses, no teacher; the baseline that has exactly d-OPSD's information.",
        trainer="dopsd.trainers.rft:RFTTrainer",
    ),
    Method(
        name="sft",
        command="sft",
        label="SFT",
        summary="masked-diffusion supervised fine-tuning (LLaDA's objective)",
        description="Run masked-diffusion SFT on the task's reference completions: each response token masked with "
        "probability t ~ U(eps, 1), cross-entropy on the masked tokens weighted by 1/t.",
        trainer="dopsd.trainers.sft:SFTTrainer",
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
