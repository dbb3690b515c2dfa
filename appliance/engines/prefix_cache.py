"""Which cached token sequences a new prompt can start from: a pure index.

Each entry is a sequence the engine holds in its KV memory (a finished or an
in-flight request's tokens). A new prompt starts from the entry sharing its
longest token prefix, whoever asked for that entry. When sequences or KV room run
short, the entry of least value goes first: value weighs the tokens it would save
by how recently and how often it was used.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

# Below this many tokens a cache entry is not worth a sequence of its own.
MIN_USEFUL_PREFIX = 16


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the longest common prefix of two token sequences."""
    n = min(len(a), len(b))
    lo = 0
    step = 256
    # Compare in slices first (fast in C), then finish token by token.
    while lo + step <= n and a[lo : lo + step] == b[lo : lo + step]:
        lo += step
    while lo < n and a[lo] == b[lo]:
        lo += 1
    return lo


@dataclass
class CacheEntry:
    seq_id: int
    tokens: list[int]
    last_used: float
    hits: int = 0

    def value(self, now: float) -> float:
        age = max(now - self.last_used, 0.0)
        return len(self.tokens) * (1.0 + self.hits) / (1.0 + age)


class PrefixIndex:
    """Cache entries by sequence id, and the tokens they hold in all (kept as a running total:
    the heartbeat thread reads it while the scheduler changes the entries)."""

    def __init__(self) -> None:
        self.entries: dict[int, CacheEntry] = {}
        self._tokens = 0

    def __len__(self) -> int:
        return len(self.entries)

    def add(self, seq_id: int, tokens: Sequence[int], now: float) -> None:
        self.remove(seq_id)
        self.entries[seq_id] = CacheEntry(seq_id, list(tokens), now)
        self._tokens += len(tokens)

    def remove(self, seq_id: int) -> CacheEntry | None:
        entry = self.entries.pop(seq_id, None)
        if entry is not None:
            self._tokens -= len(entry.tokens)
        return entry

    def best(self, tokens: Sequence[int], whole: bool = False) -> tuple[CacheEntry | None, int]:
        """The entry sharing the longest prefix with `tokens`, and that length. With `whole`,
        only an entry that is all a prefix of `tokens`, shorter than them: a recurrent
        state cannot be cut back, and the prompt's last token must be read."""
        best: CacheEntry | None = None
        best_n = 0
        for entry in self.entries.values():
            n = common_prefix(entry.tokens, tokens)
            if whole and not len(entry.tokens) == n < len(tokens):
                continue
            if n > best_n:
                best, best_n = entry, n
        return best, best_n

    def victim(self, now: float, keep: int | None = None) -> CacheEntry | None:
        """The entry of least value (never `keep`), or None when there is none."""
        candidates = [e for e in self.entries.values() if e.seq_id != keep]
        if not candidates:
            return None
        return min(candidates, key=lambda e: (e.value(now), e.last_used))

    def cached_tokens(self) -> int:
        return self._tokens
