"""Equal prompt chunks per step: one llama.cpp micro-batch instead of one per length."""

from __future__ import annotations

import random

from appliance.engines.step_plan import equal_chunks


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
