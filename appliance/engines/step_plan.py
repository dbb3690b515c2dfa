"""How much of each pending prompt one step reads, for llama.cpp's micro-batches.

With a KV stream per slot, llama.cpp cuts a step into micro-batches holding the same
number of tokens from each sequence (and only consecutive sequence ids), and every
micro-batch reads all the weights once more. Prompt chunks of equal length make one
micro-batch; chunks of three different lengths make three. Equal chunks also keep
prompts that arrived together finishing together, so their answers then decode in
the same steps instead of in staggered, smaller ones.
"""

from __future__ import annotations

from collections.abc import Sequence


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
