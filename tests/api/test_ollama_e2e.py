"""Ollama's generating API (/api/chat, /api/generate, /api/embed, /api/embeddings), driven
with the official `ollama` client as the tools that speak it drive it."""

from __future__ import annotations

import json
import math

import httpx
import ollama
import pytest

from tests.daemon import Daemon, wait_for

USER = [{"role": "user", "content": "hello there"}]
GREEDY = {"temperature": 0, "num_predict": 6}


def client(d: Daemon) -> ollama.Client:
    return ollama.Client(host=d.url, timeout=60)


def test_chat_whole_and_streamed_give_the_same_answer(daemon: Daemon) -> None:
    whole = client(daemon).chat(model="tiny", messages=USER, options=GREEDY)
    assert whole.done and whole.done_reason == "length"
    assert whole.message.role == "assistant" and whole.message.content
    assert whole.eval_count == 6 and whole.prompt_eval_count and whole.prompt_eval_count > 2
    assert whole.total_duration and whole.eval_duration and whole.total_duration > 0
    parts = list(client(daemon).chat(model="tiny", messages=USER, options=GREEDY, stream=True))
    assert [p.done for p in parts] == [False] * (len(parts) - 1) + [True]
    assert "".join(p.message.content or "" for p in parts) == whole.message.content
    assert parts[-1].eval_count == 6 and parts[-1].done_reason == "length"


def test_a_thinking_models_reasoning_is_thinking_never_content(daemon: Daemon) -> None:
    answer = client(daemon).chat(model="think", messages=USER, options=GREEDY)
    assert answer.message.thinking and "<think>" not in (answer.message.content or "")
    hidden = client(daemon).chat(model="think", messages=USER, options=GREEDY, think=False)
    assert hidden.message.thinking is None
    assert hidden.message.content == answer.message.content


def test_format_schema_constrains_the_answer(daemon: Daemon) -> None:
    schema = {
        "type": "object",
        "properties": {"n": {"type": "integer"}},
        "required": ["n"],
        "additionalProperties": False,
    }
    answer = client(daemon).chat(
        model="tiny", messages=USER, format=schema, options={"num_predict": 40, "seed": 3}
    )
    assert isinstance(json.loads(answer.message.content or "")["n"], int)


def test_a_tool_exchange_in_the_history_is_read(daemon: Daemon) -> None:
    """An assistant's tool call (arguments as an object) and the tool's answer (by name)
    reach the template: the prompt grows by them."""
    call = {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}
    history = [
        *USER,
        {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "tool", "content": "sunny, 21 C", "tool_name": "get_weather"},
    ]
    short = client(daemon).chat(model="tiny", messages=USER, options=GREEDY)
    longer = client(daemon).chat(model="tiny", messages=history, options=GREEDY)
    assert longer.prompt_eval_count and short.prompt_eval_count
    assert longer.prompt_eval_count > short.prompt_eval_count + 5


def test_generate_templated_raw_and_logprobs(daemon: Daemon) -> None:
    c = client(daemon)
    templated = c.generate(model="tiny", prompt="hello there", options=GREEDY)
    chatted = c.chat(model="tiny", messages=USER, options=GREEDY)
    assert templated.response == chatted.message.content  # the same prompt, templated
    raw = c.generate(model="tiny", prompt="hello there", raw=True, options=GREEDY)
    assert raw.response and raw.prompt_eval_count and templated.prompt_eval_count
    assert raw.prompt_eval_count < templated.prompt_eval_count  # no template around it
    scored = c.generate(model="tiny", prompt="hello", options=GREEDY, logprobs=True, top_logprobs=2)
    assert scored.logprobs and len(scored.logprobs[0].top_logprobs or []) == 2
    # A suffix asks for the middle: this model has no FIM tokens.
    with pytest.raises(ollama.ResponseError) as err:
        c.generate(model="tiny", prompt="def f(", suffix="\n", options=GREEDY)
    assert err.value.status_code == 501 and "FIM" in err.value.error


def test_an_empty_prompt_loads_and_keep_alive_zero_unloads(daemon: Daemon) -> None:
    c = client(daemon)
    loaded = c.generate(model="think", prompt="")
    assert loaded.done and loaded.done_reason == "load"
    assert daemon.model("think")["state"] == "ready"
    unloaded = c.generate(model="think", prompt="", keep_alive=0)
    assert unloaded.done_reason == "unload" and daemon.model("think")["pid"] is None


def test_embed_and_the_older_embeddings(daemon: Daemon) -> None:
    c = client(daemon)
    vectors = c.embed(model="tiny-embed", input=["one", "two"]).embeddings
    assert len(vectors) == 2 and len(vectors[0]) == len(vectors[1]) > 8
    assert math.isclose(sum(x * x for x in vectors[0]), 1.0, rel_tol=1e-3)
    single = c.embeddings(model="tiny-embed", prompt="one").embedding
    assert single == pytest.approx(vectors[0], rel=1e-4)
    short = c.embed(model="tiny-embed", input="one", dimensions=8).embeddings[0]
    assert len(short) == 8 and math.isclose(sum(x * x for x in short), 1.0, rel_tol=1e-3)
    scale = short[0] / vectors[0][0]
    assert short == pytest.approx([x * scale for x in vectors[0][:8]], rel=1e-3)


def test_errors_are_in_ollamas_shape(daemon: Daemon) -> None:
    with pytest.raises(ollama.ResponseError) as err:
        client(daemon).chat(model="nope", messages=USER)
    assert err.value.status_code == 404 and "nope" in err.value.error
    r = httpx.post(daemon.url + "/api/chat", json={"model": "tiny", "options": 3}, timeout=30)
    assert r.status_code == 400 and set(r.json()) == {"error"}, r.text
    images = {"model": "tiny", "messages": [{"role": "user", "content": "x", "images": ["aGk="]}]}
    r = httpx.post(daemon.url + "/api/chat", json=images, timeout=30)
    assert r.status_code == 400 and "Images" in r.json()["error"]


def test_keep_alive_is_what_the_last_request_said(daemon: Daemon) -> None:
    c = client(daemon)
    c.chat(model="think", messages=USER, options=GREEDY, keep_alive="30m")
    assert daemon.model("think")["keep_alive_s"] == 1800
    c.chat(model="think", messages=USER, options=GREEDY, keep_alive=-1)
    assert daemon.model("think")["keep_alive_s"] is None  # for ever
    c.chat(model="think", messages=USER, options=GREEDY, keep_alive=0)
    wait_for(lambda: daemon.model("think")["pid"] is None, timeout=20)  # unloaded once idle
    c.chat(model="think", messages=USER, options=GREEDY)
    assert daemon.model("think")["keep_alive_s"] == 300  # the configured one again
    with pytest.raises(ollama.ResponseError) as err:
        c.chat(model="think", messages=USER, keep_alive="soon")
    assert err.value.status_code == 400 and "keep_alive" in err.value.error
