"""GPU readings: each source over real-shaped inputs, unknown values as None."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from appliance.telemetry.gpu import (
    GPUInfo,
    amdsmi_gpus,
    list_gpus,
    n_a,
    nvml_gpus,
    nvml_process_vram,
    parse_rocm_smi,
    rocm_smi_gpus,
    sysfs_gpus,
)

GiB = 1024**3
posix_only = pytest.mark.skipif(os.name != "posix", reason="uses /bin/sh scripts and symlinks")


# --- the box itself -------------------------------------------------------------------------


def test_list_gpus_never_raises() -> None:
    gpus = list_gpus()
    assert isinstance(gpus, list)
    for gpu in gpus:
        assert isinstance(gpu, GPUInfo)
        assert gpu.vendor in ("nvidia", "amd")


def _nvml_works() -> bool:
    try:
        import pynvml

        pynvml.nvmlInit()
        pynvml.nvmlShutdown()
        return True
    except Exception:
        return False


def test_nvml_absent_gives_no_gpus() -> None:
    if _nvml_works():
        pytest.skip("this box has a working NVML")
    assert nvml_gpus() == []


def test_pynvml_not_installed_gives_no_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # `import pynvml` raises ImportError
    assert nvml_gpus() == []


def test_amdsmi_not_installed_gives_no_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "amdsmi", None)
    assert amdsmi_gpus() == []


@posix_only
def test_rocm_smi_missing_or_failing_gives_no_gpus(tmp_path: Path) -> None:
    assert rocm_smi_gpus(str(tmp_path / "no-such-rocm-smi")) == []
    broken = tmp_path / "rocm-smi"
    broken.write_text("#!/bin/sh\necho 'ERROR: GPU[0] : amdgpu driver not loaded' >&2\nexit 1\n")
    broken.chmod(broken.stat().st_mode | stat.S_IXUSR)
    assert rocm_smi_gpus(str(broken)) == []


# --- NVML -----------------------------------------------------------------------------------


class NVMLError(Exception):
    pass


def fake_nvml(*, init_fails: bool = False) -> Any:
    """A stand-in shaped like pynvml for one H100 whose power reading is unsupported."""

    def init() -> None:
        if init_fails:
            raise NVMLError("NVML Shared Library Not Found")

    def power(handle: object) -> int:
        raise NVMLError("Not Supported")

    return SimpleNamespace(
        NVML_TEMPERATURE_GPU=0,
        nvmlInit=init,
        nvmlShutdown=lambda: None,
        nvmlDeviceGetCount=lambda: 1,
        nvmlDeviceGetHandleByIndex=lambda i: ("handle", i),
        nvmlDeviceGetName=lambda h: b"NVIDIA H100 80GB HBM3",
        nvmlDeviceGetMemoryInfo=lambda h: SimpleNamespace(
            total=85520809984, free=84506771456, used=1014038528
        ),
        nvmlDeviceGetUtilizationRates=lambda h: SimpleNamespace(gpu=37, memory=5),
        nvmlDeviceGetTemperature=lambda h, sensor: 41,
        nvmlDeviceGetPowerUsage=power,
    )


def test_nvml_readings_with_an_unsupported_one() -> None:
    [gpu] = nvml_gpus(fake_nvml())
    assert gpu == GPUInfo(
        index=0,
        name="NVIDIA H100 80GB HBM3",
        vendor="nvidia",
        total_bytes=85520809984,
        used_bytes=1014038528,
        free_bytes=84506771456,
        utilization_pct=37.0,
        temperature_c=41.0,
        power_w=None,
        source="nvml",
    )


def test_nvml_gives_a_processs_vram_summed_over_the_gpus() -> None:
    nvml = fake_nvml()
    nvml.nvmlDeviceGetCount = lambda: 2
    per_gpu = {
        0: [SimpleNamespace(pid=7, usedGpuMemory=3 << 30), SimpleNamespace(pid=9, usedGpuMemory=1)],
        1: [SimpleNamespace(pid=7, usedGpuMemory=300 << 20)],  # its context on the other GPU
    }
    nvml.nvmlDeviceGetComputeRunningProcesses = lambda h: per_gpu[h[1]]
    assert nvml_process_vram(7, nvml) == (3 << 30) + (300 << 20)
    assert nvml_process_vram(9, nvml) == 1
    # Not listed (another pid namespace, or no context): unknown, not zero.
    assert nvml_process_vram(8, nvml) is None
    # Listed with its use hidden (NVML's "not available", or pynvml's None).
    for hidden in (2**64 - 1, None):
        per_gpu[1] = [SimpleNamespace(pid=7, usedGpuMemory=hidden)]
        assert nvml_process_vram(7, nvml) is None


def test_nvml_process_vram_without_nvml_is_unknown(monkeypatch: pytest.MonkeyPatch) -> None:
    assert nvml_process_vram(7, fake_nvml(init_fails=True)) is None
    nvml = fake_nvml()
    nvml.nvmlDeviceGetComputeRunningProcesses = lambda h: (_ for _ in ()).throw(NVMLError("x"))
    assert nvml_process_vram(7, nvml) is None
    monkeypatch.setitem(sys.modules, "pynvml", None)  # `import pynvml` raises ImportError
    assert nvml_process_vram(7) is None


def test_nvml_power_is_converted_from_milliwatts() -> None:
    nvml = fake_nvml()
    nvml.nvmlDeviceGetPowerUsage = lambda h: 71250
    [gpu] = nvml_gpus(nvml)
    assert gpu.power_w == pytest.approx(71.25)


def test_nvml_init_failure_gives_no_gpus() -> None:
    assert nvml_gpus(fake_nvml(init_fails=True)) == []


# --- amdsmi ---------------------------------------------------------------------------------


class AmdSmiLibraryException(Exception):
    pass


def fake_amdsmi() -> Any:
    """Shaped like the amdsmi module: an MI300X (no edge sensor) and a Radeon with N/A power."""
    handles = ["mi300x", "w7900"]

    def temp(handle: str, kind: str, metric: str) -> int:
        if handle == "mi300x" and kind == "edge":
            raise AmdSmiLibraryException("AMDSMI_STATUS_NOT_SUPPORTED")
        return {"mi300x": 48, "w7900": 39}[handle]

    return SimpleNamespace(
        AmdSmiTemperatureType=SimpleNamespace(EDGE="edge", HOTSPOT="hotspot", JUNCTION="hotspot"),
        AmdSmiTemperatureMetric=SimpleNamespace(CURRENT="current"),
        amdsmi_init=lambda *flags: None,
        amdsmi_shut_down=lambda: None,
        amdsmi_get_processor_handles=lambda: handles,
        amdsmi_get_gpu_asic_info=lambda h: {
            "market_name": {"mi300x": "AMD Instinct MI300X", "w7900": "N/A"}[h]
        },
        amdsmi_get_gpu_vram_usage=lambda h: (
            {"vram_total": 196592, "vram_used": 283}
            if h == "mi300x"
            else {"vram_total": 49136, "vram_used": 49136}
        ),
        amdsmi_get_gpu_activity=lambda h: {
            "gfx_activity": 12 if h == "mi300x" else "N/A",
            "umc_activity": 0,
            "mm_activity": "N/A",
        },
        amdsmi_get_power_info=lambda h: {
            "socket_power": 131 if h == "mi300x" else "N/A",
            "current_socket_power": "N/A",
            "average_socket_power": "N/A",
            "power_limit": 750,
        },
        amdsmi_get_temp_metric=temp,
    )


def test_amdsmi_readings() -> None:
    mi300x, w7900 = amdsmi_gpus(fake_amdsmi())
    assert mi300x == GPUInfo(
        index=0,
        name="AMD Instinct MI300X",
        vendor="amd",
        total_bytes=196592 * 1024 * 1024,
        used_bytes=283 * 1024 * 1024,
        free_bytes=(196592 - 283) * 1024 * 1024,
        utilization_pct=12.0,
        temperature_c=48.0,
        power_w=131.0,
        source="amdsmi",
    )
    assert w7900.index == 1
    assert w7900.name == "AMD GPU 1"
    assert w7900.free_bytes == 0
    assert w7900.utilization_pct is None
    assert w7900.power_w is None
    assert w7900.temperature_c == 39.0


def test_amdsmi_init_failure_gives_no_gpus() -> None:
    amdsmi = fake_amdsmi()

    def broken(*flags: object) -> None:
        raise AmdSmiLibraryException("AMDSMI_STATUS_DRIVER_NOT_LOADED")

    amdsmi.amdsmi_init = broken
    assert amdsmi_gpus(amdsmi) == []


# --- rocm-smi -------------------------------------------------------------------------------

# `rocm-smi --showmeminfo vram --showuse --showtemp --showpower --showproductname --json`
# on a two-GPU workstation (ROCm 6.x): every value a string, "N/A" where unsupported,
# a "system" entry beside the cards, and a warning line before the JSON.
ROCM_SMI_SAMPLE = "WARNING: One or more commands failed.\n" + json.dumps(
    {
        "card0": {
            "Temperature (Sensor edge) (C)": "44.0",
            "Temperature (Sensor junction) (C)": "47.0",
            "Temperature (Sensor memory) (C)": "58.0",
            "Average Graphics Package Power (W)": "36.0",
            "GPU use (%)": "3",
            "VRAM Total Memory (B)": "25753026560",
            "VRAM Total Used Memory (B)": "1291898880",
            "Card Series": "Navi 31 [Radeon RX 7900 XT/7900 XTX/7900M]",
            "Card Model": "0x744c",
            "Card Vendor": "Advanced Micro Devices, Inc. [AMD/ATI]",
            "Card SKU": "D7070100",
        },
        "card1": {
            "Temperature (Sensor edge) (C)": "N/A",
            "Temperature (Sensor junction) (C)": "52.0",
            "Average Graphics Package Power (W)": "N/A",
            "GPU use (%)": "N/A",
            "VRAM Total Memory (B)": "536870912",
            "VRAM Total Used Memory (B)": "N/A",
            "Card Series": "N/A",
        },
        "system": {"Driver version": "6.7.0"},
    },
    indent=4,
)

# The newer shape: numbers, and socket power (MI300X).
ROCM_SMI_NUMERIC = json.dumps(
    {
        "card0": {
            "Card Model": "AMD Instinct MI300X",
            "GPU use (%)": 88,
            "VRAM Total Memory (B)": 205520896000,
            "VRAM Total Used Memory (B)": 102760448000,
            "Temperature (Sensor junction) (C)": 72,
            "Current Socket Graphics Package Power (W)": 550.5,
        }
    }
)


def test_rocm_smi_json() -> None:
    radeon, igpu = parse_rocm_smi(ROCM_SMI_SAMPLE)
    assert radeon == GPUInfo(
        index=0,
        name="Navi 31 [Radeon RX 7900 XT/7900 XTX/7900M]",
        vendor="amd",
        total_bytes=25753026560,
        used_bytes=1291898880,
        free_bytes=25753026560 - 1291898880,
        utilization_pct=3.0,
        temperature_c=44.0,
        power_w=36.0,
        source="rocm-smi",
    )
    assert igpu.index == 1
    assert igpu.name == "AMD GPU 1"
    assert igpu.total_bytes == 536870912
    assert igpu.used_bytes is None and igpu.free_bytes is None
    assert igpu.utilization_pct is None
    assert igpu.temperature_c == 52.0  # junction, as edge is N/A
    assert igpu.power_w is None


def test_rocm_smi_numeric_json() -> None:
    [gpu] = parse_rocm_smi(ROCM_SMI_NUMERIC)
    assert gpu.name == "AMD Instinct MI300X"
    assert gpu.utilization_pct == 88.0
    assert gpu.free_bytes == 205520896000 - 102760448000
    assert gpu.temperature_c == 72.0
    assert gpu.power_w == 550.5


@pytest.mark.parametrize("text", ["", "ERROR: no GPUs", "{not json", "[]", '{"system": {}}'])
def test_rocm_smi_unusable_output(text: str) -> None:
    assert parse_rocm_smi(text) == []


@posix_only
def test_rocm_smi_runs_the_executable(tmp_path: Path) -> None:
    exe = tmp_path / "rocm-smi"
    (tmp_path / "out.json").write_text(ROCM_SMI_NUMERIC)
    # rocm-smi exits 2 when one reading is unsupported, but still prints the others.
    exe.write_text(f"#!/bin/sh\ncat '{tmp_path / 'out.json'}'\nexit 2\n")
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    [gpu] = rocm_smi_gpus(str(exe))
    assert gpu.source == "rocm-smi"
    assert gpu.power_w == 550.5


# --- sysfs ----------------------------------------------------------------------------------


def write_files(folder: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def fake_sysfs(root: Path) -> Path:
    """/sys as amdgpu lays it out: class/drm/cardN links into devices/, hwmon under device/."""
    devices = root / "devices" / "pci0000:00"
    drm = root / "class" / "drm"
    drm.mkdir(parents=True)

    def card(n: int, pci: str, files: dict[str, str]) -> None:
        device = devices / pci
        write_files(device, files)
        node = device / "drm" / f"card{n}"
        node.mkdir(parents=True)
        (node / "device").symlink_to(device)
        (drm / f"card{n}").symlink_to(node)
        connector = device / "drm" / f"card{n}-DP-1"
        connector.mkdir()
        (drm / f"card{n}-DP-1").symlink_to(connector)

    card(
        0,
        "0000:03:00.0",
        {
            "vendor": "0x1002\n",
            "device": "0x744c\n",
            "product_name": "\n",  # present but empty on many consumer boards
            "mem_info_vram_total": "25753026560\n",
            "mem_info_vram_used": "1291898880\n",
            "gpu_busy_percent": "17\n",
            "hwmon/hwmon3/name": "amdgpu\n",
            "hwmon/hwmon3/temp1_input": "45000\n",
            "hwmon/hwmon3/temp1_label": "edge\n",
            "hwmon/hwmon3/power1_average": "36000000\n",
        },
    )
    card(1, "0000:41:00.0", {"vendor": "0x10de\n", "device": "0x2330\n"})  # an NVIDIA card
    card(
        2,
        "0000:c5:00.0",
        {
            # An APU on a newer kernel: power1_input instead of power1_average, no busy file.
            "vendor": "0x1002\n",
            "device": "0x15bf\n",
            "mem_info_vram_total": "536870912\n",
            "mem_info_vram_used": "71303168\n",
            "hwmon/hwmon5/name": "amdgpu\n",
            "hwmon/hwmon5/temp1_input": "51250\n",
            "hwmon/hwmon5/power1_input": "12345000\n",
        },
    )
    (drm / "renderD128").mkdir()
    (drm / "version").write_text("drm 1.1.0 20060810\n")
    return root


@posix_only
def test_sysfs_reads_amd_cards(tmp_path: Path) -> None:
    root = fake_sysfs(tmp_path / "sys")
    dgpu, apu = sysfs_gpus(root)
    assert dgpu == GPUInfo(
        index=0,
        name="AMD GPU 0x744c",
        vendor="amd",
        total_bytes=25753026560,
        used_bytes=1291898880,
        free_bytes=25753026560 - 1291898880,
        utilization_pct=17.0,
        temperature_c=45.0,
        power_w=36.0,
        source="sysfs",
    )
    assert apu.index == 1  # the NVIDIA card1 is not counted
    assert apu.utilization_pct is None
    assert apu.temperature_c == pytest.approx(51.25)
    assert apu.power_w == pytest.approx(12.345)
    assert apu.free_bytes == 536870912 - 71303168


def test_sysfs_unknown_files_are_none(tmp_path: Path) -> None:
    root = tmp_path / "sys"
    write_files(root / "class" / "drm" / "card0" / "device", {"vendor": "0x1002\n"})
    [gpu] = sysfs_gpus(root)
    assert gpu.name == "AMD GPU 0"
    assert (gpu.total_bytes, gpu.used_bytes, gpu.free_bytes) == (None, None, None)
    assert (gpu.utilization_pct, gpu.temperature_c, gpu.power_w) == (None, None, None)


def test_sysfs_without_drm_gives_no_gpus(tmp_path: Path) -> None:
    assert sysfs_gpus(tmp_path) == []


# --- n/a ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "unit", "shown"),
    [
        (None, "W", "n/a"),
        (None, "B", "n/a"),
        (None, "", "n/a"),
        (71.5, "W", "71.5 W"),
        (36.0, "W", "36 W"),
        (45.0, "%", "45%"),
        (44.0, "°C", "44°C"),
        (0, "%", "0%"),
        (3 * GiB, "B", "3.0 GiB"),
        (512, "B", "512 B"),
        (80 * 1024 * GiB, "B", "80.0 TiB"),
        (7, "", "7"),
    ],
)
def test_n_a(value: float | None, unit: str, shown: str) -> None:
    assert n_a(value, unit) == shown
