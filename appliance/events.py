"""The daemon's event log: every tier move, load, crash and pull, with its reason.

A bounded history for the admin API and a fan-out to live subscribers (the
admin SSE stream and the TUI's telemetry stream). Progress ticks go to subscribers only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("appliance.events")

QUIET_KINDS = frozenset({"pull_progress"})  # streamed, not kept in the history or logged


@dataclass
class Event:
    time: float
    model: str
    kind: str  # move | load | unload | crash | load_failed | pull | pull_progress | error | ...
    message: str
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        body = {"time": self.time, "model": self.model, "kind": self.kind, "message": self.message}
        if self.data:
            body["data"] = self.data
        return body


class EventLog:
    def __init__(self, history: int = 1000) -> None:
        self.history: deque[Event] = deque(maxlen=history)
        self._subscribers: set[asyncio.Queue[Event]] = set()

    def emit(self, model: str, kind: str, message: str, **data: Any) -> Event:
        event = Event(time.time(), model, kind, message, data)
        if kind not in QUIET_KINDS:
            self.history.append(event)
            log.info("%s: %s", model, message)
        for queue in list(self._subscribers):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(event)
        return event

    @contextlib.contextmanager
    def subscribe(self, size: int = 1000) -> Iterator[asyncio.Queue[Event]]:
        queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=size)
        self._subscribers.add(queue)
        try:
            yield queue
        finally:
            self._subscribers.discard(queue)
