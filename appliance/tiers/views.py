"""Read-only views of the model manager: one model as the API shows it, the tier budgets.

Plain functions over the manager's state, apart from the residency measurement
(mincore), which is cached for a second per file so a busy dashboard stays cheap.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from appliance.store.model_folder import model_bytes
from appliance.tiers.slot import Slot
from appliance.tiers.tier_state import usage
from appliance.tiers.warm import residency

if TYPE_CHECKING:
    from appliance.tiers.manager import ModelManager


class ResidencyCache:
    """Bytes of a file in RAM (mincore), measured at most once a second per file."""

    def __init__(self) -> None:
        self._cache: dict[Path, tuple[float, int]] = {}

    def bytes_of(self, path: Path | None) -> int | None:
        if path is None:
            return None
        now = time.monotonic()
        cached = self._cache.get(path)
        if cached is not None and now - cached[0] < 1.0:
            return cached[1]
        try:
            value = residency(path).resident_bytes
        except OSError:
            return None
        self._cache[path] = (now, value)
        return value


def describe(manager: ModelManager, name: str) -> dict[str, Any]:
    """One model as the admin API, the CLI and the TUI show it."""
    slot = manager.slots.get(name) or Slot(name=name, entry=manager.catalog.exact(name))
    entry = slot.entry
    stored = manager.store.get(name)
    path = manager.local_file(name)
    on_disk = path is not None and path.exists()
    size = stored.size if stored else (model_bytes(path) if path and on_disk else None)
    keep_alive = manager.keep_alive_s(slot)
    warm_keep_alive = manager.warm_keep_alive_s(slot)
    worker = slot.worker
    tier = manager.tier_of(slot)
    state = slot.state
    if state == "unloaded" and tier == "remote":
        state = "remote"
    resident = manager.residency.bytes_of(path) if tier in ("hot", "warm") else None
    return {
        "name": name,
        "state": state,
        "tier": tier,
        "pin": manager.pin_of(slot),
        "kind": entry.kind if entry else "auto",
        "format": _format(manager, stored.format if stored else None, path if on_disk else None),
        "precision": slot.info.get("precision") if worker is not None and slot.info else None,
        "provider": _provider(slot) if worker is not None else None,
        "aliases": list(entry.aliases) if entry else [],
        "source": str(entry.source) if entry else (stored.source if stored else None),
        "size_bytes": size,
        "resident_bytes": resident,
        "hot_bytes": slot.hot_bytes,
        "hot_bytes_measured": slot.hot_bytes_measured,
        "host_bytes": slot.host_bytes,  # host RAM a GPU model holds besides its VRAM
        "device": slot.device if worker is not None else None,
        "pid": worker.pid if worker is not None else None,
        "active_requests": slot.active,
        "queue_depth": worker.queue_depth if worker is not None else 0,
        "slots": worker.slots if worker is not None else None,  # the engine's (it may give fewer)
        "slots_busy": worker.slots_busy if worker is not None else 0,
        "max_queue": worker.spec.max_queue if worker is not None else None,
        "flash_attn": worker.spec.flash_attn if worker is not None else None,
        "kv_unified": worker.spec.kv_unified if worker is not None else None,
        "prompt_cache": worker.cache_stats() if worker is not None else None,
        "requests_total": slot.requests_total,
        "keep_alive_s": keep_alive if math.isfinite(keep_alive) else None,  # None: forever
        "expires_in_s": _expires_in(manager, slot, tier, keep_alive, warm_keep_alive),
        "warm_keep_alive_s": warm_keep_alive if math.isfinite(warm_keep_alive) else None,
        "last_error": slot.last_error,
        "n_gpu_layers": slot.placement.n_gpu_layers if slot.placement and worker else None,
        "placement": slot.placement.reason if slot.placement and worker else None,
        "engine": slot.info if worker is not None else {},
        "eos_token_id": slot.info.get("eos_token_id") if slot.info else None,
    }


def _expires_in(
    manager: ModelManager, slot: Slot, tier: str, keep_alive: float, warm_keep_alive: float
) -> float | None:
    """Seconds until an idle hot model goes warm, or a warm one cold; None while that
    cannot happen (serving, pinned at its tier, kept forever, not hot or warm)."""
    pin = manager.pin_of(slot)
    now = time.monotonic()
    if tier == "hot" and not slot.busy and pin != "hot" and math.isfinite(keep_alive):
        return max(0.0, slot.last_used + keep_alive - now)
    if tier == "warm" and pin is None and math.isfinite(warm_keep_alive):
        return max(0.0, max(slot.last_used, slot.warm_since) + warm_keep_alive - now)
    return None


def _provider(slot: Slot) -> str | None:
    """What runs a loaded model: the ONNX provider, or llama.cpp's device."""
    if slot.info and slot.info.get("provider"):
        return str(slot.info["provider"])
    return slot.device


def _format(manager: ModelManager, stored: str | None, path: Path | None) -> str | None:
    """ "gguf", "onnx" or "onnx-encoder"; None while not on this box (or unreadable)."""
    if stored is not None:
        return stored
    if path is None:
        return None
    if not path.is_dir():
        return "gguf"
    try:
        return manager.gguf_info(path).format
    except Exception:
        return None


def budgets_view(manager: ModelManager) -> dict[str, Any]:
    """Each tier's budget, use and room, per device for hot; None where unknown."""
    budgets = manager.budgets()
    used = usage(manager.states(time.monotonic()), manager.plan_budgets())
    hot: dict[str, dict[str, int | None]] = {
        device: {"budget": room.budget, "used": room.used, "free": room.free}
        for device, room in used.hot.items()
    }
    for device in budgets.unknown:
        hot[device] = {"budget": None, "used": None, "free": None}
    warm_used = used.warm.used
    # Models, each file once (two names for one file share its blob), and the partial
    # downloads in tmp/ that hold disk too (until gc or a resume).
    blobs = {m.sha256: m.size for m in manager.store.list()}
    cold_used = sum(blobs.values()) + manager.store.partial_bytes()
    ram_used = disk_used = loaded = 0
    for slot in manager.slots.values():
        if slot.worker is not None:
            loaded += 1
            states = slot.worker.cache_stats().get("states") or {}
            ram_used += int(states.get("ram_bytes") or 0)
            disk_used += int(states.get("disk_bytes") or 0)
    return {
        "hot": hot,
        "prompt_cache": {
            # Saved prompt states, per loaded model: host RAM, then the store's disk.
            "ram": {"budget": manager.settings.prompt_cache_ram_bytes * loaded, "used": ram_used},
            "disk": {
                "budget": manager.settings.prompt_cache_disk_bytes * loaded,
                "used": disk_used,
            },
            "per_model": {
                "ram": manager.settings.prompt_cache_ram_bytes,
                "disk": manager.settings.prompt_cache_disk_bytes,
            },
        },
        "warm": {"budget": budgets.warm, "used": warm_used, "free": budgets.warm - warm_used},
        "cold": {
            "budget": budgets.cold,
            "used": cold_used,
            "free": None if budgets.cold is None else budgets.cold - cold_used,
        },
    }
