"""The parsed assistant message and the events a streaming parse emits."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ContentDelta",
    "Event",
    "Final",
    "ParsedMessage",
    "ReasoningDelta",
    "ToolCall",
    "ToolCallArgumentsDelta",
    "ToolCallStart",
]


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One call: ``arguments`` is always a JSON object serialized as a string."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class ParsedMessage:
    """What a whole output meant.

    ``content`` and ``reasoning`` have leading and trailing whitespace removed;
    ``reasoning`` is None when the output had no reasoning block at all. The flags
    report what a caller may want to log, retry or refuse; none of them loses text.
    """

    content: str
    reasoning: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    # A tool call was started but could not be read; its raw text is in `content`.
    malformed_tool_call: bool = False
    # The output ended inside the reasoning block.
    reasoning_unclosed: bool = False
    # Calls were taken from the tail of a reasoning block that never closed.
    tool_call_in_unclosed_reasoning: bool = False
    # Names called that are not in `known_tools` (only when known tools were given).
    unknown_tools: tuple[str, ...] = ()
    # Two calls had the same name and the same arguments.
    duplicate_tool_calls: bool = False


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ContentDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ToolCallStart:
    """A complete, valid call: its arguments follow in ToolCallArgumentsDelta events."""

    index: int
    id: str
    name: str


@dataclass(frozen=True, slots=True)
class ToolCallArgumentsDelta:
    index: int
    text: str


@dataclass(frozen=True, slots=True)
class Final:
    """Always the last event; the deltas before it add up to exactly this message."""

    message: ParsedMessage


Event = ReasoningDelta | ContentDelta | ToolCallStart | ToolCallArgumentsDelta | Final
