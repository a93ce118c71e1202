"""Configs of dopsd's trainers. Every default is the paper's (NOTES sections 2-4) unless its line says otherwise."""

from __future__ import annotations

from dataclasses import dataclass

from dopsd.config import ConfigError
from dopsd.sampling import SamplerConfig

LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
BUILTIN_LORA_TARGETS = ["qkv", "out", "gate_up", "down"]


def _check(condition: bool, name: str, value, requirement: str) -> None:
    if not condition:
        raise ConfigError(name, value, requirement)


@dataclass
class TrainingConfig:
    """What every dopsd trainer shares: model, data, optimisation, evaluation, logging and checkpoints.

    Args:
        model: Checkpoint folder (or hub name) of the masked diffusion LM to train.
        trust_remote_code: Run code shipped with the checkpoint (LLaDA, Dream).
        dtype: ``auto`` keeps the checkpoint's dtype; ``bfloat16`` etc. select one.
        task: Task name (``gsm8k``, ``math500``, ``sudoku``, ``countdown``).
        train_data: Training prompts: a local file, ``sample`` for the bundled sample, or ``None`` for the hub.
        eval_data: Held-out set, same forms as ``train_data``.
        eval_limit: Evaluate on the first N held-out examples only (``None``: all).
        prompt_style: ``instruct`` (d1-style) or ``compact`` (built-in models); ``None`` picks by model.
        output_dir: Where ``config.yaml``, ``metrics.jsonl``, TensorBoard logs, checkpoints and ``summary.json`` go.
        seed: Seeds prompt order, sampling, teacher reveals and dropout.
        max_updates: Optimizer updates to run (the authors evaluate up to 500).
        use_lora: Train a LoRA adapter (True) or every weight.
        lora_r, lora_alpha, lora_dropout: LoRA rank, scaling and dropout (128, 64, 0.05).
        lora_target_modules: Module names to adapt; ``None`` picks attention and MLP projections for the model.
        learning_rate: AdamW learning rate (5e-6).
        weight_decay: AdamW weight decay (0.1).
        warmup_steps: Linear warmup updates before the constant learning rate.
        max_grad_norm: Gradient clipping norm (0.2; ``None`` disables).
        gradient_checkpointing: Trade compute for memory in the student's backward pass.
        mixed_precision: ``no``, ``bf16`` or ``fp16``, passed to accelerate; ``auto`` is bf16 on GPUs that have it.
        eval_every: Evaluate on the held-out set every N updates (and before the first, and after the last).
        save_every: Write a resumable checkpoint every N updates (and after the last).
        log_every: Write metrics every N updates.
        eval_gen_length: Generation length for evaluation (``None``: the training ``gen_length``).
        eval_batch_size: Prompts per evaluation batch.
        resume_from: A checkpoint folder to continue from, or ``latest`` for the newest one in ``output_dir``.
        progress: Show progress bars.
    """

    model: str = "GSAI-ML/LLaDA-8B-Instruct"
    trust_remote_code: bool = False
    dtype: str = "auto"
    task: str = "gsm8k"
    train_data: str | None = None
    eval_data: str | None = None
    eval_limit: int | None = None
    prompt_style: str | None = None
    output_dir: str = "runs/dopsd"
    seed: int = 0
    max_updates: int = 500
    use_lora: bool = True
    lora_r: int = 128
    lora_alpha: int = 64
    lora_dropout: float = 0.05
    lora_target_modules: list[str] | None = None
    learning_rate: float = 5e-6
    weight_decay: float = 0.1
    warmup_steps: int = 0
    max_grad_norm: float | None = 0.2
    gradient_checkpointing: bool = False
    mixed_precision: str = "auto"
    eval_every: int = 25
    save_every: int = 25
    log_every: int = 1
    eval_gen_length: int | None = None
    eval_batch_size: int = 16
    resume_from: str | None = None
    progress: bool = True

    def __post_init__(self):
        _check(self.max_updates >= 1, "max_updates", self.max_updates, "must be at least 1")
        _check(self.lora_r >= 1, "lora_r", self.lora_r, "must be at least 1")
        _check(0.0 <= self.lora_dropout < 1.0, "lora_dropout", self.lora_dropout, "must be in [0, 1)")
        _check(self.learning_rate > 0, "learning_rate", self.learning_rate, "must be > 0")
        _check(self.weight_decay >= 0, "weight_decay", self.weight_decay, "must be >= 0")
        _check(self.warmup_steps >= 0, "warmup_steps", self.warmup_steps, "must be >= 0")
        _check(self.max_grad_norm is None or self.max_grad_norm > 0, "max_grad_norm", self.max_grad_norm, "must be > 0")
        _check(self.mixed_precision in ("auto", "no", "bf16", "fp16"), "mixed_precision", self.mixed_precision,
               "must be auto, no, bf16 or fp16")
        for name in ("eval_every", "save_every", "log_every", "eval_batch_size"):
            _check(getattr(self, name) >= 1, name, getattr(self, name), "must be at least 1")
        _check(self.eval_limit is None or self.eval_limit >= 1, "eval_limit", self.eval_limit, "must be at least 1")
        _check(self.prompt_style in (None, "instruct", "compact"), "prompt_style", self.prompt_style,
               "must be instruct or compact")


@dataclass
class DOPSDConfig(TrainingConfig):
    """d-OPSD: on-policy self-distillation from the self-future (paper sections 3 and appendix C).

    Args:
        gen_length: Response length of rollouts (256).
        block_length: Block length of rollouts (32).
        steps: Denoising steps of rollouts (``None``: ``gen_length / 2``, two tokens a step).
        temperature: Sampling temperature of the first rollout round (0: greedy).
        passk: Rounds of sampling per prompt until a correct trajectory appears (8).
        passk_temperature: Temperature of the resampling rounds (0.9).
        prompts_per_rollout: Prompts sampled together per process per rollout (the authors: 1 per GPU).
        updates_per_rollout: Optimizer updates each rollout's states are split into (the authors: 4; 1 = one update).
        micro_batch_size: Stacked states per forward pass, bounding memory ("inputs concatenation" in chunks).
        teacher_input: What the teacher is shown beyond the student's state: ``future`` (d-OPSD: part of the
            trajectory's own later blocks) or ``reference`` (AR-style OPSD, paper section 4.3: the student's state
            unchanged after a prompt that also carries the task's worked reference solution).
        teacher_retain_ratio: rho, share of later-block masked positions the teacher sees filled (0.25).
        divergence: ``reverse_kl`` (student || teacher), ``forward_kl`` or ``jsd``.
        jsd_beta: Mixture weight of the generalized JSD.
        top_k_loss: Restrict both distributions to the teacher's top-k tokens, renormalised (20; 0 = full vocab).
        clip: Pointwise clip on each vocabulary entry's contribution (0.05; ``None`` = off).
        kt_selection: Positions supervised at each step: the k most confident masked positions of the current block
            under the ``teacher`` (default) or the ``student``, or the positions the student ``revealed``.
        correct_only: Train only on trajectories the task's verifier accepts; others are never run through the model.
        score_threshold: Score a trajectory needs to count as correct (``None``: the task's, 0.25 for Sudoku).
        teacher: ``fixed`` (the initial policy: adapter disabled, or a frozen copy), ``live`` (the current weights)
            or ``ema`` (an exponential moving average of the weights).
        ema_decay: Decay of the ``ema`` teacher.
        overlap_k: K of the Overlap Top-K metric (20).
    """

    output_dir: str = "runs/dopsd"
    gen_length: int = 256
    block_length: int = 32
    steps: int | None = None
    temperature: float = 0.0
    passk: int = 8
    passk_temperature: float = 0.9
    prompts_per_rollout: int = 1
    updates_per_rollout: int = 4
    micro_batch_size: int = 16
    teacher_input: str = "future"
    teacher_retain_ratio: float = 0.25
    divergence: str = "reverse_kl"
    jsd_beta: float = 0.5
    top_k_loss: int = 20
    clip: float | None = 0.05
    kt_selection: str = "teacher"
    correct_only: bool = True
    score_threshold: float | None = None
    teacher: str = "fixed"
    ema_decay: float = 0.99
    overlap_k: int = 20

    def __post_init__(self):
        super().__post_init__()
        self.sampler_config()  # validates gen_length, block_length, steps, temperature
        _check(self.passk >= 1, "passk", self.passk, "must be at least 1")
        _check(self.passk_temperature >= 0, "passk_temperature", self.passk_temperature, "must be >= 0")
        _check(self.prompts_per_rollout >= 1, "prompts_per_rollout", self.prompts_per_rollout, "must be at least 1")
        _check(self.updates_per_rollout >= 1, "updates_per_rollout", self.updates_per_rollout, "must be at least 1")
        _check(self.micro_batch_size >= 1, "micro_batch_size", self.micro_batch_size, "must be at least 1")
        _check(self.teacher_input in ("future", "reference"), "teacher_input", self.teacher_input,
               "must be future or reference")
        _check(0.0 <= self.teacher_retain_ratio <= 1.0, "teacher_retain_ratio", self.teacher_retain_ratio,
               "must be in [0, 1]")
        _check(self.divergence in ("reverse_kl", "forward_kl", "jsd"), "divergence", self.divergence,
               "must be reverse_kl, forward_kl or jsd")
        _check(0.0 <= self.jsd_beta <= 1.0, "jsd_beta", self.jsd_beta, "must be in [0, 1]")
        _check(self.top_k_loss >= 0, "top_k_loss", self.top_k_loss, "must be >= 0")
        _check(self.clip is None or self.clip > 0, "clip", self.clip, "must be > 0 (or null for no clipping)")
        _check(self.kt_selection in ("teacher", "student", "revealed"), "kt_selection", self.kt_selection,
               "must be teacher, student or revealed")
        _check(self.score_threshold is None or 0.0 <= self.score_threshold <= 1.0, "score_threshold",
               self.score_threshold, "must be in [0, 1]")
        _check(self.teacher in ("fixed", "live", "ema"), "teacher", self.teacher, "must be fixed, live or ema")
        _check(0.0 < self.ema_decay < 1.0, "ema_decay", self.ema_decay, "must be in (0, 1)")
        _check(self.overlap_k >= 1, "overlap_k", self.overlap_k, "must be at least 1")

    def sampler_config(self, temperature: float | None = None) -> SamplerConfig:
        return SamplerConfig(
            gen_length=self.gen_length,
            block_length=self.block_length,
            steps=self.steps,
            temperature=self.temperature if temperature is None else temperature,
        )
