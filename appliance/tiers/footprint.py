"""What a hot model holds: bytes on its device and, for a model on a GPU, the host RAM it
holds besides (its worker's runtime, the layers left on the CPU, its saved prompt states).

Before a load the footprint is estimated from the model's shape, or taken from an earlier
load of the same file with the same settings; after the load it is measured where it can
be. Host RAM is measured (the worker's anonymous memory plus the weights it maps from the
file); VRAM where NVML lists the worker's use (NVIDIA), else it stays the estimate, which
counts the GPU runtime's own share. Pure: the manager passes in what it read.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from appliance.tiers.estimate import ModelShape, estimate_memory
from appliance.tiers.measurements import Measurement
from appliance.tiers.tier_state import HOST

# A worker process costs memory beyond the model (interpreter, engine runtime): about
# 26 MiB measured on CPU; counted in every estimate until the real load is measured.
WORKER_OVERHEAD_BYTES = 32 * 1024 * 1024
# VRAM a worker holds on its GPU beside the model: the CUDA or HIP context and the
# libraries' workspaces, a few hundred MiB (Ollama reserves 457 MiB per GPU for it).
GPU_RUNTIME_BYTES = 457 * 1024 * 1024


@dataclass(frozen=True)
class Footprint:
    device: str  # "cpu", "cuda:0", ...
    device_bytes: int  # on `device`: host RAM for a CPU model, VRAM on a GPU
    host_bytes: int = 0  # host RAM a GPU model holds besides (0 for a CPU model)
    measured: bool = False  # device_bytes measured by a load, not estimated

    def plus_host(self, n: int) -> Footprint:
        """`n` more bytes of host RAM (saved prompt states): a CPU model's device bytes."""
        if self.device == HOST:
            return replace(self, device_bytes=self.device_bytes + n)
        return replace(self, host_bytes=self.host_bytes + n)


def gpu_layers(device: str, n_gpu_layers: int) -> int | None:
    """The layers on the GPU for `estimate_memory`: None for all of them (or a CPU model)."""
    return None if device == HOST or n_gpu_layers < 0 else n_gpu_layers


def cpu_layers_bytes(
    info: ModelShape, n_ctx: int, layers: int | None, n_seqs: int = 1
) -> tuple[int, int]:
    """(weights, KV cache) of the layers a GPU model leaves on the CPU."""
    if layers is None:
        return 0, 0
    full = estimate_memory(info, n_ctx, n_seqs=n_seqs)
    on_gpu = estimate_memory(info, n_ctx, n_gpu_layers=layers, n_seqs=n_seqs)
    return (
        max(full.weights_bytes - on_gpu.weights_bytes, 0),
        max(full.kv_cache_bytes - on_gpu.kv_cache_bytes, 0),
    )


def expected(
    info: ModelShape,
    n_ctx: int,
    device: str,
    n_gpu_layers: int,
    measured: Measurement | None,
    n_seqs: int = 1,
) -> Footprint:
    """Before a load: what an earlier load with these settings measured, else the estimate
    (`n_ctx`: the context of all `n_seqs` slots together)."""
    if device == HOST:
        if measured is not None:
            return Footprint(device, measured.hot_bytes, measured=True)
        est = estimate_memory(info, n_ctx, n_seqs=n_seqs)
        return Footprint(device, est.total_bytes + WORKER_OVERHEAD_BYTES)
    layers = gpu_layers(device, n_gpu_layers)
    # A record without host bytes predates them: its hot bytes were host RAM, not VRAM.
    if measured is not None and measured.host_bytes > 0:
        host = measured.host_bytes
        if measured.hot_bytes > 0:  # 0: its VRAM could not be measured
            return Footprint(device, measured.hot_bytes, host, measured=True)
    else:
        host = sum(cpu_layers_bytes(info, n_ctx, layers, n_seqs)) + WORKER_OVERHEAD_BYTES
    on_gpu = estimate_memory(info, n_ctx, n_gpu_layers=layers, n_seqs=n_seqs)
    return Footprint(device, on_gpu.total_bytes + GPU_RUNTIME_BYTES, host)


def mapped_weights(
    info: ModelShape, n_ctx: int, device: str, n_gpu_layers: int, file_bytes: int | None
) -> int:
    """Weights a loaded model keeps in host RAM through a mapping of its file (llama.cpp maps
    a GGUF: all of it on the CPU, the layers left on the CPU for a GPU model), which the
    worker's anonymous memory does not show. `file_bytes` None: a folder model, whose
    runtime reads its weights into anonymous memory."""
    if file_bytes is None:
        return 0
    if device == HOST:
        return file_bytes
    return cpu_layers_bytes(info, n_ctx, gpu_layers(device, n_gpu_layers))[0]


def loaded(
    before: Footprint, anon_bytes: int, mapped_bytes: int, vram_bytes: int | None = None
) -> Footprint:
    """After a load, from the worker's anonymous memory and its mapped weights: a CPU
    model's device bytes, a GPU model's host bytes; and a GPU model's VRAM where it was
    read (`vram_bytes`), else the estimate stays."""
    host = anon_bytes + mapped_bytes
    if before.device == HOST:
        return Footprint(before.device, host, measured=True)
    if vram_bytes is None:
        return Footprint(before.device, before.device_bytes, host)
    return Footprint(before.device, vram_bytes, host, measured=True)


def record_of(fp: Footprint) -> tuple[int, int]:
    """(hot_bytes, host_bytes) to record for the next load; hot_bytes 0 for a GPU model
    whose VRAM was not measured (the estimate is made afresh)."""
    return (fp.device_bytes if fp.measured else 0), fp.host_bytes


# Saved prompt states a model keeps in RAM, at most, in KV caches of all its slots: a
# state holds one sequence's KV (at most one slot's context), so twice the slots' KV is
# eight full-context states with four slots.
STATES_PER_KV = 2


def prompt_states_cap(fmt: str, embedding: bool, cap: int, kv_bytes: int) -> int:
    """Host RAM a loaded model's saved prompt states may grow to: the `prompt_cache_ram`
    setting (`cap`), or less for a small model, STATES_PER_KV times its slots' KV
    (`kv_bytes`): 512 MiB counted in a 1 MiB model's footprint made needless evictions
    under tight budgets. GGUF chat models keep states, others none."""
    if fmt != "gguf" or embedding:
        return 0
    return min(cap, STATES_PER_KV * kv_bytes)
