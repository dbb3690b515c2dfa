"""A hybrid model (Jamba: Mamba layers between attention layers) on the real engine;
test_recurrent.py runs its engine tests on it too.

llama.cpp keeps a recurrent state and a KV cache for each of its sequences. They decode
together like any model's; neither part can be cut back to a shorter prefix, so a cached
sequence serves only a prompt that extends it whole, with the answer read from scratch.
"""

from __future__ import annotations

from typing import Any

import llama_cpp
import pytest

from appliance.engines.llamacpp import EngineConfig, LlamaEngine
from appliance.tiny_model import write_tiny_hybrid_gguf
from tests.engines.test_step_shape_llamacpp import Serve

DOC = " ".join(f"line {i} of the shared document says the same thing again." for i in range(6))


@pytest.fixture(scope="module")
def hybrid_engine(tmp_path_factory: pytest.TempPathFactory) -> LlamaEngine:
    path = write_tiny_hybrid_gguf(tmp_path_factory.mktemp("hybrid-engine") / "jamba.gguf")
    cfg = EngineConfig(str(path), n_ctx=256, n_threads=1, n_slots=3, weight_repack=False)
    return LlamaEngine(cfg)


def test_a_hybrid_model_gets_the_slots_asked_and_no_truncation(
    hybrid_engine: LlamaEngine,
) -> None:
    model = hybrid_engine._model.model
    assert llama_cpp.llama_model_is_hybrid(model)
    assert not llama_cpp.llama_model_is_recurrent(model)
    assert hybrid_engine.can_truncate is False
    assert hybrid_engine.n_slots == 3 and hybrid_engine.n_seq_max == 3


def test_a_cached_sequence_serves_only_a_prompt_that_extends_it_whole(
    hybrid_engine: LlamaEngine,
) -> None:
    serve = Serve(hybrid_engine)
    serve({"doc": (DOC[:120], 8)})
    [entry] = serve.scheduler.kv.index.entries.values()
    held = list(entry.tokens)

    def ask(rid: str, prompt_ids: list[int], **params: Any) -> None:
        frame = {"type": "generate", "id": rid, "mode": "completion", "prompt": ""}
        params = {"temperature": 0, "max_tokens": 6, **params}
        serve.scheduler.submit({**frame, "prompt_ids": prompt_ids, "params": params})
        serve.until_idle()

    ask("cached", [*held, 5, 6, 7])
    ask("fresh", [*held, 5, 6, 7], deterministic=True)
    assert serve.done("cached")["cached_tokens"] == len(held)
    assert serve.done("fresh")["cached_tokens"] == 0
    assert serve.text("cached") == serve.text("fresh") != ""

    # A prompt sharing only part of a cached sequence reads from scratch.
    ask("partial", [*held[: len(held) // 2], 5, 6, 7])
    assert serve.done("partial")["cached_tokens"] == 0
