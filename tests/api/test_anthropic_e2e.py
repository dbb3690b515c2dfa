"""The Anthropic Messages API with the official `anthropic` client: text (streamed and
not), tool use with a tool_result round trip, and token counting."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.test_tools_e2e import WEATHER, tools_daemon  # noqa: F401  (the fixture)
from tests.daemon import Daemon

anthropic = pytest.importorskip("anthropic", reason="the anthropic SDK (dev extra)")

TOOL: dict[str, Any] = {
    "name": WEATHER["function"]["name"],
    "description": WEATHER["function"]["description"],
    "input_schema": WEATHER["function"]["parameters"],
}


def client(d: Daemon) -> Any:
    return anthropic.Anthropic(base_url=d.url, api_key="x", max_retries=0, timeout=120)


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
    assert final.usage.input_tokens > m.usage.input_tokens
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
    assert counted.input_tokens == m.usage.input_tokens > 0
