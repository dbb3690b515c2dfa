"""Shortened embeddings: unit length again when the model normalises, raw otherwise."""

from __future__ import annotations

import math

import pytest

from appliance.api.embedding_dims import shorten


def test_a_unit_vector_is_shortened_to_a_unit_vector_in_the_same_direction() -> None:
    whole = [0.6, 0.0, 0.8, 0.0]
    assert shorten(whole, 2) == pytest.approx([1.0, 0.0])
    whole = [3 / 13, 4 / 13, 12 / 13]
    assert shorten(whole, 2) == pytest.approx([0.6, 0.8])


def test_a_vector_the_model_left_unnormalised_keeps_its_scale() -> None:
    assert shorten([3.0, 4.0, 12.0], 2) == [3.0, 4.0]


def test_no_cut_and_an_all_zero_head_are_left_alone() -> None:
    whole = [0.6, 0.8]
    assert shorten(whole, None) == whole and shorten(whole, 5) == whole
    assert shorten([0.0, 0.0, 1.0], 2) == [0.0, 0.0]
    assert math.isclose(math.fsum(x * x for x in shorten([0.5] * 4, 3)), 1.0)
