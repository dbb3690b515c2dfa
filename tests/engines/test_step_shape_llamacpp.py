"""Split KV on the real llama.cpp engine: an idle stream padded between decoding ones
(one micro-batch instead of two) leaves every request the tokens it gets alone, and the
pad is taken back, so the idle stream's cached prompt stays as it was."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from appliance.engines.engine import BatchEntry
from appliance.engines.llamacpp import EngineConfig, LlamaEngine
from tests.engines.test_scheduler import Run


class Recorder:
    """The engine, with every step's entries kept (to see the steps' shapes)."""

    def __init__(self, engine: LlamaEngine) -> None:
        self.engine = engine
        self.steps: list[list[BatchEntry]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.engine, name)

    def decode(self, entries: list[BatchEntry]) -> list[int]:
        self.steps.append(list(entries))
        return self.engine.decode(entries)


@pytest.fixture(scope="module")
def engine(models_dir: Path) -> LlamaEngine:
    cfg = EngineConfig(str(models_dir / "tiny.gguf"), n_ctx=256, n_threads=1, n_slots=3)
    return LlamaEngine(cfg)


class Serve(Run):
    """A scheduler over the engine (its KV emptied first), fed text prompts."""

    def __init__(self, engine: LlamaEngine, **kw: Any) -> None:
        for seq_id in range(engine.n_seq_max):
            engine.seq_clear(seq_id)
        self.recorder = Recorder(engine)
        super().__init__(engine=self.recorder, slots=3, **kw)  # type: ignore[arg-type]

    def __call__(self, requests: dict[str, tuple[str, int]]) -> None:
        for rid, (prompt, max_tokens) in requests.items():
            params = {"temperature": 0, "max_tokens": max_tokens}
            frame = {"type": "generate", "id": rid, "mode": "completion", "prompt": prompt}
            self.scheduler.submit({**frame, "params": params})
        self.until_idle()


def test_padded_steps_answer_as_alone_and_keep_the_idle_stream(engine: LlamaEngine) -> None:
    assert engine.gap_fill_tokens >= 1 and not engine.prefix_copy
    prompts = {
        "a": "the first request reads a prompt of some length, then answers at length",
        "b": "the second one stops after a single token",
        "c": "the third request is also a long answer to a prompt",
    }
    limits = {"a": 12, "b": 1, "c": 12}
    alone = {}
    for rid, prompt in prompts.items():
        serve = Serve(engine)
        serve({rid: (prompt, limits[rid])})
        alone[rid] = serve.text(rid)
    serve = Serve(engine)
    serve({rid: (prompt, limits[rid]) for rid, prompt in prompts.items()})
    for rid in prompts:
        assert alone[rid] and serve.text(rid) == alone[rid], rid
    # Steps carried b's stream (id 1, idle once b was done) a pad between a's and c's rows.
    steps = serve.recorder.steps
    padded = [s for s in steps if any(e.seq_id == 1 and not e.logits for e in s)]
    assert padded
    assert all([e.seq_id for e in step] == [0, 1, 2] for step in padded)
    # The pad was taken back: b's prompt is still cached whole in its stream.
    serve({"b2": (prompts["b"] + " again", 1)})
    (done,) = [f for f in serve.frames if f["id"] == "b2" and f["type"] == "done"]
    assert done["cached_tokens"] >= len(engine.prompt_tokens(prompts["b"], templated=False)) - 1
