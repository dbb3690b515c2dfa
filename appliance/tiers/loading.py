"""A load to hot: the model's file found (or pulled) and checked, its GPU layers and
slots placed, room made by the plan's evictions, its worker started, and its footprint
and load time measured for the next placement.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import time
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import psutil

from appliance.engines.supervisor import WorkerProcess
from appliance.store.gguf_meta import GGUFInfo
from appliance.store.store import StoreError
from appliance.telemetry.gpu import nvml_process_vram
from appliance.tiers import footprint
from appliance.tiers.budgets import gpu_device_name
from appliance.tiers.errors import ModelFailed, ModelUnavailable
from appliance.tiers.estimate import estimate_memory
from appliance.tiers.measurements import measurement_key, process_anon_bytes
from appliance.tiers.moves import apply_move, no_room
from appliance.tiers.plan import NoRoom, plan_promotion
from appliance.tiers.policy import (
    Placement,
    PlacementError,
    PlacementInput,
    fmt_bytes,
    place_slots,
)
from appliance.tiers.serving import Serving, serving_for
from appliance.tiers.slot import Slot
from appliance.tiers.workers import start_worker

if TYPE_CHECKING:
    from appliance.tiers.manager import ModelManager


async def load(manager: ModelManager, name: str, reason: str = "requested") -> WorkerProcess:
    """Make `name` hot: pull if needed, make room by the plan, start its worker."""
    slot = manager.slot(name)
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
        path = await manager.files.ensure(slot)
        await manager.files.check_stored_bytes(slot, path)
        try:
            info = await asyncio.to_thread(manager.files.gguf_info, path)
        except (StoreError, OSError) as exc:
            slot.state = "failed"
            slot.last_error = str(exc)
            manager.emit(name, "load_failed", f"refused to load: {exc}")
            raise ModelFailed(
                f"model '{name}' cannot be loaded: {exc}", code="invalid_model_file", param=None
            ) from exc
        serving = serving_for(slot.entry, manager.settings, info)
        try:
            placement, slots = place_slots(
                partial(placement_input, manager, slot, info, serving.n_ctx),
                serving.slots,
                serving.slots_auto,
            )
        except PlacementError as exc:
            manager.emit(name, "load_failed", str(exc))
            raise ModelUnavailable(
                f"model '{name}': {exc}", code="insufficient_memory", param=None
            ) from exc
        serving = dataclasses.replace(serving, slots=slots)
        n_ctx = serving.n_ctx
        slot.device = manager.device_for(slot) if placement.n_gpu_layers != 0 else "cpu"
        backend = manager.hardware.engine.backend if manager.hardware.engine else "unknown"
        model_id = manager.files.model_id(name, path)
        key = measurement_key(
            model_id,
            n_ctx,
            backend,
            slot.device,
            placement.n_gpu_layers,
            slots,
        )
        measured = manager.measurements.get(key)
        before = footprint.expected(
            info, n_ctx * slots, slot.device, placement.n_gpu_layers, measured, slots
        )
        kv_bytes = estimate_memory(info, n_ctx * slots, n_seqs=slots).kv_cache_bytes
        reserve = prompt_cache_reserve(manager, serving, path, kv_bytes)
        set_footprint(slot, before.plus_host(reserve))
        if measured is not None:
            slot.reload_s = measured.load_s
        source_tier = manager.tier_of(slot)
        async with manager.placement_lock:
            now = time.monotonic()
            try:
                moves = plan_promotion(
                    manager.states(now, name), name, "hot", manager.plan_budgets(), now, reason
                )
            except NoRoom as exc:
                raise no_room(manager, name, exc) from exc
            for move in moves:
                if move.model != name:
                    await apply_move(manager, move)
            started = time.monotonic()  # the load alone: evictions above are not its cost
            worker = await start_worker(
                manager, slot, path, serving, placement, reason, model_id, reserve
            )
            load_s = time.monotonic() - started
            after = await measured_footprint(worker, path, info, n_ctx * slots, placement, before)
            if after is not None:
                recorded_hot, recorded_host = footprint.record_of(after)
                manager.measurements.record(key, recorded_hot, load_s, recorded_host)
                set_footprint(slot, after.plus_host(reserve))
            slot.reload_s = load_s
            if slot.hold is not None:  # the engine maps the same pages now
                hold, slot.hold = slot.hold, None
                await asyncio.to_thread(hold.release, False)
        host = f" + {fmt_bytes(slot.host_bytes)} of host RAM" if slot.host_bytes else ""
        fewer = slot.info.get("slots_reason")  # the engine gave fewer slots than asked
        manager.emit(
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


def gpu_room(manager: ModelManager, device: str, target: str) -> int | None:
    """VRAM the target may use on `device`: its budget less what cannot be moved (busy or
    pinned hot models), and no more than is free now plus what evictions would free."""
    budget = manager.budgets().hot.get(device)
    if budget is None:
        return None
    on_device = [
        s
        for s in manager.states(time.monotonic(), target)
        if s.tier == "hot" and s.device == device and s.name != target
    ]
    stuck = sum(s.hot_bytes for s in on_device if s.busy or s.pin == "hot")
    movable = sum(s.hot_bytes for s in on_device) - stuck
    room = budget - stuck
    gpu = next(
        (d for d in manager.hardware.devices if gpu_device_name(d.vendor, d.index) == device),
        None,
    )
    if gpu is not None and gpu.free_bytes is not None:
        room = min(room, gpu.free_bytes + movable)
    return max(room, 0)


def placement_input(
    manager: ModelManager, slot: Slot, info: GGUFInfo, n_ctx: int, slots: int
) -> PlacementInput:
    """The numbers placement weighs for `slots` sequences of `n_ctx` each."""
    est = estimate_memory(info, n_ctx * slots, n_seqs=slots)
    hw = manager.hardware
    requested = slot.entry.n_gpu_layers if slot.entry else None
    if requested is None:
        requested = manager.settings.n_gpu_layers
    backend = slot.entry.backend if slot.entry else "auto"
    gpu = bool(hw.engine and hw.engine.gpu_offload) and backend != "cpu"

    vm = psutil.virtual_memory()
    return PlacementInput(
        weights_bytes=est.weights_bytes,
        kv_cache_bytes=est.kv_cache_bytes,
        compute_bytes=est.compute_bytes,
        n_layers=info.block_count or 1,
        gpu_offload=gpu,
        gpu_free_bytes=gpu_room(manager, manager.device_for(slot), slot.name) if gpu else None,
        ram_available_bytes=int(vm.available),
        ram_total_bytes=int(vm.total),
        requested_gpu_layers=requested if gpu else None,
    )


def prompt_cache_reserve(manager: ModelManager, serving: Serving, path: Path, kv_bytes: int) -> int:
    """Host RAM a model's saved prompt states may grow to after its load (the
    `prompt_cache_ram` cap, less for a small model), counted in its footprint (a CPU
    model's hot bytes, a GPU model's host bytes) so that several hot models' caches
    cannot outgrow the host's hot budget; the worker is given the same cap."""
    return footprint.prompt_states_cap(
        manager.files.format_of(path),
        serving.embedding,
        manager.settings.prompt_cache_ram_bytes,
        kv_bytes,
    )


async def measured_footprint(
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


def set_footprint(slot: Slot, fp: footprint.Footprint) -> None:
    slot.hot_bytes, slot.host_bytes = fp.device_bytes, fp.host_bytes
    slot.hot_bytes_measured = fp.measured
