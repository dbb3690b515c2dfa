"""Placement decisions as pure functions over plain numbers.

Where a model goes (how many layers on the GPU) and whether it fits at all is
decided here, from the memory estimate and what the box has free, so the rule
can be tested without an engine and grow into the tier policy.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

GiB = 1024**3


def fmt_bytes(n: int | float | None) -> str:
    if n is None:
        return "unknown"
    if abs(n) >= GiB:
        return f"{n / GiB:.2f} GiB"
    return f"{n / 1024**2:.0f} MiB"


class PlacementError(Exception):
    """The model cannot be placed without risking an out-of-memory kill."""


@dataclass(frozen=True)
class PlacementInput:
    weights_bytes: int
    kv_cache_bytes: int
    compute_bytes: int
    n_layers: int
    gpu_offload: bool  # the engine was built with a GPU backend
    gpu_free_bytes: int | None  # free VRAM on the chosen device; None when unknown
    ram_available_bytes: int | None
    ram_total_bytes: int | None
    requested_gpu_layers: int | None = None  # an explicit setting wins
    margin_bytes: int = 512 * 1024**2


@dataclass(frozen=True)
class Placement:
    n_gpu_layers: int
    reason: str


def _check_ram(inp: PlacementInput, ram_needed: int) -> None:
    if inp.ram_available_bytes is None:
        return
    # Weights are mapped from the file and can be paged; the KV cache and compute
    # buffers are anonymous memory and must fit in what is available now.
    if ram_needed > inp.ram_available_bytes - inp.margin_bytes:
        raise PlacementError(
            f"not enough memory to load: needs {fmt_bytes(ram_needed)} of RAM for the KV cache "
            f"and compute buffers, {fmt_bytes(inp.ram_available_bytes)} available "
            f"(keeping {fmt_bytes(inp.margin_bytes)} spare). Use a smaller context or unload "
            "another model."
        )


def place(inp: PlacementInput) -> Placement:
    cpu_side = inp.kv_cache_bytes + inp.compute_bytes
    if not inp.gpu_offload:
        _check_ram(inp, cpu_side)
        return Placement(0, "CPU engine: weights mapped from disk, KV cache in RAM")
    if inp.requested_gpu_layers is not None:
        return Placement(inp.requested_gpu_layers, "n_gpu_layers set in the configuration")
    if inp.gpu_free_bytes is None:
        _check_ram(inp, cpu_side)
        return Placement(0, "GPU memory unknown: staying on the CPU rather than risking OOM")
    usable = inp.gpu_free_bytes - inp.margin_bytes
    full = inp.weights_bytes + inp.kv_cache_bytes + inp.compute_bytes
    if full <= usable:
        return Placement(
            -1,
            f"all layers on the GPU: needs {fmt_bytes(full)}, {fmt_bytes(inp.gpu_free_bytes)} free",
        )
    per_layer = (inp.weights_bytes + inp.kv_cache_bytes) / max(inp.n_layers, 1)
    room = usable - inp.compute_bytes
    layers = max(0, min(inp.n_layers, math.floor(room / per_layer))) if per_layer > 0 else 0
    _check_ram(inp, cpu_side)
    return Placement(
        layers,
        f"partial offload {layers}/{inp.n_layers} layers: needs {fmt_bytes(full)} for all, "
        f"{fmt_bytes(inp.gpu_free_bytes)} free",
    )


def place_slots(
    inputs: Callable[[int], PlacementInput], slots: int, auto: bool
) -> tuple[Placement, int]:
    """The placement for `slots` sequences (`inputs(n)`: the numbers for n slots) and the
    slots it holds. Slots chosen automatically shrink, down to one, when the KV cache of
    all of them would not fit; slots someone set are kept, or the load is refused."""
    n = slots
    while True:
        try:
            placement = place(inputs(n))
        except PlacementError:
            if not auto or n <= 1:
                raise
            n -= 1
            continue
        if n < slots:
            placement = Placement(
                placement.n_gpu_layers,
                f"{placement.reason}; {n} of {slots} slots: no memory for the others' KV cache",
            )
        return placement, n
