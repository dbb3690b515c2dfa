"""The Responses API with the official `openai` client: text (streamed and not), a
function-call round trip, previous_response_id, the stored response, reasoning items
sent back to the model, logprobs on the output text, an answer cut by
max_output_tokens (incomplete, as OpenAI's), and a stored response's input items."""

from __future__ import annotations

import json
import time
from typing import Any

import openai
import pytest

from appliance.api.errors import APIError
from appliance.api.responses import ResponseBuilder
from appliance.api.responses_request import input_messages, to_chat_body
from tests.api.test_http_errors import assert_error
from tests.api.test_tools_e2e import (  # noqa: F401  (the fixtures)
    WEATHER,
    qwen3_daemon,
    tools_daemon,
)
from tests.daemon import Daemon

FLAT_WEATHER: dict[str, Any] = {"type": "function", **WEATHER["function"]}
OK_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"ok": {"type": "boolean"}},
    "required": ["ok"],
    "additionalProperties": False,
}
# The grammar ends the answer: a random-weight model's reply that completes.
JSON_OK: Any = {"format": {"type": "json_schema", "name": "x", "schema": OK_SCHEMA, "strict": True}}


def client(d: Daemon) -> openai.OpenAI:
    return openai.OpenAI(base_url=d.v1, api_key="x", max_retries=0, timeout=120)


def test_text_response_and_its_stored_copy(tools_daemon: Daemon) -> None:  # noqa: F811
    c = client(tools_daemon)
    r = c.responses.create(
        model="tiny", input="hello", instructions="Be brief.", max_output_tokens=8
    )
    assert r.object == "response" and r.id.startswith("resp_")
    assert r.status in ("completed", "incomplete")
    assert r.output and r.output[0].type == "message"
    assert r.output_text == r.output[0].content[0].text
    assert r.usage is not None and r.usage.output_tokens >= 1
    if r.status == "incomplete":
        assert r.incomplete_details is not None
        assert r.incomplete_details.reason == "max_output_tokens"
    assert c.responses.retrieve(r.id).output_text == r.output_text
    with pytest.raises(openai.NotFoundError):
        c.responses.retrieve("resp_missing")


def test_streamed_events_add_up_to_the_response(tools_daemon: Daemon) -> None:  # noqa: F811
    c = client(tools_daemon)
    kinds: list[str] = []
    text = ""
    final = None
    kw: Any = {"model": "tiny", "input": "hello", "text": JSON_OK, "max_output_tokens": 60}
    with c.responses.stream(**kw) as stream:
        for event in stream:
            kinds.append(event.type)
            if event.type == "response.output_text.delta":
                text += event.delta
        final = stream.get_final_response()
    assert kinds[0] == "response.created"
    assert kinds[-1] == "response.completed"
    assert "response.output_item.added" in kinds and "response.output_item.done" in kinds
    assert final.output_text == text and final.status == "completed"
    assert final.output[0].status == "completed"
    assert c.responses.retrieve(final.id).output[0].status == "completed"


def test_function_call_round_trip_with_previous_response_id(
    tools_daemon: Daemon,  # noqa: F811
) -> None:
    c = client(tools_daemon)
    first = c.responses.create(
        model="qwen-tools",
        input="Weather in Paris?",
        tools=[FLAT_WEATHER],
        tool_choice="required",
        parallel_tool_calls=False,
        max_output_tokens=300,
    )
    calls = [o for o in first.output if o.type == "function_call"]
    assert len(calls) == 1 and calls[0].name == "get_weather"
    args = json.loads(calls[0].arguments)
    assert set(args) == {"city", "unit"}
    second = c.responses.create(
        model="qwen-tools",
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": calls[0].call_id, "output": "18 C"}],
        tools=[FLAT_WEATHER],
        max_output_tokens=12,
    )
    assert second.status in ("completed", "incomplete")
    assert second.usage is not None and first.usage is not None
    assert second.usage.input_tokens > first.usage.input_tokens  # the history was read
    # Its input items are its own input (the output of its previous response is not one)
    output: Any
    (output,) = c.responses.input_items.list(second.id)
    assert output.type == "function_call_output" and output.call_id == calls[0].call_id
    assert output.id.startswith("fco_") and output.output == "18 C"
    with pytest.raises(openai.NotFoundError):
        c.responses.create(model="tiny", input="x", previous_response_id="resp_gone")


def test_codex_tools_namespaced_functions_and_web_search(
    tools_daemon: Daemon,  # noqa: F811
) -> None:
    """Codex offers its sub-agent tools in a `namespace` and a `web_search` tool by
    default: every request was a 400 ('only function tools'). The namespace's functions
    are offered by their names and a call to one names its namespace, streamed and not;
    web search is left out; a tool_choice demanding it, or an unknown tool, is refused."""
    c = client(tools_daemon)
    tools: Any = [
        {
            "type": "namespace",
            "name": "weather_v1",
            "description": "Weather.",
            "tools": [{**FLAT_WEATHER, "defer_loading": True}],
        },
        {"type": "web_search", "external_web_access": False},
    ]
    kw: Any = {
        "model": "qwen-tools",
        "input": "Weather in Paris?",
        "tools": tools,
        "tool_choice": "required",
        "max_output_tokens": 300,
    }
    r = c.responses.create(**kw)
    (call,) = [o for o in r.output if o.type == "function_call"]
    assert (call.namespace, call.name) == ("weather_v1", "get_weather")
    assert set(json.loads(call.arguments)) == {"city", "unit"}
    added = done = None
    with c.responses.stream(**kw) as stream:
        for event in stream:
            if event.type == "response.output_item.added" and event.item.type == "function_call":
                added = event.item
            if event.type == "response.output_item.done" and event.item.type == "function_call":
                done = event.item
    assert added is not None and done is not None
    assert added.namespace == done.namespace == "weather_v1" and done.name == "get_weather"
    # The call replayed as input (Codex sends the whole history) goes back to the model.
    again = c.responses.create(
        model="qwen-tools",
        input=[
            {"type": "message", "role": "user", "content": "Weather in Paris?"},
            call.model_dump(exclude_none=True),
            {"type": "function_call_output", "call_id": call.call_id, "output": "18 C"},
        ],
        tools=tools,
        max_output_tokens=4,
    )
    assert again.usage is not None and r.usage is not None
    assert again.usage.input_tokens > r.usage.input_tokens
    with pytest.raises(openai.BadRequestError, match="tool_choice"):
        c.responses.create(**{**kw, "tool_choice": {"type": "web_search"}})
    with pytest.raises(openai.BadRequestError, match=r"tools\[1\]"):
        c.responses.create(**{**kw, "tools": [FLAT_WEATHER, {"type": "file_search"}]})


def test_structured_output_and_bad_input(tools_daemon: Daemon) -> None:  # noqa: F811
    c = client(tools_daemon)
    r = c.responses.create(model="tiny", input="answer in JSON", text=JSON_OK, max_output_tokens=60)
    assert isinstance(json.loads(r.output_text)["ok"], bool)
    with pytest.raises(openai.BadRequestError, match="input"):
        c.responses.create(model="tiny", input=[{"type": "computer_call"}])


def test_reasoning_items_go_back_to_the_template(qwen3_daemon: Daemon) -> None:  # noqa: F811
    """A reasoning item in the input becomes the reasoning_content of the assistant turn
    after it, which Qwen3's template shows within the tool-use loop; its text is read
    from `content` or else `summary`; an encrypted-only one is dropped."""
    c = client(qwen3_daemon)
    tool = {
        "type": "function",
        "name": "list_files",
        "description": "List files",
        "parameters": {
            "type": "object",
            "properties": {"path": {"type": "string"}},
            "required": ["path"],
        },
    }
    thought = "I should check the project structure first."

    def prompt_tokens(reasoning: list[dict[str, Any]]) -> int:
        items: list[Any] = [
            {"role": "user", "content": "Fix the bug"},
            *reasoning,
            {"type": "function_call", "call_id": "c1", "name": "list_files", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c1", "output": "a.py"},
        ]
        r = c.responses.create(model="qwen3", input=items, tools=[tool], max_output_tokens=1)
        assert r.usage is not None
        return r.usage.input_tokens

    summary = {"type": "summary_text", "text": thought}
    plain = prompt_tokens([])
    from_summary = prompt_tokens([{"type": "reasoning", "id": "rs_1", "summary": [summary]}])
    from_content = prompt_tokens(
        [
            {
                "type": "reasoning",
                "id": "rs_2",
                "summary": [],
                "content": [{"type": "reasoning_text", "text": thought}],
            }
        ]
    )
    encrypted = prompt_tokens(
        [{"type": "reasoning", "id": "rs_3", "summary": [], "encrypted_content": "opaque"}]
    )
    assert from_summary == from_content > plain + 5
    assert encrypted == plain


def test_reasoning_joins_the_assistant_turn_and_the_stored_history() -> None:
    thought = {"type": "reasoning", "summary": [{"type": "summary_text", "text": "plan"}]}
    call = {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"}
    said = {"type": "message", "role": "assistant", "content": "done"}
    messages = input_messages(
        [{"role": "user", "content": "go"}, thought, call, {**call, "call_id": "c2"}, thought, said]
    )
    assert [m["role"] for m in messages] == ["user", "assistant", "assistant"]
    assert messages[1]["reasoning_content"] == "plan"
    assert [t["id"] for t in messages[1]["tool_calls"]] == ["c1", "c2"]
    assert messages[2] == {"role": "assistant", "content": "done", "reasoning_content": "plan"}
    # reasoning that no assistant output follows is dropped
    assert input_messages([thought, {"role": "user", "content": "hi"}]) == [
        {"role": "user", "content": "hi"}
    ]

    builder = ResponseBuilder({}, "m", "resp_1")
    builder.feed({"reasoning_content": "because"})
    builder.feed({"content": "answer"})
    builder.finish("stop", {})
    assert builder.as_history() == [
        {"role": "assistant", "content": "answer", "reasoning_content": "because"}
    ]


LOGPROBS = ["message.output_text.logprobs"]


def test_logprobs_on_the_output_text_streamed_and_not(tools_daemon: Daemon) -> None:  # noqa: F811
    """`include` message.output_text.logprobs with `top_logprobs` puts each token's
    logprob and its likeliest alternatives on the output_text part, and on the
    `response.output_text.delta` events when streaming."""
    c = client(tools_daemon)
    kw: dict[str, Any] = {
        "model": "tiny",
        "input": "hi",
        "max_output_tokens": 3,
        "temperature": 0,
        "top_logprobs": 2,
        "include": LOGPROBS,
    }
    r = c.responses.create(**kw)
    part = r.output[0].content[0]
    assert part.type == "output_text" and part.logprobs is not None
    assert r.usage is not None and len(part.logprobs) == r.usage.output_tokens == 3
    assert r.top_logprobs == 2 and part.logprobs[0].token == part.text[0]
    for e in part.logprobs:
        assert e.logprob <= 0.0 and e.bytes
        assert len(e.top_logprobs) == 2 and e.top_logprobs[0].token == e.token  # greedy
    stored = c.responses.retrieve(r.id).output[0].content[0]
    assert stored.type == "output_text" and stored.logprobs == part.logprobs

    streamed: list[Any] = []
    done: Any = None
    for event in c.responses.create(**kw, stream=True):
        if event.type == "response.output_text.delta":
            streamed += event.logprobs
        elif event.type == "response.output_text.done":
            done = event
    # The deltas carry the tokens that made their text; the part has them all (this
    # random model's last token is a character's first byte, which makes no text).
    tokens = [e.token for e in part.logprobs]
    assert streamed and [e.token for e in streamed] == tokens[: len(streamed)]
    assert all(e.top_logprobs is not None and len(e.top_logprobs) == 2 for e in streamed)
    assert done is not None and [e.token for e in done.logprobs] == tokens

    # top_logprobs alone asks for them too; without either, none
    alone = c.responses.create(**{**kw, "include": None, "top_logprobs": 0})
    logprobs = alone.output[0].content[0].logprobs
    assert logprobs is not None and len(logprobs) == 3 and logprobs[0].top_logprobs == []
    plain = c.responses.create(model="tiny", input="hi", max_output_tokens=3, stream=True)
    deltas = [e for e in plain if e.type == "response.output_text.delta"]
    assert deltas and all(e.logprobs == [] for e in deltas)


def test_bad_top_logprobs_and_include_are_refused(tools_daemon: Daemon) -> None:  # noqa: F811
    c = client(tools_daemon)
    for top in (21, -1, "2"):
        with pytest.raises(openai.BadRequestError, match="top_logprobs") as bad:
            c.responses.create(model="tiny", input="hi", top_logprobs=top)  # type: ignore[arg-type]
        assert bad.value.body["param"] == "top_logprobs"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError, match="file_search_call") as unknown:
        c.responses.create(
            model="tiny", input="hi", include=[*LOGPROBS, "file_search_call.results"]
        )
    assert unknown.value.body["param"] == "include[1]"  # type: ignore[index]
    # Codex sends this one: nothing is encrypted here, so it changes nothing
    r = c.responses.create(
        model="tiny", input="hi", max_output_tokens=1, include=["reasoning.encrypted_content"]
    )
    assert r.output_text


def test_cut_by_max_output_tokens_is_incomplete(tools_daemon: Daemon) -> None:  # noqa: F811
    """As OpenAI: the response and the message being written are "incomplete", and a
    stream ends with `response.incomplete`; the stored copy says the same."""
    c = client(tools_daemon)
    kw: dict[str, Any] = {"model": "tiny", "input": "hi", "max_output_tokens": 3, "temperature": 0}
    r = c.responses.create(**kw)
    assert r.status == "incomplete" and r.incomplete_details is not None
    assert r.incomplete_details.reason == "max_output_tokens"
    assert [o.status for o in r.output if o.type == "message"] == ["incomplete"]
    stored = c.responses.retrieve(r.id)
    assert stored.status == "incomplete" and stored.output[0].status == "incomplete"

    events = list(c.responses.create(**kw, stream=True))
    last = events[-1]
    assert last.type == "response.incomplete" and "response.completed" not in {
        e.type for e in events
    }
    assert last.response.status == "incomplete" and last.response.incomplete_details is not None
    assert last.response.incomplete_details.reason == "max_output_tokens"
    assert last.response.output[0].status == "incomplete"
    done = [e for e in events if e.type == "response.output_item.done"]
    assert done and done[-1].item.status == "incomplete"
    stored = c.responses.retrieve(last.response.id)
    assert stored.status == "incomplete" and stored.output[0].status == "incomplete"

    # The SDK's stream helper passes it on (its get_final_response wants a completed one,
    # with OpenAI too).
    with c.responses.stream(**kw) as stream:
        kinds = [event.type for event in stream]
    assert kinds[-1] == "response.incomplete"


def entry(token: str) -> dict[str, Any]:
    return {"token": token, "logprob": -0.5, "bytes": list(token.encode()), "top_logprobs": []}


def test_logprobs_go_with_the_text_and_a_cut_call_is_incomplete() -> None:
    """The tokens of reasoning give the output text no logprobs; those held back by the
    parser go with the text they made; the call max_output_tokens cut is incomplete, the
    message before it is not."""
    builder = ResponseBuilder({}, "m", "resp_1", logprobs=True)
    builder.add_logprobs([entry("<think>"), entry("hm")])
    builder.feed({"reasoning_content": "hm"})
    builder.add_logprobs([entry("</think>")])  # held: no delta yet
    builder.add_logprobs([entry("Hi")])
    [*_, delta] = builder.feed({"content": "Hi"})
    assert [e["token"] for e in delta["logprobs"]] == ["</think>", "Hi"]
    builder.add_logprobs([entry("<tool_call>")])
    call = {"index": 0, "id": "c1", "function": {"name": "f", "arguments": "{"}}
    builder.feed({"tool_calls": [call]})
    events = builder.finish("length", {})
    message = builder.items[1]
    assert message["status"] == "completed" and len(message["content"][0]["logprobs"]) == 2
    assert builder.items[2]["status"] == "incomplete"
    assert events[-1]["type"] == "response.incomplete"
    assert events[-1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    with pytest.raises(APIError, match="include"):
        to_chat_body({"input": "x", "include": [{"not": "a string"}]}, [])


def test_the_response_says_how_many_calls_the_request_allowed() -> None:
    """Unset, a forced tool_choice makes one call (as chat): the response says so."""

    def parallel(**body: object) -> object:
        return ResponseBuilder(dict(body), "m", "r").response("completed")["parallel_tool_calls"]

    assert parallel() is True
    assert parallel(tool_choice="required") is False
    assert parallel(tool_choice={"type": "function", "name": "f"}) is False
    assert parallel(tool_choice="required", parallel_tool_calls=True) is True
    assert parallel(parallel_tool_calls=False) is False


def test_the_response_echoes_the_reasoning_settings_asked() -> None:
    def reasoning(**body: object) -> object:
        return ResponseBuilder(dict(body), "m", "r").response("completed")["reasoning"]

    assert reasoning() == {"effort": None, "summary": None}
    asked = {"effort": "low", "summary": "auto"}
    assert reasoning(reasoning=asked) == asked  # Codex sends both; it said null
    echoed = ResponseBuilder({"max_tool_calls": 3}, "m", "r").response("completed")
    assert echoed["max_tool_calls"] == 3


def test_a_stream_the_client_stops_is_kept_as_cancelled(tools_daemon: Daemon) -> None:  # noqa: F811
    """A chat UI's Stop closes the stream: the id it had was a 404 afterwards, so the next
    turn (previous_response_id) lost the conversation. It is kept, cancelled, with the
    text so far."""
    c = client(tools_daemon)
    # The slower model (about 1000 tokens/s): the tiny one wrote its whole answer into
    # the socket's buffers before the client had read three deltas and closed.
    stream = c.responses.create(
        model="slow-4k",
        input="Write a long story",
        max_output_tokens=4000,
        stream=True,
        extra_body={"ignore_eos": True},
    )
    response_id = ""
    deltas = 0
    for event in stream:
        if event.type == "response.created":
            response_id = event.response.id
        if event.type == "response.output_text.delta":
            deltas += 1
            if deltas == 3:
                break
    stream.close()
    deadline = time.monotonic() + 20
    while True:
        try:
            kept = c.responses.retrieve(response_id)
            break
        except openai.NotFoundError:
            assert time.monotonic() < deadline, "the stopped response was never kept"
            time.sleep(0.2)
    assert kept.status == "cancelled", kept.model_dump_json()[:600]
    assert kept.output and kept.output[0].type == "message"
    assert kept.usage is not None and kept.usage.output_tokens >= 3 and kept.usage.input_tokens > 0
    nxt = c.responses.create(
        model="slow-4k", input="go on", previous_response_id=response_id, max_output_tokens=2
    )
    assert nxt.usage is not None and nxt.usage.input_tokens > 5


def test_errors_name_this_apis_parameters(tools_daemon: Daemon) -> None:  # noqa: F811
    with pytest.raises(openai.BadRequestError) as refused:
        client(tools_daemon).responses.create(model="tiny", input="hello " * 3000)
    body = refused.value.body
    assert isinstance(body, dict) and body["param"] == "input", body
    with pytest.raises(openai.BadRequestError) as refused:
        client(tools_daemon).responses.create(model="tiny", input="hi", max_output_tokens=0)
    body = refused.value.body
    assert isinstance(body, dict) and body["param"] == "max_output_tokens", body


def test_input_items_of_a_stored_response(tools_daemon: Daemon) -> None:  # noqa: F811
    """GET /v1/responses/{id}/input_items as OpenAI answers it: the response's input as
    items with ids, newest first unless order=asc, in pages of `limit` after `after`;
    the instructions and the turns of a previous_response_id are not this response's
    input items."""
    c = client(tools_daemon)
    given: list[Any] = [
        {"role": "user", "content": "one"},
        {"type": "message", "role": "assistant", "content": "two"},
        {"type": "message", "id": "msg_given", "role": "user", "content": "three"},
        {"role": "developer", "content": [{"type": "input_text", "text": "four"}]},
    ]
    first = c.responses.create(
        model="tiny", instructions="Be brief.", input=given, max_output_tokens=2
    )
    items: list[Any] = list(c.responses.input_items.list(first.id))  # desc: the default
    assert [item.content[0].text for item in items] == ["four", "three", "two", "one"]
    assert [item.role for item in items] == ["developer", "user", "assistant", "user"]
    assert items[1].id == "msg_given"
    assert all(item.id.startswith("msg_") and item.status == "completed" for item in items)
    assert items[2].content[0].type == "output_text"
    assert items[3].content[0].type == "input_text"
    ids = [item.id for item in items]

    page = c.responses.input_items.list(first.id, order="asc", limit=3)
    assert [item.id for item in page.data] == ids[::-1][:3] and page.has_more
    nxt = page.get_next_page()
    assert [item.id for item in nxt.data] == [ids[0]] and not nxt.has_more
    # the SDK's paging through every page, one item at a time, in both orders
    assert [i.id for i in c.responses.input_items.list(first.id, limit=1)] == ids
    every = c.responses.input_items.list(first.id, limit=1, order="asc")
    assert [i.id for i in every] == ids[::-1]
    r = tools_daemon.get(
        f"/v1/responses/{first.id}/input_items",
        params={"limit": 2, "after": ids[0], "include[]": "message.input_image.image_url"},
    )
    assert r.status_code == 200, r.text
    assert r.json() == {
        "object": "list",
        "data": [items[1].model_dump(exclude_unset=True), items[2].model_dump(exclude_unset=True)],
        "first_id": ids[1],
        "last_id": ids[2],
        "has_more": True,
    }
    # a string input is one user message; the previous response's turns are not listed
    second = c.responses.create(
        model="tiny", input="five", previous_response_id=first.id, max_output_tokens=2
    )
    only: Any
    (only,) = c.responses.input_items.list(second.id)
    assert only.type == "message" and only.role == "user" and only.content[0].text == "five"
    listed = c.responses.input_items.with_raw_response.list(second.id).http_response.json()
    assert listed["first_id"] == listed["last_id"] == only.id and listed["has_more"] is False


def test_input_items_errors(tools_daemon: Daemon) -> None:  # noqa: F811
    c = client(tools_daemon)
    with pytest.raises(openai.NotFoundError):
        c.responses.input_items.list("resp_missing")
    assert_error(tools_daemon.get("/v1/responses/resp_missing/input_items"), 404)
    unstored = c.responses.create(model="tiny", input="hi", max_output_tokens=1, store=False)
    assert_error(tools_daemon.get(f"/v1/responses/{unstored.id}/input_items"), 404)
    kept = c.responses.create(model="tiny", input="hi", max_output_tokens=1)
    path = f"/v1/responses/{kept.id}/input_items"
    for limit in ("0", "101", "ten"):
        assert_error(tools_daemon.get(path, params={"limit": limit}), 400, "limit")
    assert_error(tools_daemon.get(path, params={"order": "newest"}), 400, "order")
    assert_error(tools_daemon.get(path, params={"after": "msg_nowhere"}), 400, "after")
    assert_error(tools_daemon.get(path, params={"include[]": "everything"}), 400, "include")
    with pytest.raises(openai.BadRequestError, match="limit"):
        c.responses.input_items.list(kept.id, limit=500)
