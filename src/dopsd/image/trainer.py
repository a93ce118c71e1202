"""The loop both image methods share; a method subclasses :class:`ImageTrainer` and implements :meth:`loss`.

Like the language trainers (and with their checkpoint, metrics and plot modules): a config dataclass, seeded random
streams saved in every checkpoint, ``.partial`` checkpoint folders with ``checkpoint.json``, resume from ``latest``
bit-exactly, an earlier run never silently overwritten, metrics in ``metrics.jsonl`` (and TensorBoard), a
``training.png`` of the curves, ``samples.png`` (the concept and the base styles, before and after) and
``summary.json`` with the metrics before and after at the few-step and many-step settings.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from dopsd.config import save_config
from dopsd.errors import DopsdError
from dopsd.image.bundled import bundled_image_path
from dopsd.image.classifier import load_classifier
from dopsd.image.config import ImageTrainingConfig
from dopsd.image.data import BASE_STYLES, digit_set, target_images
from dopsd.image.grid import panel_styles, sample_panel, save_grid
from dopsd.image.metrics import Judge, evaluate_generator
from dopsd.image.model import load_image_model
from dopsd.paths import check_writable_folder
from dopsd.trainers import checkpoint as ckpt
from dopsd.trainers.lock import check_folder_free, hold_run_folder
from dopsd.trainers.metrics import MetricsLogger
from dopsd.trainers.plot import plot_run

EVAL_CURVES = (("eval_fidelity", "concept fidelity (4 steps)"), ("eval_retained_accuracy", "retained accuracy"))


class ImageTrainer:
    config_class = ImageTrainingConfig
    progress_keys = ("loss", "eval_fidelity", "eval_retained_accuracy")

    def __init__(self, config: ImageTrainingConfig | None = None, model=None, classifier=None):
        self.config = config = config or self.config_class()
        self.output_dir = Path(config.output_dir)
        check_writable_folder(self.output_dir, "output_dir")
        check_folder_free(self.output_dir)
        self.resume_folder = ckpt.resolve_resume(self.output_dir, config.resume_from)
        if self.resume_folder is not None:
            ckpt.check_resumable(self.resume_folder, type(self).__name__, 1)
            ckpt.check_not_finished(self.resume_folder, config.max_updates)
        self.continues_own_run = (self.resume_folder is not None
                                  and self.resume_folder.resolve().parent == self.output_dir.resolve())
        if not self.continues_own_run and not config.overwrite_output_dir:
            found = ckpt.run_files(self.output_dir)
            if found:
                latest = ckpt.latest_checkpoint(self.output_dir)
                resume = f"--resume-from latest to continue it from {latest.name}, " if latest else ""
                raise DopsdError(f"{self.output_dir} already holds a run ({', '.join(found[:4])}): pass {resume}"
                                 "--overwrite-output-dir to start over, or another --output-dir")
        torch.manual_seed(config.seed)
        self.model = model if model is not None else load_image_model(config.model or bundled_image_path("model"))
        self.model.train()
        self.classifier = classifier
        self.targets = target_images(config.concept, config.target_images, config.target_seed)
        self.target_prompts = self.targets.prompt_ids
        self.retained = digit_set("train", BASE_STYLES) if config.retain_share > 0 else None
        self.optimizer = torch.optim.AdamW([p for p in self.model.parameters() if p.requires_grad],
                                           lr=config.learning_rate, weight_decay=config.weight_decay)
        self.batch_stream = self.generator(0)
        self.update = 0
        self.history: list[dict] = []
        self.seconds_before = 0.0
        self.clock = time.perf_counter()

    # ----- random streams, as the language trainers' -----
    def generator(self, salt: int) -> torch.Generator:
        """A seeded stream of the method's own (run seed and ``salt``), saved in checkpoints and restored on resume.
        Create streams in ``__init__``, always in the same order."""
        if salt in getattr(self, "generator_salts", []):
            raise ValueError(f"a random stream with salt {salt} already exists")
        entropy = np.random.SeedSequence([self.config.seed, salt])
        stream = torch.Generator().manual_seed(int(entropy.generate_state(1, np.uint64)[0] >> 1))
        self.generator_salts = [*getattr(self, "generator_salts", []), salt]
        self.generators = [*getattr(self, "generators", []), stream]
        return stream

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

    def after_optimizer_step(self) -> None:
        """Hook for state that follows the weights (an EMA teacher)."""

    def extra_state(self, folder: Path) -> None:
        """Saves method state besides the student (the teacher) into a checkpoint folder."""

    def load_extra_state(self, folder: Path) -> None:
        pass

    def step(self) -> dict:
        began = time.perf_counter()
        loss, metrics = self.loss()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.config.max_grad_norm is not None:
            metrics["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(self.model.parameters(),
                                                                        self.config.max_grad_norm))
        self.optimizer.step()
        self.after_optimizer_step()
        self.update += 1
        metrics["loss"] = float(loss.detach())
        metrics["update_seconds"] = time.perf_counter() - began
        return metrics

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

    def record_eval(self, result: dict) -> dict:
        entry = {"update": self.update, **result}
        self.history.append(entry)
        self.logger.log(self.update, {f"eval_{k}": v for k, v in result.items()})
        return entry

    # ----- checkpoints -----
    def elapsed(self) -> float:
        return self.seconds_before + time.perf_counter() - self.clock

    def save_checkpoint(self) -> Path:
        folder = ckpt.checkpoint_folder(self.output_dir, self.update)
        partial = ckpt.begin(folder)
        self.model.save_pretrained(partial / "model")
        self.extra_state(partial)
        torch.save({"wall_seconds": self.elapsed(), "update": self.update, "optimizer": self.optimizer.state_dict(),
                    "history": self.history, "num_processes": 1, "before": getattr(self, "before", None)},
                   partial / "trainer_state.pt")
        torch.save({"rng": ckpt.rng_state(), "method": {"generators": [g.get_state() for g in self.generators]}},
                   partial / "rng_rank0.pt")
        ckpt.write_description(partial, type(self).__name__, self.update, 1)
        ckpt.commit(partial, folder)
        return folder

    def load_checkpoint(self, folder: Path) -> None:
        from safetensors.torch import load_file

        self.model.load_state_dict(load_file(folder / "model" / "diffusion_pytorch_model.safetensors"))
        self.load_extra_state(folder)
        state = ckpt.load_state(folder, 0)
        self.optimizer.load_state_dict(state["optimizer"])
        self.update, self.history, self.before = state["update"], state["history"], state["before"]
        self.seconds_before = state["wall_seconds"]
        ckpt.set_rng_state(state["rank"]["rng"])
        for stream, saved in zip(self.generators, state["rank"]["method"]["generators"], strict=True):
            stream.set_state(saved)

    # ----- the loop -----
    def samples(self) -> torch.Tensor:
        return sample_panel(self.model, self.config.concept, self.config.steps, self.config.eval_seed)

    def train(self) -> dict:
        """Runs to ``max_updates`` and returns the summary, holding the run folder's lock (dopsd.trainers.lock)."""
        with hold_run_folder(self.output_dir):
            return self.run_loop()

    def run_loop(self) -> dict:
        config = self.config
        self.clock = time.perf_counter()
        if not self.continues_own_run and config.overwrite_output_dir:
            ckpt.clear_run(self.output_dir)
            for stale in ("samples.png",):
                (self.output_dir / stale).unlink(missing_ok=True)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        save_config(config, self.output_dir / "config.yaml")
        self.logger = MetricsLogger(self.output_dir, report_to=config.report_to, run_config=dataclasses.asdict(config))
        if self.resume_folder is not None:
            self.load_checkpoint(self.resume_folder)
            self.logger.truncate_after(self.update)
        else:
            self.before = {"few_step": self.record_eval(self.evaluate()),
                           "many_step": self.evaluate(config.eval_many_steps), "samples": self.samples()}
        bar = tqdm(total=config.max_updates, initial=self.update, desc=f"{type(self).__name__} {config.concept}",
                   disable=not config.progress, unit="upd")
        while self.update < config.max_updates:
            metrics = self.step()
            last = self.update == config.max_updates
            if self.update % config.eval_every == 0 or last:
                metrics.update({f"eval_{k}": v for k, v in self.evaluate().items()})
                self.history.append({"update": self.update, **{k[5:]: v for k, v in metrics.items()
                                                               if k.startswith("eval_")}})
            if self.update % config.log_every == 0 or "eval_fidelity" in metrics:
                self.logger.log(self.update, metrics)
            if self.update % config.save_every == 0 or last:
                self.save_checkpoint()
            bar.update(1)
            bar.set_postfix({k: f"{v:.3g}" for k, v in metrics.items() if k in self.progress_keys})
        bar.close()
        self.logger.close()
        after_many = self.evaluate(config.eval_many_steps)
        grid = save_grid({"before": self.before["samples"], "after": self.samples()}, self.output_dir / "samples.png",
                         title=f"{type(self).__name__}: '{config.concept}' and base styles, {config.steps} steps",
                         row_labels=list(panel_styles(config.concept)))
        summary = {
            "trainer": type(self).__name__,
            "concept": config.concept,
            "updates": self.update,
            "target_images": config.target_images,
            "before": {"few_step": self.history[0], "many_step": self.before["many_step"]},
            "after": {"few_step": self.history[-1], "many_step": after_many},
            "wall_seconds": self.elapsed(),
            "output_dir": str(self.output_dir),
            "final_checkpoint": str(ckpt.checkpoint_folder(self.output_dir, self.update) / "model"),
            "samples": str(grid),
        }
        summary["plot"] = str(plot_run(self.output_dir, f"{type(self).__name__}: {config.concept}", EVAL_CURVES))
        (self.output_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        return summary

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
