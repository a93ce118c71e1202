"""lm-evaluation-harness backend: any model dopsd loads, evaluated on lm-eval's tasks through dopsd's batched sampler.

``import dopsd.lmeval`` registers the model name ``dopsd`` with lm-eval (``pip install -e ".[eval]"``); ``dopsd
lm-eval ARGS`` is lm-eval's own command line with that import done first, so ``dopsd lm-eval --model dopsd
--model_args pretrained=PATH,gen_length=256 --tasks gsm8k`` is ``lm_eval ...`` with dopsd's model.

- ``generate_until``: the prompts of a batch decoded together by :class:`~dopsd.sampling.BlockDiffusionSampler`
  (gen/block length, steps, temperature, remasking, threshold, cache from ``model_args``; the model folder's
  ``sampling.json`` gives the lengths it was trained for), cut at the first stop token and then at the first of the
  request's ``until`` strings.
- ``loglikelihood``: the masked-diffusion Monte-Carlo estimate LLaDA's evaluation uses: ``mc_num`` draws (128) in
  batches of ``mc_batch_size`` (32); a draw masks l of the continuation's L tokens, the draws' l spread evenly over
  1..L from a random start (stratified), each masked position's cross-entropy weighted by L / l; the estimate is
  minus the mean over draws of the weighted sum. Seeded per request (``seed``), so a batch gives what its requests
  give one by one. ``is_greedy``: every continuation token is the argmax with all of them masked (one pass). A
  block-attention model's masked blocks read the continuation's clean blocks before them (one pass of the
  clean/noisy layout), as it decodes them.
- ``loglikelihood_rolling`` is refused: a masked diffusion LM defines no left-to-right likelihood of a text.

Several processes (``accelerate launch -m dopsd.lmeval ARGS``, as lm-eval's own data-parallel launch): each process
holds the whole model on its own device, lm-eval gives each its share of the requests, and the results are gathered
to the first process (the backend provides lm-eval's ``rank``, ``world_size``, ``all_gather``, ``gather_object`` and
``barrier`` over torch.distributed).
"""

from __future__ import annotations

import os
import sys
import time

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from dopsd.errors import DopsdError

try:
    from lm_eval.api.model import LM
    from lm_eval.api.registry import register_model
except ImportError as error:  # pragma: no cover - the extra is not installed
    raise DopsdError("the lm-evaluation-harness backend needs lm-eval: pip install -e \".[eval]\"") from error


def _flag(value) -> bool:
    return value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes")


@register_model("dopsd")
class DopsdLM(LM):
    """lm-eval's ``--model dopsd``. ``model_args``: ``pretrained`` (any folder, hub name, ``bundled:NAME``, training
    checkpoint or LoRA adapter folder dopsd loads), ``base``, ``trust_remote_code``, ``dtype``, ``block_size``,
    ``mask_token_id``; decoding: ``gen_length``, ``block_length``, ``steps``, ``temperature``, ``remasking``,
    ``threshold``, ``cache``; likelihoods: ``mc_num``, ``mc_batch_size``; ``seed``; lm-eval's ``batch_size`` and
    ``device``."""

    def __init__(self, pretrained: str, base: str | None = None, trust_remote_code=False, dtype: str = "auto",
                 device: str | None = None, block_size: int | None = None, mask_token_id: int | None = None,
                 gen_length: int | None = None, block_length: int | None = None, steps: int | None = None,
                 temperature: float = 0.0, remasking: str = "low_confidence", threshold: float | None = None,
                 cache: str | None = None, batch_size=16, mc_num: int = 128, mc_batch_size: int = 32, seed: int = 0,
                 max_batch_size=None, **unused):
        super().__init__()
        from dopsd.models import default_device, load_diffusion_lm
        from dopsd.models.cache import default_cache_mode
        from dopsd.models.loading import resolve_model_path
        from dopsd.sampling.defaults import load_sampling_defaults

        if unused:
            raise DopsdError(f"unknown dopsd model_args: {', '.join(sorted(unused))}")
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # launched with several processes: one replica each
            from accelerate import PartialState

            state = PartialState(cpu=not torch.cuda.is_available())
            self._rank, self._world_size = state.process_index, state.num_processes
            device = str(state.device)
        if int(mc_num) < 1 or int(mc_batch_size) < 1 or int(mc_num) % int(mc_batch_size):
            raise DopsdError(f"mc_num ({mc_num}) must be a positive multiple of mc_batch_size ({mc_batch_size})")
        self.lm = load_diffusion_lm(pretrained, trust_remote_code=_flag(trust_remote_code), dtype=dtype,
                                    device=device or default_device(), base_model=base, block_size=block_size,
                                    mask_token_id=mask_token_id)
        own = load_sampling_defaults(resolve_model_path(pretrained))
        self.gen_length = gen_length or own.get("gen_length")
        layout = self.lm.layout
        self.block_length = block_length or (layout.block_size if layout.is_block else own.get("block_length", 32))
        self.steps, self.temperature, self.remasking = steps, float(temperature), remasking
        self.threshold = threshold
        self.cache = default_cache_mode(self.lm, cache)
        self.batch = 16 if str(batch_size).startswith("auto") else int(batch_size)
        self.mc_num, self.mc_batch_size, self.seed = int(mc_num), int(mc_batch_size), int(seed)
        self.timing = {"generated_tokens": 0, "samples": 0, "seconds": 0.0}

    # ----- several processes (lm-eval's data-parallel protocol) -------------------------------------------------
    @property
    def device(self):
        return self.lm.device

    def all_gather(self, tensor):
        if self.world_size == 1:
            return tensor
        parts = [torch.zeros_like(tensor) for _ in range(self.world_size)]
        torch.distributed.all_gather(parts, tensor)
        return torch.stack(parts) if tensor.dim() == 0 else torch.cat(parts)

    def gather_object(self, obj, dst=0):
        if self.world_size == 1:
            return [obj]
        gathered = [None] * self.world_size if self.rank == dst else None
        torch.distributed.gather_object(obj, gathered, dst=dst)
        return gathered

    def barrier(self) -> None:
        if self.world_size > 1:
            torch.distributed.barrier()

    # ----- generation --------------------------------------------------------------------------------------------
    def sampler_config(self, gen_length: int):
        from dopsd.sampling import SamplerConfig

        return SamplerConfig(gen_length=gen_length, block_length=min(self.block_length, gen_length), steps=self.steps,
                             temperature=self.temperature, remasking=self.remasking, threshold=self.threshold,
                             cache=self.cache)

    def encode(self, text: str) -> list[int]:
        return self.lm.tokenizer(text)["input_ids"]

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        from dopsd.sampling import BlockDiffusionSampler

        jobs = []
        for index, request in enumerate(requests):
            context, options = request.arguments
            options = dict(options or {})
            until = options.get("until") or []
            until = [until] if isinstance(until, str) else list(until)
            length = int(self.gen_length or options.get("max_gen_toks", 256))
            prompt = self.encode(context)
            jobs.append((length, len(prompt), index, prompt, until))
        jobs.sort(key=lambda job: (job[0], job[1]))  # similar prompt lengths together
        groups: dict[int, list] = {}
        for job in jobs:
            groups.setdefault(job[0], []).append(job)  # one sampler setting (response length) a batch
        outputs: list[str | None] = [None] * len(jobs)
        bar = tqdm(total=len(jobs), desc="dopsd generate_until", disable=disable_tqdm or self.rank != 0)
        began = time.perf_counter()
        for length, group in groups.items():
            sampler = BlockDiffusionSampler(self.lm, self.sampler_config(length))
            for start in range(0, len(group), self.batch):
                part = group[start : start + self.batch]
                trajectories = sampler.sample([job[3] for job in part], seed=self.seed)
                for job, trajectory in zip(part, trajectories):
                    outputs[job[2]] = cut_at(self.lm.decode(trajectory.tokens), job[4])
                self.timing["generated_tokens"] += length * len(part)
                bar.update(len(part))
        bar.close()
        self.timing["samples"] += len(jobs)
        self.timing["seconds"] += time.perf_counter() - began
        self.report_throughput()
        return outputs

    def report_throughput(self) -> None:
        seconds = max(self.timing["seconds"], 1e-9)
        print(f"dopsd: {self.timing['samples']} samples, {self.timing['generated_tokens']:,} tokens generated in "
              f"{seconds:.1f} s ({self.timing['generated_tokens'] / seconds:,.1f} tokens/s, "
              f"{self.timing['samples'] / seconds:.2f} samples/s)", file=sys.stderr)

    # ----- likelihoods -------------------------------------------------------------------------------------------
    def loglikelihood(self, requests, disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        results = []
        for request in tqdm(requests, desc="dopsd loglikelihood", disable=disable_tqdm or self.rank != 0):
            context, continuation = request.arguments
            results.append(self.continuation_loglikelihood(context, continuation))
        return results

    @torch.no_grad()
    def continuation_loglikelihood(self, context: str, continuation: str) -> tuple[float, bool]:
        """(estimated log-likelihood of ``continuation`` after ``context``, whether it is the greedy answer)."""
        prefix, target = self.split_tokens(context, continuation)
        lm, device = self.lm, self.lm.device
        prompt = torch.tensor(prefix, device=device)
        clean = torch.tensor(target, device=device)
        length = clean.numel()
        positions = len(prefix) + torch.arange(length, device=device)
        generator = torch.Generator(device="cpu").manual_seed(self.seed)
        total = 0.0
        for _ in range(self.mc_num // self.mc_batch_size):
            masked, ratio = stratified_masks(self.mc_batch_size, length, generator)
            masked, ratio = masked.to(device), ratio.to(device)
            noisy = torch.where(masked, torch.full_like(masked, lm.tokens.mask, dtype=torch.long), clean[None])
            ids = torch.cat([prompt.expand(self.mc_batch_size, -1), noisy], dim=1)
            logits = lm.state_logits_at(ids, positions, None, len(prefix), clean=clean.expand_as(noisy))
            loss = F.cross_entropy(logits.float().transpose(1, 2), clean.expand_as(noisy), reduction="none")
            total += float((loss * masked / ratio[:, None]).sum())
        all_masked = torch.cat([prompt, torch.full_like(clean, lm.tokens.mask)])[None]
        greedy = lm.state_logits_at(all_masked, positions, None, len(prefix), clean=clean[None]).argmax(-1)[0]
        return -total / self.mc_num, bool(torch.equal(greedy, clean))

    def split_tokens(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        """Token ids of the context and of the continuation (lm-eval's convention: trailing spaces of the context
        move to the continuation; the continuation tokenised as the end of the whole text)."""
        spaces = len(context) - len(context.rstrip())
        if spaces:
            context, continuation = context[:-spaces], context[-spaces:] + continuation
        whole, prefix = self.encode(context + continuation), self.encode(context)
        target = whole[len(prefix):]
        if not target:
            raise DopsdError(f"the continuation {continuation!r} encodes to no token after its context")
        return prefix, target

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
        raise DopsdError("loglikelihood_rolling (perplexity tasks such as wikitext) is not defined for a masked "
                         "diffusion LM: it has no left-to-right likelihood of a text; use generation or "
                         "multiple-choice tasks")


def stratified_masks(count: int, length: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` masks over ``length`` positions, (count, length) bool, and each row's masked share: the numbers of
    masked positions spread evenly over 1..length from a random start (LLaDA's evaluation schedule), the positions
    drawn uniformly."""
    start = int(torch.randint(1, length + 1, (), generator=generator))
    spread = torch.linspace(start, start + (count - 1) * (length / count), count)
    numbers = (spread.round().long() % length) + 1  # in 1..length
    order = torch.rand((count, length), generator=generator).argsort(dim=1)
    masked = order < numbers[:, None]
    return masked, numbers.float() / length


def cut_at(text: str, until: list[str]) -> str:
    """``text`` up to the first of the ``until`` strings."""
    cut = min((index for index in (text.find(stop) for stop in until if stop) if index >= 0), default=len(text))
    return text[:cut]


def main(argv: list[str] | None = None) -> int:
    """``dopsd lm-eval ARGS``: lm-eval's command line with ``--model dopsd`` available."""
    from lm_eval.__main__ import cli_evaluate

    sys.argv = ["lm_eval", *(argv if argv is not None else sys.argv[1:])]
    cli_evaluate()
    return 0


if __name__ == "__main__":  # accelerate launch -m dopsd.lmeval ARGS
    main()
