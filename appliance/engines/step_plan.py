"""The shape of a step for llama.cpp's micro-batches: how much of each pending prompt it
reads, and which idle sequences it pads.

With a KV stream per slot, llama.cpp cuts a step into micro-batches holding the same
number of tokens from each sequence (and only consecutive sequence ids), and every
micro-batch reads all the weights once more. Prompt chunks of equal length make one
micro-batch; chunks of three different lengths make three. So a step reads whole the
prompts that fit (the shortest first: their answers start this step) and the prompts it
cannot finish in equal chunks, which also keeps those finishing together: their answers
then decode in the same steps instead of in staggered, smaller ones. And a decode step
whose sequences' ids have a gap (a stream between them idle) is padded with a throwaway
token for each idle stream when that costs less than a pass.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import pairwise


def oldest_first(remaining: Sequence[int], budget: int) -> list[int]:
    """Tokens to read of each prompt, in arrival order, each as much as the budget leaves
    (one KV pool: llama.cpp takes any mix of lengths in one micro-batch)."""
    sizes = []
    for r in remaining:
        sizes.append(max(0, min(budget, r)))
        budget -= sizes[-1]
    return sizes


def equal_chunks(remaining: Sequence[int], budget: int) -> list[int]:
    """Tokens to read of each prompt (`remaining[i]` left of it) within `budget`: every
    chunk is capped at one common length, the largest that fits. With more prompts than
    budget, the first ones in order read a token each."""
    if budget <= 0 or not remaining:
        return [0] * len(remaining)
    if len(remaining) > budget:
        return [1 if i < budget else 0 for i in range(len(remaining))]
    lo, hi = 1, max(remaining)  # sum(min(r, lo)) <= budget holds for lo = 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if sum(min(r, mid) for r in remaining) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return [min(r, lo) for r in remaining]


def whole_then_equal(remaining: Sequence[int], budget: int) -> list[int]:
    """Tokens to read of each prompt (`remaining[i]` left of it, in arrival order) within
    `budget`: whole prompts first, the shortest first (the fewest tokens to a first token;
    ties in arrival order), while they fit. The budget left over is shared by the rest in
    `equal_chunks`, so that the step's unfinished prompts make one micro-batch and finish
    together in a later one."""
    sizes = [0] * len(remaining)
    by_length = sorted(range(len(remaining)), key=lambda i: remaining[i])
    whole = 0
    for i in by_length:
        if remaining[i] > budget:
            break
        sizes[i] = remaining[i]
        budget -= remaining[i]
        whole += 1
    rest = sorted(by_length[whole:])
    for i, size in zip(rest, equal_chunks([remaining[i] for i in rest], budget), strict=True):
        sizes[i] = size
    return sizes


def gap_fillers(
    rows: Sequence[int], idle: Mapping[int, int], n_ctx: int, tokens_per_pass: int
) -> dict[int, int]:
    """Idle sequences (id -> tokens they hold) to give one throwaway token each in a step of
    one-token rows for sequences `rows`, so that the rows' ids run without a gap.

    llama.cpp reads each run of consecutive ids in its own micro-batch (one more pass over
    the weights each), so a gap of g idle streams is filled when g tokens cost less than a
    pass: g <= `tokens_per_pass`. An idle stream takes a token only while it has room.
    """
    ids = sorted(set(rows))
    fill: dict[int, int] = {}
    for low, high in pairwise(ids):
        gap = range(low + 1, high)
        if 0 < len(gap) <= tokens_per_pass and all(idle.get(g, n_ctx) < n_ctx for g in gap):
            fill.update((g, idle[g]) for g in gap)
    return fill
