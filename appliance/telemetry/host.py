"""A UI-free reading of the host: CPU, RAM, the disk that holds the store, load.

`read_host` never raises: a reading psutil cannot give (no load average on the
platform, the store's folder gone) is None, never a made-up zero.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil

__all__ = ["HostSample", "read_host"]


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


def read_host(disk_path: str | os.PathLike[str] = "/") -> HostSample:
    """Read the host without blocking: CPU percent is measured since the previous call
    (psutil's `interval=None`), so the first call in a process reports 0.0."""
    cpu: float | None = None
    ram_total: int | None = None
    ram_used: int | None = None
    ram_available: int | None = None
    disk_total: int | None = None
    disk_used: int | None = None
    disk_free: int | None = None
    load1: float | None = None
    with contextlib.suppress(Exception):
        cpu = float(psutil.cpu_percent(interval=None))
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
