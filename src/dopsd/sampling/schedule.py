"""How many tokens each denoising step reveals: blocks left to right, steps shared out between them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BlockPlan:
    """One block of the response: positions ``[start, end)`` decoded in ``len(tokens_per_step)`` steps."""

    start: int
    end: int
    tokens_per_step: tuple[int, ...]


def split_evenly(total: int, parts: int) -> list[int]:
    """``total`` split into ``parts`` integers differing by at most one, larger ones first."""
    base, extra = divmod(total, parts)
    return [base + 1 if i < extra else base for i in range(parts)]


def plan_blocks(gen_length: int, block_length: int, steps: int) -> list[BlockPlan]:
    """Blocks of ``block_length`` (the last may be shorter) and a reveal count for each of ``steps`` steps.

    Steps go to blocks in proportion to their length (largest remainder), at least one and at most one per token
    for each block; inside a block the tokens are split as evenly as possible, earlier steps taking the remainder.
    With the paper's settings (256 tokens, blocks of 32, 128 steps) every step reveals exactly 2 tokens.
    """
    if gen_length < 1 or block_length < 1:
        raise ValueError(f"gen_length ({gen_length}) and block_length ({block_length}) must be positive")
    lengths = [min(block_length, gen_length - start) for start in range(0, gen_length, block_length)]
    if not len(lengths) <= steps <= gen_length:
        raise ValueError(
            f"steps ({steps}) must be between the number of blocks ({len(lengths)}) and gen_length ({gen_length})"
        )
    ideal = [length * steps / gen_length for length in lengths]
    counts = [min(max(int(share), 1), length) for share, length in zip(ideal, lengths)]
    order = sorted(range(len(lengths)), key=lambda i: ideal[i] - int(ideal[i]), reverse=True)
    while sum(counts) != steps:
        grow = sum(counts) < steps
        for i in order if grow else reversed(order):
            if (grow and counts[i] < lengths[i]) or (not grow and counts[i] > 1):
                counts[i] += 1 if grow else -1
                break
    plans, start = [], 0
    for length, count in zip(lengths, counts):
        plans.append(BlockPlan(start, start + length, tuple(split_evenly(length, count))))
        start += length
    return plans
