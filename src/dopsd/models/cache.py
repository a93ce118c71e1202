"""Fast-dLLM's block KV cache for block-diffusion decoding, over any model that takes ``past_key_values``.

At the first step of a block the whole sequence runs once (those logits are exact) and every layer's keys and values
are kept for the positions outside the block's window; the block's later steps run only the window's tokens (the
``prefix`` cache also runs every position after the block) and attend to the kept keys and values. The window is the
block, plus the position before it for models with shifted logits (whose block logits are read there).

Exactness: the first step of every block is exact. Later steps are an approximation, as in Fast-dLLM: attention is
bidirectional, so the cached positions' keys and values would change as the block's tokens are revealed, and the
cache keeps the ones computed when the block was still masked. With one step per block, cached decoding is therefore
exactly uncached decoding; otherwise the accuracy difference is measured, not promised.

A model qualifies when a cached pass over an unchanged sequence gives the full pass's logits (probed once, on a tiny
input). Models that fail (remote code without a usable ``past_key_values``, no separate output head, no
``position_ids``) are decoded without the cache, with one warning.
"""

from __future__ import annotations

import inspect
import warnings

import torch

from dopsd.models.adapter import DiffusionLM, _quiet_probe, _tolerance, additive_mask, head_sees_rows, positions_from

CACHE_MODES = ("prefix", "dual")


class BlockCache:
    """Keys and values of the positions outside one block's window, for the steps inside that block."""

    def __init__(self, lm: DiffusionLM, mode: str):
        if mode not in CACHE_MODES:
            raise ValueError(f"unknown cache mode {mode!r}: use one of {', '.join(CACHE_MODES)}")
        self.lm, self.mode = lm, mode
        self.keyword = cache_keyword(lm)

    # ----- the two passes --------------------------------------------------------------------------------------
    def begin_block(self, sequence: torch.Tensor, attention: torch.Tensor | None, start: int, end: int,
                    cells: torch.Tensor | None = None) -> torch.Tensor:
        """Full pass at a block's first step: logits at positions ``[start, end)`` (batch, end - start, vocab), or
        only at the block offsets ``cells`` (batch, P) when given (the head projects just those rows)."""
        from transformers import DynamicCache

        batch, length = sequence.shape
        self.attention = torch.ones_like(sequence) if attention is None else attention
        self.positions = positions_from(self.attention)
        self.window = (start - 1 if self.lm.shift_logits else start, end)
        self.width = end - start
        cache = DynamicCache()
        logits = self._run(sequence, self.attention, self.positions, cache, self.window[0], cells)
        first, last = self.window
        keep = [slice(0, first), slice(last, length)] if self.mode == "dual" else [slice(0, first)]
        self.kept = [tuple(torch.cat([t[:, :, part] for part in keep], dim=2) for t in (layer.keys, layer.values))
                     for layer in cache.layers]
        self.kept_mask = torch.cat([self.attention[:, part] for part in keep], dim=1)
        return logits

    def step(self, sequence: torch.Tensor, cells: torch.Tensor | None = None) -> torch.Tensor:
        """A later step of the block: only the window (``prefix``: window and everything after it) runs; logits at
        the whole block, or only at the block offsets ``cells`` (batch, P)."""
        from transformers import DynamicCache

        first, last = self.window
        stop = last if self.mode == "dual" else sequence.shape[1]
        cache = DynamicCache(ddp_cache_data=self.kept)
        mask = torch.cat([self.kept_mask, self.attention[:, first:stop]], dim=1)
        return self._run(sequence[:, first:stop], mask, self.positions[:, first:stop], cache, 0, cells)

    def _run(self, input_ids, key_mask, position_ids, cache, source_start, cells=None) -> torch.Tensor:
        """One forward with ``cache``; the output head projects only the block's ``width`` rows from
        ``source_start``, or only the rows of the block offsets ``cells``."""
        lm = self.lm
        if cells is None:
            cells = torch.arange(self.width, device=input_ids.device).expand(input_ids.shape[0], -1)
        with head_sees_rows(lm.model, source_start + cells):
            output = lm.runner(input_ids=input_ids, attention_mask=self._mask(key_mask, input_ids.shape[1]),
                               position_ids=position_ids, use_cache=True, **{self.keyword: cache})
        return output.logits

    def _mask(self, key_mask: torch.Tensor, queries: int):
        """The key mask in the form the model understands (see ``DiffusionLM.mask_form``)."""
        form = self.lm.mask_form or "2d"
        if form == "4d_additive":
            return additive_mask(key_mask.bool(), self.lm.dtype)[:, None, None, :]
        if form == "4d_bool":
            return key_mask.bool()[:, None, None, :].expand(-1, 1, queries, -1)
        return key_mask


def cache_keyword(lm: DiffusionLM) -> str:
    """The keyword the model's forward takes its cache by: transformers 5 renames Llama's ``past_key_values`` to
    ``cache``; the built-in family and most remote code keep the old name."""
    base = lm.model.get_base_model() if hasattr(lm.model, "get_base_model") else lm.model
    return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"


def default_cache_mode(lm: DiffusionLM, mode: str | None) -> str | None:
    """``mode``, or where none is asked for, the exact cache on a block-attention model (it changes no token)."""
    return mode if mode is not None or not lm.layout.is_block else "prefix"


def make_cache(lm: DiffusionLM, mode: str | None, response_start: int):
    """The cache a batch decodes with: ``None`` without one (no mode, or a model that cannot take one), the exact
    cache of :mod:`dopsd.models.block_cache` for a block-attention model (either mode: nothing after the current
    block is ever visible to it), else :class:`BlockCache`."""
    if mode is None or not cache_supported(lm):
        return None
    if lm.layout.is_block:
        from dopsd.models.block_cache import ExactBlockCache

        return ExactBlockCache(lm, response_start)
    return BlockCache(lm, mode)


def cache_supported(lm: DiffusionLM) -> bool:
    """Whether ``lm`` can decode with the block cache (probed once per model, on a tiny input; see the module)."""
    if "kv_cache" not in lm._checks:
        with _quiet_probe(lm.model), torch.no_grad():
            lm._checks["kv_cache"] = _probe(lm)
    return lm._checks["kv_cache"]


def _probe(lm: DiffusionLM) -> str | bool:
    head = lm.model.get_output_embeddings() if hasattr(lm.model, "get_output_embeddings") else None
    reason = None
    if head is None or isinstance(head, torch.nn.Embedding) or not lm._accepts_position_ids:
        reason = "it exposes no separate output head or takes no position_ids"
    else:
        try:
            reason = _probe_exact(lm) if lm.layout.is_block else _probe_windows(lm)
        except Exception as error:  # noqa: BLE001  (remote code whose forward rejects a cache or its mask)
            reason = f"its forward rejects a cache ({type(error).__name__}: {str(error).splitlines()[0][:120]})"
    if reason is not None:
        name = type(lm.model).__name__
        warnings.warn(f"{name}: the block KV cache is not usable ({reason}); decoding without it", stacklevel=4)
        return False
    return True


def _probe_windows(lm: DiffusionLM) -> str | None:
    """Both modes of :class:`BlockCache` over an unchanged sequence against the full pass."""
    tokens = lm.tokens
    sequence = torch.tensor([[tokens.eos, tokens.pad, tokens.eos, tokens.mask, tokens.mask, tokens.mask,
                              tokens.eos, tokens.mask]], device=lm.device)
    expected = lm.logits(sequence)[:, 3:6]
    for mode in CACHE_MODES:
        cache = BlockCache(lm, mode)
        for got in (cache.begin_block(sequence, None, 3, 6), cache.step(sequence)):
            if got.shape != expected.shape or not torch.allclose(got, expected, **_tolerance(expected)):
                return "a cached pass over an unchanged sequence differs from the full pass"
    return None


def _probe_exact(lm: DiffusionLM) -> str | None:
    """Two blocks decoded with the exact cache (block 0 revealed between them) against the uncached pass."""
    from dopsd.models.block_cache import ExactBlockCache

    tokens, size = lm.tokens, lm.layout.block_size
    prompt = torch.tensor([tokens.eos, tokens.pad, tokens.eos], device=lm.device)
    sequence = torch.cat([prompt, torch.full((2 * size,), tokens.mask, device=lm.device)])[None]
    cache = ExactBlockCache(lm, 3)
    got = [cache.begin_block(sequence, None, 3, 3 + size), cache.step(sequence)]
    want = [lm.logits(sequence, response_start=3)[:, 3:3 + size]] * 2
    sequence[:, 3:3 + size] = tokens.eos
    got += [cache.begin_block(sequence, None, 3 + size, 3 + 2 * size), cache.step(sequence)]
    want += [lm.logits(sequence, response_start=3)[:, 3 + size:]] * 2
    for value, expected in zip(got, want):
        if value.shape != expected.shape or not torch.allclose(value, expected, **_tolerance(expected)):
            return "a cached pass differs from the uncached block-causal pass"
    return None
