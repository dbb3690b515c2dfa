"""What comes out while streaming: nothing held that need not be, calls only whole."""

from __future__ import annotations

import itertools
import re
import time

from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.parsing import (
    ContentDelta,
    Event,
    Family,
    Final,
    ReasoningDelta,
    StreamParser,
    ToolCallArgumentsDelta,
    ToolCallStart,
    new_call_id,
    parse_output,
)
from tests.parsing.helpers import counter_ids


def _text(events: list[Event], kind: type[ContentDelta] | type[ReasoningDelta]) -> str:
    return "".join(e.text for e in events if isinstance(e, kind))


def test_plain_content_streams_at_once() -> None:
    parser = StreamParser(Family.HERMES)
    assert parser.feed("Hello") == [ContentDelta("Hello")]
    assert parser.feed(", world") == [ContentDelta(", world")]


def test_whitespace_waits_for_what_follows() -> None:
    parser = StreamParser(Family.HERMES)
    assert parser.feed("  Hello ") == [ContentDelta("Hello")]
    assert parser.feed("\n") == []
    assert parser.feed("there") == [ContentDelta(" \nthere")]
    assert parser.feed("  ") == []
    assert parser.finish() == [Final(parse_output("  Hello \nthere  ", Family.HERMES))]


def test_partial_marker_is_held_then_released() -> None:
    parser = StreamParser(Family.HERMES)
    assert _text(parser.feed("a <tool_ca"), ContentDelta) == "a"
    assert _text(parser.feed("rpet"), ContentDelta) == " <tool_carpet"


def test_call_is_emitted_whole_and_never_as_content() -> None:
    parser = StreamParser(Family.HERMES, id_factory=counter_ids())
    events: list[Event] = []
    text = 'Sure.\n<tool_call>\n{"name": "get_time", "arguments": {"city": "Paris"}}\n</tool_call>'
    for ch in text:
        events.extend(parser.feed(ch))
    assert _text(events, ContentDelta) == "Sure."
    assert events[-2:] == [
        ToolCallStart(0, "call_0", "get_time"),
        ToolCallArgumentsDelta(0, '{"city": "Paris"}'),
    ]
    assert isinstance(parser.finish()[-1], Final)


def test_broken_call_does_not_hold_the_rest() -> None:
    parser = StreamParser(Family.HERMES)
    events = parser.feed('<tool_call>{"name": "a", "arguments": {}</tool_call>\nMore')
    assert (
        _text(events, ContentDelta) == '<tool_call>{"name": "a", "arguments": {}</tool_call>\nMore'
    )
    assert parser.finish()[-1] == Final(
        parse_output('<tool_call>{"name": "a", "arguments": {}</tool_call>\nMore', "hermes")
    )


def test_reasoning_streams_and_stops_at_a_tool_marker() -> None:
    parser = StreamParser(Family.HERMES, reasoning_started=True)
    assert parser.feed("Let me think") == [ReasoningDelta("Let me think")]
    assert parser.feed(" more. <tool_call>{") == [ReasoningDelta(" more.")]
    # Held: it becomes a call if the block never closes, reasoning if it does.
    assert parser.feed('"name": "x"}</tool_call> no') == []
    assert parser.feed("</think>Done") == [
        ReasoningDelta(' <tool_call>{"name": "x"}</tool_call> no'),
        ContentDelta("Done"),
    ]


def test_bare_json_is_held_only_while_it_could_be_a_call() -> None:
    parser = StreamParser(Family.LLAMA3)
    assert parser.feed('{"na') == []
    assert parser.feed("sty") == [ContentDelta('{"nasty')]
    parser = StreamParser(Family.LLAMA3)
    assert parser.feed("{x") == [ContentDelta("{x")]


def test_harmony_streams_by_channel() -> None:
    parser = StreamParser(Family.HARMONY)
    assert parser.feed("<|channel|>analysis<|message|>Hmm") == [ReasoningDelta("Hmm")]
    assert parser.feed(", ok<|end|><|start|>assistant<|channel|>final<|mess") == [
        ReasoningDelta(", ok")
    ]
    assert parser.feed("age|>Hi") == [ContentDelta("Hi")]


PLAIN = st.text(alphabet="ab <>/_tolchink\n", max_size=60)
HERMES_MARKERS = ("<tool_call>", "<think>", "</think>")


@settings(max_examples=300, deadline=None)
@given(PLAIN, st.lists(st.integers(min_value=0, max_value=60), max_size=8))
def test_only_possible_markers_are_held(text: str, cuts: list[int]) -> None:
    """While the output is plain content, what is held is whitespace plus a proper
    prefix of a marker, and nothing else."""
    if any(m in text for m in HERMES_MARKERS):
        return
    bounds = sorted({0, len(text), *(c for c in cuts if c <= len(text))})
    parser = StreamParser(Family.HERMES)
    seen = ""
    emitted = ""
    for a, b in itertools.pairwise(bounds):
        seen += text[a:b]
        emitted += _text(parser.feed(text[a:b]), ContentDelta)
        visible = seen.lstrip()
        assert visible.startswith(emitted)
        held = visible[len(emitted) :]
        m = re.fullmatch(r"(\s*)(.*)", held, re.DOTALL)
        assert m is not None
        rest = m.group(2)
        assert rest == "" or any(
            marker.startswith(rest) and rest != marker for marker in HERMES_MARKERS
        ), (seen, emitted)


def test_long_arguments_take_linear_time() -> None:
    code = "x = 1\n" * 40_000  # 240k characters of arguments, fed 3 at a time
    text = '<tool_call>{"name": "python", "arguments": {"code": ' + _json(code) + "}}</tool_call>"
    parser = StreamParser(Family.HERMES, id_factory=counter_ids())
    start = time.perf_counter()
    for i in range(0, len(text), 3):
        parser.feed(text[i : i + 3])
    final = parser.finish()[-1]
    assert isinstance(final, Final)
    assert final.message.tool_calls[0].arguments == '{"code": ' + _json(code) + "}"
    assert time.perf_counter() - start < 30  # quadratic would take hours


def _json(s: str) -> str:
    import json

    return json.dumps(s)


def test_default_ids() -> None:
    assert re.fullmatch(r"call_[A-Za-z0-9]{24}", new_call_id())
    assert re.fullmatch(r"[A-Za-z0-9]{9}", new_call_id(9))
    message = parse_output("[TOOL_CALLS]f[ARGS]{}", Family.MISTRAL)
    assert re.fullmatch(r"[A-Za-z0-9]{9}", message.tool_calls[0].id)
    message = parse_output('<tool_call>{"name": "f"}</tool_call>' * 2, Family.HERMES)
    first, second = message.tool_calls
    assert first.id.startswith("call_") and first.id != second.id


def test_repeating_id_factory_still_gives_unique_ids() -> None:
    text = '<tool_call>{"name": "f"}</tool_call>' * 3
    message = parse_output(text, Family.HERMES, id_factory=lambda: "same")
    assert len({c.id for c in message.tool_calls}) == 3


def test_misuse_raises() -> None:
    parser = StreamParser("hermes")
    parser.finish()
    try:
        parser.feed("x")
    except RuntimeError:
        pass
    else:
        raise AssertionError("feed after finish")
