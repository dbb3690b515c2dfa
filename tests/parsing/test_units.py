"""The small pieces: marker search, JSON end finding, trimming, call readers."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from appliance.parsing.calls import (
    RawCall,
    calls_from_json_text,
    deepseek_calls,
    mistral_named_call,
    python_tag_calls,
    xml_calls,
)
from appliance.parsing.families import Family
from appliance.parsing.jsonscan import JsonEnd, loads_strict
from appliance.parsing.regions import BareJson, Viability
from appliance.parsing.syntax import syntax_for
from appliance.parsing.text import MarkerSearch, Trimmed, find_first, held_suffix


def test_held_suffix() -> None:
    assert held_suffix("abc <to", ["<tool_call>"]) == 3
    assert held_suffix("abc <tool_call", ["<tool_call>"]) == 10
    assert held_suffix("abc <tool_call>", ["<tool_call>"]) == 0
    assert held_suffix("abc", ["<tool_call>"]) == 0
    assert held_suffix("x<", ["<a>", "<<b>"]) == 1
    assert held_suffix("x<<", ["<a>", "<<b>"]) == 2


def test_find_first_prefers_earliest_then_longest() -> None:
    assert find_first("a [B] [A]", ["[A]", "[B]"]) == (2, "[B]")
    assert find_first("xx<ab>", ["<a", "<ab>"]) == (2, "<ab>")
    assert find_first("nothing", ["<a>"]) is None


@given(st.text(alphabet="ab<>/", max_size=40), st.lists(st.integers(0, 40), max_size=6))
def test_marker_search_matches_whole_search(text: str, cuts: list[int]) -> None:
    markers = ["</a>", "<b>"]
    expected = find_first(text, markers)
    search = MarkerSearch(markers)
    bounds = sorted({0, len(text), *(c for c in cuts if c <= len(text))})
    offset = 0
    found = None
    for a, b in itertools.pairwise(bounds):
        hit = search.feed(text[a:b])
        if hit is not None:
            found = (offset + hit[0] - len(hit[1]), hit[1])
            break
        offset = b
    assert found == expected


@pytest.mark.parametrize(
    ("text", "end"),
    [
        ('{"a": 1} tail', 8),
        ('[1, [2, {"x": "]}"}]] tail', 21),
        ('{"a": "\\"}"} tail', 12),
        ('{"a": "\\\\"} tail', 11),
        ('{"a": {', None),
    ],
)
def test_json_end(text: str, end: int | None) -> None:
    assert JsonEnd().feed(text) == end
    # Fed one character at a time, it ends at the same place.
    scanner, found = JsonEnd(), None
    for i, ch in enumerate(text):
        if scanner.feed(ch) is not None:
            found = i + 1
            break
    assert found == end


def test_json_end_bails_outside_strings_only() -> None:
    scanner = JsonEnd(bail="<")
    assert scanner.feed('{"a": "<b>"}') == 12 and not scanner.broken
    scanner = JsonEnd(bail="<")
    assert scanner.feed('{"a": 1</tag>') == 7 and scanner.broken


def test_loads_strict_never_raises() -> None:
    assert loads_strict('{"a": 1}') == (True, {"a": 1})
    assert loads_strict('{"a": NaN}') == (False, None)
    assert loads_strict("[" * 100_000) == (False, None)
    assert loads_strict("") == (False, None)


def test_trimmed() -> None:
    out = Trimmed()
    parts = [out.push(p) for p in ["  ", " a", " ", "\n", "b ", " "]]
    assert parts == ["", "a", "", "", " \nb", ""]
    assert "".join(parts) == "   a \nb  ".strip()


def test_calls_from_json() -> None:
    assert calls_from_json_text('{"name": "f", "arguments": {"a": 1}, "id": "x"}') == [
        RawCall("f", {"a": 1}, "x")
    ]
    assert calls_from_json_text('{"name": "f"}', require_arguments=True) is None
    assert calls_from_json_text('{"name": " ", "arguments": {}}') is None
    assert calls_from_json_text('{"name": "f", "arguments": [1]}') is None
    assert calls_from_json_text('{"name": "f", "arguments": "not json"}') is None
    assert calls_from_json_text("[]") is None
    assert calls_from_json_text('[{"name": "f"}, 3]') is None


SCHEMAS: dict[str, dict[str, Any]] = {
    "f": {
        "type": "object",
        "properties": {
            "s": {"type": "string"},
            "n": {"type": "number"},
            "o": {"type": "object"},
            "ns": {"type": ["string", "null"]},
        },
    }
}


@pytest.mark.parametrize(
    ("param", "value", "expected"),
    [
        ("s", "42", "42"),
        ("s", "null", "null"),
        ("n", "4.5", 4.5),
        ("n", "four", "four"),  # wrong type: left as text, for the validating layer
        ("o", '{"k": [1]}', {"k": [1]}),
        ("ns", "null", None),
        ("ns", "text", "text"),
        ("other", "[1, 2]", [1, 2]),
        ("other", "words", "words"),
        ("other", '"quoted"', '"quoted"'),
    ],
)
def test_xml_value_types(param: str, value: str, expected: Any) -> None:
    text = f"<function=f>\n<parameter={param}>\n{value}\n</parameter>\n</function>"
    assert xml_calls(text, SCHEMAS) == [RawCall("f", {param: expected})]


def test_xml_keeps_inner_newlines_and_strips_one() -> None:
    text = "<function=f>\n<parameter=s>\n\na\n\n</parameter>\n</function>"
    assert xml_calls(text, SCHEMAS) == [RawCall("f", {"s": "\na\n"})]
    text = "<function=f><parameter=s>inline</parameter></function>"
    assert xml_calls(text, SCHEMAS) == [RawCall("f", {"s": "inline"})]


def test_mistral_named() -> None:
    assert mistral_named_call('get[ARGS]{"a": 1}') == [RawCall("get", {"a": 1})]
    assert mistral_named_call(" get [CALL_ID] abc123XYZ [ARGS] {}") == [
        RawCall("get", {}, "abc123XYZ")
    ]
    assert mistral_named_call("get[ARGS][1]") is None
    assert mistral_named_call("two words[ARGS]{}") is None


def test_deepseek_forms() -> None:
    r1 = '<｜tool▁call▁begin｜>function<｜tool▁sep｜>f\n```json\n{"a": 1}\n```<｜tool▁call▁end｜>'
    v31 = '<｜tool▁call▁begin｜>f<｜tool▁sep｜>{"a": 1}<｜tool▁call▁end｜>'
    assert deepseek_calls(r1) == deepseek_calls(v31) == [RawCall("f", {"a": 1})]
    assert deepseek_calls("") is None
    assert deepseek_calls("<｜tool▁call▁begin｜>f g<｜tool▁sep｜>{}") is None


def test_python_tag_forms() -> None:
    assert python_tag_calls('x.call(a="1", b=2, c=[1, None])') == [
        RawCall("x", {"a": "1", "b": 2, "c": [1, None]})
    ]
    assert python_tag_calls("x.call(1)") == [RawCall("python", {"code": "x.call(1)"})]
    assert python_tag_calls("   ") is None


def test_python_tag_value_json_cannot_hold_is_malformed() -> None:
    from appliance.parsing import parse_output

    message = parse_output("<|python_tag|>x.call(a={1, 2})", Family.LLAMA3)
    assert message.malformed_tool_call and message.tool_calls == ()
    assert message.content == "<|python_tag|>x.call(a={1, 2})"


@given(
    st.text(alphabet='{}[]" ntamef`json\n', max_size=20), st.text(alphabet='{}[]" nx', max_size=5)
)
def test_bare_viability_only_moves_forward(prefix: str, more: str) -> None:
    bare = BareJson(frozenset({"name", "type"}), arrays=True, fences=True)
    before, after = bare.viability(prefix), bare.viability(prefix + more)
    if before is not Viability.MAYBE:
        assert after is before


@pytest.mark.parametrize("family", [f for f in Family if f is not Family.HARMONY])
def test_no_marker_is_a_prefix_of_another(family: Family) -> None:
    """Otherwise which one matched could depend on where the text was split."""
    syntax = syntax_for(family)
    for group in (
        syntax.openers,
        tuple(t for pair in syntax.think for t in pair) + syntax.openers,
    ):
        for a in group:
            for b in group:
                assert a == b or not b.startswith(a), (a, b)


def test_arguments_are_canonical_json() -> None:
    from appliance.parsing import parse_output

    message = parse_output(
        '<tool_call>{"name":"f","arguments":{"b":1,"a":"é"}}</tool_call>', "hermes"
    )
    (call,) = message.tool_calls
    assert call.arguments == '{"b": 1, "a": "é"}'
    assert json.loads(call.arguments) == {"b": 1, "a": "é"}
