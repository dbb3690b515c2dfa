"""Running a parser over a text split into given pieces, and checking its events."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Collection, Sequence
from typing import Any

from appliance.parsing import (
    ContentDelta,
    Event,
    Family,
    Final,
    ParsedMessage,
    ReasoningDelta,
    StreamParser,
    ToolCallArgumentsDelta,
    ToolCallStart,
)


def counter_ids() -> Callable[[], str]:
    count = itertools.count()
    return lambda: f"call_{next(count)}"


def run(
    pieces: Sequence[str],
    family: Family,
    *,
    started: bool = False,
    known: Collection[str] | None = None,
    schemas: dict[str, Any] | None = None,
) -> tuple[ParsedMessage, list[Event]]:
    parser = StreamParser(
        family,
        reasoning_started=started,
        known_tools=known,
        tool_schemas=schemas,
        id_factory=counter_ids(),
    )
    events: list[Event] = []
    for piece in pieces:
        events.extend(parser.feed(piece))
    events.extend(parser.finish())
    final = events[-1]
    assert isinstance(final, Final)
    check_events(events)
    return final.message, events


def check_events(events: list[Event]) -> None:
    """The deltas add up to the final message, and calls come whole and in order."""
    final = events[-1]
    assert isinstance(final, Final)
    assert not any(isinstance(e, Final) for e in events[:-1])
    msg = final.message
    content = "".join(e.text for e in events if isinstance(e, ContentDelta))
    reasoning = "".join(e.text for e in events if isinstance(e, ReasoningDelta))
    assert content == msg.content
    assert reasoning == (msg.reasoning or "")
    assert all(e.text for e in events if isinstance(e, ContentDelta | ReasoningDelta))
    starts = [e for e in events if isinstance(e, ToolCallStart)]
    args = [e for e in events if isinstance(e, ToolCallArgumentsDelta)]
    assert [s.index for s in starts] == list(range(len(msg.tool_calls)))
    for call, start in zip(msg.tool_calls, starts, strict=True):
        assert (start.id, start.name) == (call.id, call.name)
        assert "".join(a.text for a in args if a.index == start.index) == call.arguments
    for i, event in enumerate(events):
        if isinstance(event, ToolCallArgumentsDelta):
            assert any(isinstance(e, ToolCallStart) and e.index == event.index for e in events[:i])


def random_split(text: str, rng: random.Random, pieces: int) -> list[str]:
    cuts = sorted(rng.sample(range(len(text) + 1), min(pieces - 1, len(text) + 1)))
    bounds = [0, *cuts, len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds)]
