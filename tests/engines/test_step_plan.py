"""The shape of a step: whole prompts first, equal chunks for the rest (one llama.cpp
micro-batch instead of one per length), throwaway pads for gaps between streams."""

from __future__ import annotations

import random

from appliance.engines.step_plan import equal_chunks, gap_fillers, whole_then_equal


def test_prompts_read_together_get_one_length() -> None:
    assert equal_chunks([182, 182, 182, 182], 512) == [128, 128, 128, 128]
    assert equal_chunks([300, 50, 300], 512) == [231, 50, 231]


def test_prompts_that_fit_are_read_whole() -> None:
    assert equal_chunks([26, 182], 512) == [26, 182]
    assert equal_chunks([7], 512) == [7]


def test_more_prompts_than_budget_read_a_token_each_in_order() -> None:
    assert equal_chunks([5, 5, 5], 2) == [1, 1, 0]
    assert equal_chunks([5, 5], 0) == [0, 0]
    assert equal_chunks([], 16) == []


def test_the_common_cap_is_the_largest_that_fits() -> None:
    rng = random.Random(7)
    for _ in range(500):
        remaining = [rng.randint(1, 300) for _ in range(rng.randint(1, 8))]
        budget = rng.randint(len(remaining), 1200)
        sizes = equal_chunks(remaining, budget)
        assert sum(sizes) <= budget
        assert all(1 <= s <= r for s, r in zip(sizes, remaining, strict=True))
        cap = max(sizes)
        assert all(s == cap for s, r in zip(sizes, remaining, strict=True) if r > cap)
        unfinished = [r for s, r in zip(sizes, remaining, strict=True) if s < r]
        if unfinished:  # one more token for each unfinished prompt would not fit
            assert sum(sizes) + len(unfinished) > budget


def test_whole_prompts_shortest_first_then_equal_chunks_of_the_rest() -> None:
    # A burst of four: two get their first token this step, the other two share what is
    # left and finish together in the next (ties go in arrival order).
    assert whole_then_equal([182, 182, 182, 182], 512) == [182, 182, 74, 74]
    # Three arriving while one stream decodes (511 left): two whole, the third begun.
    assert whole_then_equal([182, 182, 182], 511) == [182, 182, 147]
    # The shortest first, wherever it arrived: a 1-token rest is not held back behind
    # a long prompt, and a prompt half read (the oldest) finishes before new ones.
    assert whole_then_equal([16, 12, 22, 1], 16) == [1, 12, 1, 1]
    assert whole_then_equal([100, 182, 182], 300) == [100, 182, 18]
    assert whole_then_equal([100, 182, 182], 250) == [100, 75, 75]
    assert whole_then_equal([600, 20, 600], 512) == [246, 20, 246]
    assert whole_then_equal([], 16) == []
    assert whole_then_equal([5, 5], 0) == [0, 0]


def test_whole_then_equal_never_exceeds_the_budget() -> None:
    rng = random.Random(11)
    for _ in range(500):
        remaining = [rng.randint(1, 300) for _ in range(rng.randint(1, 8))]
        budget = rng.randint(0, 1200)
        sizes = whole_then_equal(remaining, budget)
        assert sum(sizes) <= budget
        assert all(0 <= s <= r for s, r in zip(sizes, remaining, strict=True))
        whole = [i for i, r in enumerate(remaining) if sizes[i] == r]
        rest = [i for i in range(len(remaining)) if i not in whole]
        # The whole prompts are the shortest; the rest get exactly equal_chunks' share.
        assert all(remaining[w] <= remaining[r] for w in whole for r in rest)
        left = budget - sum(remaining[w] for w in whole)
        assert [sizes[i] for i in rest] == equal_chunks([remaining[i] for i in rest], left)


def test_a_one_stream_gap_between_decoding_rows_is_filled() -> None:
    assert gap_fillers([0, 2, 3], {1: 40}, n_ctx=64, tokens_per_pass=1) == {1: 40}
    assert gap_fillers([3, 0, 2], {1: 0, 4: 9}, n_ctx=64, tokens_per_pass=1) == {1: 0}


def test_a_gap_wider_than_a_pass_is_worth_stays() -> None:
    assert gap_fillers([0, 3], {1: 5, 2: 5}, n_ctx=64, tokens_per_pass=1) == {}
    assert gap_fillers([0, 3], {1: 5, 2: 5}, n_ctx=64, tokens_per_pass=2) == {1: 5, 2: 5}
    # Each gap is judged alone: the narrow one is filled, the wide one is not.
    idle = {1: 3, 3: 3, 4: 3}
    assert gap_fillers([0, 2, 5], idle, n_ctx=64, tokens_per_pass=1) == {1: 3}


def test_only_idle_streams_with_room_are_padded() -> None:
    assert gap_fillers([0, 2], {1: 64}, n_ctx=64, tokens_per_pass=4) == {}  # a full stream
    assert gap_fillers([0, 2], {}, n_ctx=64, tokens_per_pass=4) == {}  # not idle (mid-prompt)
    assert gap_fillers([0, 1, 2], {3: 0}, n_ctx=64, tokens_per_pass=4) == {}  # no gap
