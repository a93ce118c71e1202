"""What every language trainer shares; a method subclasses :class:`Trainer` and overrides :meth:`compute_update`.

The run itself (the run folder, random streams, AdamW with its schedule, the loop, evaluations and best weights,
metrics, resumable checkpoints, ``summary.json``) is :class:`~dopsd.trainers.run.TrainingRun`'s, as for the image
trainers. This class supplies a language run's parts: accelerate (DDP/FSDP/DeepSpeed via ``accelerate launch``),
LoRA or full fine-tuning, the prompt stream (the task's training split; evaluation reads its test split) and
held-out evaluation. It also holds the pieces methods share: a frozen copy of the initial weights, no-grad passes of
a frozen copy or of the initial or current policy, and micro-batched backward passes. What the methods that sample
their own data share is in :mod:`dopsd.trainers.rollouts`.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import random
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import DistributedDataParallelKwargs, gather_object

from dopsd.errors import DopsdError
from dopsd.evaluation import evaluate
from dopsd.models import DiffusionLM, load_diffusion_lm
from dopsd.models.checkpointing import enable_gradient_checkpointing
from dopsd.models.compat import check_loaded_model
from dopsd.models.lora import describe_targets, lora_target_modules
from dopsd.sampling.defaults import save_sampling_defaults
from dopsd.tasks import Example, Task, encode_prompts, get_task, load_examples
from dopsd.tasks.loading import split_validation
from dopsd.trainers.config import TrainingConfig
from dopsd.trainers.gradient_sync import set_sync_gradients
from dopsd.trainers.lockstep import Lockstep, lockstep_wanted, prepare_deepspeed, weights_sharded
from dopsd.trainers.run import TrainingRun


class Trainer(TrainingRun):
    """Shared language training. Subclasses implement :meth:`compute_update` (backward passes for one update)."""

    config_class = TrainingConfig
    progress_keys = ("loss", "solved", "eval_accuracy")

    def __init__(self, *, model: DiffusionLM | None = None, tokenizer=None, task: Task | str | None = None,
                 config: TrainingConfig | None = None):
        """``model``: a :class:`DiffusionLM`, or a transformers model with its ``tokenizer``; null: ``config.model``
        is loaded. ``task``: a :class:`Task` or its name; null: ``config.task``."""
        super().__init__(config=config, model=model, tokenizer=tokenizer, task=task)

    def make_accelerator(self) -> Accelerator:
        mixed = self.config.mixed_precision
        if mixed == "auto":
            mixed = "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"
        # Buffers (rotary tables) never change, and broadcasting them at every forward would make processes that
        # sample different numbers of steps wait on each other.
        # cpu=True on machines without CUDA makes processes started by `accelerate launch --multi_gpu` (torchrun)
        # join one gloo group; accelerate would otherwise run each of them alone.
        return Accelerator(cpu=not torch.cuda.is_available(), mixed_precision=mixed,
                           kwargs_handlers=[DistributedDataParallelKwargs(broadcast_buffers=False)])

    def build(self, *, model=None, tokenizer=None, task=None) -> torch.nn.Module:
        config = self.config
        self.cursor = 0
        self.task = get_task(task or config.task) if not isinstance(task, Task) else task
        self.train_examples, self.eval_examples = self.load_data()
        loaded = model is None
        if loaded:
            model = load_diffusion_lm(config.model, trust_remote_code=config.trust_remote_code, dtype=config.dtype,
                                      mask_token_id=config.mask_token_id, eos_token_id=config.eos_token_id,
                                      pad_token_id=config.pad_token_id, block_size=config.block_size, check=False)
        elif not isinstance(model, DiffusionLM):
            model = DiffusionLM(model, tokenizer)
        self.check_layout(model)
        model.model.to(self.accelerator.device)
        if loaded:
            check_loaded_model(model)  # rotary tables and finite logits, where the model now lives
        self.base_lm = model
        self.check_data()  # the data against the model, before the run folder is written or anything evaluated
        self.setup_model()
        self.start_from_one_init()
        self.in_step = lockstep_wanted(config.lockstep, self.accelerator)
        if self.in_step:
            self.probe_model()
        prepare_deepspeed(self.accelerator)
        return self.base_lm.model

    def prepare(self, module, optimizer):
        self.model, optimizer = self.accelerator.prepare(module, optimizer)
        # Student passes go through the wrapper accelerate returns (DDP, FSDP, DeepSpeed) so gradients are
        # synchronised. With replicated weights, sampling, evaluation and teacher passes use the bare model: they
        # need no gradient sync, and processes run different numbers of them. With sharded weights every pass goes
        # through the wrapper, in step across processes (see dopsd.trainers.lockstep).
        self.lockstep = None
        if self.in_step:
            tokens = self.base_lm.tokens
            self.lockstep = Lockstep(self.model, self.accelerator.device, [tokens.eos, tokens.mask])
            self.base_lm = self.base_lm.with_runner(self.lockstep)
        self.lm = self.base_lm.with_runner(self.lockstep or self.model)
        # The model is saved in save_pretrained form beside accelerate's state (see save_checkpoint), so
        # accelerate's own copy of replicated weights is neither written nor read.
        self.accelerator.register_save_state_pre_hook(lambda models, weights, folder: weights.clear())
        self.accelerator.register_load_state_pre_hook(lambda models, folder: models.clear())
        return self.model, optimizer

    @property
    def subject(self) -> str:
        return self.task.name

    # ----- model -----------------------------------------------------------------------------------------------
    # Why this method cannot train a block-attention model (None: it can).
    block_attention_refusal: str | None = None

    def check_layout(self, lm: DiffusionLM) -> None:
        """Refuses, before anything is written, a block-attention model this method cannot train or a block length
        other than its block size; records the model's block size in the config (config.yaml then says it)."""
        layout = lm.layout
        if layout.is_block and self.block_attention_refusal:
            raise DopsdError(f"{type(self).__name__} cannot train a block-attention model: "
                             f"{self.block_attention_refusal}")
        layout.check_block_length(self.config.block_length)
        layout.check_block_length(self.config.eval_sampler_config().block_length)
        self.config.block_size = layout.block_size

    def setup_model(self) -> None:
        """Wraps the model with LoRA (or leaves every weight trainable) and enables gradient checkpointing.

        LoRA's targets are the paper's seven projection kinds on architectures dopsd knows (LLaDA's and Dream's
        names included), every linear layer but the output head otherwise; the list is printed and written to the
        run's ``config.yaml`` (``lora_target_modules``)."""
        config, model = self.config, self.base_lm.model
        if config.use_lora:
            from peft import LoraConfig, get_peft_model

            config.lora_target_modules = config.lora_target_modules or lora_target_modules(model)
            if self.accelerator.is_main_process:
                print(f"LoRA adapts {describe_targets(config.lora_target_modules)}", flush=True)
            lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                              target_modules=config.lora_target_modules)
            model = get_peft_model(model, lora)
            self.base_lm = self.base_lm.rewrap(model)
        if config.gradient_checkpointing:
            enable_gradient_checkpointing(model)
        model.train()

    @torch.no_grad()
    def start_from_one_init(self) -> None:
        """Every process starts from the main process's trainable weights. Each process seeds its random streams
        apart, so a new LoRA adapter is initialised differently on each; DDP would copy the main process's at
        wrapping, but FSDP shards each process's own, and the model would start from a patchwork."""
        if self.accelerator.num_processes > 1:
            for parameter in self.base_lm.model.parameters():
                if parameter.requires_grad:
                    torch.distributed.broadcast(parameter.data, src=0)

    def probe_model(self) -> None:
        """Runs the adapter's one-off checks (padding, selected-position logits, block cache) before the weights are
        sharded: a check is a few forward passes that one process alone might otherwise run."""
        lm, tokens = self.base_lm, self.base_lm.tokens
        lm.model.eval()  # no dropout draws: probing early must not shift a seeded run
        with torch.no_grad(), torch.random.fork_rng(devices=[lm.device] if lm.device.type == "cuda" else []):
            lm.handles_padding
            lm.logits_at(torch.tensor([[tokens.eos, tokens.mask, tokens.mask]], device=lm.device),
                         torch.tensor([1, 2], device=lm.device), response_start=1)
            if getattr(self.config, "rollout_cache", None):
                from dopsd.models.cache import cache_supported

                cache_supported(lm)
        lm.model.train()

    @property
    def exact_cache(self) -> bool:
        """Whether decoding may use the exact block cache by itself: a block model (where the cache changes no
        token) whose passes are not kept in lockstep across processes."""
        return self.base_lm.layout.is_block and self.lockstep is None

    # ----- data ------------------------------------------------------------------------------------------------
    def load_data(self) -> tuple[list[Example], list[Example]]:
        """Training examples from ``train_data`` (or the task's training split), held-out ones from ``eval_data``
        (or its test split), or, with ``validation_size``, from training examples held out of training."""
        config = self.config
        train = load_examples(self.task, config.train_data, "train")
        if config.validation_size:
            train, validation = split_validation(train, config.validation_size)
            return train, validation[: config.eval_limit]
        return train, load_examples(self.task, config.eval_data, "test", config.eval_limit)

    def check_data(self) -> None:
        """Checks of the data against the loaded model, which ``__init__`` runs before anything is written (the run
        folder, the base model's evaluation), so that a refused run leaves its output folder free for a corrected
        one: here, every prompt plus its response fits the model's positions. A method with checks of its own
        (SFT: every reference completion fits gen_length) overrides this and calls it."""
        lm, config = self.base_lm, self.config
        if lm.max_positions is None:
            return
        for what, examples, gen_length in (("training", self.train_examples, config.gen_length),
                                           ("held-out", self.eval_examples, config.eval_sampler_config().gen_length)):
            if not examples:
                continue
            longest = max(map(len, encode_prompts(lm, self.task, examples, config.prompt_style)))
            try:
                lm.check_fits(longest, gen_length)
            except DopsdError as error:
                raise DopsdError(f"the {what} data: {error}") from None

    def starting(self) -> None:
        self.warn_if_not_held_out()

    def warn_if_not_held_out(self) -> None:
        """A warning, as the run starts, when held-out questions are also training questions."""
        question = self.task.question_text
        shared = {question(example) for example in self.train_examples} & {question(e) for e in self.eval_examples}
        if shared and self.accelerator.is_main_process:
            warnings.warn(f"{len(shared)} of the {len(self.eval_examples)} held-out prompts are also training prompts "
                          f"(train_data={self.config.train_data}, eval_data={self.config.eval_data}): held-out "
                          "accuracy is not held out", stacklevel=5)  # past starting(), run_loop() and train()

    def next_examples(self, per_process: int):
        """This process's share of the next ``per_process * num_processes`` prompts of a seeded, per-epoch order."""
        world = self.accelerator.num_processes
        chosen = []
        for offset in range(per_process * world):
            epoch, index = divmod(self.cursor + offset, len(self.train_examples))
            order = list(range(len(self.train_examples)))
            random.Random(self.config.seed * 1_000_003 + epoch).shuffle(order)
            chosen.append(self.train_examples[order[index]])
        self.cursor += per_process * world
        rank = self.accelerator.process_index
        return chosen[rank * per_process : (rank + 1) * per_process]

    # ----- pieces methods share --------------------------------------------------------------------------------
    def frozen_copy(self) -> DiffusionLM:
        """A copy of the current (initial, when called from ``__init__``) weights that never trains: the fixed
        teacher or reference under full fine-tuning, or the EMA teacher's starting point."""
        if weights_sharded(self.accelerator):
            raise DopsdError("a frozen copy of the weights (the fixed teacher or reference under full fine-tuning, "
                             "the EMA teacher) is not sharded: under FSDP train LoRA (use_lora true), "
                             "whose initial policy is the adapter switched off")
        frozen = copy.deepcopy(self.unwrapped).eval()
        for parameter in frozen.parameters():
            parameter.requires_grad_(False)
        return self.base_lm.rewrap(frozen)

    @contextlib.contextmanager
    def policy_pass(self, initial: bool = False):
        """Yields the training model for a no-grad, dropout-off pass: as the current policy, or as the initial policy
        (LoRA adapter switched off) when ``initial``."""
        self.model.eval()
        try:
            with torch.no_grad(), self.unwrapped.disable_adapter() if initial else contextlib.nullcontext(), \
                    self.accelerator.autocast():
                yield self.base_lm
        finally:
            self.model.train()

    @contextlib.contextmanager
    def frozen_pass(self, frozen: DiffusionLM):
        """Yields ``frozen``, a model that never trains (a :meth:`frozen_copy`, OPDLM's causal teacher), for a
        no-grad pass."""
        with torch.no_grad(), self.accelerator.autocast():
            yield frozen

    def backward_micro_batches(self, batches: Sequence, loss_of: Callable) -> list:
        """``loss_of(batch) -> (loss, stats)`` and a backward pass for each micro-batch, gradients accumulating;
        processes synchronise gradients on the last one only. Returns each batch's ``(float loss, stats)``.

        Only the last micro-batch is a gradient-accumulation boundary in accelerate's state (``sync_gradients``):
        DDP all-reduces there only, and DeepSpeed, whose engine steps inside ``backward`` at a boundary, steps once
        per update. (accelerate's ``accumulate()`` counts a fixed number of micro-batches per step; an update here
        has as many as its states need, so the boundary is set directly.)
        A process with no batch runs one zero loss, so that it still joins the others' gradient synchronisation;
        with forward passes in step (sharded weights), processes first agree on the largest number of micro-batches
        and pad theirs with zero losses, so every process runs the same forward-backward sequence."""
        count = max(len(batches), 1)
        if self.lockstep is not None:
            count = self.lockstep.agree_count(count)
        results = []
        for index in range(count):
            last = index == count - 1
            set_sync_gradients(self.accelerator, last)
            with contextlib.nullcontext() if last else self.accelerator.no_sync(self.model):
                if index < len(batches):
                    loss, stats = loss_of(batches[index])
                    results.append((float(loss.detach()), stats))
                else:
                    loss = self.zero_loss(padding=index > 0 or bool(batches))
                if self.lockstep is not None:
                    self.lockstep.finish()  # the micro-batch's no-grad passes, before the collective backward
                self.accelerator.backward(loss)
        set_sync_gradients(self.accelerator, True)
        return results

    def zero_loss(self, padding: bool = False) -> torch.Tensor:
        """A loss of 0 from a real forward pass through the wrapper, so a process with nothing to learn still joins
        the others' gradient all-reduce. A ``padding`` pass (extra micro-batches of processes in step) leaves the
        random streams as they were, so that padding changes nothing; the one zero loss of an update with nothing
        to learn draws its dropout as it always has, so that runs repeat across versions."""
        tokens = self.base_lm.tokens
        device = self.accelerator.device
        ids = torch.tensor([[tokens.eos, tokens.mask]], device=device)
        undone = torch.random.fork_rng(devices=[device] if device.type == "cuda" else []) if padding else \
            contextlib.nullcontext()
        with undone:
            return self.lm.logits(ids, response_start=1).sum() * 0.0

    # ----- evaluation ------------------------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self) -> dict:
        """Greedy accuracy on the held-out set, each process taking an equal share (padded), results gathered."""
        accelerator = self.accelerator
        examples = list(self.eval_examples)
        sampling = self.config.eval_sampler_config()
        if self.exact_cache:
            sampling = dataclasses.replace(sampling, cache="prefix")
        with accelerator.split_between_processes(examples, apply_padding=True) as shard, accelerator.autocast():
            self.model.eval()
            rows, _ = evaluate(self.base_lm, self.task, shard, sampling,
                               batch_size=self.config.eval_batch_size, style=self.config.prompt_style, progress=False)
            self.model.train()
        if self.lockstep is not None:
            self.lockstep.finish()
        gathered = gather_object([(row["index"], row["score"], row["correct"]) for row in rows])
        unique = {index: (score, correct) for index, score, correct in gathered}
        n = len(unique)
        return {
            "accuracy": sum(c for _, c in unique.values()) / n,
            "mean_score": sum(s for s, _ in unique.values()) / n,
            "n": n,
        }

    # ----- checkpoints -----------------------------------------------------------------------------------------
    def save_model(self, folder: Path) -> None:
        """The weights (adapter or full) and tokenizer in ``save_pretrained`` form, with the decoding settings
        (``sampling.json``) that ``dopsd eval`` and ``dopsd sample`` default to for this model. Every process calls
        it: sharded weights are gathered (a LoRA model's trainable ones only) and the main process writes."""
        weights = None  # replicated weights: the model's own state dict, on the main process only
        if weights_sharded(self.accelerator):
            trainable = [(name, p) for name, p in self.unwrapped.named_parameters() if p.requires_grad]
            if self.config.use_lora and all(hasattr(p, "full_tensor") for _, p in trainable):  # FSDP2
                weights = {name: p.full_tensor().detach().cpu() for name, p in trainable}
            else:
                weights = self.accelerator.get_state_dict(self.model)
        if not self.accelerator.is_main_process:
            return
        self.unwrapped.save_pretrained(folder, **({} if weights is None else {"state_dict": weights}))
        self.base_lm.tokenizer.save_pretrained(folder)
        sampling = self.config.eval_sampler_config()
        save_sampling_defaults(folder, sampling.gen_length, sampling.block_length, self.task.name)

    def load_model(self, checkpoint: Path) -> None:
        if weights_sharded(self.accelerator):
            return  # accelerate's load_state read them
        from safetensors.torch import load_file

        model_dir = checkpoint / "model"
        if self.config.use_lora:
            from peft import set_peft_model_state_dict

            set_peft_model_state_dict(self.unwrapped, load_file(model_dir / "adapter_model.safetensors"))
        else:
            self.unwrapped.load_state_dict(load_file(model_dir / "model.safetensors"), strict=False)
            self.unwrapped.tie_weights()

    def run_state(self) -> dict:
        return {"cursor": self.cursor}

    def load_run_state(self, state: dict) -> None:
        self.cursor = state["cursor"]

    # ----- the summary -----------------------------------------------------------------------------------------
    def summary(self, seconds: float) -> dict:
        return {
            "trainer": type(self).__name__,
            "task": self.task.name,
            "attention": self.base_lm.layout.describe(),
            "updates": self.update,
            "eval_before": self.history[0],
            "eval_after": self.history[-1],
            **self.best_fields(),
            "wall_seconds": seconds,
            "output_dir": str(self.output_dir),
        }
