"""Tests for appliance/tiers/estimate.py (pure arithmetic over plain data)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from appliance.store.gguf_meta import read_gguf_info
from appliance.tiers.estimate import (
    COMPUTE_OVERHEAD_BYTES,
    auto_slots,
    compute_buffer_bytes,
    estimate_memory,
    kv_cache_bytes,
)

GiB = 1 << 30


@dataclass(frozen=True)
class Shape:
    tensor_bytes: int = 4 * GiB
    block_tensor_bytes: int = 3 * GiB
    block_count: int | None = 32
    embedding_length: int | None = 4096
    head_count: int | None = 32
    head_count_kv: int | None = 8
    key_length: int | None = None
    value_length: int | None = None
    vocab_size: int | None = 128256
    kv_layers: int | None = None
    recurrent_state_bytes: int = 0


def test_kv_cache_formula() -> None:
    s = Shape()
    # 2 (K and V) * 32 layers * 8192 ctx * 8 kv heads * 128 head dim * 2 bytes (f16) = 1 GiB
    assert kv_cache_bytes(s, 8192) == 2 * 32 * 8192 * 8 * 128 * 2 == GiB
    assert kv_cache_bytes(s, 8192, kv_bytes_per_elem=34 / 32) == GiB // 2 * 34 // 32  # q8_0
    assert kv_cache_bytes(s, 8192, n_layers=16) == GiB // 2
    # Different K and V head sizes (e.g. DeepSeek-style MLA shapes).
    mla = Shape(key_length=192, value_length=128)
    assert kv_cache_bytes(mla, 1000) == 32 * 1000 * 8 * (192 + 128) * 2


def test_kv_falls_back_to_embedding_width() -> None:
    s = Shape(head_count=None, head_count_kv=None)
    assert kv_cache_bytes(s, 100) == 32 * 100 * (4096 + 4096) * 2
    assert kv_cache_bytes(Shape(head_count_kv=None), 100) == 32 * 100 * 32 * 256 * 2


def test_compute_heuristic() -> None:
    s = Shape()
    ub = 512
    expected = ub * 8192 * 32 * 4 + ub * 4096 * 4 * 8 + ub * 128256 * 4 + COMPUTE_OVERHEAD_BYTES
    assert compute_buffer_bytes(s, 8192) == expected
    # A context shorter than the micro-batch shrinks the micro-batch too.
    assert compute_buffer_bytes(s, 100) == (
        100 * 100 * 32 * 4 + 100 * 4096 * 32 + 100 * 128256 * 4 + COMPUTE_OVERHEAD_BYTES
    )


def test_estimate_totals() -> None:
    s = Shape()
    est = estimate_memory(s, 8192)
    assert est.weights_bytes == 4 * GiB
    assert est.kv_cache_bytes == GiB
    assert est.compute_bytes == compute_buffer_bytes(s, 8192)
    assert est.total_bytes == est.weights_bytes + est.kv_cache_bytes + est.compute_bytes
    assert estimate_memory(s, 16384).total_bytes > est.total_bytes
    assert estimate_memory(s, 8192, kv_bytes_per_elem=1.0).kv_cache_bytes == GiB // 2


def test_estimate_partial_offload() -> None:
    s = Shape()
    half = estimate_memory(s, 8192, n_gpu_layers=16)
    assert half.weights_bytes == int(1.5 * GiB)  # half the blocks, no output layer
    assert half.kv_cache_bytes == GiB // 2
    full = estimate_memory(s, 8192, n_gpu_layers=33)  # n_layer + 1: output layer too
    assert full.weights_bytes == 4 * GiB and full.kv_cache_bytes == GiB
    assert full.total_bytes == estimate_memory(s, 8192).total_bytes
    none = estimate_memory(s, 8192, n_gpu_layers=0)
    assert none.total_bytes == 0


def test_estimate_rejects_negative_context() -> None:
    with pytest.raises(ValueError):
        estimate_memory(Shape(), -1)


def test_estimate_from_real_header(tiny_gguf: Path) -> None:
    info = read_gguf_info(tiny_gguf)
    est = estimate_memory(info, 512)
    assert est.weights_bytes == info.tensor_bytes
    assert est.kv_cache_bytes == 2 * 2 * 512 * 2 * 16 * 2  # K+V, 2 layers, 2 kv heads, dim 16
    assert est.total_bytes > info.tensor_bytes


def test_a_hybrid_model_keeps_a_kv_cache_in_its_attention_layers_only() -> None:
    hybrid = Shape(kv_layers=4, recurrent_state_bytes=64 << 20)  # 4 of 32 layers attend
    assert kv_cache_bytes(hybrid, 8192) == GiB // 8
    assert kv_cache_bytes(hybrid, 8192, n_layers=16) == GiB // 16  # half the layers: 2
    # Each sequence's recurrent state comes with the KV cache.
    est = estimate_memory(hybrid, 4 * 8192, n_seqs=4)
    assert est.kv_cache_bytes == GiB // 2 + 4 * (64 << 20)
    on_gpu = estimate_memory(hybrid, 4 * 8192, n_gpu_layers=16, n_seqs=4)
    assert on_gpu.kv_cache_bytes == GiB // 4 + 2 * (64 << 20)
    # Mamba: no KV cache at all, so its state alone decides the slots.
    mamba = Shape(kv_layers=0, recurrent_state_bytes=32 << 20)
    assert estimate_memory(mamba, 4 * 8192, n_seqs=4).kv_cache_bytes == 4 * (32 << 20)
    assert auto_slots(mamba, 8192) == 4
    assert auto_slots(Shape(), 65536) < 4  # an attention model at the same long context
