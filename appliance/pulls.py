"""Pulls in flight: one transfer per model however many callers ask, progress as events.

The store does the transfer in a thread; this turns its progress callbacks into
events on the daemon's event log (at most four a second, every change of status
and the end), which the admin pull route and the TUI stream. A pull is cancelled
through its progress callback, which the transfer calls for every chunk: it raises,
the store stops and keeps the partial file, and the next pull resumes it.
"""

from __future__ import annotations

import asyncio
import functools
import time
from typing import Any

from appliance.events import EventLog
from appliance.store.errors import PullCancelled
from appliance.store.store import ProgressEvent, Store, StoredModel, StoreError


class Pulls:
    def __init__(self, store: Store, events: EventLog) -> None:
        self.store = store
        self.events = events
        self._tasks: dict[str, asyncio.Task[StoredModel]] = {}
        self._cancelled: set[str] = set()  # labels whose transfer stops at its next chunk

    def in_flight(self) -> list[str]:
        return list(self._tasks)

    def cancel(self, label: str) -> bool:
        """Stop the pull labelled `label` (its partial file is kept); False if none runs."""
        if label not in self._tasks:
            return False
        self._cancelled.add(label)
        return True

    async def pull(self, ref: str, name: str | None) -> StoredModel:
        """Pull an hf:// reference; events are labelled `name or ref`."""
        label = name or ref
        task = self._tasks.get(label)
        if task is None:
            task = asyncio.create_task(self._pull(ref, name, label))
            self._tasks[label] = task
            task.add_done_callback(lambda _t: self._ended(label))
        return await asyncio.shield(task)

    def _ended(self, label: str) -> None:
        self._tasks.pop(label, None)
        self._cancelled.discard(label)

    async def _pull(self, ref: str, name: str | None, label: str) -> StoredModel:
        loop = asyncio.get_running_loop()
        last: list[Any] = [0.0, None]  # time and status of the last event sent

        def progress(ev: ProgressEvent) -> None:
            if label in self._cancelled and ev.status not in ("error", "done"):
                raise PullCancelled(
                    f"the pull of {label} was cancelled after {ev.downloaded} bytes; the "
                    "partial download is kept: pull again to resume it"
                )
            now = time.monotonic()
            done = ev.total and ev.downloaded >= ev.total
            if ev.status == last[1] and now - last[0] < 0.25 and not done:
                return
            last[0], last[1] = now, ev.status
            emit = functools.partial(
                self.events.emit,
                label,
                "pull_progress",
                ev.message or f"{ev.status} {ev.filename}",
                status=ev.status,
                downloaded=ev.downloaded,
                total=ev.total,
                note=ev.message,
            )
            loop.call_soon_threadsafe(emit)

        self.events.emit(label, "pull", f"pulling {ref}")
        try:
            stored = await asyncio.to_thread(self.store.pull, ref, name, progress)
        except PullCancelled as exc:
            self.events.emit(label, "pull_cancelled", str(exc))
            raise
        except StoreError as exc:
            self.events.emit(label, "error", f"pull failed: {exc}")
            raise
        self.events.emit(
            stored.name,
            "pull",
            f"pulled {stored.filename} ({stored.size} bytes, sha256 {stored.sha256[:12]}…)",
        )
        return stored
