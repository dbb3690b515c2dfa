"""Equal prompt chunks per step: one llama.cpp micro-batch instead of one per length."""

from __future__ import annotations

import random

from appliance.engines.step_plan import equal_chunks, gap_fillers


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
