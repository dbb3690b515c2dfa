"""Tier budgets from what the box has, the settings and runtime overrides.

Pure: it takes the numbers (RAM, GPUs, disk) and returns bytes per tier and
device. Unknown sizes stay None and are reported as unknown, never guessed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from appliance.settings import Settings


@dataclass(frozen=True)
class DeviceMemory:
    device: str  # "cpu", "cuda:0", "rocm:1"
    total_bytes: int | None


@dataclass(frozen=True)
class TierBudgets:
    hot: dict[str, int]  # per device; a device with unknown memory is absent (nothing placed)
    warm: int
    cold: int | None
    unknown: list[str] = field(default_factory=list)  # devices whose memory is unknown


def gpu_device_name(vendor: str, index: int) -> str:
    return f"{'cuda' if vendor == 'nvidia' else 'rocm'}:{index}"


def compute_budgets(
    settings: Settings,
    ram_total: int,
    gpus: Sequence[DeviceMemory],
    disk_total: int | None,
    overrides: Mapping[str, int] | None = None,
) -> TierBudgets:
    """Bytes per tier. `overrides` keys: "warm", "cold", "hot:<device>" (set at runtime)."""
    over = dict(overrides or {})
    margin = settings.memory_margin_bytes
    warm = settings.warm_budget_bytes
    if warm is None:
        warm = ram_total // 4
    warm = over.get("warm", warm)
    hot: dict[str, int] = {}
    cpu = settings.hot_budget_cpu_bytes
    if cpu is None:
        cpu = max(ram_total - warm - margin, 0)
    hot["cpu"] = over.get("hot:cpu", cpu)
    unknown: list[str] = []
    for gpu in gpus:
        budget = settings.hot_budget_gpu_bytes
        if budget is None and gpu.total_bytes is not None:
            budget = max(gpu.total_bytes - margin, 0)
        budget = over.get(f"hot:{gpu.device}", budget)
        if budget is None:
            unknown.append(gpu.device)
        else:
            hot[gpu.device] = budget
    cold = settings.cold_budget_bytes
    if cold is None and disk_total is not None:
        cold = max(disk_total - margin, 0)
    cold = over.get("cold", cold)
    return TierBudgets(hot=hot, warm=warm, cold=cold, unknown=unknown)
