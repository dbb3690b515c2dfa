"""The Responses API with the official `openai` client: text (streamed and not), a
function-call round trip, previous_response_id, the stored response, and reasoning
items sent back to the model."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest

from appliance.api.responses import ResponseBuilder, input_messages
from tests.api.test_tools_e2e import (  # noqa: F401  (the fixtures)
    WEATHER,
    qwen3_daemon,
    tools_daemon,
)
from tests.daemon import Daemon

FLAT_WEATHER: dict[str, Any] = {"type": "function", **WEATHER["function"]}


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
    with c.responses.stream(model="tiny", input="hello", max_output_tokens=8) as stream:
        for event in stream:
            kinds.append(event.type)
            if event.type == "response.output_text.delta":
                text += event.delta
        final = stream.get_final_response()
    assert kinds[0] == "response.created"
    assert kinds[-1] == "response.completed"
    assert "response.output_item.added" in kinds and "response.output_item.done" in kinds
    assert final.output_text == text


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
    with pytest.raises(openai.NotFoundError):
        c.responses.create(model="tiny", input="x", previous_response_id="resp_gone")


def test_structured_output_and_bad_input(tools_daemon: Daemon) -> None:  # noqa: F811
    c = client(tools_daemon)
    schema = {
        "type": "object",
        "properties": {"ok": {"type": "boolean"}},
        "required": ["ok"],
        "additionalProperties": False,
    }
    r = c.responses.create(
        model="tiny",
        input="answer in JSON",
        text={"format": {"type": "json_schema", "name": "x", "schema": schema, "strict": True}},
        max_output_tokens=60,
    )
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
