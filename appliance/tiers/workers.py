"""A hot model's engine worker: started from its spec, and what happens when it ends.

A load that fails backs off before the next try; a worker that dies restarts on the next
request (at once for a first crash, backing off for repeated ones), or by itself when the
model is pinned hot. llama.cpp's repacked CPU kernels dying of SIGILL turn repacking off
for every model, remembered across restarts (`cpu_faults`).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import TYPE_CHECKING

from appliance.engines.supervisor import WorkerProcess, WorkerSpec, WorkerStartError
from appliance.settings import Settings
from appliance.tiers.cpu_faults import remember_repack_bad
from appliance.tiers.errors import ModelError, ModelFailed
from appliance.tiers.policy import Placement
from appliance.tiers.serving import Serving
from appliance.tiers.slot import Slot

if TYPE_CHECKING:
    from appliance.tiers.manager import ModelManager

MAX_TEMPLATE_BYTES = 1024 * 1024  # a chat template file from models.toml


def chat_template(slot: Slot) -> str | None:
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


async def start_worker(
    manager: ModelManager,
    slot: Slot,
    path: Path,
    serving: Serving,
    placement: Placement,
    reason: str,
    model_id: str,
    states_ram: int,
) -> WorkerProcess:
    """Start the model's worker and wait until it is ready; the slot holds it then."""
    settings = manager.settings
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
        state_dir=str(manager.store.root / "cache" / "prompt-states"),
        state_ram_bytes=states_ram,
        state_disk_bytes=settings.prompt_cache_disk_bytes,
        state_min_save_s=settings.prompt_cache_min_save_s,
        weight_repack=settings.weight_repack and slot.weight_repack and manager.repack_ok,
        format=manager.files.format_of(path),
        tool_parser=slot.entry.tool_parser if slot.entry else None,
        chat_template=chat_template(slot),
    )
    worker = WorkerProcess(spec, heartbeat_timeout_s=settings.heartbeat_timeout_s)
    slot.state = "loading"
    manager.emit(slot.name, "loading", f"loading ({reason}): n_ctx {n_ctx}, {placement.reason}")
    try:
        slot.info = await worker.start(settings.load_timeout_s)
    except WorkerStartError as exc:
        if spec.weight_repack and illegal_instruction(str(exc)):
            repack_off(manager, slot)
            return await start_worker(
                manager, slot, path, serving, placement, reason, model_id, states_ram
            )
        record_failure(settings, slot, str(exc))
        manager.emit(slot.name, "load_failed", str(exc))
        raise ModelFailed(str(exc), code="model_load_failed", param=None) from exc
    slot.worker = worker
    slot.placement = placement
    slot.state = "ready"
    slot.loaded_at = time.time()
    slot.last_used = time.monotonic()
    worker.on_exit.append(lambda w: on_worker_exit(manager, slot, w))
    return worker


def record_failure(settings: Settings, slot: Slot, message: str) -> None:
    """A failed load: the next try waits, twice as long after each failure in a row."""
    slot.failures += 1
    slot.last_error = message
    slot.state = "failed"
    backoff = min(
        settings.restart_backoff_initial_s * 2 ** (slot.failures - 1),
        settings.restart_backoff_max_s,
    )
    slot.next_start_at = time.monotonic() + backoff


def repack_off(manager: ModelManager, slot: Slot) -> None:
    """The CPU cannot run the repacked kernels: no model repacks again (a property of
    the box, so the other models do not each crash once to learn it)."""
    slot.weight_repack = False
    first = manager.repack_ok
    manager.repack_ok = False
    if first:
        remember_repack_bad(manager.cpu_faults_path, manager.cpu)
        manager.emit(
            slot.name,
            "engine",
            "illegal instruction in llama.cpp's repacked CPU kernels (this CPU announces "
            "instructions it cannot run): every model is served without weight repacking "
            "from now on; set weight_repack = false to skip the first try",
        )


def on_worker_exit(manager: ModelManager, slot: Slot, worker: WorkerProcess) -> None:
    """A worker ended: unloaded on purpose, or a crash to back off from (or restart, pinned)."""
    if slot.worker is not worker:
        return
    slot.worker = None
    if worker.exit_reason == "unloaded":
        slot.state = "unloaded"
        return
    reason = worker.exit_reason or "exited"
    if worker.spec.weight_repack and illegal_instruction(reason):
        repack_off(manager, slot)
    # A first crash restarts at once on the next request; repeated ones back off.
    settings = manager.settings
    slot.failures += 1
    slot.last_error = f"worker {reason}"
    slot.state = "failed"
    backoff = (
        0.0
        if slot.failures == 1
        else min(
            settings.restart_backoff_initial_s * 2 ** (slot.failures - 2),
            settings.restart_backoff_max_s,
        )
    )
    slot.next_start_at = time.monotonic() + backoff
    pinned = manager.pin_of(slot) == "hot"
    when = "now" if pinned else "on the next request"
    manager.emit(
        slot.name,
        "crash",
        f"engine worker {reason}; restarts {'as it is pinned hot ' if pinned else ''}{when}"
        + (f" after {backoff:.0f} s" if backoff else ""),
        pid=worker.pid,
    )
    if pinned:  # a pin keeps the model loaded: not only once a request comes
        task = asyncio.create_task(restart_pinned(manager, slot.name, backoff))
        manager.restarts.add(task)
        task.add_done_callback(manager.restarts.discard)


async def restart_pinned(manager: ModelManager, name: str, delay: float) -> None:
    """Load a model pinned hot again, backing off while loads fail, until it runs, its
    pin goes, or it is stopped (a crash of the new worker starts another of these)."""
    settings = manager.settings
    while True:
        await asyncio.sleep(delay)
        slot = manager.slot(name)
        if slot.worker is not None or manager.pin_of(slot) != "hot":
            return  # a request brought it back, or the pin went meanwhile
        try:
            await manager.load(name, reason="pinned hot: restarted after its worker ended")
            return
        except Exception as exc:  # any failure: say it, try again later
            message = exc.message if isinstance(exc, ModelError) else str(exc)
            delay = min(
                max(delay * 2, settings.restart_backoff_initial_s),
                settings.restart_backoff_max_s,
            )
            manager.emit(
                name,
                "error",
                f"pin hot not honoured after a crash: {message}; next try in {delay:.0f} s",
            )


def illegal_instruction(reason: str) -> bool:
    return "SIGILL" in reason
