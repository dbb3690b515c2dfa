"""The Anthropic Messages API with the official `anthropic` client: text (streamed and
not), tool use with a tool_result round trip, token counting, usage split by the prompt
cache (message_start's usage too), thinking blocks (their signature, and sent back in
the history), and the models listed and read in Anthropic's shape."""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any, Literal

import httpx
import pytest

from appliance.api.anthropic import to_chat_body as anthropic_to_chat
from tests.api.test_tools_e2e import (  # noqa: F401  (the fixtures)
    WEATHER,
    qwen3_daemon,
    tools_daemon,
)
from tests.daemon import Daemon

anthropic = pytest.importorskip("anthropic", reason="the anthropic SDK (dev extra)")

TOOL: dict[str, Any] = {
    "name": WEATHER["function"]["name"],
    "description": WEATHER["function"]["description"],
    "input_schema": WEATHER["function"]["parameters"],
}


def client(d: Daemon) -> Any:
    return anthropic.Anthropic(base_url=d.url, api_key="x", max_retries=0, timeout=120)


def prompt_of(usage: Any) -> int:
    """The whole prompt: Anthropic's input_tokens leave out what the cache supplied."""
    return int(usage.input_tokens) + int(usage.cache_read_input_tokens or 0)


def test_text_message_streamed_and_not(tools_daemon: Daemon) -> None:  # noqa: F811
    c = client(tools_daemon)
    kw: dict[str, Any] = {
        "model": "tiny",
        "max_tokens": 8,
        "system": "Be brief.",
        "messages": [{"role": "user", "content": "hello"}],
        # This SDK no longer has a temperature argument: greedy, so both answers agree.
        "extra_body": {"temperature": 0},
    }
    m = c.messages.create(**kw)
    assert m.type == "message" and m.role == "assistant"
    assert m.stop_reason in ("end_turn", "max_tokens")
    assert m.content and m.content[0].type == "text"
    assert m.usage.input_tokens > 3 and m.usage.output_tokens >= 1
    with c.messages.stream(**kw) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == m.content[0].text == final.content[0].text


def test_a_matched_stop_sequence_is_named(tools_daemon: Daemon) -> None:  # noqa: F811
    """stop_reason "stop_sequence" and the string that matched, as Anthropic reports it."""
    c = client(tools_daemon)
    kw: dict[str, Any] = {
        "model": "tiny",
        "max_tokens": 24,
        "messages": [{"role": "user", "content": "hello"}],
        "extra_body": {"temperature": 0},
    }
    free = c.messages.create(**kw).content[0].text
    assert len(free) > 6
    stop = free[4:6]
    head = free[: free.index(stop)]
    m = c.messages.create(**kw, stop_sequences=["never-in-gibberish", stop])
    assert (m.stop_reason, m.stop_sequence) == ("stop_sequence", stop)
    assert m.content[0].text == head
    with c.messages.stream(**kw, stop_sequences=[stop]) as stream:
        assert "".join(stream.text_stream) == head
        final = stream.get_final_message()
    assert (final.stop_reason, final.stop_sequence) == ("stop_sequence", stop)
    ended = c.messages.create(**{**kw, "max_tokens": 2})
    assert ended.stop_sequence is None and ended.stop_reason in ("max_tokens", "end_turn")


def test_tool_use_round_trip(tools_daemon: Daemon) -> None:  # noqa: F811
    c = client(tools_daemon)
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Weather in Paris?"}]
    m = c.messages.create(
        model="qwen-tools",
        max_tokens=300,
        tools=[TOOL],
        tool_choice={"type": "any", "disable_parallel_tool_use": True},
        messages=messages,
        extra_body={"seed": 3},
    )
    assert m.stop_reason == "tool_use"
    uses = [b for b in m.content if b.type == "tool_use"]
    assert len(uses) == 1 and uses[0].name == "get_weather"
    assert set(uses[0].input) == {"city", "unit"}
    messages.append({"role": "assistant", "content": [b.model_dump() for b in m.content]})
    messages.append(
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": uses[0].id, "content": "18 C"}],
        }
    )
    final = c.messages.create(
        model="qwen-tools",
        max_tokens=12,
        tools=[TOOL],
        messages=messages,
        extra_body={"temperature": 0},
    )
    assert final.stop_reason in ("end_turn", "max_tokens")
    assert prompt_of(final.usage) > prompt_of(m.usage)
    with c.messages.stream(
        model="qwen-tools",
        max_tokens=300,
        tools=[TOOL],
        tool_choice={"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
        messages=messages[:1],
        extra_body={"seed": 4},
    ) as stream:
        streamed = stream.get_final_message()
    assert [b.type for b in streamed.content if b.type == "tool_use"] == ["tool_use"]


def test_count_tokens_matches_the_prompt(tools_daemon: Daemon) -> None:  # noqa: F811
    c = client(tools_daemon)
    kw: dict[str, Any] = {"model": "tiny", "messages": [{"role": "user", "content": "hello"}]}
    counted = c.messages.count_tokens(**kw)
    m = c.messages.create(max_tokens=1, **kw)
    assert counted.input_tokens == prompt_of(m.usage) > 0


def test_a_system_message_among_the_turns(tools_daemon: Daemon) -> None:  # noqa: F811
    """Claude Code (2.1, beta mid-conversation-system) sends a `system` message after the
    first user turn: every request was a 400 ('messages[1].role' must be 'user' or
    'assistant'). It is a system turn where it stands, read by the model (counted and
    answered)."""
    turns: list[dict[str, Any]] = [
        {"role": "user", "content": [{"type": "text", "text": "hello"}]},
        {"role": "system", "content": "Agents available: Explore, Plan."},
        {"role": "assistant", "content": "Hi."},
        {"role": "user", "content": "List the files."},
    ]
    chat = anthropic_to_chat({"max_tokens": 8, "system": "Be brief.", "messages": turns})
    assert [(m["role"], m["content"]) for m in chat["messages"][:3]] == [
        ("system", "Be brief."),
        ("user", "hello"),
        ("system", "Agents available: Explore, Plan."),
    ]
    body: dict[str, Any] = {"model": "tiny", "messages": turns}
    without = [t for t in turns if t["role"] != "system"]
    url = tools_daemon.url + "/v1/messages"
    counted = httpx.post(url + "/count_tokens?beta=true", json=body, timeout=60)
    fewer = httpx.post(url + "/count_tokens", json={**body, "messages": without}, timeout=60)
    assert counted.status_code == 200, counted.text
    assert counted.json()["input_tokens"] > fewer.json()["input_tokens"]
    events = sse_events(tools_daemon, {**body, "max_tokens": 4, "stream": True})
    assert events[0]["type"] == "message_start" and events[-1]["type"] == "message_stop"
    with pytest.raises(anthropic.BadRequestError, match=re.escape("messages[0].role")):
        client(tools_daemon).messages.create(
            model="tiny", max_tokens=4, messages=[{"role": "tool", "content": "x"}]
        )


def sse_events(d: Daemon, body: dict[str, Any]) -> list[dict[str, Any]]:
    with httpx.stream("POST", d.url + "/v1/messages", json=body, timeout=120) as r:
        r.raise_for_status()
        return [json.loads(line[6:]) for line in r.iter_lines() if line.startswith("data: ")]


USAGE_KEYS = {
    "input_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
    "output_tokens",
}


def test_usage_splits_the_prompt_cache_like_anthropic(qwen3_daemon: Daemon) -> None:  # noqa: F811
    """input_tokens + cache_read_input_tokens is the prompt; the repeat reads it from the
    cache (llama-server's test_anthropic_messages_basic wants cache_read_input_tokens)."""
    body: dict[str, Any] = {
        "model": "tiny",
        "max_tokens": 4,
        "temperature": 0,
        "system": "You answer questions about usage accounting.",
        "messages": [{"role": "user", "content": "how many tokens were read from the cache?"}],
    }
    counted = qwen3_daemon.post("/v1/messages/count_tokens", json=body).json()["input_tokens"]
    first = qwen3_daemon.post("/v1/messages", json=body).json()["usage"]
    assert set(first) == USAGE_KEYS
    assert all(isinstance(v, int) for v in first.values())
    assert first["input_tokens"] + first["cache_read_input_tokens"] == counted
    assert first["cache_creation_input_tokens"] == 0 and first["output_tokens"] >= 1
    again = qwen3_daemon.post("/v1/messages", json=body).json()["usage"]
    assert again["cache_read_input_tokens"] > 0
    assert again["input_tokens"] + again["cache_read_input_tokens"] == counted

    events = sse_events(qwen3_daemon, {**body, "stream": True})
    start = events[0]["message"]["usage"]
    assert set(start) == USAGE_KEYS and start["output_tokens"] == 0
    delta = next(e for e in events if e["type"] == "message_delta")["usage"]
    assert set(delta) == USAGE_KEYS
    assert delta["cache_read_input_tokens"] > 0
    assert delta["input_tokens"] + delta["cache_read_input_tokens"] == counted

    # This SDK has no temperature argument.
    sdk = {k: v for k, v in body.items() if k != "temperature"}
    with client(qwen3_daemon).messages.stream(**sdk, extra_body={"temperature": 0}) as stream:
        final = stream.get_final_message()
    assert final.usage.cache_read_input_tokens > 0 and prompt_of(final.usage) == counted


def test_message_start_has_the_final_cache_split(qwen3_daemon: Daemon) -> None:  # noqa: F811
    """message_start's usage splits the prompt as the final usage does, as Anthropic's:
    the same long prompt sent twice, the second read from the prompt cache."""
    c = client(qwen3_daemon)
    kw: dict[str, Any] = {
        "model": "tiny",
        "max_tokens": 3,
        "system": "You keep a ledger of what the cache held. " * 12,
        "messages": [{"role": "user", "content": "Which of these rows were cached twice?"}],
        "extra_body": {"temperature": 0},
    }
    counted = c.messages.count_tokens(**{k: kw[k] for k in ("model", "system", "messages")})
    assert counted.input_tokens > 100

    def streamed() -> tuple[Any, Any]:
        with c.messages.stream(**kw) as stream:
            events = list(stream)
            final = stream.get_final_message()
        assert events[0].type == "message_start"
        return events[0].message.usage, final.usage

    for turn in range(2):
        start, final = streamed()
        split = (start.input_tokens, start.cache_read_input_tokens)
        assert split == (final.input_tokens, final.cache_read_input_tokens), (turn, start, final)
        assert prompt_of(start) == counted.input_tokens
        assert start.output_tokens == 0 and final.output_tokens >= 1
        assert start.cache_creation_input_tokens == 0
    # the second read most of the prompt from the cache
    assert start.cache_read_input_tokens > counted.input_tokens // 2
    assert start.input_tokens < counted.input_tokens // 2


def test_thinking_block_gets_a_signature_before_it_closes(qwen3_daemon: Daemon) -> None:  # noqa: F811
    """Anthropic sends a signature_delta before a thinking block's content_block_stop;
    a local model's signature is empty (as llama-server's)."""
    body: dict[str, Any] = {
        "model": "think",
        "max_tokens": 6,
        "messages": [{"role": "user", "content": "think first"}],
        "stream": True,
    }
    events = sse_events(qwen3_daemon, body)
    starts = [e for e in events if e["type"] == "content_block_start"]
    assert starts and starts[0]["content_block"]["type"] == "thinking"
    blocks = [e for e in events if e.get("index") == starts[0]["index"]]
    assert [e["type"] for e in blocks[-2:]] == ["content_block_delta", "content_block_stop"]
    assert blocks[-2]["delta"] == {"type": "signature_delta", "signature": ""}
    signatures = [e for e in events if e.get("delta", {}).get("type") == "signature_delta"]
    assert len(signatures) == 1  # one thinking block, one signature

    del body["stream"]
    with client(qwen3_daemon).messages.stream(**body) as stream:
        final = stream.get_final_message()
    assert final.content[0].type == "thinking" and final.content[0].signature == ""
    whole = client(qwen3_daemon).messages.create(**body)
    assert whole.content[0].type == "thinking" and whole.content[0].signature == ""


def test_thinking_blocks_in_the_history_reach_the_template(qwen3_daemon: Daemon) -> None:  # noqa: F811
    """An assistant turn's thinking block becomes its reasoning_content, which Qwen3's
    template shows within the tool-use loop (llama-server's
    test_anthropic_thinking_history_in_count_tokens); a redacted one is dropped."""
    tool = {
        "name": "list_files",
        "description": "List files",
        "input_schema": {
            "type": "object",
            "properties": {"path": {"type": "string"}},
            "required": ["path"],
        },
    }
    use = {"type": "tool_use", "id": "call_1", "name": "list_files", "input": {"path": "."}}
    thought = "I should check the project structure first."

    def count(assistant: list[dict[str, Any]]) -> int:
        messages = [
            {"role": "user", "content": "Fix the bug"},
            {"role": "assistant", "content": assistant},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "call_1", "content": "a.py"}],
            },
        ]
        body = {"model": "qwen3", "messages": messages, "tools": [tool]}
        r = qwen3_daemon.post("/v1/messages/count_tokens", json=body)
        assert r.status_code == 200, r.text
        return int(r.json()["input_tokens"])

    plain = count([use])
    with_thinking = count([{"type": "thinking", "thinking": thought, "signature": ""}, use])
    redacted = count([{"type": "redacted_thinking", "data": "opaque"}, use])
    assert with_thinking > plain + 5
    assert redacted == plain


def test_the_sdks_tool_runner_falls_back_from_message_threads(tools_daemon: Daemon) -> None:  # noqa: F811
    """The SDK's tool runner asks the server to keep the history (`thread`). It was
    ignored, so the runner's second turn sent only the tool result, without the tools
    (a 400 under tool_choice any); the `thread_unsupported_request` error makes it send
    the whole conversation, and the loop runs."""
    calls: list[str] = []

    @anthropic.beta_tool
    def get_weather(city: Literal["Paris", "Oslo"]) -> str:
        """The weather in a city (a closed list: the random model's strings run long)."""
        calls.append(city)
        return "18 C"

    c = client(tools_daemon)
    runner = c.beta.messages.tool_runner(
        model="qwen-tools",
        max_tokens=300,
        tools=[get_weather],
        tool_choice={"type": "any", "disable_parallel_tool_use": True},
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        max_iterations=2,
        extra_body={"seed": 3},
    )
    replies = list(runner)
    assert len(replies) == 2 and len(calls) == 2
    assert all(r.stop_reason == "tool_use" for r in replies)
    r = httpx.post(
        tools_daemon.url + "/v1/messages",
        json={
            "model": "qwen-tools",
            "max_tokens": 4,
            "thread": {"type": "create"},
            "messages": [{"role": "user", "content": "hi"}],
        },
        timeout=60,
    )
    assert r.status_code == 400
    assert r.json()["error"]["details"]["error_code"] == "thread_unsupported_request"


RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def anthropic_get(d: Daemon, path: str) -> Any:
    r = httpx.get(d.url + path, headers={"anthropic-version": "2023-06-01"}, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def test_models_in_anthropics_shape(tools_daemon: Daemon) -> None:  # noqa: F811
    """The anthropic SDK's models.list() and retrieve() read Anthropic's shape, paged
    with limit, after_id and before_id; the same paths without `anthropic-version` keep
    OpenAI's shape."""
    c = client(tools_daemon)
    openai_shape = tools_daemon.get("/v1/models").json()
    assert set(openai_shape) == {"object", "data"} and openai_shape["object"] == "list"
    ids = [m["id"] for m in openai_shape["data"]]
    assert len(ids) >= 6 and all(m["object"] == "model" for m in openai_shape["data"])

    listed = list(c.models.list())
    assert [m.id for m in listed] == ids  # the same models, in the same order
    for m in listed:
        assert m.type == "model" and m.display_name == m.id and m.lifecycle == "active"
        assert isinstance(m.created_at, datetime)
    raw = anthropic_get(tools_daemon, "/v1/models")
    assert set(raw) == {"data", "has_more", "first_id", "last_id"}
    assert raw["has_more"] is False and (raw["first_id"], raw["last_id"]) == (ids[0], ids[-1])
    assert set(raw["data"][0]) == {"type", "id", "display_name", "created_at", "lifecycle"}
    assert all(RFC3339.match(m["created_at"]) for m in raw["data"])

    page = c.models.list(limit=2)
    assert [m.id for m in page.data] == ids[:2] and page.has_more
    assert (page.first_id, page.last_id) == (ids[0], ids[1])
    assert [m.id for m in c.models.list(limit=2)] == ids  # the SDK pages through all
    after = c.models.list(after_id=ids[1], limit=3)
    assert [m.id for m in after.data] == ids[2:5] and after.has_more == (len(ids) > 5)
    before = c.models.list(before_id=ids[4], limit=2)
    assert [m.id for m in before.data] == ids[2:4] and before.has_more
    # paging backwards from before_id reaches the first model
    assert [m.id for m in c.models.list(before_id=ids[4], limit=3)] == ids[1:4] + ids[:1]
    first = c.models.list(before_id=ids[2], limit=5)
    assert [m.id for m in first.data] == ids[:2] and not first.has_more
    assert c.models.list(lifecycle=["retired"]).data == []
    assert [m.id for m in c.models.list(lifecycle=["active"], limit=100)] == ids

    one = c.models.retrieve("tiny")
    assert (one.type, one.id, one.display_name, one.lifecycle) == (
        "model",
        "tiny",
        "tiny",
        "active",
    )
    assert c.models.retrieve("tiny-alias").id == "tiny"  # an alias names its model
    read = anthropic_get(tools_daemon, "/v1/models/tiny")
    assert read == raw["data"][ids.index("tiny")]
    assert tools_daemon.get("/v1/models/tiny").json()["object"] == "model"  # OpenAI's
    with pytest.raises(anthropic.NotFoundError) as missing:
        c.models.retrieve("no-such-model")
    assert missing.value.body["error"]["type"] == "not_found_error"


def test_structured_output_parses_into_the_callers_model(daemon: Daemon) -> None:
    """The SDK's messages.parse sends output_config.format (older builds output_format): the
    answer follows the schema, as Anthropic's does; it was free text and parse failed."""
    from pydantic import BaseModel

    class City(BaseModel):  # bounded fields: a random model cannot ramble in them
        big: bool
        size: Literal["small", "large"]

    message = client(daemon).messages.parse(
        model="tiny",
        max_tokens=60,
        output_format=City,
        messages=[{"role": "user", "content": "a city"}],
    )
    assert isinstance(message.parsed_output, City)
    schema = City.model_json_schema()
    older = httpx.post(
        daemon.url + "/v1/messages",
        json={
            "model": "tiny",
            "max_tokens": 60,
            "messages": [{"role": "user", "content": "a city"}],
            "output_format": {"type": "json_schema", "schema": schema},
        },
        timeout=60,
    ).json()
    assert City.model_validate_json(older["content"][0]["text"])
    bad = {"model": "tiny", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}
    r = httpx.post(
        daemon.url + "/v1/messages", json={**bad, "output_format": {"type": "xml"}}, timeout=60
    )
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"


def test_an_answer_cut_at_the_context_end_says_so(daemon: Daemon) -> None:
    """Claude Code asks for max_tokens 32000: an answer cut at the context's end said
    "max_tokens", and Claude Code told the user it exceeded the 32000-token maximum. It
    is "model_context_window_exceeded", as Anthropic's; max_tokens reached stays so."""
    long_text = {
        "type": "object",
        "properties": {"text": {"type": "string", "minLength": 2000}},
        "required": ["text"],
    }
    body: dict[str, Any] = {
        "model": "tiny",  # a 512-token context
        "messages": [{"role": "user", "content": "write"}],
        "output_config": {"format": {"type": "json_schema", "schema": long_text}},
    }
    cut = client(daemon).messages.create(max_tokens=32000, **body)
    assert cut.stop_reason == "model_context_window_exceeded"
    assert prompt_of(cut.usage) + cut.usage.output_tokens == 512
    events = sse_events(daemon, {**body, "max_tokens": 32000, "stream": True})
    (delta,) = [e for e in events if e["type"] == "message_delta"]
    assert delta["delta"]["stop_reason"] == "model_context_window_exceeded"
    short = client(daemon).messages.create(max_tokens=5, **body)
    assert short.stop_reason == "max_tokens" and short.usage.output_tokens == 5
