"""A UI-free, engine-free view of the box's GPUs.

Every reading that a source cannot give is None, shown as "n/a" by `n_a`;
nothing is guessed. Sources, each optional and failing softly (an absent
library, tool or file yields no GPUs from that source, never an exception):

- NVIDIA: NVML through `pynvml` (nvidia-ml-py).
- AMD, the first that answers: the `amdsmi` Python module; `rocm-smi --json`;
  the amdgpu sysfs files under /sys/class/drm (vendor 0x1002).

Each source is a small function over its inputs (a module, the rocm-smi JSON
text, a sysfs root) so tests feed them real-shaped data. Indices count GPUs of
one vendor in the order their source lists them (as CUDA and HIP number them).
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Literal, TypeVar

__all__ = [
    "ROCM_SMI_ARGS",
    "GPUInfo",
    "Vendor",
    "amd_gpus",
    "amdsmi_gpus",
    "list_gpus",
    "n_a",
    "nvml_gpus",
    "nvml_process_vram",
    "parse_rocm_smi",
    "rocm_smi_gpus",
    "sysfs_gpus",
]

Vendor = Literal["nvidia", "amd"]

AMD_PCI_VENDOR = "0x1002"
MIB = 1024 * 1024

ROCM_SMI_ARGS = (
    "--showmeminfo",
    "vram",
    "--showuse",
    "--showtemp",
    "--showpower",
    "--showproductname",
    "--json",
)
"""What `rocm_smi_gpus` asks rocm-smi for."""

ROCM_SMI_TIMEOUT_S = 10.0

T = TypeVar("T")


@dataclass(frozen=True)
class GPUInfo:
    """One GPU as its source sees it now. None means unknown ("n/a"), never zero."""

    index: int
    name: str
    vendor: Vendor
    total_bytes: int | None
    used_bytes: int | None
    free_bytes: int | None
    utilization_pct: float | None
    temperature_c: float | None
    power_w: float | None
    source: str
    """Where the reading came from: "nvml", "amdsmi", "rocm-smi" or "sysfs"."""


def n_a(value: float | None, unit: str = "") -> str:
    """Format a reading for people: "n/a" for None, bytes as GiB/MiB, others with their unit.

    >>> n_a(None, "W"), n_a(71.5, "W"), n_a(45.0, "%"), n_a(3 * 2**30, "B")
    ('n/a', '71.5 W', '45%', '3.0 GiB')
    """
    if value is None:
        return "n/a"
    if unit == "B":
        size = float(value)
        for suffix in ("B", "KiB", "MiB", "GiB"):
            if abs(size) < 1024:
                return f"{size:.0f} {suffix}" if suffix == "B" else f"{size:.1f} {suffix}"
            size /= 1024
        return f"{size:.1f} TiB"
    text = str(value) if isinstance(value, int) else f"{value:.1f}".removesuffix(".0")
    if not unit:
        return text
    return f"{text}{unit}" if unit in ("%", "°C") else f"{text} {unit}"


# --- small helpers --------------------------------------------------------------------------


def _soft(call: Callable[[], T]) -> T | None:
    """The call's value, or None when it raises (not supported, no permission, gone)."""
    try:
        return call()
    except Exception:
        return None


def _number(value: object) -> float | None:
    """A reading as float; None for "N/A", "", None, or anything unparsable."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        text = value.strip().removesuffix("%").strip()
        try:
            return float(text)
        except ValueError:
            return None
    return None


def _first(values: dict[str, Any], *keys: str) -> float | None:
    for key in keys:
        found = _number(values.get(key))
        if found is not None:
            return found
    return None


def _free(total: int | None, used: int | None) -> int | None:
    if total is None or used is None:
        return None
    return max(total - used, 0)


def _as_int(value: float | None, scale: int = 1) -> int | None:
    return None if value is None else int(value * scale)


# --- NVIDIA: NVML ---------------------------------------------------------------------------

_nvml_lock = threading.Lock()
_nvml_pinned = False


def _pin_nvml(nvml: Any) -> None:
    """Hold one NVML reference for the process's life.

    nvmlInit/nvmlShutdown are reference counted; without a GPU in persistence
    mode, the count falling to zero makes the driver tear the GPUs' state down
    and the next init rebuild it (hundreds of ms). Pinning keeps each sample cheap.
    """
    global _nvml_pinned
    with _nvml_lock:
        if not _nvml_pinned:
            nvml.nvmlInit()
            _nvml_pinned = True


def nvml_gpus(nvml: Any | None = None) -> list[GPUInfo]:
    """NVIDIA GPUs through NVML; [] when pynvml or the driver library is absent.

    `nvml` is the pynvml module (imported when None).
    """
    with _nvml_handles(nvml) as (lib, handles):
        return [_nvml_one(lib, i, handle) for i, handle in handles]


@contextlib.contextmanager
def _nvml_handles(nvml: Any | None) -> Iterator[tuple[Any, list[tuple[int, Any]]]]:
    """The NVML module (`nvml`, or pynvml imported) and its GPUs' (index, handle), between
    init and shutdown; no GPUs when pynvml or the driver library is absent."""
    if nvml is None:
        try:
            import pynvml
        except ImportError:
            yield None, []
            return
        nvml = pynvml
        with contextlib.suppress(Exception):
            _pin_nvml(nvml)
    try:
        nvml.nvmlInit()
    except Exception:
        yield nvml, []
        return
    try:
        handles = []
        for i in range(int(_soft(nvml.nvmlDeviceGetCount) or 0)):
            handle = _soft(partial(nvml.nvmlDeviceGetHandleByIndex, i))
            if handle is not None:
                handles.append((i, handle))
        yield nvml, handles
    finally:
        with contextlib.suppress(Exception):
            nvml.nvmlShutdown()


def _nvml_one(nvml: Any, index: int, handle: Any) -> GPUInfo:
    raw_name = _soft(lambda: nvml.nvmlDeviceGetName(handle))
    if isinstance(raw_name, bytes):
        raw_name = raw_name.decode("utf-8", "replace")
    mem = _soft(lambda: nvml.nvmlDeviceGetMemoryInfo(handle))
    util = _soft(lambda: nvml.nvmlDeviceGetUtilizationRates(handle))
    sensor = getattr(nvml, "NVML_TEMPERATURE_GPU", 0)
    temp = _soft(lambda: nvml.nvmlDeviceGetTemperature(handle, sensor))
    milliwatts = _soft(lambda: nvml.nvmlDeviceGetPowerUsage(handle))
    total = _as_int(_number(getattr(mem, "total", None)))
    used = _as_int(_number(getattr(mem, "used", None)))
    free = _as_int(_number(getattr(mem, "free", None)))
    watts = _number(milliwatts)
    return GPUInfo(
        index=index,
        name=str(raw_name) if raw_name else f"NVIDIA GPU {index}",
        vendor="nvidia",
        total_bytes=total,
        used_bytes=used,
        free_bytes=free if free is not None else _free(total, used),
        utilization_pct=_number(getattr(util, "gpu", None)),
        temperature_c=_number(temp),
        power_w=None if watts is None else watts / 1000.0,
        source="nvml",
    )


NVML_NOT_AVAILABLE = 2**64 - 1  # NVML's "not available" for a process's memory


def nvml_process_vram(pid: int, nvml: Any | None = None) -> int | None:
    """VRAM the process `pid` holds over all NVIDIA GPUs (NVML's per-process accounting),
    or None when NVML cannot say: pynvml or the driver absent, the process not listed (a
    container sees other pids than the driver does), or its use hidden.

    Summed over the GPUs, as NVML and CUDA may number them differently (a worker uses the
    one it was placed on, plus a context on any other it can see)."""
    total, seen = 0, False
    with _nvml_handles(nvml) as (lib, handles):
        for _, handle in handles:
            procs = _soft(partial(lib.nvmlDeviceGetComputeRunningProcesses, handle)) or []
            for proc in procs:
                if getattr(proc, "pid", None) != pid:
                    continue
                used = getattr(proc, "usedGpuMemory", None)
                if not isinstance(used, int) or used < 0 or used >= NVML_NOT_AVAILABLE:
                    return None  # listed, but its use is hidden
                total, seen = total + used, True
    return total if seen else None


# --- AMD: amdsmi ----------------------------------------------------------------------------


def amdsmi_gpus(amdsmi: Any | None = None) -> list[GPUInfo]:
    """AMD GPUs through the amdsmi Python module; [] when it is absent or fails to start.

    amdsmi reports VRAM in MiB, power in W, temperature in °C; "N/A" becomes None.
    """
    if amdsmi is None:
        try:
            import amdsmi as module  # type: ignore[import-not-found, unused-ignore]
        except Exception:  # ImportError, or a broken ROCm install failing at import
            return []
        amdsmi = module
    try:
        amdsmi.amdsmi_init()
    except Exception:
        return []
    gpus: list[GPUInfo] = []
    try:
        handles = _soft(amdsmi.amdsmi_get_processor_handles) or []
        for index, handle in enumerate(handles):
            gpus.append(_amdsmi_one(amdsmi, index, handle))
    finally:
        with contextlib.suppress(Exception):
            amdsmi.amdsmi_shut_down()
    return gpus


def _amdsmi_temp(amdsmi: Any, handle: Any) -> float | None:
    kinds = getattr(amdsmi, "AmdSmiTemperatureType", None)
    metric = getattr(getattr(amdsmi, "AmdSmiTemperatureMetric", None), "CURRENT", None)
    if kinds is None or metric is None:
        return None
    # Edge is the board sensor; MI200/MI300 have none and report hotspot (junction).
    for name in ("EDGE", "HOTSPOT", "JUNCTION"):
        kind = getattr(kinds, name, None)
        if kind is None:
            continue
        value = _number(_soft(partial(amdsmi.amdsmi_get_temp_metric, handle, kind, metric)))
        if value is not None:
            return value
    return None


def _amdsmi_one(amdsmi: Any, index: int, handle: Any) -> GPUInfo:
    asic = _soft(lambda: amdsmi.amdsmi_get_gpu_asic_info(handle)) or {}
    vram = _soft(lambda: amdsmi.amdsmi_get_gpu_vram_usage(handle)) or {}
    activity = _soft(lambda: amdsmi.amdsmi_get_gpu_activity(handle)) or {}
    power = _soft(lambda: amdsmi.amdsmi_get_power_info(handle)) or {}
    name = str(asic.get("market_name") or "").strip() if isinstance(asic, dict) else ""
    total = _as_int(_number(vram.get("vram_total")), MIB) if isinstance(vram, dict) else None
    used = _as_int(_number(vram.get("vram_used")), MIB) if isinstance(vram, dict) else None
    return GPUInfo(
        index=index,
        name=name if name and name != "N/A" else f"AMD GPU {index}",
        vendor="amd",
        total_bytes=total,
        used_bytes=used,
        free_bytes=_free(total, used),
        utilization_pct=_number(activity.get("gfx_activity"))
        if isinstance(activity, dict)
        else None,
        temperature_c=_amdsmi_temp(amdsmi, handle),
        power_w=_first(power, "socket_power", "current_socket_power", "average_socket_power")
        if isinstance(power, dict)
        else None,
        source="amdsmi",
    )


# --- AMD: rocm-smi --json -------------------------------------------------------------------

_CARD = re.compile(r"^card(\d+)$")


def parse_rocm_smi(text: str) -> list[GPUInfo]:
    """GPUs from the JSON that `rocm-smi ... --json` prints; [] when it is not that JSON.

    Values may be strings or numbers, and "N/A"; lines rocm-smi prints before
    the JSON (warnings) are skipped. Keys that are not "cardN" ("system") are ignored.
    """
    start = text.find("{")
    if start < 0:
        return []
    try:
        data, _end = json.JSONDecoder().raw_decode(text[start:])
    except ValueError:
        return []
    if not isinstance(data, dict):
        return []
    cards: list[tuple[int, dict[str, Any]]] = []
    for key, values in data.items():
        match = _CARD.match(str(key))
        if match and isinstance(values, dict):
            cards.append((int(match.group(1)), values))
    gpus: list[GPUInfo] = []
    for number, values in sorted(cards, key=lambda card: card[0]):
        lowered = {str(k).strip().lower(): v for k, v in values.items()}
        name = ""
        for key in ("card series", "card model", "device name", "market name"):
            found = str(lowered.get(key) or "").strip()
            if found and found.upper() != "N/A":
                name = found
                break
        total = _as_int(_first(values, "VRAM Total Memory (B)"))
        used = _as_int(_first(values, "VRAM Total Used Memory (B)"))
        gpus.append(
            GPUInfo(
                index=number,
                name=name or f"AMD GPU {number}",
                vendor="amd",
                total_bytes=total,
                used_bytes=used,
                free_bytes=_free(total, used),
                utilization_pct=_first(values, "GPU use (%)"),
                temperature_c=_first(
                    values,
                    "Temperature (Sensor edge) (C)",
                    "Temperature (Sensor junction) (C)",
                ),
                power_w=_first(
                    values,
                    "Current Socket Graphics Package Power (W)",
                    "Average Graphics Package Power (W)",
                ),
                source="rocm-smi",
            )
        )
    return gpus


def rocm_smi_gpus(executable: str | None = None) -> list[GPUInfo]:
    """AMD GPUs from running rocm-smi; [] when it is not on PATH, fails or times out."""
    exe = executable or shutil.which("rocm-smi")
    if exe is None:
        return []
    try:
        done = subprocess.run(
            [exe, *ROCM_SMI_ARGS],
            capture_output=True,
            text=True,
            timeout=ROCM_SMI_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return []
    # rocm-smi exits non-zero when one of the asked readings is unsupported, yet
    # still prints the rest: parse whatever JSON it gave.
    return parse_rocm_smi(done.stdout)


# --- AMD: sysfs -----------------------------------------------------------------------------


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return None


def _read_number(path: Path) -> float | None:
    text = _read(path)
    return None if text is None else _number(text)


def _hwmon_value(device: Path, *names: str) -> float | None:
    hwmon_dir = device / "hwmon"
    try:
        hwmons = sorted(hwmon_dir.iterdir())
    except OSError:
        return None
    for hwmon in hwmons:
        for name in names:
            value = _read_number(hwmon / name)
            if value is not None:
                return value
    return None


def sysfs_gpus(root: Path = Path("/sys")) -> list[GPUInfo]:
    """AMD GPUs from the amdgpu driver's sysfs files under `root`/class/drm.

    Reads device/vendor (0x1002), mem_info_vram_total and mem_info_vram_used
    (bytes), gpu_busy_percent, and hwmon temp1_input (m°C) and power1_average or
    power1_input (µW). Connector entries (card0-DP-1) and other vendors are skipped.
    """
    drm = root / "class" / "drm"
    try:
        entries = list(drm.iterdir())
    except OSError:
        return []
    cards: list[tuple[int, Path]] = []
    for entry in entries:
        match = _CARD.match(entry.name)
        if match:
            cards.append((int(match.group(1)), entry / "device"))
    gpus: list[GPUInfo] = []
    for _card, device in sorted(cards, key=lambda card: card[0]):
        vendor = _read(device / "vendor")
        if vendor is None or vendor.lower() != AMD_PCI_VENDOR:
            continue
        index = len(gpus)
        name = _read(device / "product_name") or ""
        if not name:
            device_id = _read(device / "device")
            name = f"AMD GPU {device_id}" if device_id else f"AMD GPU {index}"
        total = _as_int(_read_number(device / "mem_info_vram_total"))
        used = _as_int(_read_number(device / "mem_info_vram_used"))
        millideg = _hwmon_value(device, "temp1_input")
        microwatts = _hwmon_value(device, "power1_average", "power1_input")
        gpus.append(
            GPUInfo(
                index=index,
                name=name,
                vendor="amd",
                total_bytes=total,
                used_bytes=used,
                free_bytes=_free(total, used),
                utilization_pct=_read_number(device / "gpu_busy_percent"),
                temperature_c=None if millideg is None else millideg / 1000.0,
                power_w=None if microwatts is None else microwatts / 1_000_000.0,
                source="sysfs",
            )
        )
    return gpus


# --- all of them ----------------------------------------------------------------------------


def amd_gpus() -> list[GPUInfo]:
    """AMD GPUs from the first source that lists any: amdsmi, rocm-smi, sysfs."""
    for source in (amdsmi_gpus, rocm_smi_gpus, sysfs_gpus):
        found = _soft(source)
        if found:
            return found
    return []


def list_gpus() -> list[GPUInfo]:
    """Every GPU the box shows, NVIDIA then AMD; [] on a box without any. Never raises."""
    return (_soft(nvml_gpus) or []) + (_soft(amd_gpus) or [])
