"""The prefix index: longest shared prefix wins, least valuable entry goes first."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from appliance.engines.prefix_cache import PrefixIndex, common_prefix


@given(st.lists(st.integers(0, 3), max_size=600), st.lists(st.integers(0, 3), max_size=600))
def test_common_prefix_matches_a_plain_loop(a: list[int], b: list[int]) -> None:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    assert common_prefix(a, b) == n


def test_common_prefix_of_long_equal_runs() -> None:
    a = list(range(1000))
    assert common_prefix(a, a) == 1000
    assert common_prefix(a, [*a[:700], -1]) == 700


def test_best_entry_is_the_longest_shared_prefix() -> None:
    index = PrefixIndex()
    index.add(1, [1, 2, 3, 4], now=0)
    index.add(2, [1, 2, 3, 9, 9, 9, 9], now=0)
    index.add(3, [5, 6], now=0)
    entry, n = index.best([1, 2, 3, 9, 9, 0])
    assert entry is not None and (entry.seq_id, n) == (2, 5)
    assert index.best([7, 7]) == (None, 0)


def test_victim_weighs_tokens_recency_and_hits() -> None:
    index = PrefixIndex()
    index.add(1, [1] * 100, now=0)  # long but old
    index.add(2, [2] * 10, now=99)  # short and recent
    assert index.victim(now=100).seq_id == 1  # type: ignore[union-attr]
    index.entries[1].hits = 50
    assert index.victim(now=100).seq_id == 2  # type: ignore[union-attr]
    assert index.victim(now=100, keep=2).seq_id == 1  # type: ignore[union-attr]
    index.remove(1)
    index.remove(2)
    assert index.victim(now=100) is None
