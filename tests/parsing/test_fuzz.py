"""Random mixtures of markers and text: never an exception, same message at any split."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.parsing import Family
from tests.parsing.corpus import TOOL_SCHEMAS
from tests.parsing.helpers import run

MARKERS = [
    "<think>",
    "</think>",
    "[THINK]",
    "[/THINK]",
    "<tool_call>",
    "</tool_call>",
    "<function=",
    "<function=get_time>",
    "</function>",
    "<parameter=",
    "<parameter=city>",
    "</parameter>",
    "[TOOL_CALLS]",
    "[ARGS]",
    "[CALL_ID]",
    "<|python_tag|>",
    "<|eom_id|>",
    "<|eot_id|>",
    "<｜tool▁calls▁begin｜>",
    "<｜tool▁calls▁end｜>",
    "<｜tool▁call▁begin｜>",
    "<｜tool▁call▁end｜>",
    "<｜tool▁sep｜>",
    "<｜tool_calls_begin｜>",
    "<|channel|>",
    "<|message|>",
    "<|end|>",
    "<|start|>",
    "<|call|>",
    "<|return|>",
    "<|constrain|>",
    "analysis",
    "final",
    "commentary",
    " to=functions.get_time",
    " to=python",
    "```json\n",
    "```",
    "function",
    "get_time",
    "<|START_THINKING|>",
    "<|END_THINKING|>",
    "<|START_ACTION|>",
    "<|END_ACTION|>",
    "<|START_RESPONSE|>",
    "<|tools_prefix|>",
    "<|tools_suffix|>",
    "<|inner_prefix|>",
    "<|inner_suffix|>",
    '<function name="',
    '<function name="get_time">',
    '<param name="city">',
    "</param>",
    "<![CDATA[",
    "]]>",
]
JSON_BITS = [
    "{",
    "}",
    "[",
    "]",
    '"',
    "\\",
    ":",
    ",",
    ";",
    '"name"',
    '"arguments"',
    '"parameters"',
    '"get_time"',
    '"city"',
    '"Paris"',
    "1",
    "null",
    "true",
    "NaN",
    '"tool_calls"',
    '"tool_name"',
    '{"get_time": {"city": "Paris"}}',
    '{"name": "get_time", "arguments": {"city": "Paris"}}',
    '{"name": "get_time", "parameters": {}}',
    '[{"name": "get_time", "arguments": {}}]',
    'python.call(code="1")',
]
TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=6)
PIECE = st.one_of(
    st.sampled_from(MARKERS), st.sampled_from(JSON_BITS), TEXT, st.sampled_from(" \n\t")
)
OUTPUT = st.lists(PIECE, max_size=30).map("".join)


@settings(max_examples=400, deadline=None)
@given(
    family=st.sampled_from(list(Family)),
    text=OUTPUT,
    started=st.booleans(),
    known=st.sampled_from([None, frozenset({"get_time"}), frozenset()]),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=10),
)
def test_never_raises_and_split_does_not_matter(
    family: Family, text: str, started: bool, known: frozenset[str] | None, cuts: list[int]
) -> None:
    whole, _ = run([text], family, started=started, known=known, schemas=TOOL_SCHEMAS)
    bounds = sorted({0, len(text), *(c for c in cuts if c <= len(text))})
    pieces = [text[a:b] for a, b in itertools.pairwise(bounds)]
    split, _ = run(pieces, family, started=started, known=known, schemas=TOOL_SCHEMAS)
    assert split == whole
    chars, _ = run(list(text), family, started=started, known=known, schemas=TOOL_SCHEMAS)
    assert chars == whole
    for call in whole.tool_calls:
        assert call.arguments.startswith("{") and call.name


@settings(max_examples=200, deadline=None)
@given(family=st.sampled_from(list(Family)), text=st.text(max_size=200), started=st.booleans())
def test_arbitrary_text_never_raises(family: Family, text: str, started: bool) -> None:
    whole, _ = run([text], family, started=started)
    chars, _ = run(list(text), family, started=started)
    assert chars == whole
