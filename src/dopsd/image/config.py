"""Configs of the image methods (``dopsd image-opsd``, ``dopsd image-fm``): every default sized for a 2-core CPU."""

from __future__ import annotations

from dataclasses import dataclass

from dopsd.config import check_finite_fields, option
from dopsd.image.data import NEW_STYLES, STYLES
from dopsd.trainers.config import check, check_at_least_one


@dataclass
class ImageTrainingConfig:
    """What both image methods share: the model, the concept and its target images, optimisation, evaluation, run."""

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
    max_updates: int = option(200, "optimizer updates to run", "optimization")
    batch_size: int = option(32, "target prompts (D-OPSD: roll-outs; FM: target images) per update", "optimization")
    learning_rate: float = option(3e-5, "AdamW learning rate", "optimization")
    weight_decay: float = option(0.0, "AdamW weight decay", "optimization")
    max_grad_norm: float | None = option(1.0, "gradient clipping norm; null disables", "optimization")
    # ----- evaluation -----
    eval_every: int = option(50, "measure fidelity, retained accuracy and Frechet distance every N updates (and "
                             "before the first and after the last)", "evaluation")
    eval_samples_per_prompt: int = option(10, "samples per evaluation prompt (10 digits x 5 base styles, and 10 "
                                          "concept prompts)", "evaluation")
    eval_many_steps: int = option(32, "Euler steps of the many-step evaluation, made before and after training",
                                  "evaluation")
    eval_seed: int = option(0, "seed of the evaluation's noise (the same for every evaluation)", "evaluation")
    # ----- the run -----
    output_dir: str = option("runs/image", "where config.yaml, metrics.jsonl, checkpoints, samples.png and "
                             "summary.json go", "run")
    seed: int = option(0, "seeds roll-out noise, batches and noise levels", "run")
    save_every: int = option(100, "write a resumable checkpoint every N updates (and after the last)", "run")
    log_every: int = option(1, "write metrics every N updates", "run")
    resume_from: str | None = option(None, "a checkpoint folder to continue from, or 'latest' (newest in output_dir)",
                                     "run")
    overwrite_output_dir: bool = option(False, "start over in an output_dir that holds an earlier run, deleting its "
                                        "logs and checkpoints (otherwise such a folder is refused)", "run")
    progress: bool = option(True, "show progress bars", "run")
    report_to: list[str] = option(None, "where metrics go besides metrics.jsonl: tensorboard, none; comma-separated",
                                  "run", factory=lambda: ["tensorboard"])

    def __post_init__(self):
        check_finite_fields(self)
        check_at_least_one(self, "target_images", "steps", "max_updates", "batch_size", "eval_every",
                           "eval_samples_per_prompt", "eval_many_steps", "save_every", "log_every")
        check(self.concept in STYLES, "concept", self.concept, f"must be one of {', '.join(STYLES)}")
        check(0.0 <= self.retain_share < 1.0, "retain_share", self.retain_share, "must be in [0, 1)")
        check(self.learning_rate > 0, "learning_rate", self.learning_rate, "must be > 0")
        check(self.weight_decay >= 0, "weight_decay", self.weight_decay, "must be >= 0")
        check(self.max_grad_norm is None or self.max_grad_norm > 0, "max_grad_norm", self.max_grad_norm, "must be > 0")
        check(set(self.report_to) <= {"tensorboard", "none"}, "report_to", self.report_to,
              "must list tensorboard or none")


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
