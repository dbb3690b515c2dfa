"""The model manager: which models exist, which tier each is in, and every move between.

It owns one slot per known model (catalog entries and stored models). A model is
hot (an engine worker holds it), warm (its weights held in host RAM by a
`WarmHold`), cold (a verified file on disk) or remote (not pulled). Requests
promote on demand (pulling first when needed); idle models are demoted after
their keep-alives; a load that would not fit demotes the least valuable idle
models first, or is refused with the numbers. The decisions are asked of the
pure `tiers.plan` (over `tiers.tier_state`); this module does the I/O and records every
move as an event with its reason and timing.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import math
import os
import shutil
import time
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path
from typing import Any

import psutil

from appliance.catalog import Catalog, HubSource, LocalSource
from appliance.engines.supervisor import WorkerProcess, WorkerSpec, WorkerStartError
from appliance.events import Event, EventLog
from appliance.hardware import HardwareReport
from appliance.pulls import MAX_RESUMES, Pulls
from appliance.settings import Settings
from appliance.store.gguf_meta import GGUFInfo
from appliance.store.integrity import files_to_hash
from appliance.store.model_folder import (
    file_identity,
    model_bytes,
    read_model_info,
    weights_file,
)
from appliance.store.store import Store, StoredModel, StoreError
from appliance.telemetry.gpu import nvml_process_vram
from appliance.tiers import footprint, views
from appliance.tiers.budgets import DeviceMemory, TierBudgets, compute_budgets, gpu_device_name
from appliance.tiers.cpu_faults import cpu_identity, remember_repack_bad, repack_known_bad
from appliance.tiers.errors import (
    BadModelRequest,
    ModelConflict,
    ModelError,
    ModelFailed,
    ModelNotFound,
    ModelUnavailable,
)
from appliance.tiers.estimate import estimate_memory
from appliance.tiers.measurements import Measurements, measurement_key, process_anon_bytes
from appliance.tiers.names import canonical
from appliance.tiers.plan import NoRoom, plan_idle, plan_over_budget, plan_promotion
from appliance.tiers.policy import (
    Placement,
    PlacementError,
    PlacementInput,
    fmt_bytes,
    place_slots,
)
from appliance.tiers.serving import Serving, serving_for
from appliance.tiers.slot import Slot
from appliance.tiers.tier_state import Budgets, ModelState, Move, Tier, usage
from appliance.tiers.warm import WarmHold, drop_page_cache

log = logging.getLogger("appliance.manager")

TIER_ORDER = {"hot": 0, "warm": 1, "cold": 2, "remote": 3}
USES_HALF_LIFE_S = 3600.0  # request frequency decays with this half-life
DISK_READ_BPS = 500e6  # reload cost estimate before a load was measured
MAX_TEMPLATE_BYTES = 1024 * 1024  # a chat template file from models.toml


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
        self.catalog = catalog
        self.store = store
        self.hardware = hardware
        self.data_dir = data_dir
        self.slots: dict[str, Slot] = {}
        self.event_log = EventLog()
        # False once llama.cpp's repacked kernels hit SIGILL on this CPU (now or before).
        self._cpu_faults = data_dir / "cpu_faults.json"
        self._cpu = cpu_identity(hardware.engine.version if hardware.engine else None)
        self.repack_ok = not repack_known_bad(self._cpu_faults, self._cpu)
        if not self.repack_ok:
            self.emit(
                "*",
                "engine",
                "weight repacking is off: llama.cpp's repacked CPU kernels died of an illegal "
                f"instruction on this CPU before ({self._cpu_faults}; delete it to try again)",
            )
        self.measurements = Measurements(data_dir / "measurements.json")
        self.placement_lock = asyncio.Lock()
        self.budget_overrides: dict[str, int] = {}
        self._pins_path = data_dir / "pins.json"
        self.runtime_pins: dict[str, str | None] = self._load_pins()
        self._info_cache: dict[Path, tuple[float, GGUFInfo]] = {}
        self.residency = views.ResidencyCache()
        self._tasks: list[asyncio.Task[None]] = []
        self._restarts: set[asyncio.Task[None]] = set()  # pinned models coming back up
        self.pulls = Pulls(store, self.event_log, data_dir / "pulls.json")

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._idle_loop(), name="idle-demoter"),
            asyncio.create_task(self._preload_pins(), name="preload-pins"),
        ]
        self._resume_pulls()

    def _resume_pulls(self) -> None:
        """Resume, in the background, the pulls the daemon's last stop (a restart, a crash,
        an upgrade) broke off, each from its partial file: once per start; one that fails
        or is cancelled is not resumed again, nor one that MAX_RESUMES starts did not end."""
        for pull in self.pulls.interrupted():
            label, ref = pull.label, pull.ref
            if pull.resumes >= MAX_RESUMES:
                self.pulls.forget(label)
                self.emit(
                    label,
                    "error",
                    f"not resuming the pull of {label}: {pull.resumes + 1} restarts in a row "
                    "interrupted it; pull it again to resume its partial download",
                )
                continue
            if pull.catalog:  # at the catalog's revision of now (an upgrade may move it)
                entry = self.catalog.exact(label)
                if entry is None or not isinstance(entry.source, HubSource):
                    self.pulls.forget(label)
                    self.emit(
                        label,
                        "pull",
                        f"not resuming the pull of {label}, interrupted by a restart: it is "
                        "no longer a catalog model to pull",
                    )
                    continue
                ref = f"{entry.source}@{entry.revision}"
            self.emit(
                label,
                "pull",
                f"resuming the pull of {label}, interrupted by a restart",
                reason="restart",
                ref=ref,
            )
            task = self.pulls.start(ref, pull.name, catalog=pull.catalog, resumes=pull.resumes + 1)
            # Its end is an event already (pulled, or the failure); nobody awaits it.
            task.add_done_callback(lambda t: None if t.cancelled() else t.exception())

    async def shutdown(self) -> None:
        self.pulls.shutdown()  # first: each transfer stops at its next chunk, to be resumed
        for task in [*self._tasks, *self._restarts]:
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

    def _load_pins(self) -> dict[str, str | None]:
        """The pins set at runtime. (Files written before unpins stopped being kept hold
        nulls: those are dropped, so models.toml's pins hold again.)"""
        try:
            raw = json.loads(self._pins_path.read_text())
            return {str(k): v for k, v in raw.items() if v in ("hot", "warm")}
        except (OSError, ValueError, AttributeError):
            return {}

    def pin_of(self, slot: Slot) -> str | None:
        if slot.name in self.runtime_pins:
            return self.runtime_pins[slot.name]
        return slot.entry.pin if slot.entry is not None else None

    async def set_pin(self, name: str, pin: str | None) -> None:
        """Pin at runtime (kept across restarts in the data folder); None unpins.

        Unpinning a model that models.toml pins holds until the daemon restarts, and says
        so: kept, it overrode the file for good, unseen (a later pin there was ignored)."""
        entry = self.slot(name).entry
        configured = entry.pin if entry is not None else None
        self.runtime_pins[name] = pin
        if pin is None and configured is None:
            del self.runtime_pins[name]
        kept = {n: p for n, p in self.runtime_pins.items() if p is not None}
        self._pins_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._pins_path.with_name("pins.json.tmp")
        tmp.write_text(json.dumps(kept, indent=1))
        os.replace(tmp, self._pins_path)
        if pin is None and configured is not None:
            message = (
                f"unpinned until the daemon restarts: models.toml pins it {configured} "
                "(remove the pin there to unpin it for good)"
            )
        else:
            message = f"pinned {pin}" if pin else "unpinned"
        self.emit(name, "pin", message)
        if pin == "hot":
            await self.load(name, reason="pinned hot")
        elif pin == "warm" and self.tier_of(self.slot(name)) in ("cold", "remote"):
            await self.set_tier(name, "warm", "pinned warm")

    async def _preload_pins(self) -> None:
        """Bring pinned models up to their pin at start: hot pins first, then warm."""
        pinned = [(self.pin_of(self.slot(n)), n) for n in self.known_names()]
        for pin, name in sorted((p, n) for p, n in pinned if p in ("hot", "warm")):
            try:
                if pin == "hot":
                    await self.load(name, reason="pinned hot: preloaded at start")
                else:
                    await self.set_tier(name, "warm", "pinned warm: preloaded at start")
            except ModelError as exc:
                self.emit(name, "error", f"pin {pin} not honoured at start: {exc.message}")

    # -- files ------------------------------------------------------------------------------

    def local_file(self, name: str) -> Path | None:
        """The GGUF path for a model if it is on this box already, else None."""
        entry = self.catalog.exact(name)
        if entry is not None and isinstance(entry.source, LocalSource):
            return entry.source.path.expanduser()
        stored = self.store.get(name)
        return stored.path if stored is not None else None

    async def pull(self, name: str) -> StoredModel:
        """Pull a catalog model into the store once, however many callers ask at once."""
        entry = self.catalog.exact(name)
        if entry is None:
            raise ModelNotFound(name)
        if not isinstance(entry.source, HubSource):
            raise BadModelRequest(
                f"model '{name}' is a local file ({entry.source}); there is nothing to pull",
                code="not_pullable",
            )
        return await self.pulls.pull(f"{entry.source}@{entry.revision}", entry.name, catalog=True)

    async def pull_ref(self, ref: str, name: str | None) -> StoredModel:
        """Pull an hf:// reference once, however many callers ask; progress as events."""
        return await self.pulls.pull(ref, name)

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
            raise ModelUnavailable(
                f"model '{slot.name}' is not on this box and could not be pulled: {exc}",
                code="model_unavailable",
                retryable=False,  # an offline hub or a bad reference does not pass in seconds
            ) from exc
        return stored.path

    # -- tiers ------------------------------------------------------------------------------

    def tier_of(self, slot: Slot) -> Tier:
        if slot.worker is not None and slot.worker.alive:
            return "hot"
        if slot.hold is not None:
            return "warm"
        path = self.local_file(slot.name)
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

    def gguf_info(self, path: Path) -> GGUFInfo:
        mtime = path.stat().st_mtime
        cached = self._info_cache.get(path)
        if cached is not None and cached[0] == mtime:
            return cached[1]
        info = read_model_info(path)
        self._info_cache[path] = (mtime, info)
        return info

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
        path = self.local_file(slot.name)
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

    def _plan_budgets(self) -> Budgets:
        b = self.budgets()
        return Budgets(hot=b.hot, warm=b.warm)

    @staticmethod
    def _uses(slot: Slot, now: float) -> float:
        return slot.uses * math.pow(0.5, max(now - slot.uses_at, 0.0) / USES_HALF_LIFE_S)

    async def _apply(self, move: Move, *, locked: bool = False) -> None:
        """Carry out one demotion or a promotion to warm; loads to hot go through `load`."""
        slot = self.slot(move.model)
        lock = contextlib.nullcontext() if locked else slot.lock
        started = time.monotonic()
        async with lock:
            if move.src == "hot" and slot.worker is not None:
                worker, slot.worker = slot.worker, None
                await worker.stop()  # sends "shutdown": the process ends, its memory returns
                slot.state = "unloaded"
                slot.loaded_at = None
            path = self.local_file(slot.name)
            if move.dst == "warm":
                slot.warm_since = time.monotonic()
            if move.dst == "warm" and path is not None:
                if slot.hold is None:
                    slot.hold = WarmHold(weights_file(path))
                hold = slot.hold
                await asyncio.to_thread(hold.warm)
                locked_pages = await asyncio.to_thread(hold.lock)
                if not locked_pages:
                    log.info(
                        "%s: pages kept in the page cache without mlock (%s)",
                        slot.name,
                        hold.lock_error,
                    )
            elif move.dst == "cold":
                if slot.hold is not None:
                    hold, slot.hold = slot.hold, None
                    await asyncio.to_thread(hold.release, True)
                elif path is not None and path.exists():
                    await asyncio.to_thread(drop_page_cache, path)
        seconds = time.monotonic() - started
        self.emit(
            move.model,
            "move",
            f"{move.src} → {move.dst}: {move.reason} ({seconds:.2f} s)",
            src=move.src,
            dst=move.dst,
            reason=move.reason,
            seconds=round(seconds, 3),
        )

    async def set_tier(
        self, name: str, dst: str, reason: str = "operator request", *, param: str = "tier"
    ) -> None:
        """Move a model to `dst` on request: promote (making room) or demote (pins allowing).
        `param`: what a refusal names, the request's field that asked for the move."""
        if dst == "hot":
            await self.load(name, reason=reason)
            return
        slot = self.slot(name)
        async with slot.lock:
            if self.tier_of(slot) == "remote":
                await self._ensure_file(slot)
            current = self.tier_of(slot)
            if current == dst:
                return
            now = time.monotonic()
            if TIER_ORDER[dst] > TIER_ORDER[current]:
                pin = self.pin_of(slot)
                if pin is not None and TIER_ORDER[dst] > TIER_ORDER[pin]:
                    raise ModelConflict(
                        f"model '{name}' is pinned {pin}; unpin it before moving it to {dst}",
                        code="pinned",
                        param=param,
                    )
                if slot.active:
                    raise ModelConflict(
                        f"model '{name}' is serving {slot.active} request(s); "
                        "try again when it is idle",
                        code="busy",
                        param=param,
                    )
                async with self.placement_lock:
                    if dst == "warm" and not self._warm_has_room(name, now):
                        dst, reason = "cold", f"{reason} (no room in warm)"
                    await self._apply(
                        Move(name, current, dst, reason),  # type: ignore[arg-type]
                        locked=True,
                    )
                return
            async with self.placement_lock:
                try:
                    moves = plan_promotion(
                        self.states(now, name),
                        name,
                        dst,  # type: ignore[arg-type]
                        self._plan_budgets(),
                        now,
                        reason,
                    )
                except NoRoom as exc:
                    raise self._no_room(name, exc) from exc
                for move in moves:
                    await self._apply(move, locked=move.model == name)

    def _warm_has_room(self, name: str, now: float) -> bool:
        """Whether `name`'s file fits in the warm budget beside the models already warm."""
        states = self.states(now)
        me = next((s for s in states if s.name == name), None)
        if me is None or me.pin == "warm":
            return True  # a model pinned warm keeps its warm room even while hot
        return me.warm_bytes <= usage(states, self._plan_budgets()).warm.free

    def _no_room(self, name: str, exc: NoRoom) -> ModelError:
        self.emit(name, "load_failed", str(exc))
        # Room held by requests being served comes back when they end: worth a retry.
        # Room that is not there at all (over the budget, pinned models) does not.
        wait = 5 if exc.transient else None
        return ModelUnavailable(str(exc), code="insufficient_memory", param=None, retry_after=wait)

    async def _idle_loop(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            try:
                await self.demote_idle()
            except Exception:  # the loop must survive anything one move does
                log.exception("idle demotion failed")

    async def fit_budgets(self) -> None:
        """After budgets were lowered: demote what no longer fits (idle, unpinned models)."""
        async with self.placement_lock:
            now = time.monotonic()
            for move in plan_over_budget(self.states(now), self._plan_budgets(), now):
                if self.slot(move.model).busy:
                    break  # a request came meanwhile: what is left shows as over budget
                await self._apply(move)

    async def demote_idle(self) -> None:
        async with self.placement_lock:
            now = time.monotonic()
            for move in plan_idle(self.states(now), self._plan_budgets(), now):
                if self.slot(move.model).busy:
                    # A request arrived since the plan; later moves may have counted on this
                    # one (room in warm), so stop here and plan afresh on the next tick.
                    break
                await self._apply(move)

    def _gpu_room(self, device: str, target: str) -> int | None:
        """VRAM the target may use on `device`: its budget less what cannot be moved (busy or
        pinned hot models), and no more than is free now plus what evictions would free."""
        budget = self.budgets().hot.get(device)
        if budget is None:
            return None
        on_device = [
            s
            for s in self.states(time.monotonic(), target)
            if s.tier == "hot" and s.device == device and s.name != target
        ]
        stuck = sum(s.hot_bytes for s in on_device if s.busy or s.pin == "hot")
        movable = sum(s.hot_bytes for s in on_device) - stuck
        room = budget - stuck
        gpu = next(
            (d for d in self.hardware.devices if gpu_device_name(d.vendor, d.index) == device), None
        )
        if gpu is not None and gpu.free_bytes is not None:
            room = min(room, gpu.free_bytes + movable)
        return max(room, 0)

    def _placement_input(
        self, slot: Slot, info: GGUFInfo, n_ctx: int, slots: int
    ) -> PlacementInput:
        """The numbers placement weighs for `slots` sequences of `n_ctx` each."""
        est = estimate_memory(info, n_ctx * slots)
        hw = self.hardware
        requested = slot.entry.n_gpu_layers if slot.entry else None
        if requested is None:
            requested = self.settings.n_gpu_layers
        backend = slot.entry.backend if slot.entry else "auto"
        gpu = bool(hw.engine and hw.engine.gpu_offload) and backend != "cpu"

        vm = psutil.virtual_memory()
        return PlacementInput(
            weights_bytes=est.weights_bytes,
            kv_cache_bytes=est.kv_cache_bytes,
            compute_bytes=est.compute_bytes,
            n_layers=info.block_count or 1,
            gpu_offload=gpu,
            gpu_free_bytes=self._gpu_room(self.device_for(slot), slot.name) if gpu else None,
            ram_available_bytes=int(vm.available),
            ram_total_bytes=int(vm.total),
            requested_gpu_layers=requested if gpu else None,
        )

    # -- loading ----------------------------------------------------------------------------

    async def load(self, name: str, reason: str = "requested") -> WorkerProcess:
        """Make `name` hot: pull if needed, make room by the plan, start its worker."""
        slot = self.slot(name)
        async with slot.lock:
            if slot.worker is not None and slot.worker.alive:
                return slot.worker
            now = time.monotonic()
            if slot.failures and now < slot.next_start_at:
                wait = slot.next_start_at - now
                raise ModelUnavailable(
                    f"model '{name}' failed recently ({slot.last_error}); retrying in {wait:.0f} s",
                    code="model_restarting",
                    param=None,
                    retry_after=math.ceil(wait),
                )
            path = await self._ensure_file(slot)
            await self._check_stored_bytes(slot, path)
            try:
                info = await asyncio.to_thread(self.gguf_info, path)
            except (StoreError, OSError) as exc:
                slot.state = "failed"
                slot.last_error = str(exc)
                self.emit(name, "load_failed", f"refused to load: {exc}")
                raise ModelFailed(
                    f"model '{name}' cannot be loaded: {exc}", code="invalid_model_file", param=None
                ) from exc
            serving = serving_for(slot.entry, self.settings, info)
            try:
                placement, slots = place_slots(
                    partial(self._placement_input, slot, info, serving.n_ctx),
                    serving.slots,
                    serving.slots_auto,
                )
            except PlacementError as exc:
                self.emit(name, "load_failed", str(exc))
                raise ModelUnavailable(
                    f"model '{name}': {exc}", code="insufficient_memory", param=None
                ) from exc
            serving = dataclasses.replace(serving, slots=slots)
            n_ctx = serving.n_ctx
            slot.device = self.device_for(slot) if placement.n_gpu_layers != 0 else "cpu"
            backend = self.hardware.engine.backend if self.hardware.engine else "unknown"
            model_id = self._model_id(name, path)
            key = measurement_key(
                model_id,
                n_ctx,
                backend,
                slot.device,
                placement.n_gpu_layers,
                slots,
            )
            measured = self.measurements.get(key)
            before = footprint.expected(
                info, n_ctx * slots, slot.device, placement.n_gpu_layers, measured
            )
            kv_bytes = estimate_memory(info, n_ctx * slots).kv_cache_bytes
            reserve = self._prompt_cache_reserve(serving, path, kv_bytes)
            self._set_footprint(slot, before.plus_host(reserve))
            if measured is not None:
                slot.reload_s = measured.load_s
            source_tier = self.tier_of(slot)
            async with self.placement_lock:
                now = time.monotonic()
                try:
                    moves = plan_promotion(
                        self.states(now, name), name, "hot", self._plan_budgets(), now, reason
                    )
                except NoRoom as exc:
                    raise self._no_room(name, exc) from exc
                for move in moves:
                    if move.model != name:
                        await self._apply(move)
                started = time.monotonic()  # the load alone: evictions above are not its cost
                worker = await self._start_worker(
                    slot, path, serving, placement, reason, model_id, reserve
                )
                load_s = time.monotonic() - started
                after = await self._measured(worker, path, info, n_ctx * slots, placement, before)
                if after is not None:
                    recorded_hot, recorded_host = footprint.record_of(after)
                    self.measurements.record(key, recorded_hot, load_s, recorded_host)
                    self._set_footprint(slot, after.plus_host(reserve))
                slot.reload_s = load_s
                if slot.hold is not None:  # the engine maps the same pages now
                    hold, slot.hold = slot.hold, None
                    await asyncio.to_thread(hold.release, False)
            host = f" + {fmt_bytes(slot.host_bytes)} of host RAM" if slot.host_bytes else ""
            fewer = slot.info.get("slots_reason")  # the engine gave fewer slots than asked
            self.emit(
                name,
                "move",
                f"{source_tier} → hot: {reason} ({load_s:.2f} s; "
                f"{fmt_bytes(slot.hot_bytes)} on {slot.device}{host}, "
                f"{placement.reason}{f'; {fewer}' if fewer else ''})",
                src=source_tier,
                dst="hot",
                reason=reason,
                seconds=round(load_s, 3),
                pid=worker.pid,
                n_gpu_layers=placement.n_gpu_layers,
                hot_bytes=slot.hot_bytes,
                host_bytes=slot.host_bytes,
            )
            return worker

    async def _check_stored_bytes(self, slot: Slot, path: Path) -> None:
        """On the way to hot, a stored model's files must still be the bytes its manifest
        names: a file changed since it was last hashed (or never recorded) is hashed
        again; a mismatch moves it to the store's quarantine and fails the load with
        `model_file_corrupt`. A 500, not a 503: waiting does not fix it, only pulling the
        model again does, which the message says how to do."""
        try:
            stored = self.store.get(slot.name)
        except StoreError:
            return  # the manifest is broken: reading the model below says so
        if stored is None or stored.path != path:
            return  # a catalog file outside the store: no digest to hold it against
        changed = await asyncio.to_thread(files_to_hash, self.store, stored)
        if changed:
            total = sum(size for _file, size in changed)
            self.emit(
                slot.name,
                "verify",
                f"hashing {len(changed)} file(s) ({fmt_bytes(total)}) changed since they "
                "were last verified",
                files=[file for file, _size in changed],
            )
        check = await asyncio.to_thread(self.store.verify, slot.name, force=False)
        if not check.corrupt:
            return  # all good, or missing (reported as a missing file below, as before)
        bad = next(f for f in check.bad if f.status == "corrupt" or f.quarantined_before)
        if slot.hold is not None:  # its pages are not the model's: let them go
            hold, slot.hold = slot.hold, None
            await asyncio.to_thread(hold.release, True)
        slot.state = "failed"
        slot.last_error = check.message
        self.emit(
            slot.name,
            "error",
            check.message,
            file=bad.file,
            sha256_expected=bad.sha256,
            sha256_found=bad.got,
            quarantine=str(bad.quarantine) if bad.quarantine is not None else None,
        )
        raise ModelFailed(check.message, code="model_file_corrupt", param=None)

    def _model_id(self, name: str, path: Path) -> str:
        """What saved prompt states and measurements hold for: a stored model's sha256, a
        catalog path's file identity (a file replaced there never gets the old states)."""
        stored = self.store.get(name)
        return stored.sha256 if stored is not None else file_identity(path)

    def _prompt_cache_reserve(self, serving: Serving, path: Path, kv_bytes: int) -> int:
        """Host RAM a model's saved prompt states may grow to after its load (the
        `prompt_cache_ram` cap, less for a small model), counted in its footprint (a CPU
        model's hot bytes, a GPU model's host bytes) so that several hot models' caches
        cannot outgrow the host's hot budget; the worker is given the same cap."""
        return footprint.prompt_states_cap(
            self._format_of(path), serving.embedding, self.settings.prompt_cache_ram_bytes, kv_bytes
        )

    async def _measured(
        self,
        worker: WorkerProcess,
        path: Path,
        info: GGUFInfo,
        n_ctx: int,
        placement: Placement,
        before: footprint.Footprint,
    ) -> footprint.Footprint | None:
        """What the loaded worker holds: its host RAM (anonymous memory and the weights it
        maps) and, on an NVIDIA GPU, its VRAM where NVML lists it; None when unreadable."""
        anon = process_anon_bytes(worker.pid) if worker.pid is not None else None
        if anon is None or worker.pid is None:
            return None
        file_bytes = None if path.is_dir() else path.stat().st_size
        mapped = footprint.mapped_weights(
            info, n_ctx, before.device, placement.n_gpu_layers, file_bytes
        )
        vram = None
        if before.device.startswith("cuda"):
            vram = await asyncio.to_thread(nvml_process_vram, worker.pid)
        return footprint.loaded(before, anon, mapped, vram)

    @staticmethod
    def _set_footprint(slot: Slot, fp: footprint.Footprint) -> None:
        slot.hot_bytes, slot.host_bytes = fp.device_bytes, fp.host_bytes
        slot.hot_bytes_measured = fp.measured

    def _chat_template(self, slot: Slot) -> str | None:
        """The template file models.toml names in place of the model's own, read now so
        that an edit takes effect at the next load."""
        path = slot.entry.chat_template if slot.entry else None
        if path is None:
            return None
        where = f"models.{slot.name}.chat_template"
        try:
            if path.stat().st_size > MAX_TEMPLATE_BYTES:
                raise ModelFailed(
                    f"{where}: {path} is over {MAX_TEMPLATE_BYTES // 1024} KiB; "
                    "that is not a chat template",
                    code="bad_chat_template",
                    param=None,
                )
            return path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ModelFailed(
                f"{where}: cannot read the template file {path}: {exc}",
                code="bad_chat_template",
                param=None,
            ) from exc

    async def _start_worker(
        self,
        slot: Slot,
        path: Path,
        serving: Serving,
        placement: Placement,
        reason: str,
        model_id: str,
        states_ram: int,
    ) -> WorkerProcess:
        n_ctx, flash_attn = serving.n_ctx, serving.flash_attn
        spec = WorkerSpec(
            model=slot.name,
            model_path=str(path),
            n_ctx=n_ctx,
            n_gpu_layers=placement.n_gpu_layers,
            n_threads=serving.threads,
            embedding=serving.embedding,
            slots=serving.slots,
            max_queue=serving.max_queue,
            flash_attn=flash_attn,
            deterministic=serving.deterministic,
            kv_unified=serving.kv_unified,
            state_key=f"{model_id}|ctx={n_ctx}|fa={flash_attn}|ngl={placement.n_gpu_layers}",
            state_dir=str(self.store.root / "cache" / "prompt-states"),
            state_ram_bytes=states_ram,
            state_disk_bytes=self.settings.prompt_cache_disk_bytes,
            state_min_save_s=self.settings.prompt_cache_min_save_s,
            weight_repack=self.settings.weight_repack and slot.weight_repack and self.repack_ok,
            format=self._format_of(path),
            tool_parser=slot.entry.tool_parser if slot.entry else None,
            chat_template=self._chat_template(slot),
        )
        worker = WorkerProcess(spec, heartbeat_timeout_s=self.settings.heartbeat_timeout_s)
        slot.state = "loading"
        self.emit(slot.name, "loading", f"loading ({reason}): n_ctx {n_ctx}, {placement.reason}")
        try:
            slot.info = await worker.start(self.settings.load_timeout_s)
        except WorkerStartError as exc:
            if spec.weight_repack and _illegal_instruction(str(exc)):
                self._repack_off(slot)
                return await self._start_worker(
                    slot, path, serving, placement, reason, model_id, states_ram
                )
            self._record_failure(slot, str(exc))
            self.emit(slot.name, "load_failed", str(exc))
            raise ModelFailed(str(exc), code="model_load_failed", param=None) from exc
        slot.worker = worker
        slot.placement = placement
        slot.state = "ready"
        slot.loaded_at = time.time()
        slot.last_used = time.monotonic()
        worker.on_exit.append(lambda w: self._on_worker_exit(slot, w))
        return worker

    def _format_of(self, path: Path) -> str:
        return self.gguf_info(path).format if path.is_dir() else "gguf"

    def _record_failure(self, slot: Slot, message: str) -> None:
        slot.failures += 1
        slot.last_error = message
        slot.state = "failed"
        backoff = min(
            self.settings.restart_backoff_initial_s * 2 ** (slot.failures - 1),
            self.settings.restart_backoff_max_s,
        )
        slot.next_start_at = time.monotonic() + backoff

    def _repack_off(self, slot: Slot) -> None:
        """The CPU cannot run the repacked kernels: no model repacks again (a property of
        the box, so the other models do not each crash once to learn it)."""
        slot.weight_repack = False
        first = self.repack_ok
        self.repack_ok = False
        if first:
            remember_repack_bad(self._cpu_faults, self._cpu)
            self.emit(
                slot.name,
                "engine",
                "illegal instruction in llama.cpp's repacked CPU kernels (this CPU announces "
                "instructions it cannot run): every model is served without weight repacking "
                "from now on; set weight_repack = false to skip the first try",
            )

    def _on_worker_exit(self, slot: Slot, worker: WorkerProcess) -> None:
        if slot.worker is not worker:
            return
        slot.worker = None
        if worker.exit_reason == "unloaded":
            slot.state = "unloaded"
            return
        reason = worker.exit_reason or "exited"
        if worker.spec.weight_repack and _illegal_instruction(reason):
            self._repack_off(slot)
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
        pinned = self.pin_of(slot) == "hot"
        when = "now" if pinned else "on the next request"
        self.emit(
            slot.name,
            "crash",
            f"engine worker {reason}; restarts {'as it is pinned hot ' if pinned else ''}{when}"
            + (f" after {backoff:.0f} s" if backoff else ""),
            pid=worker.pid,
        )
        if pinned:  # a pin keeps the model loaded: not only once a request comes
            task = asyncio.create_task(self._restart_pinned(slot.name, backoff))
            self._restarts.add(task)
            task.add_done_callback(self._restarts.discard)

    async def _restart_pinned(self, name: str, delay: float) -> None:
        """Load a model pinned hot again, backing off while loads fail, until it runs, its
        pin goes, or it is stopped (a crash of the new worker starts another of these)."""
        settings = self.settings
        while True:
            await asyncio.sleep(delay)
            slot = self.slot(name)
            if slot.worker is not None or self.pin_of(slot) != "hot":
                return  # a request brought it back, or the pin went meanwhile
            try:
                await self.load(name, reason="pinned hot: restarted after its worker ended")
                return
            except Exception as exc:  # any failure: say it, try again later
                message = exc.message if isinstance(exc, ModelError) else str(exc)
                delay = min(
                    max(delay * 2, settings.restart_backoff_initial_s),
                    settings.restart_backoff_max_s,
                )
                self.emit(
                    name,
                    "error",
                    f"pin hot not honoured after a crash: {message}; next try in {delay:.0f} s",
                )

    async def unload(self, name: str, reason: str) -> bool:
        """Stop the model's worker: hot → warm (its pages stay in RAM for a fast reload)."""
        slot = self.slot(name)
        if slot.worker is None:
            return False
        if self.pin_of(slot) == "hot":
            raise ModelConflict(f"model '{name}' is pinned hot; unpin it first", code="pinned")
        await self.set_tier(name, "warm", reason, param="model")  # the model is all it names
        return True

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


def _illegal_instruction(reason: str) -> bool:
    return "SIGILL" in reason
