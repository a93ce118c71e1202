"""What both image methods share; a method subclasses :class:`ImageTrainer` and implements :meth:`loss`.

The run itself is :class:`~dopsd.trainers.run.TrainingRun`'s, as for the language trainers: a config dataclass
(extending :class:`~dopsd.trainers.config.RunConfig`), seeded random streams saved in every checkpoint, a learning
rate schedule with warmup, ``.partial`` checkpoint folders with ``checkpoint.json``, resume from ``latest``
bit-exactly, an earlier run never silently overwritten, the best weights (by concept fidelity) in ``best/``, metrics
in ``metrics.jsonl`` (and TensorBoard, W&B), a ``training.png`` of the curves. This class adds the image parts:
the model and its judge, the batches of target and base-style images, ``samples.png`` (the concept and the base
styles, before and after) and ``summary.json`` with the metrics before and after at the few-step and many-step
settings. One process, on the CPU.
"""

from __future__ import annotations

from pathlib import Path

import torch

from dopsd.image.bundled import bundled_image_path
from dopsd.image.classifier import load_classifier
from dopsd.image.config import ImageTrainingConfig
from dopsd.image.data import BASE_STYLES, digit_set, target_images
from dopsd.image.grid import panel_styles, sample_panel, save_grid
from dopsd.image.metrics import Judge, evaluate_generator
from dopsd.image.model import load_image_model
from dopsd.trainers import checkpoint as ckpt
from dopsd.trainers.run import TrainingRun

EVAL_CURVES = (("eval_fidelity", "concept fidelity (4 steps)"), ("eval_retained_accuracy", "retained accuracy"))


class ImageTrainer(TrainingRun):
    """The image parts of a run; a method implements :meth:`loss` (its loss on :meth:`next_batch`'s batch)."""

    config_class = ImageTrainingConfig
    best_metric = "fidelity"
    eval_curves = EVAL_CURVES
    progress_keys = ("loss", "eval_fidelity", "eval_retained_accuracy")
    eval_joins_training_row = True  # the rows image runs have always logged
    own_run_files = ("samples.png",)

    def __init__(self, *, config: ImageTrainingConfig | None = None, model=None, classifier=None):
        """``model``: the image model to train, ``classifier``: the judge; null: ``config``'s (or the bundled)."""
        super().__init__(config=config, model=model, classifier=classifier)

    def build(self, *, model=None, classifier=None) -> torch.nn.Module:
        config = self.config
        model = model if model is not None else load_image_model(config.model or bundled_image_path("model"))
        model.train()
        self.classifier = classifier
        self.targets = target_images(config.concept, config.target_images, config.target_seed)
        self.target_prompts = self.targets.prompt_ids
        self.retained = digit_set("train", BASE_STYLES) if config.retain_share > 0 else None
        self.batch_stream = self.generator(0)
        return model

    @property
    def subject(self) -> str:
        return self.config.concept

    def logs_learning_rate(self) -> bool:
        """Only a rate that changes (warmup, a schedule): image rows never gave the constant one."""
        return self.config.warmup_steps > 0 or self.config.lr_scheduler != "constant"

    # ----- the method -----
    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """This update's ``(images, prompt ids, is_target)``: target images drawn with replacement from the handful,
        a ``retain_share`` of the rows replaced by base-style training images (the same draws for both methods)."""
        size, stream = self.config.batch_size, self.batch_stream
        rows = torch.randint(len(self.targets), (size,), generator=stream)
        images, prompts = self.targets.images[rows], self.target_prompts[rows]
        retain = torch.rand(size, generator=stream) < self.config.retain_share
        if self.retained is not None:
            others = torch.randint(len(self.retained), (size,), generator=stream)
            images = torch.where(retain[:, None, None, None], self.retained.images[others], images)
            prompts = torch.where(retain[:, None], self.retained.prompt_ids[others], prompts)
        return images, prompts, ~retain

    def loss(self) -> tuple[torch.Tensor, dict]:
        raise NotImplementedError

    def compute_update(self) -> dict:
        loss, metrics = self.loss()
        loss.backward()
        return {**metrics, "loss": float(loss.detach())}

    # ----- evaluation -----
    @property
    def judge(self) -> Judge:
        if getattr(self, "_judge", None) is None:
            classifier = self.classifier or load_classifier(self.config.classifier or bundled_image_path("classifier"))
            self._judge = Judge(classifier)
        return self._judge

    def evaluate(self, steps: int | None = None) -> dict:
        config = self.config
        return evaluate_generator(self.model, self.judge, config.concept, steps or config.steps,
                                  samples_per_prompt=config.eval_samples_per_prompt, seed=config.eval_seed)

    def evaluate_before_training(self) -> None:
        """The few-step evaluation (the run's first row), the many-step one and the samples, before any update."""
        self.before = {"few_step": self.record_eval(self.evaluate()),
                       "many_step": self.evaluate(self.config.eval_many_steps), "samples": self.samples()}

    # ----- checkpoints -----
    def save_model(self, folder: Path) -> None:
        self.model.save_pretrained(folder)

    def load_model(self, checkpoint: Path) -> None:
        from safetensors.torch import load_file

        self.model.load_state_dict(load_file(checkpoint / "model" / "diffusion_pytorch_model.safetensors"))

    def run_state(self) -> dict:
        return {"before": getattr(self, "before", None)}

    def load_run_state(self, state: dict) -> None:
        self.before = state["before"]

    # ----- the loop -----
    def samples(self) -> torch.Tensor:
        return sample_panel(self.model, self.config.concept, self.config.steps, self.config.eval_seed)

    def summary(self, seconds: float) -> dict:
        config = self.config
        after_many = self.evaluate(config.eval_many_steps)
        grid = save_grid({"before": self.before["samples"], "after": self.samples()}, self.output_dir / "samples.png",
                         title=f"{type(self).__name__}: '{config.concept}' and base styles, {config.steps} steps",
                         row_labels=list(panel_styles(config.concept)))
        return {
            "trainer": type(self).__name__,
            "concept": config.concept,
            "updates": self.update,
            "target_images": config.target_images,
            "before": {"few_step": self.history[0], "many_step": self.before["many_step"]},
            "after": {"few_step": self.history[-1], "many_step": after_many},
            **self.best_fields(),
            "wall_seconds": seconds,
            "output_dir": str(self.output_dir),
            "final_checkpoint": str(ckpt.checkpoint_folder(self.output_dir, self.update) / "model"),
            "samples": str(grid),
        }

    @staticmethod
    def describe(label: str, summary: dict) -> str:
        """The closing paragraph of ``dopsd image-opsd`` / ``image-fm``: before -> after at few and many steps."""
        parts = []
        for name in ("few_step", "many_step"):
            before, after = summary["before"][name], summary["after"][name]
            parts.append(f"at {after['steps']} steps: fidelity {before['fidelity']:.3f} -> {after['fidelity']:.3f}, "
                         f"retained accuracy {before['retained_accuracy']:.3f} -> {after['retained_accuracy']:.3f}, "
                         f"Frechet distance {before['frechet']:.2f} -> {after['frechet']:.2f}")
        return (f"{label} learning '{summary['concept']}' from {summary['target_images']} target images, "
                f"{summary['updates']} updates in {summary['wall_seconds'] / 60:.1f} min; " + "; ".join(parts)
                + f". Output in {summary['output_dir']} (summary.json, metrics.jsonl, training.png, samples.png, "
                "checkpoints).")
