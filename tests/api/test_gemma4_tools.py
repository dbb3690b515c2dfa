"""Gemma 4's tool calls through the daemon and the official `openai` client, on a tiny
model carrying a template in Gemma 4's style (Gemma's own templates are not shipped:
see tests/gemma4_like.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from appliance.tiny_model import TinyModelSpec, write_tiny_gguf
from tests.daemon import Daemon, start_daemon
from tests.gemma4_like import GEMMA4_LIKE

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "maxLength": 12},
                "days": {"type": "integer", "minimum": 1, "maximum": 9},
                "metric": {"type": "boolean"},
                "hours": {"type": "array", "items": {"type": "integer"}, "maxItems": 3},
            },
            "required": ["city", "days", "metric"],
        },
    },
}
ASK = [{"role": "user", "content": "The weather in Paris?"}]


@pytest.fixture(scope="module")
def gemma(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    home = tmp_path_factory.mktemp("gemma4")
    model = write_tiny_gguf(home / "gemma4.gguf", TinyModelSpec(chat_template=GEMMA4_LIKE))
    catalog = home / "catalog.toml"
    catalog.write_text(f'[models.gemma4]\nsource = "{model}"\ncontext = 2048\n')
    d = start_daemon(home, catalog, env={"APPLIANCE_WEIGHT_REPACK": "false"})
    yield d
    d.stop()


def client(d: Daemon) -> openai.OpenAI:
    return openai.OpenAI(base_url=d.v1, api_key="x", max_retries=0, timeout=60)


def check(call: Any) -> None:
    assert call.function.name == "get_weather"
    args = json.loads(call.function.arguments)
    assert isinstance(args["city"], str) and len(args["city"]) <= 12
    assert isinstance(args["days"], int) and 1 <= args["days"] <= 9
    assert isinstance(args["metric"], bool)
    assert all(isinstance(h, int) for h in args.get("hours", []))


@pytest.mark.parametrize("choice", ["required", "named"])
def test_a_required_call_comes_back_as_a_tool_call(gemma: Daemon, choice: str) -> None:
    tool_choice: Any = choice
    if choice == "named":
        tool_choice = {"type": "function", "function": {"name": "get_weather"}}
    kw: dict[str, Any] = {"model": "gemma4", "messages": ASK, "tools": [WEATHER], "seed": 1}
    kw |= {"tool_choice": tool_choice, "max_tokens": 600, "temperature": 0.7}
    r = client(gemma).chat.completions.create(**kw)
    assert r.choices[0].finish_reason == "tool_calls"
    [call] = r.choices[0].message.tool_calls or []
    check(call)
    assert not r.choices[0].message.content
    # Streamed: the same call, in deltas.
    name, arguments = "", ""
    for chunk in client(gemma).chat.completions.create(**kw, stream=True):
        for delta in chunk.choices[0].delta.tool_calls or [] if chunk.choices else []:
            name += delta.function.name or "" if delta.function else ""
            arguments += delta.function.arguments or "" if delta.function else ""
    assert name == "get_weather"
    assert json.loads(arguments) == json.loads(call.function.arguments)


def test_a_past_call_and_its_result_render_and_the_next_answer_parses(gemma: Daemon) -> None:
    past = {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris", "days": 2}'},
            }
        ],
    }
    result = {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}
    r = client(gemma).chat.completions.create(
        model="gemma4",
        messages=[*ASK, past, result],  # type: ignore[list-item]
        tools=[WEATHER],  # type: ignore[list-item]
        tool_choice="required",
        max_tokens=600,
        seed=2,
    )
    assert r.choices[0].finish_reason == "tool_calls"
    [call] = r.choices[0].message.tool_calls or []
    check(call)
