"""The run every dopsd trainer is, language or image: :class:`TrainingRun` owns what is not the method.

That is the run folder (an earlier run refused, a live one's lock honoured: dopsd.trainers.lock), the seeded random
streams, AdamW with its learning-rate schedule and warmup, the loop of updates with its evaluations (each through
:meth:`TrainingRun.record_eval`, the best weights kept in ``output_dir/best``), metrics to ``metrics.jsonl``,
TensorBoard and W&B, checkpoints committed whole and resumed exactly, ``training.png`` and ``summary.json``.

A family of trainers supplies its hooks: :meth:`~TrainingRun.build` (model and data), :meth:`~TrainingRun.prepare`
(wrapping for processes), :meth:`~TrainingRun.compute_update` (one update's backward passes),
:meth:`~TrainingRun.evaluate`, :meth:`~TrainingRun.save_model` / :meth:`~TrainingRun.load_model` and
:meth:`~TrainingRun.summary`. Language trainers run under accelerate (:class:`dopsd.trainers.base.Trainer`); the
image trainers run as one process on the CPU (:class:`OneProcess`).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import time
from pathlib import Path

import numpy as np
import torch
from accelerate.utils import DistributedType, set_seed
from tqdm.auto import tqdm

from dopsd.config import save_config
from dopsd.errors import DopsdError
from dopsd.paths import check_writable_folder
from dopsd.trainers import checkpoint as ckpt
from dopsd.trainers.config import RunConfig
from dopsd.trainers.finite import check_finite_weights, stop_if_not_finite
from dopsd.trainers.lock import check_folder_free, hold_run_folder
from dopsd.trainers.lockstep import weights_sharded
from dopsd.trainers.metrics import MetricsLogger
from dopsd.trainers.plot import LM_CURVES, plot_run
from dopsd.trainers.schedule import lr_factor


def package_missing(name: str) -> bool:
    return importlib.util.find_spec(name) is None


class OneProcess:
    """What a run asks of accelerate's ``Accelerator``, for a run of one process on the CPU (the image trainers)."""

    is_main_process = True
    process_index = 0
    num_processes = 1
    device = torch.device("cpu")
    distributed_type = DistributedType.NO
    scaler = None

    def wait_for_everyone(self) -> None:
        pass

    def end_training(self) -> None:
        pass

    @staticmethod
    def unwrap_model(model):
        return model

    @staticmethod
    def clip_grad_norm_(parameters, max_norm: float) -> torch.Tensor:
        return torch.nn.utils.clip_grad_norm_(parameters, max_norm)


class TrainingRun:
    """One run of a trainer: ``Trainer(config=..., <the family's parts>).train()``. See the module docstring."""

    config_class = RunConfig
    # What evaluations are ranked by (best weights, the summary's best evaluation), and what plot_run draws of them.
    best_metric = "accuracy"
    eval_curves = LM_CURVES
    progress_keys = ("loss", "eval_accuracy")
    # Whether an evaluation's metrics join its update's training row in metrics.jsonl (one row per update), rather
    # than following it in a row of their own.
    eval_joins_training_row = False
    # The family's own files in a run folder, removed with the run's logs and checkpoints by overwrite_output_dir.
    own_run_files: tuple[str, ...] = ()

    def __init__(self, *, config: RunConfig | None = None, **parts):
        self.config = config = config or self.config_class()
        self.accelerator = self.make_accelerator()
        set_seed(config.seed + self.accelerator.process_index)
        self.output_dir = Path(config.output_dir)
        check_writable_folder(self.output_dir, "output_dir")
        check_folder_free(self.output_dir, self.accelerator)  # a live run's folder: refused before anything loads
        if "wandb" in config.report_to and package_missing("wandb"):
            raise DopsdError("report_to wandb needs the wandb package: pip install wandb (or drop wandb from "
                             "report_to)")
        self.resume_folder = ckpt.resolve_resume(self.output_dir, config.resume_from)
        if self.resume_folder is not None:
            ckpt.check_resumable(self.resume_folder, type(self).__name__, self.accelerator.num_processes,
                                 sharded=weights_sharded(self.accelerator))
            ckpt.check_not_finished(self.resume_folder, config.max_updates)
        # A run resumed in its own folder continues there; anything else must not find an earlier run in it.
        self.continues_own_run = (self.resume_folder is not None
                                  and self.resume_folder.resolve().parent == self.output_dir.resolve())
        if not self.continues_own_run and not config.overwrite_output_dir:
            self.refuse_earlier_run()
        self.update = 0
        self.seconds_before = 0.0  # wall time of the run before the checkpoint it resumed from
        self.clock = time.perf_counter()
        self.history: list[dict] = []
        self.logger = MetricsLogger(self.output_dir, enabled=False)
        module = self.build(**parts)
        optimizer = torch.optim.AdamW([p for p in module.parameters() if p.requires_grad],
                                      lr=config.learning_rate, weight_decay=config.weight_decay)
        self.model, self.optimizer = self.prepare(module, optimizer)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: lr_factor(step, config.lr_scheduler, config.warmup_steps, config.max_updates))

    # ----- the family's hooks ----------------------------------------------------------------------------------
    def make_accelerator(self):
        """The run's processes: accelerate's ``Accelerator``, or :class:`OneProcess`."""
        return OneProcess()

    def build(self, **parts) -> torch.nn.Module:
        """Loads the model and the data (``parts``: what the constructor was given besides the config); returns the
        module whose parameters that require a gradient AdamW trains."""
        raise NotImplementedError

    def prepare(self, module: torch.nn.Module, optimizer: torch.optim.Optimizer):
        """``(model, optimizer)`` as the run trains them (wrapped for the processes)."""
        return module, optimizer

    def compute_update(self) -> dict:
        """Runs the backward passes of one optimizer update and returns its metrics."""
        raise NotImplementedError

    def after_optimizer_step(self) -> None:
        """Hook for state that follows the weights (an EMA teacher)."""

    def evaluate(self) -> dict:
        """One evaluation's numbers, ``best_metric`` among them."""
        raise NotImplementedError

    def evaluate_before_training(self) -> None:
        """The evaluation of the weights the run starts from (a run resumed has it already)."""
        self.record_eval(self.evaluate())

    def starting(self) -> None:
        """Hook run as the loop starts, before anything is written."""

    def save_model(self, folder: Path) -> None:
        """The trained weights in ``save_pretrained`` form (a checkpoint's ``model/``, the best weights)."""
        raise NotImplementedError

    def load_model(self, checkpoint: Path) -> None:
        """Loads a checkpoint's ``model/`` into the trained model."""
        raise NotImplementedError

    def save_extra_state(self, folder: Path) -> None:
        """Saves method state besides the trained weights (an EMA teacher's) into a checkpoint folder."""

    def load_extra_state(self, folder: Path) -> None:
        pass

    def run_state(self) -> dict:
        """The family's entries of ``trainer_state.pt`` (saved by the main process)."""
        return {}

    def load_run_state(self, state: dict) -> None:
        pass

    def logs_learning_rate(self) -> bool:
        """Whether each update's row gives the learning rate."""
        return True

    @property
    def subject(self) -> str:
        """What the run learns, in the progress bar and the plot's title."""
        return ""

    def summary(self, seconds: float) -> dict:
        raise NotImplementedError

    # ----- the run folder --------------------------------------------------------------------------------------
    def refuse_earlier_run(self) -> None:
        """An output folder holding an earlier run is never silently restarted or appended to."""
        found = ckpt.run_files(self.output_dir)
        if not found:
            return
        latest = ckpt.latest_checkpoint(self.output_dir)
        resume = f"--resume-from latest to continue it from {latest.name}, " if latest else ""
        raise DopsdError(f"{self.output_dir} already holds a run ({', '.join(found[:4])}): pass {resume}"
                         "--overwrite-output-dir to start over, or another --output-dir")

    # ----- weights and random streams --------------------------------------------------------------------------
    @property
    def unwrapped(self):
        return self.accelerator.unwrap_model(self.model)

    def trainable_parameters(self):
        return [p for p in self.unwrapped.parameters() if p.requires_grad]

    def generator(self, salt: int, on_device: bool = True) -> torch.Generator:
        """A random stream of the method's own, seeded from the run's seed, ``salt`` and (under accelerate) the
        process together (so two streams of one run never coincide, whatever the seed); saved in every checkpoint
        and restored on resume with no further code. Create a method's streams in ``__init__``, always in the same
        order."""
        device = self.accelerator.device if on_device else "cpu"
        process = [] if isinstance(self.accelerator, OneProcess) else [self.accelerator.process_index]
        entropy = np.random.SeedSequence([self.config.seed, salt, *process])
        stream = torch.Generator(device=device).manual_seed(int(entropy.generate_state(1, np.uint64)[0] >> 1))
        self.generators = getattr(self, "generators", [])
        if any(existing_salt == salt for existing_salt in getattr(self, "generator_salts", [])):
            raise ValueError(f"a random stream with salt {salt} already exists: give each stream its own salt")
        self.generator_salts = [*getattr(self, "generator_salts", []), salt]
        self.generators.append(stream)
        return stream

    def method_state(self) -> dict:
        """Per-process state of the method (its random streams; pending work, in subclasses) to checkpoint."""
        return {"generators": [stream.get_state() for stream in getattr(self, "generators", [])]}

    def load_method_state(self, state: dict) -> None:
        for stream, saved in zip(getattr(self, "generators", []), state["generators"], strict=True):
            stream.set_state(saved)

    # ----- checkpoints -----------------------------------------------------------------------------------------
    def elapsed(self) -> float:
        return self.seconds_before + time.perf_counter() - self.clock

    def save_checkpoint(self) -> Path:
        """``checkpoint-N``: the weights in ``save_pretrained`` form (``model/``), the optimizer (accelerate's state,
        sharded under FSDP and DeepSpeed, which also write their sharded weights; in ``trainer_state.pt`` on one
        plain process), the schedule, the evaluations and the family's state (``trainer_state.pt``), and each
        process's random streams and pending work. Written to ``checkpoint-N.partial``, renamed when complete."""
        accelerator = self.accelerator
        check_finite_weights(self)  # never a checkpoint of inf or nan weights
        folder = ckpt.checkpoint_folder(self.output_dir, self.update)
        partial = folder.with_name(folder.name + ".partial")
        if accelerator.is_main_process:
            ckpt.begin(folder)
        accelerator.wait_for_everyone()
        self.save_model(partial / "model")
        self.save_extra_state(partial)
        optimizer = {}
        if isinstance(accelerator, OneProcess):
            optimizer["optimizer"] = self.optimizer.state_dict()
        else:
            accelerator.save_state(partial)
        if accelerator.is_main_process:
            torch.save({"wall_seconds": self.elapsed(), "update": self.update, "scheduler": self.scheduler.state_dict(),
                        "history": self.history, "num_processes": accelerator.num_processes, **optimizer,
                        **self.run_state()}, partial / "trainer_state.pt")
        torch.save({"rng": ckpt.rng_state(), "method": self.method_state()},
                   partial / f"rng_rank{accelerator.process_index}.pt")
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            ckpt.write_description(partial, type(self).__name__, self.update, accelerator.num_processes)
            ckpt.commit(partial, folder)
        accelerator.wait_for_everyone()
        return folder

    def load_checkpoint(self, folder: Path) -> None:
        state = ckpt.load_state(folder, self.accelerator.process_index)
        if "optimizer" in state:  # one plain process, or format 2: the optimizer in trainer_state.pt
            self.optimizer.load_state_dict(state["optimizer"])
        else:
            self.accelerator.load_state(folder)  # the optimizer; sharded weights too (FSDP, DeepSpeed)
        self.load_model(folder)
        self.load_extra_state(folder)
        if "scheduler" in state:  # image checkpoints before the shared run had none (a constant rate)
            self.scheduler.load_state_dict(state["scheduler"])
        self.update, self.history = state["update"], state["history"]
        self.seconds_before = state.get("wall_seconds", 0.0)
        self.load_run_state(state)
        if state["rank"] is not None:
            ckpt.set_rng_state(state["rank"]["rng"])
            self.load_method_state(state["rank"]["method"])

    def save_best(self, entry: dict) -> None:
        """``output_dir/best``: the weights of the best evaluation so far, and that evaluation (``eval.json``)."""
        check_finite_weights(self)
        folder = self.output_dir / ckpt.BEST
        partial = folder.with_name(folder.name + ".partial")
        if self.accelerator.is_main_process:
            ckpt.begin(folder)
        self.save_model(partial)
        if self.accelerator.is_main_process:
            (partial / "eval.json").write_text(json.dumps(entry) + "\n")
            ckpt.commit(partial, folder)

    # ----- evaluations -----------------------------------------------------------------------------------------
    def record_eval(self, result: dict, log: bool = True) -> dict:
        """Adds an evaluation to the history, logs it in a row of its own (unless ``log`` is false: the caller puts
        it in the update's row), and keeps the weights in ``output_dir/best`` when it beats every earlier one."""
        entry = {"update": self.update, **result}
        metric = self.best_metric
        improved = all(entry[metric] > earlier[metric] for earlier in self.history)
        self.history.append(entry)
        if log:
            self.logger.log(self.update, eval_keys(result))
        if improved and self.update > 0 and self.config.keep_best:
            self.save_best(entry)
        return entry

    def best_fields(self) -> dict:
        """The summary's best evaluation, its update and its weights (the best folder, or its checkpoint's)."""
        metric = self.best_metric
        best = max(self.history, key=lambda e: (e[metric], -e["update"]))
        folder = ckpt.checkpoint_folder(self.output_dir, best["update"]) / "model"
        kept = self.output_dir / ckpt.BEST
        if (kept / "eval.json").is_file() and json.loads((kept / "eval.json").read_text())["update"] == best["update"]:
            folder = kept
        return {"best_eval": best, "best_update": best["update"],
                "best_checkpoint": str(folder) if folder.exists() else None}

    # ----- the loop --------------------------------------------------------------------------------------------
    def train(self) -> dict:
        """Runs to ``max_updates`` and returns the summary (also written to ``summary.json``), holding the run
        folder's lock (one writer per folder: dopsd.trainers.lock) from before its first write to its end."""
        with hold_run_folder(self.output_dir, self.accelerator):
            return self.run_loop()

    def run_loop(self) -> dict:
        config, accelerator = self.config, self.accelerator
        self.clock = time.perf_counter()
        self.starting()
        if accelerator.is_main_process:
            if not self.continues_own_run and config.overwrite_output_dir:
                ckpt.clear_run(self.output_dir)
                for name in self.own_run_files:
                    (self.output_dir / name).unlink(missing_ok=True)
            self.output_dir.mkdir(parents=True, exist_ok=True)
            save_config(config, self.output_dir / "config.yaml")
        self.logger = MetricsLogger(self.output_dir, enabled=accelerator.is_main_process, report_to=config.report_to,
                                    run_config=dataclasses.asdict(config))
        if self.resume_folder is not None:
            self.load_checkpoint(self.resume_folder)
            self.logger.truncate_after(self.update)
        if not self.history:
            self.evaluate_before_training()
        bar = tqdm(total=config.max_updates, initial=self.update, desc=f"{type(self).__name__} {self.subject}",
                   disable=not (config.progress and accelerator.is_main_process), unit="upd")
        while self.update < config.max_updates:
            metrics = self.step()
            last = self.update == config.max_updates
            evaluating = self.update % config.eval_every == 0 or last
            joined = evaluating and self.eval_joins_training_row
            if joined:
                metrics.update(eval_keys(self.record_eval(self.evaluate(), log=False)))
            if self.update % config.log_every == 0 or joined:
                self.logger.log(self.update, metrics)
            if evaluating and not joined:
                metrics.update(eval_keys(self.record_eval(self.evaluate())))
            if self.update % config.save_every == 0 or last:
                self.save_checkpoint()
            bar.update(1)
            bar.set_postfix({k: f"{v:.3g}" for k, v in metrics.items() if k in self.progress_keys})
        bar.close()
        self.logger.close()
        summary = self.summary(self.elapsed())
        if accelerator.is_main_process:
            title = f"{type(self).__name__} on {self.subject}"
            summary["plot"] = str(plot_run(self.output_dir, title, self.eval_curves))
            (self.output_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        return summary

    def step(self) -> dict:
        """One optimizer update: the method's backward passes, clipping, the step, the schedule."""
        began = time.perf_counter()
        metrics = self.compute_update()
        if self.config.max_grad_norm is not None:
            norm = self.accelerator.clip_grad_norm_(self.trainable_parameters(), self.config.max_grad_norm)
            if norm is not None:  # DeepSpeed clips by its own config's gradient_clipping, and may not say
                metrics["grad_norm"] = float(norm)
        stop_if_not_finite(self, metrics)  # before the step: the weights stay those of the last finite update
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.after_optimizer_step()
        self.update += 1
        if self.logs_learning_rate():
            metrics["learning_rate"] = self.scheduler.get_last_lr()[0]
        metrics["update_seconds"] = time.perf_counter() - began - metrics.get("rollout_seconds", 0.0)
        if self.accelerator.device.type == "cuda":
            metrics["peak_memory_gb"] = torch.cuda.max_memory_allocated() / 2**30
        return metrics


def eval_keys(entry: dict) -> dict:
    """An evaluation's numbers as a metrics row names them (``eval_accuracy``), its update left out."""
    return {f"eval_{k}": v for k, v in entry.items() if k != "update"}
