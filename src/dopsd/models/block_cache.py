"""The exact key/value cache of a block-attention diffusion LM (BD3LM, SDAR, OPDLM's student).

A block-causal model's finished blocks never see the blocks after them, so their keys and values are final the
moment the block is decoded: caching them changes nothing. Per batch: the prompt runs once; at the first step of each
block the previous (now finished) block runs together with the current one, its keys and values are appended to the
cache and the current block's are dropped; every later step runs the current block's tokens only, against the cache.
No extra forward per block stores the finished one (OPDLM's sampler spends one). A model with shifted logits reads a
block's first position from the hidden state before the block, which only the first step computes: it is kept.

Models whose forward stores keys/values only when asked (SDAR's ``store_kv=True``; otherwise it reads the cache and
stores nothing) get ``store_kv=True`` on the first step of each block, the pass whose finished columns are kept; they
are recognised by a ``store_kv`` parameter on any of their modules' ``forward``. The cache they get also answers
transformers 4's ``cache[layer] -> (keys, values)``, which such remote code reads.

Logits equal the uncached block-causal pass to float rounding (tested: identical tokens at temperature 0).
"""

from __future__ import annotations

import inspect

import torch
from transformers import DynamicCache

from dopsd.models.adapter import DiffusionLM, head_sees_rows, positions_from
from dopsd.models.cache import cache_keyword


class IndexableCache(DynamicCache):
    """A ``DynamicCache`` that also answers ``cache[layer]`` with ``(keys, values)``, as transformers 4's did."""

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        layer = self.layers[index]
        return layer.keys, layer.values


def stores_on_request(lm: DiffusionLM) -> bool:
    """Whether the model writes its cache only when its forward gets ``store_kv=True`` (SDAR's remote code), and
    its top-level forward can pass that keyword on (checked once per model)."""
    if "store_kv" not in lm._checks:
        base = lm.model.get_base_model() if hasattr(lm.model, "get_base_model") else lm.model
        top = inspect.signature(base.forward).parameters
        passes = "store_kv" in top or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in top.values())
        named = any("store_kv" in inspect.signature(module.forward).parameters
                    for module in base.modules() if callable(getattr(module, "forward", None)))
        lm._checks["store_kv"] = bool(passes and named)
    return lm._checks["store_kv"]


class ExactBlockCache:
    """Keys and values of the finished columns of one batch (prompt and decoded blocks), per layer."""

    def __init__(self, lm: DiffusionLM, response_start: int):
        self.lm, self.response_start = lm, response_start
        self.keyword = cache_keyword(lm)
        self.store_kv = stores_on_request(lm)
        self.kept: list[tuple[torch.Tensor, torch.Tensor]] | None = None
        self.stored = 0  # columns [0, stored) are in the cache
        self.first_logits: torch.Tensor | None = None

    def begin_block(self, sequence: torch.Tensor, attention: torch.Tensor | None, start: int, end: int,
                    cells: torch.Tensor | None = None) -> torch.Tensor:
        """First step of the block at columns ``[start, end)``: runs every column not yet cached through ``end``,
        caches those before ``start``; logits at the block offsets ``cells`` (batch, P), or the whole block."""
        if self.kept is None:
            self.keys = torch.ones_like(sequence) if attention is None else attention
            self.positions = positions_from(self.keys)
        first = self.stored
        cells = self._cells(sequence, start, end, cells)
        logits, cache = self._run(sequence, first, start, end, cells, keep_first=True)
        self.kept = [(layer.keys[:, :, :start], layer.values[:, :, :start]) for layer in cache.layers]
        self.stored, self.block = start, (start, end)
        return logits

    def step(self, sequence: torch.Tensor, cells: torch.Tensor | None = None) -> torch.Tensor:
        """A later step of the current block: only its tokens run, against the cache (which is left unchanged)."""
        start, end = self.block
        cells = self._cells(sequence, start, end, cells)
        logits, _ = self._run(sequence, start, start, end, cells, keep_first=False)
        return logits

    def _cells(self, sequence, start, end, cells):
        if cells is None:
            return torch.arange(end - start, device=sequence.device).expand(sequence.shape[0], -1)
        return cells

    def _run(self, sequence, first, start, end, cells, keep_first: bool):
        """Columns ``[first, end)`` through the model against the cached ``[0, first)``; logits at ``cells``. The
        first step of a block (``keep_first``) is the pass whose columns are cached: a store-on-request model is
        asked to store them."""
        lm = self.lm
        allowed = lm.layout.mask(self.keys[:, :end], end, self.response_start, sequence.shape[0], sequence.device,
                                 first_query=first)
        inputs = lm._four_d_inputs(sequence[:, first:end], None, allowed, self.positions[:, first:end])
        cache = IndexableCache(ddp_cache_data=self.kept) if self.kept else IndexableCache()
        extra = {"store_kv": True} if self.store_kv and keep_first else {}
        offset = start - first
        shifted = lm.shift_logits
        # rows of this pass whose hidden states the output head projects
        source = offset + (cells - 1 if shifted else cells)
        if shifted and not keep_first:
            source = source.clamp(min=0)  # offset 0 of the block is read from the kept logits below
        with head_sees_rows(lm.model, source):
            logits = lm.runner(**inputs, use_cache=True, **{self.keyword: cache}, **extra).logits
        if shifted:
            at_first = cells == 0
            if keep_first:
                # offset 0's logits depend on finished columns only: the same at every step of the block
                self.first_logits = logits.gather(
                    1, at_first.long().argmax(1)[:, None, None].expand(-1, 1, logits.shape[-1]))[:, 0]
            else:
                logits = torch.where(at_first[..., None], self.first_logits[:, None], logits)
        return logits, cache
