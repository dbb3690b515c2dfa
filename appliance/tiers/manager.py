"""The model manager: which models exist, which are loaded, and every move between.

It owns one slot per known model (catalog entries and stored models), starts
workers on demand (just-in-time load, pulling first when a catalog model is not
in the store yet), unloads them after their keep-alive, restarts crashed ones
with back-off, and records each move as an event with its reason. Placement is
asked of `tiers.policy`; this module does the I/O around it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from appliance.api.errors import APIError, model_not_found
from appliance.catalog import Catalog, CatalogEntry, HubSource, LocalSource
from appliance.engines.supervisor import WorkerProcess, WorkerSpec, WorkerStartError
from appliance.hardware import HardwareReport
from appliance.settings import Settings
from appliance.store.gguf_meta import GGUFError, GGUFInfo, read_gguf_info
from appliance.store.store import ProgressEvent, Store, StoredModel, StoreError
from appliance.tiers.estimate import estimate_memory
from appliance.tiers.policy import Placement, PlacementError, PlacementInput, place

log = logging.getLogger("appliance.manager")


@dataclass
class Event:
    time: float
    model: str
    kind: str  # load | unload | crash | load_failed | pull | pull_progress | error
    message: str
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "time": self.time,
            "model": self.model,
            "kind": self.kind,
            "message": self.message,
            **({"data": self.data} if self.data else {}),
        }


@dataclass
class Slot:
    name: str
    entry: CatalogEntry | None
    state: str = "unloaded"  # unloaded | pulling | loading | ready | failed
    worker: WorkerProcess | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    last_used: float = 0.0
    active: int = 0
    failures: int = 0
    next_start_at: float = 0.0
    last_error: str | None = None
    info: dict[str, Any] = field(default_factory=dict)
    placement: Placement | None = None
    requests_total: int = 0
    loaded_at: float | None = None


class ModelManager:
    def __init__(
        self, settings: Settings, catalog: Catalog, store: Store, hardware: HardwareReport
    ) -> None:
        self.settings = settings
        self.catalog = catalog
        self.store = store
        self.hardware = hardware
        self.slots: dict[str, Slot] = {}
        self.events: deque[Event] = deque(maxlen=1000)
        self._subscribers: set[asyncio.Queue[Event]] = set()
        self._idle_task: asyncio.Task[None] | None = None
        self._pulls: dict[str, asyncio.Task[StoredModel]] = {}

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        self._idle_task = asyncio.create_task(self._idle_loop(), name="idle-unloader")

    async def shutdown(self) -> None:
        if self._idle_task is not None:
            self._idle_task.cancel()
        for slot in list(self.slots.values()):
            if slot.worker is not None:
                await slot.worker.stop()
                slot.worker = None

    # -- events -----------------------------------------------------------------------------

    def emit(self, model: str, kind: str, message: str, **data: Any) -> None:
        event = Event(time.time(), model, kind, message, data)
        if kind != "pull_progress":
            self.events.append(event)
            log.info("%s: %s", model, message)
        for q in list(self._subscribers):
            with contextlib.suppress(asyncio.QueueFull):
                q.put_nowait(event)

    @contextlib.contextmanager
    def subscribe(self) -> Any:
        q: asyncio.Queue[Event] = asyncio.Queue(maxsize=1000)
        self._subscribers.add(q)
        try:
            yield q
        finally:
            self._subscribers.discard(q)

    # -- names ------------------------------------------------------------------------------

    def known_names(self) -> list[str]:
        names = [e.name for e in self.catalog.entries]
        names += [m.name for m in self.store.list() if m.name not in names]
        return names

    def canonical(self, model: str) -> str:
        """The model's name from a name or alias, or a 404 in the OpenAI shape."""
        entry = self.catalog.resolve(model)
        if entry is not None:
            return entry.name
        try:
            if self.store.get(model) is not None:
                return model
        except StoreError:
            pass
        raise model_not_found(model)

    def slot(self, name: str) -> Slot:
        slot = self.slots.get(name)
        if slot is None:
            slot = Slot(name=name, entry=self.catalog.resolve(name))
            self.slots[name] = slot
        return slot

    def keep_alive_s(self, slot: Slot) -> float:
        if slot.entry is not None and slot.entry.keep_alive_s is not None:
            return slot.entry.keep_alive_s
        return self.settings.keep_alive_s

    # -- files ------------------------------------------------------------------------------

    def local_file(self, name: str) -> Path | None:
        """The GGUF path for a model if it is on this box already, else None."""
        entry = self.catalog.resolve(name)
        if entry is not None and isinstance(entry.source, LocalSource):
            return entry.source.path.expanduser()
        stored = self.store.get(name)
        return stored.path if stored is not None else None

    async def pull(self, name: str) -> StoredModel:
        """Pull a catalog model into the store once, however many callers ask at once."""
        entry = self.catalog.resolve(name)
        if entry is None:
            raise model_not_found(name)
        if not isinstance(entry.source, HubSource):
            raise APIError(
                400,
                f"model '{name}' is a local file ({entry.source}); there is nothing to pull",
                "invalid_request_error",
                "model",
                "not_pullable",
            )
        return await self.pull_ref(f"{entry.source}@{entry.revision}", entry.name)

    async def pull_ref(self, ref: str, name: str | None) -> StoredModel:
        """Pull an hf:// reference; progress goes out as events labelled `name or ref`."""
        label = name or ref
        task = self._pulls.get(label)
        if task is None:
            task = asyncio.create_task(self._pull(ref, name, label))
            self._pulls[label] = task
            task.add_done_callback(lambda _t: self._pulls.pop(label, None))
        return await asyncio.shield(task)

    async def _pull(self, ref: str, name: str | None, label: str) -> StoredModel:
        loop = asyncio.get_running_loop()
        last: list[Any] = [0.0, None]  # time and status of the last event sent

        def progress(ev: ProgressEvent) -> None:
            # At most four download events a second, but every change of status and the end.
            now = time.monotonic()
            done = ev.total and ev.downloaded >= ev.total
            if ev.status == last[1] and now - last[0] < 0.25 and not done:
                return
            last[0], last[1] = now, ev.status
            emit = functools.partial(
                self.emit,
                label,
                "pull_progress",
                f"{ev.status} {ev.filename}",
                status=ev.status,
                downloaded=ev.downloaded,
                total=ev.total,
            )
            loop.call_soon_threadsafe(emit)

        self.emit(label, "pull", f"pulling {ref}")
        try:
            stored = await asyncio.to_thread(self.store.pull, ref, name, progress)
        except StoreError as exc:
            self.emit(label, "error", f"pull failed: {exc}")
            raise
        self.emit(
            stored.name,
            "pull",
            f"pulled {stored.filename} ({stored.size} bytes, sha256 {stored.sha256[:12]}…)",
        )
        return stored

    async def _ensure_file(self, slot: Slot) -> Path:
        path = self.local_file(slot.name)
        if path is not None:
            return path
        slot.state = "pulling"
        try:
            stored = await self.pull(slot.name)
        except StoreError as exc:
            slot.state = "unloaded"
            slot.last_error = f"pull failed: {exc}"
            raise APIError(
                503,
                f"model '{slot.name}' is not on this box and could not be pulled: {exc}",
                "server_error",
                "model",
                "model_unavailable",
                retry_after=30,
            ) from exc
        return stored.path

    # -- loading ----------------------------------------------------------------------------

    def _context_for(self, slot: Slot, info: GGUFInfo) -> int:
        wanted = slot.entry.context if slot.entry and slot.entry.context else None
        n_ctx = wanted or self.settings.default_context
        if info.context_length:
            n_ctx = min(n_ctx, info.context_length)
        return max(n_ctx, 16)

    def _is_embedding(self, slot: Slot, info: GGUFInfo) -> bool:
        kind = slot.entry.kind if slot.entry else "auto"
        if kind == "embedding":
            return True
        if kind == "chat":
            return False
        return info.is_embedding

    def _placement(self, slot: Slot, info: GGUFInfo, n_ctx: int) -> Placement:
        est = estimate_memory(info, n_ctx)
        hw = self.hardware
        requested = slot.entry.n_gpu_layers if slot.entry else None
        if requested is None:
            requested = self.settings.n_gpu_layers
        backend = slot.entry.backend if slot.entry else "auto"
        gpu = bool(hw.engine and hw.engine.gpu_offload) and backend != "cpu"
        import psutil

        vm = psutil.virtual_memory()
        return place(
            PlacementInput(
                weights_bytes=est.weights_bytes,
                kv_cache_bytes=est.kv_cache_bytes,
                compute_bytes=est.compute_bytes,
                n_layers=info.block_count or 1,
                gpu_offload=gpu,
                gpu_free_bytes=hw.gpu_free_bytes(),
                ram_available_bytes=int(vm.available),
                ram_total_bytes=int(vm.total),
                requested_gpu_layers=requested if gpu else None,
            )
        )

    async def load(self, name: str, reason: str = "requested") -> WorkerProcess:
        slot = self.slot(name)
        async with slot.lock:
            if slot.worker is not None and slot.worker.alive:
                return slot.worker
            now = time.monotonic()
            if slot.failures and now < slot.next_start_at:
                wait = slot.next_start_at - now
                raise APIError(
                    503,
                    f"model '{name}' failed recently ({slot.last_error}); retrying in {wait:.0f} s",
                    "server_error",
                    None,
                    "model_restarting",
                    retry_after=math.ceil(wait),
                )
            path = await self._ensure_file(slot)
            try:
                info = await asyncio.to_thread(read_gguf_info, path)
            except (GGUFError, OSError) as exc:
                slot.state = "failed"
                slot.last_error = str(exc)
                self.emit(name, "load_failed", f"refused to load: {exc}")
                raise APIError(
                    500,
                    f"model '{name}' cannot be loaded: {exc}",
                    "server_error",
                    None,
                    "invalid_model_file",
                ) from exc
            n_ctx = self._context_for(slot, info)
            try:
                placement = self._placement(slot, info, n_ctx)
            except PlacementError as exc:
                slot.state = "unloaded"
                self.emit(name, "load_failed", str(exc))
                raise APIError(
                    503, f"model '{name}': {exc}", "server_error", None, "insufficient_memory"
                ) from exc
            spec = WorkerSpec(
                model=name,
                model_path=str(path),
                n_ctx=n_ctx,
                n_gpu_layers=placement.n_gpu_layers,
                n_threads=(
                    slot.entry.threads
                    if slot.entry and slot.entry.threads
                    else self.settings.threads
                ),
                embedding=self._is_embedding(slot, info),
            )
            worker = WorkerProcess(spec, heartbeat_timeout_s=self.settings.heartbeat_timeout_s)
            slot.state = "loading"
            self.emit(name, "loading", f"loading ({reason}): n_ctx {n_ctx}, {placement.reason}")
            started = time.monotonic()
            try:
                slot.info = await worker.start(self.settings.load_timeout_s)
            except WorkerStartError as exc:
                self._record_failure(slot, str(exc))
                self.emit(name, "load_failed", str(exc))
                raise APIError(500, str(exc), "server_error", None, "model_load_failed") from exc
            slot.worker = worker
            slot.placement = placement
            slot.state = "ready"
            slot.loaded_at = time.time()
            slot.last_used = time.monotonic()
            worker.on_exit.append(lambda w: self._on_worker_exit(slot, w))
            self.emit(
                name,
                "load",
                f"loaded in {time.monotonic() - started:.2f} s ({reason})",
                load_s=round(time.monotonic() - started, 3),
                pid=worker.pid,
                n_gpu_layers=placement.n_gpu_layers,
            )
            return worker

    def _record_failure(self, slot: Slot, message: str) -> None:
        slot.failures += 1
        slot.last_error = message
        slot.state = "failed"
        backoff = min(
            self.settings.restart_backoff_initial_s * 2 ** (slot.failures - 1),
            self.settings.restart_backoff_max_s,
        )
        slot.next_start_at = time.monotonic() + backoff

    def _on_worker_exit(self, slot: Slot, worker: WorkerProcess) -> None:
        if slot.worker is not worker:
            return
        slot.worker = None
        if worker.exit_reason == "unloaded":
            slot.state = "unloaded"
            return
        reason = worker.exit_reason or "exited"
        # A first crash restarts at once on the next request; repeated ones back off.
        slot.failures += 1
        slot.last_error = f"worker {reason}"
        slot.state = "failed"
        backoff = (
            0.0
            if slot.failures == 1
            else min(
                self.settings.restart_backoff_initial_s * 2 ** (slot.failures - 2),
                self.settings.restart_backoff_max_s,
            )
        )
        slot.next_start_at = time.monotonic() + backoff
        self.emit(
            slot.name,
            "crash",
            f"engine worker {reason}; restarts on the next request"
            + (f" after {backoff:.0f} s" if backoff else ""),
            pid=worker.pid,
        )

    async def unload(self, name: str, reason: str) -> bool:
        slot = self.slot(name)
        async with slot.lock:
            worker = slot.worker
            if worker is None:
                return False
            slot.worker = None
            slot.state = "unloaded"
            worker.exit_reason = "unloaded"
            await worker.stop()
            slot.loaded_at = None
            self.emit(name, "unload", f"unloaded: {reason}")
            return True

    @contextlib.asynccontextmanager
    async def use(self, name: str) -> AsyncIterator[WorkerProcess]:
        """Hold a ready worker for one request; the idle clock starts when it is released."""
        slot = self.slot(name)
        slot.active += 1
        slot.requests_total += 1
        worker: WorkerProcess | None = None
        try:
            worker = slot.worker if slot.worker is not None and slot.worker.alive else None
            if worker is None:
                worker = await self.load(
                    name, reason="first request" if not slot.failures else "restart after failure"
                )
            yield worker
        finally:
            # A request that ends with its worker alive ends a crash streak (this also runs
            # when the response was closed early).
            if worker is not None and worker.alive and slot.worker is worker:
                slot.failures = 0
            slot.active -= 1
            slot.last_used = time.monotonic()

    async def _idle_loop(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            for slot in list(self.slots.values()):
                keep = self.keep_alive_s(slot)
                if (
                    slot.worker is not None
                    and slot.active == 0
                    and math.isfinite(keep)
                    and now - slot.last_used >= keep
                    and not slot.lock.locked()
                ):
                    await self.unload(slot.name, f"idle {_fmt_duration(keep)}")

    # -- views ------------------------------------------------------------------------------

    def describe(self, name: str) -> dict[str, Any]:
        slot = self.slots.get(name) or Slot(name=name, entry=self.catalog.resolve(name))
        entry = slot.entry
        stored = self.store.get(name)
        path = self.local_file(name)
        on_disk = path is not None and path.exists()
        size = stored.size if stored else (path.stat().st_size if path and on_disk else None)
        keep_alive = self.keep_alive_s(slot)
        worker = slot.worker
        state = slot.state
        if state == "unloaded" and not on_disk:
            state = "remote"
        return {
            "name": name,
            "state": state,
            "tier": "hot"
            if worker is not None and worker.alive
            else ("cold" if on_disk else "remote"),
            "kind": entry.kind if entry else "auto",
            "aliases": list(entry.aliases) if entry else [],
            "source": str(entry.source) if entry else (stored.source if stored else None),
            "size_bytes": size,
            "pid": worker.pid if worker is not None else None,
            "active_requests": slot.active,
            "queue_depth": worker.queue_depth if worker is not None else 0,
            "requests_total": slot.requests_total,
            "keep_alive_s": keep_alive if math.isfinite(keep_alive) else None,  # None: forever
            "last_error": slot.last_error,
            "n_gpu_layers": slot.placement.n_gpu_layers if slot.placement and worker else None,
            "placement": slot.placement.reason if slot.placement and worker else None,
            "engine": slot.info if worker is not None else {},
            "eos_token_id": slot.info.get("eos_token_id") if slot.info else None,
        }


def _fmt_duration(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:.0f}h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:.0f}m"
    return f"{seconds:g}s"
