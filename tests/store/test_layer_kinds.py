"""Which layers keep a KV cache and what state a sequence keeps, from GGUF headers of
each family, and on the tiny Mamba and Jamba files against llama.cpp's own state size."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from appliance.engines.engine import BatchEntry
from appliance.engines.llamacpp import EngineConfig, LlamaEngine
from appliance.store.gguf_meta import read_gguf_info
from appliance.store.layer_kinds import LayerKinds, layer_kinds
from appliance.tiny_model import write_tiny_hybrid_gguf, write_tiny_mamba_gguf

SSM = {"ssm.conv_kernel": 4, "ssm.inner_size": 1024, "ssm.state_size": 16}
SSM_STATE = (3 * 1024 + 16 * 1024) * 4  # conv rows + the scan state, F32, one layer


def kinds(
    arch: str, n_layer: int, scalars: dict[str, int], arrays: dict[str, list[int]]
) -> LayerKinds:
    def ints(key: str) -> int | None:
        return scalars.get(key.removeprefix(f"{arch}."))

    return layer_kinds(arch, n_layer, 512, ints, {f"{arch}.{k}": v for k, v in arrays.items()})


def test_each_family_s_attention_layers_and_state() -> None:
    assert kinds("llama", 32, {}, {}) == LayerKinds(None, 0)
    assert kinds("mamba", 24, SSM, {}) == LayerKinds(0, 24 * SSM_STATE)
    assert kinds("falcon-h1", 8, SSM, {}) == LayerKinds(None, 8 * SSM_STATE)
    heads = {"attention.head_count_kv": [0, 8, 0, 0]}  # Jamba, Granite 4 H, Nemotron-H
    assert kinds("jamba", 4, SSM, heads) == LayerKinds(1, 3 * SSM_STATE)
    interval = {**SSM, "full_attention_interval": 4}  # Qwen3.5: every 4th layer attends
    assert kinds("qwen35", 48, interval, {}) == LayerKinds(12, 36 * SSM_STATE)
    flags = {"attention.recurrent_layers": [1, 1, 1, 0]}  # a bool array in the file
    assert kinds("qwen35", 4, SSM, flags) == LayerKinds(1, 3 * SSM_STATE)
    lfm2 = kinds("lfm2", 4, {"shortconv.l_cache": 3}, {"attention.head_count_kv": [0, 8, 0, 8]})
    assert lfm2 == LayerKinds(2, 2 * 512 * 2 * 4)
    rwkv = kinds("rwkv7", 2, {"wkv.head_size": 64}, {})
    assert rwkv == LayerKinds(0, 2 * (2 * 512 + 512 * 64) * 4)
    # Layers without KV heads but no sign of a state (Nemotron-NAS's linear layers): every
    # layer counts as attention, erring high.
    assert kinds("deci", 4, {}, {"attention.head_count_kv": [0, 8, 8, 8]}) == LayerKinds(None, 0)


@pytest.mark.parametrize("write", [write_tiny_mamba_gguf, write_tiny_hybrid_gguf])
def test_the_state_a_sequence_keeps_is_what_llama_cpp_saves(
    write: Callable[[Path], Path], tmp_path: Path
) -> None:
    path = write(tmp_path / "model.gguf")
    info = read_gguf_info(path)
    engine = LlamaEngine(EngineConfig(str(path), n_ctx=64, n_threads=1, weight_repack=False))
    engine.decode([BatchEntry(0, [5], 0, True)])  # one token: its KV row is tiny
    saved = len(engine.seq_save(0))
    if info.architecture == "mamba":
        assert info.kv_layers == 0
    else:
        assert info.kv_layers == 1 and info.block_count == 3
    assert info.recurrent_state_bytes > 0
    # llama.cpp's saved state: the layers' states, one token's KV and a small header.
    assert 0 <= saved - info.recurrent_state_bytes < 4096
