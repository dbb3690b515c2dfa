"""Memory a GGUF model needs before it has ever been loaded: weights + KV cache + compute.

Pure arithmetic over the header (`GGUFInfo`, or any object with the same fields),
used for placement until a measured footprint exists. It errs on the high side:
the box must never be driven into OOM by an optimistic guess.

- weights: the tensor data as stored (`tensor_bytes`); llama.cpp maps/copies it as is.
- KV cache: K and V for every attention layer (all of them but in recurrent and hybrid
  models: `kv_layers`) and every context position:
  `n_layer * n_ctx * n_head_kv * (key_length + value_length) * kv_bytes_per_elem`,
  i.e. `2 * n_layer * n_ctx * n_head_kv * head_dim * kv_bytes` when K and V have
  the same head size. `kv_bytes_per_elem` is 2.0 for an f16 cache, 34/32 for q8_0,
  18/32 for q4_0. A recurrent or hybrid model adds its fixed state per sequence
  (`recurrent_state_bytes`, F32).
- compute buffer (a heuristic shaped like llama.cpp's graph allocator, without
  flash attention): with `ub = min(n_ubatch, n_ctx)` tokens per micro-batch,
    attention scores   ub * n_ctx * n_head * 4 bytes  (KQ, f32)
  + activations        ub * n_embd * 4 bytes * 8      (residual, norms, Q/K/V, FFN)
  + logits             ub * n_vocab * 4 bytes
  + a fixed 32 MiB of graph overhead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

COMPUTE_OVERHEAD_BYTES = 32 << 20
ACTIVATION_FACTOR = 8
F32 = 4


class ModelShape(Protocol):
    """The header fields the estimate reads (`GGUFInfo` has them all)."""

    @property
    def tensor_bytes(self) -> int: ...
    @property
    def block_tensor_bytes(self) -> int: ...
    @property
    def block_count(self) -> int | None: ...
    @property
    def embedding_length(self) -> int | None: ...
    @property
    def head_count(self) -> int | None: ...
    @property
    def head_count_kv(self) -> int | None: ...
    @property
    def key_length(self) -> int | None: ...
    @property
    def value_length(self) -> int | None: ...
    @property
    def vocab_size(self) -> int | None: ...
    @property
    def kv_layers(self) -> int | None: ...
    @property
    def recurrent_state_bytes(self) -> int: ...


@dataclass(frozen=True)
class MemoryEstimate:
    weights_bytes: int
    kv_cache_bytes: int
    compute_bytes: int
    total_bytes: int


def _head_dims(info: ModelShape) -> tuple[int, int, int]:
    """(n_head_kv, key_length, value_length), falling back to n_embd/n_head for missing ones."""
    n_embd = info.embedding_length or 0
    n_head = info.head_count or 0
    n_head_kv = info.head_count_kv or n_head
    default_dim = n_embd // n_head if n_head else 0
    k = info.key_length or default_dim
    v = info.value_length or default_dim
    if not n_head_kv:  # nothing known about heads: one "head" as wide as the embedding
        return 1, n_embd, n_embd
    return n_head_kv, k, v


def kv_cache_bytes(
    info: ModelShape, n_ctx: int, kv_bytes_per_elem: float = 2.0, n_layers: int | None = None
) -> int:
    """Bytes of K and V cache for `n_ctx` positions over `n_layers` (default: all) layers,
    of which only the attention layers keep one (`kv_layers`: a hybrid model's share)."""
    n_layer = info.block_count or 0
    layers = n_layer if n_layers is None else n_layers
    if info.kv_layers is not None and n_layer:
        layers = math.ceil(layers * info.kv_layers / n_layer)
    n_head_kv, k, v = _head_dims(info)
    return int(layers * max(n_ctx, 0) * n_head_kv * (k + v) * kv_bytes_per_elem)


def compute_buffer_bytes(info: ModelShape, n_ctx: int, n_ubatch: int = 512) -> int:
    """The heuristic compute buffer described in the module docstring."""
    ub = max(min(n_ubatch, n_ctx), 1)
    n_head = info.head_count or 1
    n_embd = info.embedding_length or 0
    n_vocab = info.vocab_size or 0
    scores = ub * max(n_ctx, 0) * n_head * F32
    activations = ub * n_embd * F32 * ACTIVATION_FACTOR
    logits = ub * n_vocab * F32
    return scores + activations + logits + COMPUTE_OVERHEAD_BYTES


def estimate_memory(
    info: ModelShape,
    n_ctx: int,
    kv_bytes_per_elem: float = 2.0,
    n_gpu_layers: int | None = None,
    n_ubatch: int = 512,
    n_seqs: int = 1,
) -> MemoryEstimate:
    """Estimate the footprint of serving `info` with an `n_ctx` context over `n_seqs`
    sequences (each keeps a recurrent state in a recurrent or hybrid model, counted with
    the KV cache).

    `n_gpu_layers=None` gives the whole footprint (a CPU engine, or everything
    offloaded). With `n_gpu_layers=k` it gives the part that lands on the GPU, the
    way llama.cpp splits it: k of the n_layer blocks' weights and KV cache, the
    output and other non-block tensors only when k > n_layer, and the compute
    buffer when k > 0.
    """
    if n_ctx < 0:
        raise ValueError(f"n_ctx must be >= 0, got {n_ctx}")
    compute = compute_buffer_bytes(info, n_ctx, n_ubatch)
    states = info.recurrent_state_bytes * max(n_seqs, 1)
    if n_gpu_layers is None:
        weights = info.tensor_bytes
        kv = kv_cache_bytes(info, n_ctx, kv_bytes_per_elem) + states
    else:
        n_layer = info.block_count or 0
        k = max(n_gpu_layers, 0)
        on_device = min(k, n_layer)
        frac = on_device / n_layer if n_layer else (1.0 if k else 0.0)
        non_block = max(info.tensor_bytes - info.block_tensor_bytes, 0)
        weights = int(info.block_tensor_bytes * frac) + (non_block if k > n_layer else 0)
        kv = kv_cache_bytes(info, n_ctx, kv_bytes_per_elem, n_layers=on_device)
        kv += int(states * frac)
        if k == 0:
            compute = 0
    return MemoryEstimate(
        weights_bytes=weights,
        kv_cache_bytes=kv,
        compute_bytes=compute,
        total_bytes=weights + kv + compute,
    )


MAX_AUTO_SLOTS = 4
MIN_KV_ROOM_BYTES = 256 << 20


def auto_slots(info: ModelShape, n_ctx: int, kv_bytes_per_elem: float = 2.0) -> int:
    """Slots (sequences decoded together) when none is configured: up to 4, while the KV
    cache of the extra slots needs no more memory than the weights (at least 256 MiB).

    Each slot can hold a whole `n_ctx` context, so a model with a long context and a
    large KV per token gets fewer slots rather than a surprise out-of-memory.
    """
    per_slot = kv_cache_bytes(info, n_ctx, kv_bytes_per_elem) + info.recurrent_state_bytes
    if per_slot <= 0:
        return MAX_AUTO_SLOTS
    room = max(info.tensor_bytes, MIN_KV_ROOM_BYTES)
    return max(1, min(MAX_AUTO_SLOTS, 1 + room // per_slot))
