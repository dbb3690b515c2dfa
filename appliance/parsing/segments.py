"""What the family machines tell the assembler, before ids, flags and trimming."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from appliance.parsing.calls import RawCall
from appliance.parsing.jsonscan import dumps_arguments

__all__ = ["Kind", "ReadyCall", "Seg", "ready_calls"]


class Kind(Enum):
    REASONING = "reasoning"
    CONTENT = "content"
    CALLS = "calls"
    MALFORMED = "malformed"  # a call that could not be read: its raw text
    OPENED = "opened"  # a reasoning block exists (it may stay empty)
    UNCLOSED = "unclosed"  # the output ended inside the reasoning
    RECOVERED = "recovered"  # the calls came from an unclosed reasoning block


@dataclass(frozen=True, slots=True)
class ReadyCall:
    name: str
    arguments: str
    id: str | None


@dataclass(frozen=True, slots=True)
class Seg:
    kind: Kind
    text: str = ""
    calls: tuple[ReadyCall, ...] = ()


def ready_calls(calls: list[RawCall]) -> tuple[ReadyCall, ...] | None:
    """Calls with serialized arguments; None when some arguments are not JSON-able."""
    ready = []
    for call in calls:
        try:
            arguments = dumps_arguments(call.arguments)
        except (TypeError, ValueError, RecursionError):
            return None
        ready.append(ReadyCall(call.name, arguments, call.id))
    return tuple(ready)
