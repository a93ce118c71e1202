"""What every dopsd run's config shares (:class:`RunConfig`), and every language trainer's (:class:`TrainingConfig`).
Every default is the d-OPSD paper's unless its help says otherwise; each method's own config lives beside its
trainer and adds the method's fields."""

from __future__ import annotations

from dataclasses import dataclass

from dopsd.config import ConfigError, check_finite_fields, option
from dopsd.distill import DIVERGENCES
from dopsd.sampling import SamplerConfig
from dopsd.trainers.schedule import SCHEDULES


def check(condition: bool, name: str, value, requirement: str) -> None:
    """Raises the one-line ConfigError naming ``name`` unless ``condition`` holds."""
    if not condition:
        raise ConfigError(name, value, requirement)


def check_at_least_one(config, *names: str) -> None:
    for name in names:
        check(getattr(config, name) >= 1, name, getattr(config, name), "must be at least 1")


@dataclass
class RunConfig:
    """What every run shares, language or image: the weights it trains, optimisation, how often it evaluates, and its
    folder (metrics, checkpoints, best weights, resume). Each method family's config extends it with its own fields
    (:class:`TrainingConfig`; ``dopsd.image.config.ImageTrainingConfig``); :class:`~dopsd.trainers.run.TrainingRun`
    reads these. Defaults are the d-OPSD paper's; a subclass changes one by redeclaring the field plainly.
    """

    # ----- model -----
    model: str | None = option(None, "the weights to train: a checkpoint folder or hub name", "model")
    # ----- optimisation -----
    max_updates: int = option(500, "optimizer updates to run", "optimization")
    learning_rate: float = option(5e-6, "AdamW learning rate", "optimization")
    weight_decay: float = option(0.1, "AdamW weight decay", "optimization")
    warmup_steps: int = option(0, "warmup updates: the rate times (update + 1) / warmup_steps", "optimization")
    lr_scheduler: str = option("constant", "after warmup: constant, linear (to 0 at max_updates) or cosine (to 0)",
                               "optimization")
    max_grad_norm: float | None = option(0.2, "gradient clipping norm; null disables", "optimization")
    # ----- evaluation -----
    eval_every: int = option(25, "evaluate every N updates (and before the first and after the last)", "evaluation")
    # ----- the run -----
    output_dir: str = option("runs/dopsd", "where config.yaml, metrics.jsonl, TensorBoard logs, checkpoints, best "
                             "weights and summary.json go", "run")
    seed: int = option(0, "seeds every random stream of the run: data order, sampling, noise, dropout", "run")
    save_every: int = option(25, "write a resumable checkpoint every N updates (and after the last)", "run")
    log_every: int = option(1, "write metrics every N updates", "run")
    resume_from: str | None = option(None, "a checkpoint folder to continue from, or 'latest' (newest in output_dir)",
                                     "run")
    overwrite_output_dir: bool = option(False, "start over in an output_dir that holds an earlier run, deleting its "
                                        "logs, checkpoints and best weights (otherwise such a folder is refused)",
                                        "run")
    keep_best: bool = option(True, "copy the weights to output_dir/best whenever an evaluation beats every earlier "
                             "one", "run")
    progress: bool = option(True, "show progress bars", "run")
    report_to: list[str] = option(None, "where metrics go besides metrics.jsonl: tensorboard, wandb (needs the wandb "
                                  "package), none; comma-separated", "run", factory=lambda: ["tensorboard"])

    def __post_init__(self):
        check_finite_fields(self)  # every float field of every method's config, subclasses' included
        check_at_least_one(self, "max_updates", "eval_every", "save_every", "log_every")
        check(self.learning_rate > 0, "learning_rate", self.learning_rate, "must be > 0")
        check(self.weight_decay >= 0, "weight_decay", self.weight_decay, "must be >= 0")
        check(self.warmup_steps >= 0, "warmup_steps", self.warmup_steps, "must be >= 0")
        check(self.max_grad_norm is None or self.max_grad_norm > 0, "max_grad_norm", self.max_grad_norm, "must be > 0")
        check(self.lr_scheduler in SCHEDULES, "lr_scheduler", self.lr_scheduler, f"must be {', '.join(SCHEDULES)}")
        check(set(self.report_to) <= {"tensorboard", "wandb", "none"}, "report_to", self.report_to,
              "must list tensorboard, wandb or none")


@dataclass
class TrainingConfig(RunConfig):
    """What every language trainer shares: the model, data, decoding, and the run's fields (:class:`RunConfig`).

    Each field's meaning is in its ``help`` (``dopsd train --help`` lists them all, grouped).
    """

    # ----- model -----
    model: str = option("GSAI-ML/LLaDA-8B-Instruct", "checkpoint folder or hub name of the masked diffusion LM",
                        "model")
    trust_remote_code: bool = option(False, "run code shipped with the checkpoint (LLaDA, Dream)", "model")
    dtype: str = option("auto", "weights' dtype: auto keeps the checkpoint's; or float32, bfloat16, float16", "model")
    mask_token_id: int | None = option(None, "the mask token's id; null: from the tokenizer, then the config", "model")
    eos_token_id: int | None = option(None, "the end-of-sequence id; null: from the tokenizer, then the config",
                                      "model")
    pad_token_id: int | None = option(None, "the padding id; null: from the tokenizer, then the config", "model")
    block_size: int | None = option(
        None, "attention block size of a block-diffusion model (bidirectional inside blocks, causal across): declares "
        "one whose config does not say (SDAR, TraDo: 4); null: the model's config (a run's config.yaml records what "
        "the model uses; null there: full attention); block_length must equal it", "model")
    use_lora: bool = option(True, "train a LoRA adapter (true) or every weight (false)", "model")
    lora_r: int = option(128, "LoRA rank r", "model")
    lora_alpha: int = option(64, "LoRA scaling alpha", "model")
    lora_dropout: float = option(0.05, "LoRA dropout", "model")
    lora_target_modules: list[str] | None = option(
        None, "module names to adapt, comma-separated; null: the paper's q,k,v,o,gate,up,down projections (LLaDA's "
        "and Dream's names known), every linear layer but the output head on other architectures", "model")
    gradient_checkpointing: bool = option(False, "recompute activations in the student's backward (less memory)",
                                          "model")
    mixed_precision: str = option("auto", "no, bf16 or fp16 (passed to accelerate); auto: bf16 on GPUs that have it",
                                  "model")
    # ----- data -----
    task: str = option("gsm8k", "task: gsm8k, math500, sudoku, countdown or countdown-steps", "data")
    train_data: str | None = option(
        None, "training prompts: a local CSV/JSONL/Parquet file, 'sample' for the bundled sample, or null for the "
        "task's training split on the hub", "data")
    eval_data: str | None = option(
        None, "held-out set: a local file, 'sample', or null for the task's test split on the hub", "data")
    validation_size: int = option(
        0, "evaluate on this many training examples held out of training (the same seeded choice for every run and "
        "method) instead of eval_data: a validation split, disjoint from the test set, for choosing settings; 0: "
        "evaluate on eval_data", "data")
    prompt_style: str | None = option(
        None, "instruct (d1-style) or compact (built-in models); null picks by model", "data")
    # ----- decoding, shared by rollouts and evaluation -----
    gen_length: int = option(SamplerConfig.gen_length, "response length in tokens", "rollout")
    block_length: int = option(SamplerConfig.block_length, "tokens per block of block-diffusion decoding", "rollout")
    # ----- evaluation -----
    eval_every: int = option(25, "evaluate on the held-out set every N updates (and before the first and after the "
                             "last)", "evaluation")
    eval_limit: int | None = option(None, "evaluate on the first N held-out examples only; null: all", "evaluation")
    eval_gen_length: int | None = option(None, "generation length of evaluation; null: gen_length", "evaluation")
    eval_batch_size: int = option(16, "prompts per evaluation batch", "evaluation")
    # ----- the run -----
    lockstep: str = option("auto", "keep every process's forward passes in step, idle ones on a dummy input, as "
                           "weights sharded over processes need: auto (under FSDP), on, off",
                           "run")

    def __post_init__(self):
        super().__post_init__()
        check_at_least_one(self, "lora_r", "eval_batch_size")
        check(0.0 <= self.lora_dropout < 1.0, "lora_dropout", self.lora_dropout, "must be in [0, 1)")
        check(self.block_size is None or self.block_size >= 1, "block_size", self.block_size, "must be at least 1")
        check(self.validation_size >= 0, "validation_size", self.validation_size, "must be >= 0")
        check(self.mixed_precision in ("auto", "no", "bf16", "fp16"), "mixed_precision", self.mixed_precision,
              "must be auto, no, bf16 or fp16")
        check(self.eval_limit is None or self.eval_limit >= 1, "eval_limit", self.eval_limit, "must be at least 1")
        check(self.prompt_style in (None, "instruct", "compact"), "prompt_style", self.prompt_style,
              "must be instruct or compact")
        check(self.lockstep in ("auto", "on", "off"), "lockstep", self.lockstep, "must be auto, on or off")
        self.eval_sampler_config()  # validates gen_length, block_length and eval_gen_length

    def eval_sampler_config(self) -> SamplerConfig:
        """Greedy decoding of held-out evaluation: two tokens a step, blocks no longer than the response."""
        length = self.eval_gen_length or self.gen_length
        return SamplerConfig(gen_length=length, block_length=min(self.block_length, length))


@dataclass
class RolloutConfig(TrainingConfig):
    """A trainer that samples its own responses while training (d-OPSD, diffu-GRPO): how it samples them."""

    steps: int | None = option(None, "denoising steps of rollouts; null: gen_length / 2, two tokens a step", "rollout")
    temperature: float = option(SamplerConfig.temperature, "sampling temperature of rollouts (0: greedy)", "rollout")
    remasking: str = option(SamplerConfig.remasking, "which proposals a step keeps: low_confidence (most probable) "
                            "or random", "rollout")
    rollout_cache: str | None = option(None, "block KV cache of rollouts: prefix or dual (faster, approximate past "
                                       "a block's first step on a full-attention model, exact on a block-attention "
                                       "one; the recorded trajectory is what was sampled and the loss passes stay "
                                       "full); null: none", "rollout")

    def __post_init__(self):
        super().__post_init__()
        self.sampler_config()  # validates steps, temperature and remasking against the lengths

    def sampler_config(self, temperature: float | None = None) -> SamplerConfig:
        """The rollouts' decoding settings; ``temperature`` replaces the configured one (pass@k resampling)."""
        return SamplerConfig(gen_length=self.gen_length, block_length=self.block_length, steps=self.steps,
                             temperature=self.temperature if temperature is None else temperature,
                             remasking=self.remasking, cache=self.rollout_cache)


@dataclass
class DivergenceConfig(RolloutConfig):
    """A trainer that distils from a teacher on its own rollouts (d-OPSD, OPDLM): the divergence between the student
    and the teacher. A method whose default differs redeclares the field plainly (its help is found here); d-OPSD
    lists it before PassKConfig (``class DOPSDConfig(DivergenceConfig, PassKConfig)``)."""

    divergence: str = option("reverse_kl", "reverse_kl (student || teacher), forward_kl (teacher || student) or jsd",
                             "method")
    jsd_beta: float = option(0.5, "mixture weight of the generalized JSD", "method")
    top_k_loss: int = option(20, "restrict both distributions to the teacher's top-k tokens, renormalised "
                             "(0: the full vocabulary)", "method")

    def __post_init__(self):
        super().__post_init__()
        check(self.divergence in DIVERGENCES, "divergence", self.divergence,
              f"must be {', '.join(DIVERGENCES[:-1])} or {DIVERGENCES[-1]}")
        check(0.0 <= self.jsd_beta <= 1.0, "jsd_beta", self.jsd_beta, "must be in [0, 1]")
        check(self.top_k_loss >= 0, "top_k_loss", self.top_k_loss, "must be >= 0")

    def divergence_options(self) -> dict:
        """The keywords of :func:`dopsd.distill.step_divergence` these fields set."""
        return dict(kind=self.divergence, top_k=self.top_k_loss, beta=self.jsd_beta)
