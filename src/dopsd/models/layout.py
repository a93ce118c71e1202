"""Which positions attend to which: the attention layout of a diffusion LM.

``full``: every position attends to every real (non-padding) position, as LLaDA and Dream do. ``block`` (BD3LM,
SDAR, TraDo, OPDLM's student): the sequence is cut into blocks of ``block_size`` tokens; a position attends to every
position of its own block and of the blocks before it, and to none after. Decoding then goes block by block, and the
keys/values of a finished block never change, so caching them is exact.

Blocks are counted from the start of the response: the response's first token starts block 0 and the prompt ends
the block before it (the prompt is cut into blocks backwards from its end, its first block possibly short), which is
what left-padding a prompt to a multiple of the block size gives (OPDLM's and dllm's BD3LM samplers). A row therefore
has the same blocks whatever padding a batch gives it. SDAR's own ``generate`` counts blocks from the first prompt
token instead; at a prompt length that is a multiple of the block size both agree.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dopsd.errors import DopsdError

ATTENTION_KINDS = ("full", "block")


@dataclass(frozen=True)
class AttentionLayout:
    """``AttentionLayout("full")`` or ``AttentionLayout("block", 4)``."""

    kind: str = "full"
    block_size: int | None = None

    def __post_init__(self):
        if self.kind not in ATTENTION_KINDS:
            raise DopsdError(f"unknown attention layout {self.kind!r}: use one of {', '.join(ATTENTION_KINDS)}")
        if self.kind == "block" and (self.block_size is None or int(self.block_size) < 1):
            raise DopsdError(f"a block attention layout needs a block size of at least 1, got {self.block_size}")
        if self.kind == "full" and self.block_size is not None:
            raise DopsdError("a full attention layout has no block size")

    @property
    def is_block(self) -> bool:
        return self.kind == "block"

    def describe(self) -> str:
        return f"block (block size {self.block_size})" if self.is_block else "full"

    def as_dict(self) -> dict:
        return {"attention": self.kind, "block_size": self.block_size}

    # ----- masks -----------------------------------------------------------------------------------------------
    def block_ids(self, length: int, response_start: int, device=None) -> torch.Tensor:
        """(length,) block index of each column: 0 for the response's first block, negative in the prompt."""
        columns = torch.arange(length, device=device) - response_start
        return torch.div(columns, self.block_size, rounding_mode="floor")

    def mask(self, keys: torch.Tensor | None, length: int, response_start: int, batch: int = 1,
             device=None, first_query: int = 0) -> torch.Tensor:
        """(batch, 1, length - first_query, length) boolean mask, True = may attend: block-causal among real
        positions, for the queries at columns ``first_query`` to ``length`` (all of them by default).

        ``keys`` (batch, length) is the padding mask (1 = real token) or ``None``. Every row may attend to itself, so
        no row of a padded position is all-masked (which would make attention NaN)."""
        blocks = self.block_ids(length, response_start, device)
        allowed = blocks[None, :] <= blocks[first_query:, None]
        allowed = allowed[None].expand(batch if keys is None else keys.shape[0], -1, -1)
        if keys is not None:
            allowed = allowed & keys.bool()[:, None, :]
        rows = torch.arange(first_query, length, device=allowed.device)
        itself = rows[:, None] == torch.arange(length, device=allowed.device)[None, :]
        return (allowed | itself)[:, None]

    def clean_noisy_mask(self, keys: torch.Tensor | None, width: int, gen_length: int, batch: int = 1,
                         device=None) -> torch.Tensor:
        """Mask of the one-pass training layout ``[prompt (width) | clean response | noisy response]``, (batch, 1,
        N, N) with N = width + 2 * gen_length: prompt and clean response are block-causal among themselves; a noisy
        block attends to the prompt, the clean blocks before it and itself (so every noisy block sees exactly what
        the sampler shows it when that block is being decoded). ``keys`` (batch, width + gen_length) marks the real
        tokens of prompt and clean response."""
        length = width + gen_length
        blocks = self.block_ids(length, width, device)
        response_blocks = blocks[width:]
        top = blocks[None, :] <= blocks[:, None]  # prompt + clean among themselves
        noisy_to_clean = blocks[None, :] < response_blocks[:, None]
        noisy_to_noisy = response_blocks[None, :] == response_blocks[:, None]
        size = length + gen_length
        allowed = torch.zeros(size, size, dtype=torch.bool, device=top.device)
        allowed[:length, :length] = top
        allowed[length:, :length] = noisy_to_clean
        allowed[length:, length:] = noisy_to_noisy
        count = batch if keys is None else keys.shape[0]
        allowed = allowed[None].expand(count, -1, -1)
        if keys is not None:
            real = torch.cat([keys.bool(), torch.ones(count, gen_length, dtype=torch.bool, device=keys.device)], 1)
            allowed = allowed & real[:, None, :]
        allowed = allowed | torch.eye(size, dtype=torch.bool, device=allowed.device)
        return allowed[:, None]

    def check_block_length(self, block_length: int) -> None:
        """A block model decodes one model block per sampler block; anything else is refused in one line."""
        if self.is_block and block_length != self.block_size:
            raise DopsdError(f"this model attends in blocks of {self.block_size} tokens: decode with "
                             f"--block-length {self.block_size} (got {block_length})")


FULL = AttentionLayout()

# Model types (substrings) whose checkpoints are block-diffusion LMs: their config's block size field is read; a
# config of such a type that states none needs the block size as an option (``--block-size``).
# (dllm's ``a2d-*`` types are not among them: the same code runs full-attention MDLM and BD3LM checkpoints.)
BLOCK_MODEL_FAMILIES = ("sdar", "trado", "bd3lm", "llada2")


def layout_from_config(config) -> AttentionLayout | None:
    """The layout a model's config states, or ``None`` when it says nothing.

    Read from, in order: a dopsd conversion record (``dopsd_diffusion: {"attention": "block", "block_size": 4}``),
    the built-in family's ``attention_layout``/``block_size``, and, for the model types of
    :data:`BLOCK_MODEL_FAMILIES`, a ``block_size`` (or ``bd_size``, ``block_length``) field. Other models' fields of
    those names are never read: they may mean something else."""
    from dopsd.models.convert import diffusion_settings

    settings = diffusion_settings(config) or {}
    if settings.get("attention"):
        return AttentionLayout(settings["attention"], settings.get("block_size"))
    kind = getattr(config, "attention_layout", None)
    if kind in ATTENTION_KINDS:
        return AttentionLayout(kind, getattr(config, "block_size", None) if kind == "block" else None)
    model_type = str(getattr(config, "model_type", "")).lower()
    if any(family in model_type for family in BLOCK_MODEL_FAMILIES):
        for name in ("block_size", "bd_size", "block_length"):
            value = getattr(config, name, None)
            if isinstance(value, int) and value >= 1:
                return AttentionLayout("block", value)
    return None
