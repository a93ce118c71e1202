"""One bench run: the same model, prompts and trajectory through dopsd's path and the naive procedure, per
trajectory: the rollout, the loss passes with their backward, and the sum. A block-attention shape
(``attention="block"``) runs :mod:`dopsd.bench.block` instead: its rollout with the exact block cache against
uncached."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from dopsd.bench.dopsd_side import dopsd_loss
from dopsd.bench.lora import AdapterOffView, attach_lora, gradient_holders
from dopsd.bench.measure import PEAK_BF16, FlopCounter, summary, timed
from dopsd.bench.naive import naive_loss, naive_rollout
from dopsd.bench.shapes import SHAPES, build_model, parameter_counts
from dopsd.distill.teacher import prepare_trajectory
from dopsd.errors import DopsdError
from dopsd.models.cache import CACHE_MODES
from dopsd.models.layout import AttentionLayout
from dopsd.sampling.sampler import BlockDiffusionSampler, SamplerConfig


@dataclass
class BenchSettings:
    shape: str = "tiny"
    layers: int | None = None
    prompt_length: int = 100
    # The default workload is half the response (128 tokens in 64 steps): the naive procedure alone takes
    # about 3 minutes at 128 on 2 shared cores; --gen-length 128 --steps 64 measures that workload.
    gen_length: int = 64
    block_length: int = 32
    steps: int = 32
    temperature: float = 0.9  # the pass@k resampling rounds' temperature: most rollouts run at it
    batch: int = 1
    micro_batch_size: int = 16
    chunks: int = 4
    passk: int = 8
    warmup: int = 1  # dopsd's side: its first calls run one-off checks (the selection and cache probes)
    repeats: int = 3
    naive_warmup: int = 0  # the naive procedure has no one-off checks, and one of its runs takes minutes on a CPU
    naive_repeats: int = 1
    device: str = "cpu"
    dtype: str = "float32"
    seed: int = 0
    peak_tflops: float | None = None
    cache: str | None = None  # dopsd's rollouts with the block KV cache (prefix or dual); None: a d-OPSD run's default
    also_cache: tuple[str, ...] = ()  # more cache modes ("none", "prefix", "dual") for dopsd's rollout, same process
    solved_round: int = 5  # the derived per-prompt row: solved at this pass@k round (the default run averages 5.3)
    naive: bool = True  # False: dopsd's side only (to measure a change to it quickly)
    # "block": a block-causal model of the shape (blocks of block_size, which block_length must equal); the bench
    # then times its rollout with the exact block cache against the same model uncached (dopsd.bench.block)
    attention: str = "full"
    block_size: int | None = None
    # LoRA rank: both sides train a rank-lora adapter only, as a LoRA run does (dopsd.bench.lora); None: every weight
    lora: int | None = None
    lora_alpha: float | None = None  # None: the paper's alpha / r (64 / 128) times the rank

    def layout(self) -> AttentionLayout:
        return AttentionLayout(self.attention, self.block_size if self.attention == "block" else None)

    def check(self) -> None:
        if self.shape not in SHAPES:
            raise DopsdError(f"unknown shape {self.shape!r}: use one of {', '.join(SHAPES)}")
        for name in ("prompt_length", "batch", "micro_batch_size", "chunks", "passk", "repeats", "naive_repeats"):
            if getattr(self, name) < 1:
                raise DopsdError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        for name in ("warmup", "naive_warmup"):
            if getattr(self, name) < 0:
                raise DopsdError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(self, name)}")
        for mode in self.also_cache:
            if mode not in ("none", *CACHE_MODES):
                raise DopsdError(f"--also-cache: unknown mode {mode!r}: use none, {', '.join(CACHE_MODES)}")
        if not 1 <= self.solved_round <= self.passk:
            raise DopsdError(f"--solved-round must be between 1 and --passk ({self.passk}), got {self.solved_round}")
        if self.lora is not None and self.lora < 1:
            raise DopsdError(f"--lora must be at least 1, got {self.lora}")
        if self.lora_alpha is not None and (self.lora is None or not self.lora_alpha > 0):
            raise DopsdError("--lora-alpha needs --lora and must be positive")
        layout = self.layout()
        if layout.is_block and self.lora is not None:
            raise DopsdError("--lora: a block-attention shape's bench times the rollout only (no loss, no backward)")
        layout.check_block_length(self.block_length)
        if layout.is_block and self.also_cache:
            raise DopsdError("--also-cache: a block-attention shape is timed with its exact block cache and without "
                             "it already")
        if self.dtype not in ("float32", "bfloat16", "float16", "float64"):
            raise DopsdError(f"--dtype must be float32, bfloat16, float16 or float64, got {self.dtype!r}")
        try:
            self.sampler_config()
        except ValueError as error:  # ConfigError is a ValueError
            raise DopsdError(str(error)) from error

    def sampler_config(self, cache: str | None = "same") -> SamplerConfig:
        return SamplerConfig(gen_length=self.gen_length, block_length=self.block_length, steps=self.steps,
                             temperature=self.temperature, record_until_eos=False,
                             cache=self.cache if cache == "same" else None if cache == "none" else cache)


def run_bench(settings: BenchSettings, log=lambda message: None) -> dict:
    """Measures both sides; returns a JSON-ready dict (seconds, bytes, FLOPs, loss values)."""
    settings.check()
    device = torch.device(settings.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DopsdError("--device cuda: this machine has no CUDA device torch can use")
    if settings.attention == "block":
        from dopsd.bench.block import run_block_bench

        return run_block_bench(settings, log)
    dtype = getattr(torch, settings.dtype)
    lm = build_model(settings.shape, layers=settings.layers, dtype=dtype, device=device,
                     max_positions=settings.prompt_length + settings.gen_length, seed=settings.seed)
    body, head = parameter_counts(lm)
    vocab = lm.vocab_size
    lora = None
    if settings.lora is not None:  # counted above without the adapter: FlopCounter counts its matmuls apart
        lm, lora = attach_lora(lm, settings.lora, settings.lora_alpha)
    trainable = [p for p in lm.model.parameters() if p.requires_grad]  # every weight, or the adapter's only
    generator = torch.Generator(device=device).manual_seed(settings.seed)
    prompts = torch.randint(0, vocab - 3, (settings.batch, settings.prompt_length), generator=generator,
                            device=device)
    sampler = BlockDiffusionSampler(lm, settings.sampler_config())
    config = SamplerConfig(**{**asdict(settings.sampler_config()), "cache": None})  # the naive side has none
    results: dict = {"settings": asdict(settings),
                     "model": {"body_parameters": body, "head_parameters": head, "vocab": vocab,
                               "layers": lm.model.config.num_hidden_layers, "hidden": lm.model.config.hidden_size}}

    def measure(name, function, per):
        side = name.split()[0]
        warmup, repeats = ((settings.warmup, settings.repeats) if side == "dopsd"
                           else (settings.naive_warmup, settings.naive_repeats))
        log(f"measuring {name} ({warmup} warm-up + {repeats} runs)")
        for _ in range(warmup):  # first calls run one-off checks (the selection probe): not measured
            function()
        with FlopCounter(lm, body, head, frozen=lora is not None) as counter:
            seconds, peak, result = timed(function, device=device, warmup=0, repeats=repeats)
        return {"seconds": summary([s / per for s in seconds]), "peak_bytes": peak,
                "flops": counter.flops / repeats / per}, result

    lm.model.requires_grad_(False)
    rollout = {}
    rollout["dopsd"], trajectories = measure("dopsd rollout", lambda: sampler.sample(list(prompts),
                                                                                   generator=generator), settings.batch)
    for mode in settings.also_cache:
        other = BlockDiffusionSampler(lm, settings.sampler_config(mode))
        rollout[f"dopsd:{mode}"], _ = measure(f"dopsd rollout, cache {mode}", lambda: other.sample(
            list(prompts), generator=generator), settings.batch)
    if settings.naive:
        rollout["naive"], _ = measure("naive rollout", lambda: naive_rollout(lm, prompts[0], config, generator), 1)
    prepared = prepare_trajectory(trajectories[0], 0.25, torch.Generator().manual_seed(settings.seed))

    for parameter in trainable:
        parameter.requires_grad_(True)
    lm.model.zero_grad(set_to_none=True)
    loss, gradients = {}, {}
    loss["dopsd"], dopsd_value = measure(
        "dopsd loss", lambda: dopsd_loss(lm, prepared, micro_batch_size=settings.micro_batch_size), 1)
    gradients["dopsd"] = gradient_holders(lm)
    lm.model.zero_grad(set_to_none=True)
    naive_value = None
    if settings.naive:
        teacher = AdapterOffView(lm) if lora is not None else None  # a LoRA run's fixed teacher: adapter off
        loss["naive"], naive_value = measure(
            "naive loss", lambda: naive_loss(lm, prepared, chunks=settings.chunks, teacher=teacher), 1)
        gradients["naive"] = gradient_holders(lm)
    lm.model.zero_grad(set_to_none=True)
    lm.model.requires_grad_(False)

    results["rollout"], results["loss"] = rollout, loss
    results["sum"] = {key: {stat: rollout[key]["seconds"][stat] + loss[key.split(":")[0]]["seconds"][stat]
                            for stat in ("min", "median")} for key in rollout}
    results["loss_value"] = {"dopsd": dopsd_value, "naive": naive_value,
                             "tokens_per_step": settings.gen_length / settings.steps}
    results["states"] = prepared.num_steps
    results["trained"] = {"lora": lora, "parameters": sum(p.numel() for p in trainable), "gradients": gradients}
    results["threads"] = torch.get_num_threads()
    results["peak_flops"] = _peak_flops(settings, device)
    return results


def _peak_flops(settings: BenchSettings, device: torch.device) -> float | None:
    if settings.peak_tflops:
        return settings.peak_tflops * 1e12
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in PEAK_BF16.items() if key in name), None)
