"""Which layers of a model keep a KV cache, and how much recurrent state each of its
sequences keeps: read from a GGUF header the way llama.cpp reads it.

Hybrid models (Jamba, Granite 4 H, LFM2, Qwen3.5, Nemotron-H...) keep a KV cache in
their attention layers only, and a fixed-size state per sequence in the others; Mamba
and RWKV keep no KV cache at all. The memory estimate counted a KV cache in every layer
(several times the real one), and no state. Where the header does not say which layers
are which, every layer counts as attention: the estimate errs high, never low.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

PURE_RECURRENT = frozenset({"mamba", "mamba2", "rwkv6", "rwkv6qwen2", "rwkv7", "arwkv7"})
EVERY_LAYER_BOTH = frozenset({"falcon-h1"})  # attention and a state in every layer
STATE_BYTES = 4  # llama.cpp keeps recurrent states in F32


@dataclass(frozen=True)
class LayerKinds:
    attention: int | None  # layers with a KV cache; None: all of them
    state_bytes: int  # recurrent state of one sequence, all layers together


def layer_kinds(
    arch: str,
    n_layer: int | None,
    n_embd: int | None,
    ints: Callable[[str], int | None],
    arrays: Mapping[str, list[int]],
) -> LayerKinds:
    """`ints(key)`: a scalar integer key; `arrays`: the per-layer integer arrays."""
    n = n_layer or 0
    per_layer = _state_per_layer(arch, n_embd or 0, ints)
    if arch in PURE_RECURRENT:
        return LayerKinds(0, n * per_layer)
    if arch in EVERY_LAYER_BOTH:
        return LayerKinds(None, n * per_layer)
    if per_layer <= 0:  # no sign of recurrent layers
        return LayerKinds(None, 0)
    flags = arrays.get(f"{arch}.attention.recurrent_layers")
    if flags is not None and len(flags) == n:
        recurrent = sum(1 for f in flags if f)
        return LayerKinds(n - recurrent, recurrent * per_layer)
    interval = ints(f"{arch}.full_attention_interval")
    if interval and interval > 0:  # every interval-th layer is attention (Qwen3.5, MiniMax)
        attention = n // interval
        return LayerKinds(attention, (n - attention) * per_layer)
    heads = arrays.get(f"{arch}.attention.head_count_kv")
    if heads is not None and len(heads) == n:  # no KV heads: a recurrent layer (Jamba, LFM2)
        attention = sum(1 for h in heads if h > 0)
        return LayerKinds(attention, (n - attention) * per_layer)
    return LayerKinds(None, n * per_layer)


def _state_per_layer(arch: str, n_embd: int, ints: Callable[[str], int | None]) -> int:
    """Bytes of one layer's state for one sequence (llama.cpp's n_embd_r + n_embd_s)."""
    wkv = ints(f"{arch}.wkv.head_size")
    if wkv:  # RWKV: token shifts and the wkv state
        shifts = ints(f"{arch}.token_shift_count") or 2
        return (shifts * n_embd + n_embd * wkv) * STATE_BYTES
    l_cache = ints(f"{arch}.shortconv.l_cache")
    if l_cache:  # LFM2's short convolutions
        return n_embd * max(l_cache - 1, 0) * STATE_BYTES
    d_conv = ints(f"{arch}.ssm.conv_kernel") or 0
    d_inner = ints(f"{arch}.ssm.inner_size") or 0
    d_state = ints(f"{arch}.ssm.state_size") or 0
    n_group = ints(f"{arch}.ssm.group_count") or 0
    conv = max(d_conv - 1, 0) * (d_inner + 2 * n_group * d_state)
    return (conv + d_state * d_inner) * STATE_BYTES
