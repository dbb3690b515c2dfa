"""Pulls in flight: one transfer per model however many callers ask, progress as events.

The store does the transfer in a thread; this turns its progress callbacks into
events on the daemon's event log (at most four a second, every change of status
and the end), which the admin pull route and the TUI stream, and keeps a record of
each pull in flight (what, since when, how far, how fast) for GET /admin/pulls. A pull
is cancelled through its progress callback, which the transfer calls for every chunk:
it raises, the store stops and keeps the partial file, and the next pull resumes it.

The pulls in flight are also written down (`pulls.json` in the data folder, replaced
atomically at each start and end): a pull the daemon's stop, crash or upgrade broke off
is still there when it starts again, and `interrupted()` hands it to the manager, which
resumes it from its partial file. A pull leaves the file when it ends, however it ends
(done, failed, cancelled), so a cancelled pull never comes back and a failing one is
tried once per start at most; a stop (`shutdown`) keeps it.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from appliance.events import EventLog
from appliance.store.errors import PullCancelled, PullInterrupted
from appliance.store.store import ProgressEvent, Store, StoredModel, StoreError

RATE_WINDOW_S = 10.0  # the rate is the bytes of the last ten seconds
# The statuses a pull's last progress event has: "cancelled" stands for the store's "error"
# when an operator stopped it.
ENDED = frozenset({"done", "error", "cancelled", "interrupted"})
# A pull broken off by this many restarts without ending is not resumed again (a daemon
# that dies during it, every time, must not try it forever).
MAX_RESUMES = 3

log = logging.getLogger("appliance.pulls")


@dataclass(frozen=True)
class Interrupted:
    """A pull in flight when the daemon last stopped (an entry of pulls.json)."""

    label: str
    ref: str
    name: str | None
    catalog: bool  # a catalog model's pull: resumed at the catalog's revision of now
    resumes: int  # the restarts it was resumed across already

    @classmethod
    def from_json(cls, raw: Any) -> Interrupted | None:
        if not isinstance(raw, dict):
            return None
        label, ref, name = raw.get("label"), raw.get("ref"), raw.get("name")
        resumes = raw.get("resumes", 0)
        if not (isinstance(label, str) and isinstance(ref, str) and ref.startswith("hf://")):
            return None
        if name is not None and not isinstance(name, str):
            return None
        if isinstance(resumes, bool) or not isinstance(resumes, int):
            return None
        return cls(label, ref, name, bool(raw.get("catalog")), resumes)


@dataclass
class PullRecord:
    """One pull in flight, as GET /admin/pulls shows it."""

    label: str  # what its events and DELETE /admin/pull/{label} call it: name or ref
    ref: str
    name: str | None
    started: float  # wall clock
    status: str = "starting"
    downloaded: int = 0
    total: int = 0
    filename: str = ""
    message: str = ""
    updated: float = 0.0  # wall clock of the last progress
    cancelling: bool = False
    _window: deque[tuple[float, int]] = field(default_factory=deque)  # (monotonic, bytes)

    def observe(self, ev: ProgressEvent, now: float) -> None:
        """Take one progress report (on the event loop)."""
        self.status, self.message = ev.status, ev.message
        self.filename = ev.filename or self.filename
        self.total = ev.total or self.total
        if ev.status == "downloading" and ev.downloaded < self.downloaded:
            self._window.clear()  # a transfer started over
        if ev.status in ("downloading", "verifying", "done") or ev.downloaded:
            self.downloaded = ev.downloaded
        self.updated = time.time()
        if ev.status == "downloading":
            self._window.append((now, ev.downloaded))
            while len(self._window) > 2 and now - self._window[0][0] > RATE_WINDOW_S:
                self._window.popleft()
        else:
            self._window.clear()

    def rate(self) -> float | None:
        """Bytes a second over the last seconds of downloading; None when not known."""
        if len(self._window) < 2:
            return None
        (t0, b0), (t1, b1) = self._window[0], self._window[-1]
        return (b1 - b0) / (t1 - t0) if t1 > t0 else None

    def to_dict(self) -> dict[str, Any]:
        rate = self.rate()
        left = self.total - self.downloaded
        eta = left / rate if rate and self.total and left >= 0 else None
        return {
            "model": self.label,
            "ref": self.ref,
            "name": self.name,
            "status": "cancelling" if self.cancelling else self.status,
            "downloaded": self.downloaded,
            "total": self.total or None,
            "filename": self.filename or None,
            "message": self.message,
            "started": self.started,
            "updated": self.updated or self.started,
            "rate_bytes_per_s": None if rate is None else round(rate, 1),
            "eta_s": None if eta is None else round(eta, 1),
        }


class Pulls:
    def __init__(self, store: Store, events: EventLog, journal: Path | None = None) -> None:
        self.store = store
        self.events = events
        self._tasks: dict[str, asyncio.Task[StoredModel]] = {}
        self._records: dict[str, PullRecord] = {}
        self._cancelled: set[str] = set()  # labels whose transfer stops at its next chunk
        self._stopping = False  # the daemon stops: every transfer stops at its next chunk
        self._journal_path = journal
        self._journal: dict[str, dict[str, Any]] = {}  # label -> its entry in the file
        self._interrupted: list[Interrupted] = []
        for raw in self._read_journal():
            entry = Interrupted.from_json(raw)
            if entry is not None:  # not one written by hand wrongly: that one goes
                self._journal[entry.label] = raw
                self._interrupted.append(entry)

    def in_flight(self) -> list[str]:
        return list(self._tasks)

    def listing(self) -> list[dict[str, Any]]:
        """Every pull in flight, the oldest first."""
        return [r.to_dict() for r in sorted(self._records.values(), key=lambda r: r.started)]

    def cancel(self, label: str) -> bool:
        """Stop the pull labelled `label` (its partial file is kept); False if none runs.
        It leaves the journal now: a stop before its transfer notices does not bring it
        back at the next start."""
        if label not in self._tasks:
            return False
        self._cancelled.add(label)
        self._records[label].cancelling = True
        self.forget(label)
        return True

    async def pull(self, ref: str, name: str | None, *, catalog: bool = False) -> StoredModel:
        """Pull an hf:// reference; events are labelled `name or ref`. `catalog`: the pull
        of the catalog model `name` (resumed after a restart at the catalog's revision)."""
        return await asyncio.shield(self.start(ref, name, catalog=catalog))

    def start(
        self, ref: str, name: str | None, *, catalog: bool = False, resumes: int = 0
    ) -> asyncio.Task[StoredModel]:
        """The pull's task: a new one, or the one in flight under the same label."""
        label = name or ref
        task = self._tasks.get(label)
        if task is None:
            record = PullRecord(label, ref, name, time.time())
            self._records[label] = record
            task = asyncio.create_task(self._pull(ref, name, label))
            self._tasks[label] = task
            task.add_done_callback(functools.partial(self._ended, label))
            self._journal[label] = {
                "label": label,
                "ref": ref,
                "name": name,
                "catalog": catalog,
                "started": record.started,
                "resumes": resumes,
            }
            self._write_journal()
        return task

    # -- across restarts ---------------------------------------------------------------------

    def interrupted(self) -> list[Interrupted]:
        """The pulls the daemon's last stop broke off, once (the manager resumes them)."""
        found, self._interrupted = self._interrupted, []
        return found

    def forget(self, label: str) -> None:
        """Take `label` out of the journal: a restart does not resume it."""
        if self._journal.pop(label, None) is not None:
            self._write_journal()

    def shutdown(self) -> None:
        """The daemon stops: every transfer stops at its next chunk, keeping its partial
        file and its journal entry (the next start resumes it)."""
        self._stopping = True

    def _read_journal(self) -> list[Any]:
        if self._journal_path is None:
            return []
        try:
            raw = json.loads(self._journal_path.read_text())
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            log.warning("ignoring %s, which cannot be read: %s", self._journal_path, exc)
            return []
        pulls = raw.get("pulls") if isinstance(raw, dict) else None
        return pulls if isinstance(pulls, list) else []

    def _write_journal(self) -> None:
        """Replace pulls.json atomically (a new file renamed over it); removed when empty."""
        path = self._journal_path
        if path is None:
            return
        try:
            if not self._journal:
                path.unlink(missing_ok=True)
                return
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".tmp")
            with open(tmp, "w") as f:
                json.dump({"pulls": list(self._journal.values())}, f, indent=1)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except OSError as exc:  # a full or read-only disk: the pulls go on, unrecorded
            log.warning("cannot record the pulls in flight in %s: %s", path, exc)

    def _progress_event(
        self,
        record: PullRecord,
        status: str,
        downloaded: int,
        note: str,
        filename: str,
        sha256: str = "",
    ) -> None:
        """One `pull_progress` event: labelled as the pull, with its ref and start time (which
        tell one pull of a model from the next), status, bytes and the store's note."""
        self.events.emit(
            record.label,
            "pull_progress",
            note or f"{status} {filename}",
            status=status,
            downloaded=downloaded,
            total=record.total,
            note=note,
            ref=record.ref,
            started=record.started,
            sha256=sha256,  # the file's, once the hub named it (Ollama's "pulling <digest>")
            filename=filename,
        )

    def _ended(self, label: str, task: asyncio.Task[StoredModel]) -> None:
        self._tasks.pop(label, None)
        self._records.pop(label, None)
        self._cancelled.discard(label)
        stopped = task.cancelled() or isinstance(task.exception(), PullInterrupted)
        if not stopped:  # done, failed or cancelled: never resumed by a restart
            self.forget(label)

    async def _pull(self, ref: str, name: str | None, label: str) -> StoredModel:
        loop = asyncio.get_running_loop()
        record = self._records[label]
        last: list[Any] = [0.0, None]  # time and status of the last event sent

        def progress(ev: ProgressEvent) -> None:
            status: str = ev.status
            if self._stopping:
                if ev.status not in ("error", "done"):
                    raise PullInterrupted(
                        f"the pull of {label} stopped with the daemon after {ev.downloaded} "
                        "bytes; the partial download is kept and the daemon resumes it when "
                        "it starts again"
                    )
                if ev.status == "error":
                    status = "interrupted"
            elif label in self._cancelled:
                if ev.status not in ("error", "done"):
                    raise PullCancelled(
                        f"the pull of {label} was cancelled after {ev.downloaded} bytes; the "
                        "partial download is kept: pull again to resume it"
                    )
                if ev.status == "error":  # the end of the cancelled transfer
                    status = "cancelled"
            now = time.monotonic()
            done = ev.total and ev.downloaded >= ev.total
            if status == last[1] and now - last[0] < 0.25 and not done:
                return
            last[0], last[1] = now, status

            def observed() -> None:
                record.observe(ev, now)
                self._progress_event(
                    record, status, ev.downloaded, ev.message, ev.filename, ev.sha256
                )

            loop.call_soon_threadsafe(observed)

        def ended(status: str, note: str) -> None:
            """The last progress event, when the store's own did not say how it ended
            (a reference refused before the transfer): watchers close their bars on it."""
            if last[1] not in ENDED:
                self._progress_event(record, status, record.downloaded, note, record.filename)

        self.events.emit(label, "pull", f"pulling {ref}")
        try:
            stored = await asyncio.to_thread(self.store.pull, ref, name, progress)
        except PullCancelled as exc:
            ended("cancelled", str(exc))
            self.events.emit(label, "pull_cancelled", str(exc))
            raise
        except PullInterrupted as exc:
            ended("interrupted", str(exc))
            self.events.emit(label, "pull", str(exc))
            raise
        except StoreError as exc:
            ended("error", str(exc))
            self.events.emit(label, "error", f"pull failed: {exc}")
            raise
        ended("done", "")
        self.events.emit(
            stored.name,
            "pull",
            f"pulled {stored.filename} ({stored.size} bytes, sha256 {stored.sha256[:12]}…)",
        )
        return stored
