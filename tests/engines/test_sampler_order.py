"""llama-server's `samplers`: a request's own order of the samplers that pick the token,
and only those (llama.vscode sends ["top_k", "top_p", "infill"])."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import llama_cpp

from appliance.api.samplers import sampler_order
from appliance.engines.llamacpp import EngineConfig, LlamaEngine


def chain_names(sampler: Any) -> list[str]:
    chain = sampler._chain.sampler
    count = llama_cpp.llama_sampler_chain_n(chain)
    got = [llama_cpp.llama_sampler_chain_get(chain, i) for i in range(count)]
    return [llama_cpp.llama_sampler_name(s).decode().lstrip("?") for s in got]


def test_the_requests_order_is_the_chain(tiny_gguf: Path) -> None:
    engine = LlamaEngine(EngineConfig(model_path=str(tiny_gguf), n_ctx=256, n_threads=1))
    try:
        order = sampler_order({"samplers": ["top_k", "nucleus", "infill", "penalties", "?"]})
        assert order == ("top_k", "top_p", "infill")
        ordered = engine.new_sampler({"temperature": 0.8, "sampler_order": list(order)}, [1])
        assert chain_names(ordered) == ["top-k", "top-p", "infill", "dist"]
        reversed_ = {"temperature": 0.8, "sampler_order": ["temperature", "min_p", "top_k"]}
        assert chain_names(engine.new_sampler(reversed_, [1])) == [
            "temp",
            "min-p",
            "top-k",
            "dist",
        ]
        default = chain_names(engine.new_sampler({"temperature": 0.8}, [1]))
        assert default == ["top-k", "top-p", "min-p", "temp", "dist"]
    finally:
        engine.close()
