"""A forced call's opening on the real llama.cpp engine: written as the tokenizer splits
it (not the random model's pick among the splits its grammar allows), in one step, and
the grammar goes on from there; a token the grammar refuses is never taken (llama.cpp
aborts the process on one)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from appliance.engines.llamacpp import EngineConfig, LlamaEngine
from appliance.tiny_model import TinyModelSpec, write_tiny_gguf
from tests.engines.test_step_shape_llamacpp import Serve

TEMPLATES = Path(__file__).resolve().parents[1] / "fixtures" / "chat_templates"
WEATHER: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "maxLength": 12}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}
OPENING = '<tool_call>\n{"name": "get_weather", "arguments":'


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> LlamaEngine:
    template = (TEMPLATES / "Qwen-Qwen2.5-7B-Instruct.jinja").read_text()
    path = write_tiny_gguf(
        tmp_path_factory.mktemp("jump") / "qwen.gguf", TinyModelSpec(chat_template=template)
    )
    return LlamaEngine(EngineConfig(str(path), n_ctx=2048, n_threads=1, n_slots=2))


def _call(serve: Serve, rid: str, seed: int, **params: Any) -> None:
    frame = {
        "type": "generate",
        "id": rid,
        "mode": "chat",
        "messages": [{"role": "user", "content": "weather in Paris?"}],
        "tools": [WEATHER],
        "params": {
            "temperature": 1.0,
            "seed": seed,
            "max_tokens": 200,
            "token_ids": True,
            "tool_choice": {"mode": "named", "name": "get_weather", "parallel": False},
            **params,
        },
    }
    serve.scheduler.submit(frame)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_named_call_opens_with_the_tokenizers_split_in_one_step(
    engine: LlamaEngine, seed: int
) -> None:
    serve = Serve(engine)
    _call(serve, "a", seed)
    serve.until_idle()
    ids = [i for f in serve.of("a", "token") for i in f.get("ids", [])]
    opening = engine.forced_tokens(OPENING)
    assert len(opening) > 20  # the tiny vocabulary spells it in many small pieces
    assert ids[: len(opening)] == opening
    # All of it read in the step after the prompt's, as one entry.
    n_prompt = serve.done("a")["prompt_tokens"]
    (after,) = [e for step in serve.recorder.steps for e in step if e.pos == n_prompt]
    assert list(after.tokens) == opening
    text = serve.text("a")
    assert text.startswith(OPENING) and text.endswith("</tool_call>")
    call = json.loads(text.removeprefix("<tool_call>\n").removesuffix("\n</tool_call>"))
    assert call["name"] == "get_weather" and set(call["arguments"]) == {"city"}
    assert serve.done("a")["completion_tokens"] == len(ids) + 1  # and the end of turn


def test_with_logprobs_every_token_is_sampled(engine: LlamaEngine) -> None:
    serve = Serve(engine)
    _call(serve, "a", 1, logprobs=0)
    serve.until_idle()
    # One token a step after the prompt: each has its log probability.
    n_prompt = serve.done("a")["prompt_tokens"]
    after = [e for step in serve.recorder.steps for e in step if e.pos >= n_prompt]
    assert after and all(len(e.tokens) == 1 for e in after)
    logprobs = [lp for f in serve.of("a", "token") for lp in f.get("logprobs", [])]
    assert len(logprobs) == serve.done("a")["completion_tokens"] - 1  # not the end token
    assert serve.text("a").startswith(OPENING)


def test_the_sampler_refuses_a_token_its_grammar_refuses(engine: LlamaEngine) -> None:
    params = {
        "tools": [WEATHER],
        "tool_choice": {"mode": "named", "name": "get_weather", "parallel": False},
    }
    sampler = engine.new_sampler(params)
    assert sampler.forced is not None and sampler.forced.text == OPENING
    (wrong,) = engine.forced_tokens("x")
    first = engine.forced_tokens(OPENING)[0]
    assert not sampler.accept(wrong)  # would abort the worker if taken
    assert sampler.accept(first)
    assert not sampler.accept(first)  # "<" again: the grammar has moved on
