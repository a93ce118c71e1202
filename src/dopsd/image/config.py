"""Configs of the image methods (``dopsd image-opsd``, ``dopsd image-fm``): every default sized for a 2-core CPU."""

from __future__ import annotations

from dataclasses import dataclass

from dopsd.config import option
from dopsd.image.data import NEW_STYLES, STYLES
from dopsd.trainers.config import RunConfig, check, check_at_least_one


@dataclass
class ImageTrainingConfig(RunConfig):
    """What both image methods share: the model, the concept and its target images, and the run's fields
    (:class:`~dopsd.trainers.config.RunConfig`, with defaults sized for images)."""

    # ----- model -----
    model: str | None = option(None, "save_pretrained folder of an in-context image model; null: the bundled 4-step "
                               "digit generator", "model")
    classifier: str | None = option(None, "save_pretrained folder of the judge (digit and style classifier); null: "
                                    "the bundled one", "model")
    # ----- data -----
    concept: str = option("framed", f"the new style to learn, one held out of base training: "
                          f"{' or '.join(NEW_STYLES)} (a base style also works)", "data")
    target_images: int = option(10, "how many target images of the concept training sees (digits as even as can "
                                "be)", "data")
    target_seed: int = option(0, "which training images of the concept are the target images", "data")
    retain_share: float = option(0.5, "share of each batch drawn from the base styles' training images and prompts "
                                 "(prior preservation, as DreamBooth's; the same draws for both methods): D-OPSD's "
                                 "teacher sees such an image in context, FM regresses on it; 0: target images only",
                                 "data")
    # ----- sampling -----
    steps: int = option(4, "Euler steps of the few-step sampler (D-OPSD's roll-outs and the main evaluation)",
                        "rollout")
    # ----- optimisation -----
    batch_size: int = option(32, "target prompts (D-OPSD: roll-outs; FM: target images) per update", "optimization")
    max_updates: int = 200
    learning_rate: float = 3e-5
    weight_decay: float = 0.0
    max_grad_norm: float | None = 1.0
    # ----- evaluation -----
    eval_every: int = option(50, "measure fidelity, retained accuracy and Frechet distance every N updates (and "
                             "before the first and after the last)", "evaluation")
    eval_samples_per_prompt: int = option(10, "samples per evaluation prompt (10 digits x 5 base styles, and 10 "
                                          "concept prompts)", "evaluation")
    eval_many_steps: int = option(32, "Euler steps of the many-step evaluation, made before and after training",
                                  "evaluation")
    eval_seed: int = option(0, "seed of the evaluation's noise (the same for every evaluation)", "evaluation")
    # ----- the run -----
    output_dir: str = "runs/image"
    save_every: int = 100

    def __post_init__(self):
        super().__post_init__()
        check_at_least_one(self, "target_images", "steps", "batch_size", "eval_samples_per_prompt", "eval_many_steps")
        check(self.concept in STYLES, "concept", self.concept, f"must be one of {', '.join(STYLES)}")
        check(0.0 <= self.retain_share < 1.0, "retain_share", self.retain_share, "must be in [0, 1)")


@dataclass
class ImageOPSDConfig(ImageTrainingConfig):
    """D-OPSD for a few-step image generator: the student rolls out from the text, the EMA teacher sees the text and a
    target image, and the student's velocities are matched to the teacher's on the student's own states."""

    output_dir: str = "runs/image-opsd"
    retain_context: bool = option(False, "on prior-preservation rows the teacher also sees the row's base-style "
                                  "image in context (false: the text alone there, so those rows anchor the student "
                                  "to the EMA teacher's own few-step predictions)", "method")
    ema_decay: float = option(0.99, "the teacher is an EMA of the student: teacher = decay x teacher + (1 - decay) x "
                              "student after each update (1.0: the initial model, frozen)", "method")

    def __post_init__(self):
        super().__post_init__()
        check(0.0 <= self.ema_decay <= 1.0, "ema_decay", self.ema_decay, "must be in [0, 1]")


@dataclass
class ImageFMConfig(ImageTrainingConfig):
    """The usual objective: flow matching on the target images and their prompts (no roll-outs, no teacher)."""

    output_dir: str = "runs/image-fm"
