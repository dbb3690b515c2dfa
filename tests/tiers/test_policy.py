"""Placement rules over plain numbers."""

from __future__ import annotations

import pytest

from appliance.tiers.policy import GiB, PlacementError, PlacementInput, place, place_slots


def inp(**kw: object) -> PlacementInput:
    base: dict[str, object] = dict(
        weights_bytes=4 * GiB,
        kv_cache_bytes=1 * GiB,
        compute_bytes=GiB // 2,
        n_layers=32,
        gpu_offload=True,
        gpu_free_bytes=24 * GiB,
        ram_available_bytes=64 * GiB,
        ram_total_bytes=64 * GiB,
    )
    base.update(kw)
    return PlacementInput(**base)  # type: ignore[arg-type]


def test_cpu_engine_never_offloads() -> None:
    assert place(inp(gpu_offload=False)).n_gpu_layers == 0


def test_everything_fits_on_the_gpu() -> None:
    p = place(inp())
    assert p.n_gpu_layers == -1 and "all layers" in p.reason


def test_partial_offload_when_vram_is_short() -> None:
    p = place(inp(gpu_free_bytes=3 * GiB))
    # (3 GiB - 0.5 margin - 0.5 compute) / (5 GiB / 32 layers) = 12.8 -> 12
    assert p.n_gpu_layers == 12
    assert "partial offload 12/32" in p.reason


def test_no_vram_left_means_zero_layers() -> None:
    assert place(inp(gpu_free_bytes=GiB // 4)).n_gpu_layers == 0


def test_explicit_layers_win() -> None:
    assert place(inp(requested_gpu_layers=7)).n_gpu_layers == 7


def test_unknown_vram_stays_on_cpu() -> None:
    p = place(inp(gpu_free_bytes=None))
    assert p.n_gpu_layers == 0 and "unknown" in p.reason


def test_refuses_when_kv_cache_cannot_fit_in_ram() -> None:
    with pytest.raises(PlacementError, match=r"needs 1\.50 GiB"):
        place(inp(gpu_offload=False, ram_available_bytes=GiB))


def test_automatic_slots_shrink_to_what_memory_holds_and_set_slots_do_not() -> None:
    # 1 GiB of KV cache per slot, 3 GiB of RAM free beside the 512 MiB margin (CPU engine).
    def for_slots(n: int) -> PlacementInput:
        return inp(gpu_offload=False, kv_cache_bytes=n * GiB, ram_available_bytes=3 * GiB)

    placement, slots = place_slots(for_slots, 4, auto=True)
    assert slots == 2  # 2 GiB of KV + 0.5 compute fit in 2.5 GiB; 3 slots would not
    assert "2 of 4 slots: no memory for the others' KV cache" in placement.reason
    with pytest.raises(PlacementError, match="not enough memory to load"):
        place_slots(for_slots, 4, auto=False)  # `parallel = 4` was asked for: no less
    placement, slots = place_slots(for_slots, 1, auto=True)
    assert slots == 1 and "slots" not in placement.reason
    with pytest.raises(PlacementError):  # not even one slot fits
        place_slots(lambda n: inp(gpu_offload=False, ram_available_bytes=GiB), 4, auto=True)
