"""Every corpus case parses to its expected message, however the output is split."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from appliance.parsing import Event, Family, ParsedMessage, parse_output
from tests.parsing.corpus import ALL, TOOL_SCHEMAS, Case
from tests.parsing.helpers import counter_ids, random_split, run


def _run(case: Case, pieces: list[str]) -> tuple[ParsedMessage, list[Event]]:
    return run(
        pieces,
        case.family,
        started=case.started,
        known=case.known,
        schemas=TOOL_SCHEMAS if case.schemas else None,
    )


@pytest.mark.parametrize("case", ALL, ids=[c.name for c in ALL])
def test_whole(case: Case) -> None:
    message, _ = _run(case, [case.text])
    assert message == case.expected()
    assert message == parse_output(
        case.text,
        case.family,
        reasoning_started=case.started,
        known_tools=case.known,
        tool_schemas=TOOL_SCHEMAS if case.schemas else None,
        id_factory=counter_ids(),
    )


@pytest.mark.parametrize("case", ALL, ids=[c.name for c in ALL])
def test_every_split(case: Case) -> None:
    expected = case.expected()
    for i in range(len(case.text) + 1):
        message, _ = _run(case, [case.text[:i], case.text[i:]])
        assert message == expected, f"split at {i}: {case.text[:i]!r} | {case.text[i:]!r}"


@pytest.mark.parametrize("case", ALL, ids=[c.name for c in ALL])
def test_char_by_char_and_random_splits(case: Case) -> None:
    expected = case.expected()
    message, _ = _run(case, list(case.text))
    assert message == expected
    rng = random.Random(case.name)
    for _ in range(6):
        pieces = random_split(case.text, rng, rng.randint(3, 12))
        message, _ = _run(case, pieces)
        assert message == expected, f"pieces: {pieces!r}"


def test_corpus_size() -> None:
    per_family = Counter(c.family for c in ALL)
    assert len({c.name for c in ALL}) == len(ALL)
    for family in Family:
        assert per_family[family] >= 20, family
    major = (Family.HERMES, Family.QWEN3_CODER, Family.MISTRAL, Family.DEEPSEEK, Family.HARMONY)
    assert sum(per_family[f] for f in major) >= 150
