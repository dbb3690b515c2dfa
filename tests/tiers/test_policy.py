"""Placement rules over plain numbers."""

from __future__ import annotations

import pytest

from appliance.tiers.policy import GiB, PlacementError, PlacementInput, place


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
