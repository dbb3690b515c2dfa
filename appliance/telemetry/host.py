"""A UI-free reading of the host: CPU, RAM, the disk that holds the store, load.

A `HostReader` never raises: a reading psutil cannot give (no load average on
the platform, the store's folder gone, the CPU on the first call) is None, never
a made-up zero.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil

__all__ = ["HostReader", "HostSample"]


@dataclass(frozen=True)
class HostSample:
    """The host now. Bytes are bytes; None means unknown."""

    cpu_pct: float | None
    """CPU use of the whole box in percent of all cores, since the previous reading."""
    ram_total: int | None
    ram_used: int | None
    """Total minus available: what programs hold and the kernel cannot hand back."""
    ram_available: int | None
    disk_total: int | None
    disk_used: int | None
    disk_free: int | None
    """For the filesystem that holds the store."""
    load1: float | None
    """The 1-minute load average."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _nearest_existing(path: Path) -> Path:
    """`path`, or its closest existing parent (a store not created yet still has a disk)."""
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return path


def _busy(times: Any) -> tuple[float, float]:
    """(busy, total) CPU seconds, counting idle and I/O wait as not busy (as psutil does).

    Guest time is already inside user and nice on Linux, so it is not added twice.
    """
    total = float(sum(times))
    total -= float(getattr(times, "guest", 0.0)) + float(getattr(times, "guest_nice", 0.0))
    idle = float(times.idle) + float(getattr(times, "iowait", 0.0))
    return total - idle, total


class HostReader:
    """Reads the host; CPU use is measured between this reader's calls.

    Like psutil's ``cpu_percent(interval=None)`` it never blocks, but it keeps its
    own previous reading (psutil's is process-wide, shared by every caller), and
    its first call reports the CPU as unknown (None) instead of psutil's 0.0.
    """

    def __init__(self) -> None:
        self._last: tuple[float, float] | None = None

    def _cpu_pct(self) -> float | None:
        busy, total = _busy(psutil.cpu_times())
        last, self._last = self._last, (busy, total)
        if last is None or total <= last[1]:
            return None
        pct = 100.0 * (busy - last[0]) / (total - last[1])
        return min(max(pct, 0.0), 100.0)

    def read(self, disk_path: str | os.PathLike[str] = "/") -> HostSample:
        """The host now; `disk_path` names the filesystem to measure (the store's)."""
        cpu: float | None = None
        ram_total: int | None = None
        ram_used: int | None = None
        ram_available: int | None = None
        disk_total: int | None = None
        disk_used: int | None = None
        disk_free: int | None = None
        load1: float | None = None
        with contextlib.suppress(Exception):
            cpu = self._cpu_pct()
        with contextlib.suppress(Exception):
            vm = psutil.virtual_memory()
            ram_total, ram_available = int(vm.total), int(vm.available)
            ram_used = max(ram_total - ram_available, 0)
        with contextlib.suppress(Exception):
            du = psutil.disk_usage(str(_nearest_existing(Path(disk_path))))
            disk_total, disk_used, disk_free = int(du.total), int(du.used), int(du.free)
        with contextlib.suppress(AttributeError, OSError):  # no load average on this platform
            load1 = float(os.getloadavg()[0])
        return HostSample(
            cpu_pct=cpu,
            ram_total=ram_total,
            ram_used=ram_used,
            ram_available=ram_available,
            disk_total=disk_total,
            disk_used=disk_used,
            disk_free=disk_free,
            load1=load1,
        )
