"""What the box has: GPUs, memory, and which backend the engine was built with.

The engine library is probed in a short-lived subprocess so the daemon itself
never initialises a GPU context. Unknown values stay None ("unknown"), never a
guess. `problems` says what is missing and how to fix it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

from appliance.telemetry.gpu import list_gpus

_PROBE = r"""
import json, llama_cpp
info = llama_cpp.llama_print_system_info().decode("utf-8", "replace")
print(json.dumps({
    "version": getattr(llama_cpp, "__version__", "unknown"),
    "gpu_offload": bool(llama_cpp.llama_supports_gpu_offload()),
    "mmap": bool(llama_cpp.llama_supports_mmap()),
    "mlock": bool(llama_cpp.llama_supports_mlock()),
    "system_info": info,
}))
"""


@dataclass(frozen=True)
class GPUDevice:
    index: int
    name: str
    vendor: str
    total_bytes: int | None
    free_bytes: int | None


@dataclass(frozen=True)
class EngineBuild:
    version: str
    backend: str  # cpu | cuda | rocm | metal | vulkan | unknown
    gpu_offload: bool
    system_info: str


AMDGPU_EP_ENV = "AMDGPU_EP_PATH"


def amdgpu_ep_library() -> str | None:
    """AMD's plugin execution provider for onnxruntime-genai (MIGraphX underneath), which
    onnxruntime-genai loads on Linux only from the file AMDGPU_EP_PATH names. It is not on
    PyPI; AMD ships it with ROCm (the onnxruntime_ep_amdgpu package)."""
    path = os.environ.get(AMDGPU_EP_ENV, "")
    return path if path and Path(path).is_file() else None


_ONNX_PROBE = r"""
import json, onnxruntime as ort, onnxruntime_genai as og
from appliance.hardware import amdgpu_ep_library
print(json.dumps({
    "genai_version": getattr(og, "__version__", "unknown"),
    "ort_version": ort.__version__,
    "providers": ort.get_available_providers(),
    "cuda": bool(og.is_cuda_available()),
    "amdgpu_ep": amdgpu_ep_library(),
}))
"""


@dataclass(frozen=True)
class OnnxBuild:
    """The ONNX runtime this box serves ONNX models with, and which providers it has."""

    genai_version: str
    ort_version: str
    providers: tuple[str, ...]
    cuda: bool  # onnxruntime-genai-cuda: INT4/FP16 on the GPU, and FP8 at all
    amdgpu_ep: str | None = None  # AMD's amdgpu provider library (AMDGPU_EP_PATH), if any

    @property
    def provider(self) -> str:
        if self.cuda:
            return "cuda"
        return "amdgpu" if self.amdgpu_ep else "cpu"


def probe_onnx(timeout_s: float = 60.0) -> tuple[OnnxBuild | None, str | None]:
    data, problem = _run_probe(_ONNX_PROBE, "onnxruntime-genai", timeout_s)
    if data is None:
        return None, f"{problem}. ONNX models cannot be served."
    return (
        OnnxBuild(
            genai_version=str(data["genai_version"]),
            ort_version=str(data["ort_version"]),
            providers=tuple(str(p) for p in data["providers"]),
            cuda=bool(data["cuda"]),
            amdgpu_ep=str(data["amdgpu_ep"]) if data.get("amdgpu_ep") else None,
        ),
        None,
    )


@dataclass
class HardwareReport:
    engine: EngineBuild | None
    devices: list[GPUDevice]
    ram_total_bytes: int
    ram_available_bytes: int
    cpu_physical: int | None
    cpu_logical: int | None
    problems: list[str] = field(default_factory=list)
    onnx: OnnxBuild | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def gpu_free_bytes(self) -> int | None:
        if not self.devices:
            return None
        frees = [d.free_bytes for d in self.devices]
        return None if any(f is None for f in frees) else max(f for f in frees if f is not None)


def _backend_from_info(gpu_offload: bool, info: str) -> str:
    text = info.upper()
    for marker, name in (
        ("CUDA", "cuda"),
        ("ROCM", "rocm"),
        ("HIP", "rocm"),
        ("METAL", "metal"),
        ("VULKAN", "vulkan"),
    ):
        if marker in text:
            return name
    return "unknown" if gpu_offload else "cpu"


def _run_probe(code: str, what: str, timeout_s: float) -> tuple[Any, str | None]:
    """Run `code` in a child Python (a runtime that crashes on import takes only the
    child) and return the JSON it prints last, or None and the problem in words."""
    try:
        out = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"could not probe {what}: {exc}"
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or ["no output"])[-1]
        return None, f"{what} does not import: {last}"
    return json.loads(out.stdout.strip().splitlines()[-1]), None


def probe_engine(timeout_s: float = 60.0) -> tuple[EngineBuild | None, str | None]:
    data, problem = _run_probe(_PROBE, "llama-cpp-python", timeout_s)
    if data is None:
        failed_import = str(problem).startswith("llama-cpp-python does not import")
        return None, f"{problem}. Re-run installer.sh." if failed_import else problem
    build = EngineBuild(
        version=str(data["version"]),
        backend=_backend_from_info(bool(data["gpu_offload"]), str(data["system_info"])),
        gpu_offload=bool(data["gpu_offload"]),
        system_info=str(data["system_info"]).strip(),
    )
    return build, None


def gpu_devices() -> list[GPUDevice]:
    """NVIDIA (NVML) and AMD (amdsmi, rocm-smi or sysfs) GPUs; unknown sizes stay None."""
    return [GPUDevice(g.index, g.name, g.vendor, g.total_bytes, g.free_bytes) for g in list_gpus()]


def detect(probe: bool = True) -> HardwareReport:
    vm = psutil.virtual_memory()
    onnx_probe = None
    if probe:  # both runtimes are probed in child processes, at the same time
        from concurrent.futures import ThreadPoolExecutor

        pool = ThreadPoolExecutor(1)
        onnx_probe = pool.submit(probe_onnx)
        pool.shutdown(wait=False)
    engine, problem = probe_engine() if probe else (None, None)
    devices = gpu_devices()
    problems = [problem] if problem else []
    has_nvidia = (
        any(d.vendor == "nvidia" for d in devices) or shutil.which("nvidia-smi") is not None
    )
    has_amd = any(d.vendor == "amd" for d in devices) or shutil.which("rocminfo") is not None
    if engine is not None and not engine.gpu_offload:
        if has_nvidia:
            problems.append(
                "an NVIDIA GPU is present but llama-cpp-python was built for the CPU: re-run "
                "installer.sh on a box with the CUDA toolkit (nvcc), or "
                "CMAKE_ARGS='-DGGML_CUDA=on' pip install --force-reinstall llama-cpp-python"
            )
        elif has_amd:
            problems.append(
                "an AMD GPU (ROCm) is present but llama-cpp-python was built for the CPU: "
                "CMAKE_ARGS='-DGGML_HIP=on' pip install --force-reinstall llama-cpp-python"
            )
    onnx, onnx_problem = onnx_probe.result() if onnx_probe is not None else (None, None)
    if onnx_problem:
        problems.append(onnx_problem)
    if onnx is not None and not onnx.cuda and has_nvidia:
        problems.append(
            "an NVIDIA GPU is present but onnxruntime-genai is the CPU build: ONNX models run "
            "on the CPU and FP8 ONNX models cannot run; re-run installer.sh (it installs "
            "onnxruntime-genai-cuda and onnxruntime-gpu in place of the CPU packages)"
        )
    if onnx is not None and onnx.provider == "cpu" and has_amd and not has_nvidia:
        problems.append(
            "an AMD GPU is present but ONNX models run on the CPU: onnxruntime-genai from PyPI "
            "has no ROCm provider; its AMD GPU provider is AMD's amdgpu plugin (MIGraphX), "
            "installed with ROCm's onnxruntime_ep_amdgpu package and named by AMDGPU_EP_PATH "
            "in the daemon's environment. GGUF models use the GPU through llama.cpp's HIP build"
        )
    if has_nvidia and not any(d.vendor == "nvidia" for d in devices):
        problems.append("NVIDIA GPU memory is unknown: install nvidia-ml-py to read it (NVML)")
    return HardwareReport(
        engine=engine,
        devices=devices,
        ram_total_bytes=int(vm.total),
        ram_available_bytes=int(vm.available),
        cpu_physical=psutil.cpu_count(logical=False),
        cpu_logical=psutil.cpu_count(logical=True),
        problems=problems,
        onnx=onnx,
    )
