"""The model manager: which models exist, which tier each is in, and the one way in to
moving them.

It owns one slot per known model (catalog entries and stored models). A model is
hot (an engine worker holds it), warm (its weights held in host RAM by a
`WarmHold`), cold (a verified file on disk) or remote (not pulled). Requests
promote on demand (pulling first when needed); idle models are demoted after
their keep-alives; a load that would not fit demotes the least valuable idle
models first, or is refused with the numbers. The decisions are asked of the
pure `tiers.plan` (over the `ModelState`s read here); the I/O lives beside it:
`loading` (a load to hot), `moves` (every other move), `workers` (a worker's start
and end), `pins`, `model_files` (paths, pulls, checks); every move is an event
with its reason and timing.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from appliance.catalog import Catalog
from appliance.engines.supervisor import WorkerProcess
from appliance.events import Event, EventLog
from appliance.hardware import HardwareReport
from appliance.pulls import Pulls
from appliance.settings import Settings
from appliance.store.gguf_meta import GGUFInfo
from appliance.store.model_folder import model_bytes
from appliance.store.store import Store, StoredModel
from appliance.tiers import loading, moves, pins, views
from appliance.tiers.budgets import DeviceMemory, TierBudgets, compute_budgets, gpu_device_name
from appliance.tiers.cpu_faults import cpu_identity, repack_known_bad
from appliance.tiers.measurements import Measurements
from appliance.tiers.model_files import ModelFiles
from appliance.tiers.names import canonical
from appliance.tiers.slot import Slot
from appliance.tiers.tier_state import Budgets, ModelState, Tier

USES_HALF_LIFE_S = 3600.0  # request frequency decays with this half-life
DISK_READ_BPS = 500e6  # reload cost estimate before a load was measured


class ModelManager:
    def __init__(
        self,
        settings: Settings,
        catalog: Catalog,
        store: Store,
        hardware: HardwareReport,
        data_dir: Path,
    ) -> None:
        self.settings = settings
        self.store = store
        self.hardware = hardware
        self.data_dir = data_dir
        self.slots: dict[str, Slot] = {}
        self.event_log = EventLog()
        self.pulls = Pulls(store, self.event_log, data_dir / "pulls.json")
        self.files = ModelFiles(catalog, store, self.pulls, self.event_log)
        # False once llama.cpp's repacked kernels hit SIGILL on this CPU (now or before).
        self.cpu_faults_path = data_dir / "cpu_faults.json"
        self.cpu = cpu_identity(hardware.engine.version if hardware.engine else None)
        self.repack_ok = not repack_known_bad(self.cpu_faults_path, self.cpu)
        if not self.repack_ok:
            self.emit(
                "*",
                "engine",
                "weight repacking is off: llama.cpp's repacked CPU kernels died of an illegal "
                f"instruction on this CPU before ({self.cpu_faults_path}; delete it to try again)",
            )
        self.measurements = Measurements(data_dir / "measurements.json")
        self.placement_lock = asyncio.Lock()
        self.budget_overrides: dict[str, int] = {}
        self.runtime_pins = pins.RuntimePins(data_dir / "pins.json")
        self.residency = views.ResidencyCache()
        self._tasks: list[asyncio.Task[None]] = []
        self.restarts: set[asyncio.Task[None]] = set()  # pinned models coming back up

    @property
    def catalog(self) -> Catalog:
        """The catalog, which `files` finds catalog paths in (one, even when replaced)."""
        return self.files.catalog

    @catalog.setter
    def catalog(self, catalog: Catalog) -> None:
        self.files.catalog = catalog

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(moves.idle_loop(self), name="idle-demoter"),
            asyncio.create_task(pins.preload_pins(self), name="preload-pins"),
        ]
        self.files.resume_interrupted()

    async def shutdown(self) -> None:
        self.pulls.shutdown()  # first: each transfer stops at its next chunk, to be resumed
        for task in [*self._tasks, *self.restarts]:
            task.cancel()
        # All at once: each worker may take its grace to write its prompt cache, and a box
        # with several hot models must still stop within systemd's TimeoutStopSec.
        workers = [slot.worker for slot in self.slots.values() if slot.worker is not None]
        await asyncio.gather(*(worker.stop() for worker in workers), return_exceptions=True)
        for slot in self.slots.values():
            slot.worker = None
            if slot.hold is not None:
                slot.hold.release(drop_cache=False)
                slot.hold = None

    # -- events -----------------------------------------------------------------------------

    @property
    def events(self) -> list[Event]:
        return list(self.event_log.history)

    def emit(self, model: str, kind: str, message: str, **data: Any) -> None:
        self.event_log.emit(model, kind, message, **data)

    def subscribe(self) -> contextlib.AbstractContextManager[asyncio.Queue[Event]]:
        return self.event_log.subscribe()

    # -- names ------------------------------------------------------------------------------

    def known_names(self) -> list[str]:
        names = [e.name for e in self.catalog.entries]
        names += [m.name for m in self.store.list() if m.name not in names]
        return names

    def canonical(self, model: str) -> str:
        """The model's name from a name or alias (see `names.canonical`), or a 404."""
        return canonical(self.catalog, self.store, model)

    def default_model(self, *, embedding: bool = False) -> str | None:
        """The model a request without `model` means: the catalog's default chat model (or
        its first embedding model), unless it is not on this box yet and a model of that
        kind is loaded: then the one used last (as LM Studio answers with the loaded model;
        the default would be pulled first, and offline not at all). Without a catalog
        default, the only loaded one."""
        if embedding:
            entry = next((e for e in self.catalog if e.kind == "embedding"), None)
        else:
            entry = self.catalog.default_entry()
        loaded = sorted(
            (
                slot
                for slot in self.slots.values()
                if slot.worker is not None and slot.worker.spec.embedding == embedding
            ),
            key=lambda slot: -slot.last_used,
        )
        if entry is not None:
            if loaded and self.tier_of(self.slot(entry.name)) == "remote":
                return loaded[0].name
            return entry.name
        return loaded[0].name if len(loaded) == 1 else None

    def slot(self, name: str) -> Slot:
        slot = self.slots.get(name)
        if slot is None:
            slot = Slot(name=name, entry=self.catalog.exact(name))
            self.slots[name] = slot
        return slot

    def keep_alive_s(self, slot: Slot) -> float:
        if slot.keep_alive_override is not None:
            return slot.keep_alive_override
        if slot.entry is not None and slot.entry.keep_alive_s is not None:
            return slot.entry.keep_alive_s
        return self.settings.keep_alive_s

    def warm_keep_alive_s(self, slot: Slot) -> float:
        if slot.entry is not None and slot.entry.warm_keep_alive_s is not None:
            return slot.entry.warm_keep_alive_s
        return self.settings.warm_keep_alive_s

    # -- pins -------------------------------------------------------------------------------

    def pin_of(self, slot: Slot) -> str | None:
        return self.runtime_pins.pin_of(slot)

    async def set_pin(self, name: str, pin: str | None) -> None:
        """Pin at runtime (kept across restarts); None unpins (see `pins.set_pin`)."""
        await pins.set_pin(self, name, pin)

    # -- files ------------------------------------------------------------------------------

    def local_file(self, name: str) -> Path | None:
        """The GGUF path for a model if it is on this box already, else None."""
        return self.files.local_file(name)

    async def pull(self, name: str) -> StoredModel:
        """Pull a catalog model into the store once, however many callers ask at once."""
        return await self.files.pull(name)

    async def pull_ref(self, ref: str, name: str | None) -> StoredModel:
        """Pull an hf:// reference once, however many callers ask; progress as events."""
        return await self.files.pull_ref(ref, name)

    def gguf_info(self, path: Path) -> GGUFInfo:
        return self.files.gguf_info(path)

    # -- tiers ------------------------------------------------------------------------------

    def tier_of(self, slot: Slot) -> Tier:
        if slot.worker is not None and slot.worker.alive:
            return "hot"
        if slot.hold is not None:
            return "warm"
        path = self.files.local_file(slot.name)
        return "cold" if path is not None and path.exists() else "remote"

    def device_for(self, slot: Slot) -> str:
        engine = self.hardware.engine
        backend = slot.entry.backend if slot.entry else "auto"
        if (
            engine is None
            or not engine.gpu_offload
            or backend == "cpu"
            or not self.hardware.devices
        ):
            return "cpu"
        gpu = max(self.hardware.devices, key=lambda d: d.free_bytes or 0)
        return gpu_device_name(gpu.vendor, gpu.index)

    def budgets(self) -> TierBudgets:
        gpus = [
            DeviceMemory(gpu_device_name(d.vendor, d.index), d.total_bytes)
            for d in self.hardware.devices
        ]
        try:
            disk_total: int | None = shutil.disk_usage(self.store.root).total
        except OSError:
            disk_total = None
        return compute_budgets(
            self.settings, self.hardware.ram_total_bytes, gpus, disk_total, self.budget_overrides
        )

    def _reload_s(self, slot: Slot, size: int) -> float:
        if slot.reload_s is not None:
            return slot.reload_s
        return 0.5 + size / DISK_READ_BPS

    def _state(self, slot: Slot, now: float) -> ModelState | None:
        tier = self.tier_of(slot)
        if tier == "remote":
            return None
        path = self.files.local_file(slot.name)
        size = model_bytes(path) if path is not None and path.exists() else 0
        pin = self.pin_of(slot)
        return ModelState(
            name=slot.name,
            tier=tier,
            device=slot.device,
            hot_bytes=slot.hot_bytes if slot.hot_bytes is not None else size,
            host_bytes=slot.host_bytes if slot.device != "cpu" else 0,
            warm_bytes=size,
            pin=pin if pin in ("hot", "warm") else None,  # type: ignore[arg-type]
            busy=slot.busy,
            last_used=slot.last_used,
            warm_since=slot.warm_since,
            uses=self._uses(slot, now),
            reload_s=self._reload_s(slot, size),
            hot_keep_alive_s=self.keep_alive_s(slot),
            warm_keep_alive_s=self.warm_keep_alive_s(slot),
        )

    def states(self, now: float, target: str | None = None) -> list[ModelState]:
        """Every local model's state for the planner; `target` (being moved by the caller,
        who holds its lock) is not counted as busy."""
        for name in self.known_names():
            self.slot(name)
        states = [s for s in (self._state(slot, now) for slot in self.slots.values()) if s]
        return [dataclasses.replace(s, busy=False) if s.name == target else s for s in states]

    def plan_budgets(self) -> Budgets:
        b = self.budgets()
        return Budgets(hot=b.hot, warm=b.warm)

    @staticmethod
    def _uses(slot: Slot, now: float) -> float:
        return slot.uses * math.pow(0.5, max(now - slot.uses_at, 0.0) / USES_HALF_LIFE_S)

    # -- moves ------------------------------------------------------------------------------

    async def load(self, name: str, reason: str = "requested") -> WorkerProcess:
        """Make `name` hot: pull if needed, make room by the plan, start its worker."""
        return await loading.load(self, name, reason)

    async def set_tier(
        self, name: str, dst: str, reason: str = "operator request", *, param: str = "tier"
    ) -> None:
        """Move a model to `dst` on request: promote (making room) or demote (pins allowing).
        `param`: what a refusal names, the request's field that asked for the move."""
        await moves.set_tier(self, name, dst, reason, param=param)

    async def fit_budgets(self) -> None:
        """After budgets were lowered: demote what no longer fits (idle, unpinned models)."""
        await moves.fit_budgets(self)

    async def demote_idle(self) -> None:
        await moves.demote_idle(self)

    async def unload(self, name: str, reason: str) -> bool:
        """Stop the model's worker: hot → warm (its pages stay in RAM for a fast reload)."""
        return await moves.unload(self, name, reason)

    # -- requests ---------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def use(self, name: str) -> AsyncIterator[WorkerProcess]:
        """Hold a ready worker for one request; the idle clock starts when it is released."""
        slot = self.slot(name)
        now = time.monotonic()
        slot.uses = self._uses(slot, now) + 1.0
        slot.uses_at = now
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

    # -- views ------------------------------------------------------------------------------

    def describe(self, name: str) -> dict[str, Any]:
        """One model as the admin API, the CLI and the TUI show it."""
        return views.describe(self, name)

    def budgets_view(self) -> dict[str, Any]:
        """Each tier's budget, use and room, per device for hot; None where unknown."""
        return views.budgets_view(self)
