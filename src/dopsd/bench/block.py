"""The bench of a block-attention shape: the rollout with the exact block KV cache against the same model uncached.

Same model, prompts and sampler settings on both sides; the only difference is ``SamplerConfig.cache``. Cached, the
prompt runs once and each block's first step runs the block before it (now finished) with the block itself, its
later steps the block alone (:mod:`dopsd.models.block_cache`); uncached, every step runs the whole sequence with the
block-causal mask. Per trajectory: seconds (min / median), the forwards of one rollout and the token positions each
runs (per row), the FLOPs counted from the shapes each forward sees (MFU on a GPU), and peak memory. No loss and no
naive side: d-OPSD refuses block models.

Before anything is timed, both sides decode the bench's prompts once at temperature 0 and their tokens are compared
(the exact cache promises the uncached tokens); that pass also runs the one-off probes (selection, cache), so they are
neither timed nor counted.
"""

from __future__ import annotations

from dataclasses import asdict, replace

import torch

from dopsd.bench.measure import FlopCounter, ForwardCounter, summary, timed
from dopsd.bench.shapes import build_model, parameter_counts
from dopsd.errors import DopsdError
from dopsd.models.cache import cache_supported
from dopsd.sampling.sampler import BlockDiffusionSampler

SIDES = ("cached", "uncached")


def run_block_bench(settings, log=lambda message: None) -> dict:
    """``settings``: a checked :class:`~dopsd.bench.run.BenchSettings` with ``attention="block"``. Returns a
    JSON-ready dict."""
    device = torch.device(settings.device)
    layout = settings.layout()
    lm = build_model(settings.shape, layers=settings.layers, dtype=getattr(torch, settings.dtype), device=device,
                     max_positions=settings.prompt_length + settings.gen_length, seed=settings.seed, layout=layout)
    lm.model.requires_grad_(False)
    if not cache_supported(lm):
        raise DopsdError(f"the exact block cache is not usable on the {settings.shape} shape's model")
    body, head = parameter_counts(lm)
    vocab = lm.vocab_size
    generator = torch.Generator(device=device).manual_seed(settings.seed)
    prompts = list(torch.randint(0, vocab - 3, (settings.batch, settings.prompt_length), generator=generator,
                                 device=device))
    configs = {"cached": settings.sampler_config(settings.cache or "prefix"),  # either mode: the exact cache
               "uncached": settings.sampler_config("none")}
    model = {"body_parameters": body, "head_parameters": head, "vocab": vocab,
             "layers": lm.model.config.num_hidden_layers, "hidden": lm.model.config.hidden_size}
    results: dict = {"settings": asdict(settings), "model": model, "block": layout.as_dict()}

    log("decoding once at temperature 0 on both sides (the identity check; runs the one-off probes)")
    greedy = {side: BlockDiffusionSampler(lm, replace(config, temperature=0.0)).sample(prompts)
              for side, config in configs.items()}
    results["identical_at_temperature_0"] = all(
        torch.equal(ours.tokens, theirs.tokens) and torch.equal(ours.reveal_step, theirs.reveal_step)
        for ours, theirs in zip(greedy["cached"], greedy["uncached"]))

    rollout = {}
    for side, config in configs.items():
        sampler = BlockDiffusionSampler(lm, config)

        def sample():
            return sampler.sample(prompts, generator=generator)

        log(f"measuring the {side} rollout ({settings.warmup} warm-up + {settings.repeats} runs)")
        for _ in range(settings.warmup):
            sample()
        with ForwardCounter(lm) as counter, FlopCounter(lm, body, head) as flops:
            seconds, peak, _ = timed(sample, device=device, warmup=0, repeats=settings.repeats)
        rollout[side] = {"seconds": summary([s / settings.batch for s in seconds]), "peak_bytes": peak,
                         "flops": flops.flops / settings.repeats / settings.batch,
                         "forwards": counter.forwards / settings.repeats,
                         "tokens_per_forward": counter.positions / counter.forwards}
    results["rollout"] = rollout
    results["speedup"] = {stat: rollout["uncached"]["seconds"][stat] / rollout["cached"]["seconds"][stat]
                          for stat in ("min", "median")}
    results["threads"] = torch.get_num_threads()
    from dopsd.bench.run import _peak_flops

    results["peak_flops"] = _peak_flops(settings, device)
    return results
