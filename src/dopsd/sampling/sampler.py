"""Batched block-diffusion sampling that records each trajectory.

The response starts fully masked. Blocks are decoded left to right; at every step the model proposes a token for
each masked position of the current block (argmax, or Gumbel-max at temperature > 0 with float64 noise), and the
most confident proposals are kept (``low_confidence``: probability of the proposed token; ``random``: uniform
scores). Logits are only ever computed at the current block's still-masked positions (with or without the block
cache), and the float64 sampling work runs only there. With ``threshold`` set, a step instead keeps every
proposal whose confidence exceeds it (at least one), the Fast-dLLM parallel-decoding rule.

Prompts of different lengths are left-padded into one batch when the model honours attention masks (probed by
:attr:`DiffusionLM.handles_padding`); otherwise they are batched in groups of equal length, which gives the same
tokens without relying on the mask.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from dopsd.config import ConfigError
from dopsd.models.adapter import DiffusionLM
from dopsd.models.cache import CACHE_MODES, make_cache
from dopsd.sampling.padding import group_by_length, left_pad_with_responses
from dopsd.sampling.schedule import plan_blocks
from dopsd.sampling.trajectory import Trajectory, recorded_steps

REMASKING = ("low_confidence", "random")

StepCallback = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], None]


@dataclass
class SamplerConfig:
    """Block-diffusion decoding settings (defaults: the paper's evaluation setting at 256 tokens).

    Args:
        gen_length: Response length in tokens.
        block_length: Tokens per block; the last block is shorter when it does not divide ``gen_length``.
        steps: Total denoising steps; ``None`` means ``gen_length // 2`` (two tokens per step, as in the paper).
            Ignored when ``threshold`` is set.
        temperature: 0 decodes greedily; above 0 samples by Gumbel-max with float64 noise.
        remasking: ``low_confidence`` keeps the most probable proposals; ``random`` keeps random ones.
        threshold: If set, parallel decoding: keep every proposal with confidence above it (at least one per step).
        record_until_eos: End a trajectory's recorded steps once everything through its first stop token is
            revealed (the later steps only decode padding).
        cache: ``None`` (default), or Fast-dLLM's block KV cache: ``prefix`` (a block's later steps run the block
            and everything after it) or ``dual`` (they run the block only). Exact with one step per block, an
            approximation otherwise (see :mod:`dopsd.models.cache`); models that cannot take a cache decode without.
            On a block-attention model either mode is the exact cache of finished blocks
            (:mod:`dopsd.models.block_cache`), and ``block_length`` must equal the model's block size.
    """

    gen_length: int = 256
    block_length: int = 32
    steps: int | None = None
    temperature: float = 0.0
    remasking: str = "low_confidence"
    threshold: float | None = None
    record_until_eos: bool = True
    cache: str | None = None

    def __post_init__(self):
        if self.gen_length < 1:
            raise ConfigError("gen_length", self.gen_length, "must be at least 1")
        if self.block_length < 1:
            raise ConfigError("block_length", self.block_length, "must be at least 1")
        if self.temperature < 0:
            raise ConfigError("temperature", self.temperature, "must be >= 0")
        if self.remasking not in REMASKING:
            raise ConfigError("remasking", self.remasking, f"must be one of {', '.join(REMASKING)}")
        if self.cache is not None and self.cache not in CACHE_MODES:
            raise ConfigError("cache", self.cache, f"must be one of {', '.join(CACHE_MODES)} (or null)")
        if self.threshold is not None:
            if not 0.0 < self.threshold <= 1.0:
                raise ConfigError("threshold", self.threshold, "must be in (0, 1]")
            if self.remasking != "low_confidence":
                raise ConfigError("threshold", self.threshold, "needs remasking=low_confidence")
        blocks = -(-self.gen_length // self.block_length)
        if self.threshold is None and not blocks <= self.total_steps <= self.gen_length:
            raise ConfigError(
                "steps", self.steps,
                f"must be between the number of blocks ({blocks}) and gen_length ({self.gen_length})"
            )

    @property
    def total_steps(self) -> int:
        return self.steps if self.steps is not None else max(self.gen_length // 2, 1)


class BlockDiffusionSampler:
    """Samples responses from a :class:`DiffusionLM` and records their trajectories."""

    def __init__(self, lm: DiffusionLM, config: SamplerConfig | None = None):
        self.lm = lm
        self.config = config or SamplerConfig()
        lm.layout.check_block_length(self.config.block_length)
        self._workspace: dict[str, torch.Tensor] = {}

    def _buffer(self, name: str, shape, dtype: torch.dtype, device) -> torch.Tensor:
        """A tensor of ``shape`` reused across the steps of one batch: a fresh (batch, positions, vocab) float64
        tensor every step costs the CPU its page faults again (the allocator returns large blocks to the OS)."""
        size = torch.Size(shape).numel()
        flat = self._workspace.get(name)
        if flat is None or flat.numel() < size or flat.dtype != dtype or flat.device != torch.device(device):
            flat = self._workspace[name] = torch.empty(size, dtype=dtype, device=device)
        return flat[:size].view(shape)

    @torch.no_grad()
    def sample(
        self,
        prompts: Sequence[Sequence[int] | torch.Tensor],
        *,
        generator: torch.Generator | None = None,
        seed: int | None = None,
        on_step: StepCallback | None = None,
        context: torch.Tensor | None = None,
    ) -> list[Trajectory]:
        """One trajectory per prompt (token ids), in order.

        ``on_step(row_steps, responses, active)`` is called before every step with each row's own step index, the
        current responses (batch, gen_length) and which rows decode at this step; it exists for inspection and tests.

        ``context`` (batch, gen_length): tokens the response starts from instead of masks (the self-teacher's
        revealed future, paper section 4.1). Each block is cleared back to masks when decoding reaches it, so no
        position is ever given, only the blocks after the one being decoded are seen.
        """
        if not prompts:
            return []
        if generator is None and seed is not None:
            generator = torch.Generator(device=self.lm.device).manual_seed(seed)
        prompts = [torch.as_tensor(p, dtype=torch.long).flatten() for p in prompts]
        if any(p.numel() == 0 for p in prompts):
            raise ValueError("every prompt needs at least one token")
        self.lm.check_fits(max(p.numel() for p in prompts), self.config.gen_length)
        if context is not None and tuple(context.shape) != (len(prompts), self.config.gen_length):
            raise ValueError(f"context must be (prompts, gen_length) = ({len(prompts)}, {self.config.gen_length}), "
                             f"got {tuple(context.shape)}")
        lengths = {p.numel() for p in prompts}
        if len(lengths) == 1 or self.lm.handles_padding:
            return self._sample_batch(prompts, generator, on_step, context)
        result: list[Trajectory | None] = [None] * len(prompts)
        for indices in group_by_length([p.numel() for p in prompts]):
            rows = None if context is None else context[indices]
            for index, trajectory in zip(indices, self._sample_batch([prompts[i] for i in indices], generator, on_step,
                                                                     rows)):
                result[index] = trajectory
        return result

    def _sample_batch(self, prompts, generator, on_step, context=None) -> list[Trajectory]:
        config, lm, tokens = self.config, self.lm, self.lm.tokens
        device = lm.device
        batch, gen_length = len(prompts), config.gen_length
        start = torch.full((batch, gen_length), tokens.mask, dtype=torch.long, device=device)
        if context is not None:
            start = context.to(device=device, dtype=torch.long)
        sequence, attention, prompt_length = left_pad_with_responses(prompts, start, tokens.pad)
        response = sequence[:, prompt_length:]  # a view: writing it writes the sequence
        reveal_step = torch.full((batch, gen_length), -1, dtype=torch.long, device=device)
        row_steps = torch.zeros(batch, dtype=torch.long, device=device)

        if bool(attention.all()):
            attention = None  # one check per batch, not one host sync per step inside the model adapter
        fixed = config.threshold is None
        cache = make_cache(lm, config.cache, prompt_length)
        for block in self._blocks():
            response[:, block.start : block.end] = tokens.mask
            size = remaining = block.end - block.start
            for index, count in enumerate(block.tokens_per_step):
                masked = response[:, block.start : block.end] == tokens.mask
                if fixed:
                    # Every row decodes in lockstep and has exactly `remaining` masked positions, so no step needs
                    # to ask the device whether work is left.
                    active = torch.ones(batch, dtype=torch.bool, device=device)
                    width = remaining
                else:
                    width = int(masked.sum(dim=1).max())  # a threshold step's one host sync: is work left?
                    if width == 0:
                        break
                    active = masked.any(dim=1)
                # Only the still-masked positions are projected onto the vocabulary: each row's masked block offsets
                # in block order, then (rows with fewer, threshold mode only) revealed ones, never chosen.
                cells = masked.to(torch.int8).argsort(dim=1, descending=True, stable=True)[:, :width]
                if on_step is not None:
                    on_step(row_steps.clone(), response.clone(), active.clone())
                if cache is None:
                    logits = lm.logits_at(sequence, prompt_length + block.start + cells, attention, prompt_length)
                elif index == 0:
                    logits = cache.begin_block(sequence, attention, prompt_length + block.start,
                                               prompt_length + block.end, cells)
                else:
                    logits = cache.step(sequence, cells)
                proposal, confidence = self._propose(logits, generator, None if fixed else (size, cells))
                open_cells = masked.gather(1, cells)
                confidence = confidence.masked_fill(~open_cells, -torch.inf)
                keep = cells.new_zeros(masked.shape, dtype=torch.bool).scatter_(
                    1, cells, self._choose(confidence, open_cells, count))
                block_view = response[:, block.start : block.end]
                values = block_view.scatter(1, cells, proposal)
                block_view.copy_(torch.where(keep, values, block_view))  # tensor ops: no boolean-index sync
                revealed = reveal_step[:, block.start : block.end]
                revealed.copy_(torch.where(keep, row_steps[:, None], revealed))
                row_steps += active.long()
                remaining -= count

        self._workspace.clear()
        trajectories = []
        for row, prompt in enumerate(prompts):
            final, steps = response[row].cpu(), int(row_steps[row])
            revealed = reveal_step[row].cpu()
            recorded = recorded_steps(final, revealed, steps, tokens.stop) if config.record_until_eos else steps
            trajectories.append(
                Trajectory(
                    prompt_ids=prompt.cpu(),
                    tokens=final,
                    reveal_step=revealed,
                    num_steps=steps,
                    num_recorded_steps=recorded,
                    block_length=config.block_length,
                    mask_id=tokens.mask,
                )
            )
        return trajectories

    def _blocks(self):
        """Block plans; in threshold mode each block allows up to one step per token and stops when decoded."""
        config = self.config
        if config.threshold is None:
            return plan_blocks(config.gen_length, config.block_length, config.total_steps)
        return plan_blocks(config.gen_length, config.block_length, config.gen_length)

    def _propose(self, logits: torch.Tensor, generator, block_noise: tuple[int, torch.Tensor] | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """A proposed token and its confidence for each position: both (batch, positions). ``logits`` (batch,
        positions, vocab) are the model's fresh output and are overwritten.

        The mask token itself is never proposed (an untrained model may rank it first), so a revealed position
        always holds a real token. ``block_noise`` = (block size, cells): the Gumbel noise is drawn for the whole
        block and read at the block offsets ``cells`` (threshold mode: its random stream is what it was when every
        block position was projected).

        At temperature > 0 the proposal is Gumbel-max in float64, as LLaDA samples (float32 noise truncates the
        Gumbel tail). The float64 work runs only at the positions in ``logits`` (the still-masked ones) and in place:
        the noise buffer becomes log(-log u), the scores logits / T - log(-log u), bit for bit what
        logits / T + (-log(-log u)) was with separate tensors. The confidence p(proposal) = exp(logit -
        logsumexp) needs no softmax over the vocabulary; its log-normaliser is taken before the scores are
        scaled in place.
        """
        mask = self.lm.tokens.mask
        low_confidence = self.config.remasking == "low_confidence"
        temperature = self.config.temperature
        normaliser = None
        if temperature > 0:
            scores = self._buffer("scores", logits.shape, torch.float64, logits.device).copy_(logits)
            scores[..., mask] = -torch.inf
            if low_confidence:
                normaliser = torch.logsumexp(scores, dim=-1)
            noise = self._buffer("noise", scores.shape, torch.float64, scores.device)
            if block_noise is None:
                torch.rand(scores.shape, dtype=torch.float64, generator=generator, out=noise)
            else:
                size, cells = block_noise
                batch, _, vocab = scores.shape
                drawn = torch.rand((batch, size, vocab), dtype=torch.float64, device=scores.device, generator=generator)
                torch.gather(drawn, 1, cells[..., None].expand(-1, -1, vocab), out=noise)
                del drawn
            noise.log_().neg_().log_()  # log(-log u) = -Gumbel noise
            proposal = scores.div_(temperature).sub_(noise).argmax(dim=-1)
        else:
            logits[..., mask] = -torch.inf
            proposal = logits.argmax(dim=-1)
        if not low_confidence:
            confidence = torch.rand(proposal.shape, dtype=torch.float64, device=logits.device, generator=generator)
        else:
            if normaliser is None:
                normaliser = torch.logsumexp(logits, dim=-1).to(torch.float64)
            chosen = logits.gather(-1, proposal[..., None]).squeeze(-1).to(torch.float64)
            confidence = (chosen - normaliser).exp()
        return proposal, confidence

    def _choose(self, confidence: torch.Tensor, masked: torch.Tensor, count: int) -> torch.Tensor:
        """Which masked positions to reveal: the ``count`` most confident, or all above the threshold."""
        keep = torch.zeros_like(masked)
        if self.config.threshold is None:
            available = masked.sum(dim=1)
            take = available.clamp(max=count)
            ranked = confidence.argsort(dim=1, descending=True, stable=True)
            first = torch.arange(masked.shape[1], device=masked.device)[None, :] < take[:, None]
            keep.scatter_(1, ranked, first)
            return keep
        keep = masked & (confidence > self.config.threshold)
        best = confidence.argmax(dim=1, keepdim=True)
        keep.scatter_(1, best, masked.gather(1, best) | keep.gather(1, best))
        return keep
