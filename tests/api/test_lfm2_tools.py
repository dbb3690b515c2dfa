"""LFM2's tool calls through the daemon and the official `openai` client, on a tiny model
with a small LFM2-style template (Liquid's own are under the LFM Open License and are not
shipped; see tests/parsing/test_families.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from appliance.tiny_model import TinyModelSpec, write_tiny_gguf
from tests.daemon import Daemon, start_daemon
from tests.parsing.test_families import LFM2_LIKE

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
            },
            "required": ["city", "days", "metric"],
        },
    },
}
ASK = [{"role": "user", "content": "The weather in Paris?"}]


@pytest.fixture(scope="module")
def lfm2(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    home = tmp_path_factory.mktemp("lfm2")
    model = write_tiny_gguf(home / "lfm2.gguf", TinyModelSpec(chat_template=LFM2_LIKE))
    catalog = home / "catalog.toml"
    catalog.write_text(f'[models.lfm2]\nsource = "{model}"\ncontext = 2048\n')
    d = start_daemon(home, catalog, env={"APPLIANCE_WEIGHT_REPACK": "false"})
    yield d
    d.stop()


def client(d: Daemon) -> openai.OpenAI:
    return openai.OpenAI(base_url=d.v1, api_key="x", max_retries=0, timeout=60)


def check(call: Any) -> dict[str, Any]:
    assert call.function.name == "get_weather"
    args: dict[str, Any] = json.loads(call.function.arguments)
    assert isinstance(args["city"], str) and len(args["city"]) <= 12
    assert isinstance(args["days"], int) and 1 <= args["days"] <= 9
    assert isinstance(args["metric"], bool)
    return args


def test_a_required_call_comes_back_as_a_tool_call(lfm2: Daemon) -> None:
    # Seed 2: with 1 the tiny model writes, in the city, a UTF-8-encoded surrogate that the
    # JSON grammar lets through and that decodes to three U+FFFD (Hermes too).
    kw: dict[str, Any] = {"model": "lfm2", "messages": ASK, "tools": [WEATHER], "seed": 2}
    kw |= {"tool_choice": "required", "max_tokens": 400, "temperature": 0.7}
    r = client(lfm2).chat.completions.create(**kw)
    assert r.choices[0].finish_reason == "tool_calls"
    [call] = r.choices[0].message.tool_calls or []
    check(call)
    assert not r.choices[0].message.content
    # Streamed: the same call, in deltas.
    name, arguments = "", ""
    for chunk in client(lfm2).chat.completions.create(**kw, stream=True):
        for delta in chunk.choices[0].delta.tool_calls or [] if chunk.choices else []:
            name += delta.function.name or "" if delta.function else ""
            arguments += delta.function.arguments or "" if delta.function else ""
    assert name == "get_weather"
    assert json.loads(arguments) == json.loads(call.function.arguments)


def test_a_named_call_then_its_result_in_the_next_turn(lfm2: Daemon) -> None:
    first = client(lfm2).chat.completions.create(
        model="lfm2",
        messages=ASK,
        tools=[WEATHER],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        max_tokens=400,
        seed=2,
    )
    [call] = first.choices[0].message.tool_calls or []
    check(call)
    # The call goes back through the template (arguments as the client sends them: a
    # JSON string) with its result; the answer is text.
    history = [
        *ASK,
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": call.function.arguments},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call.id, "content": '{"sky": "sunny"}'},
    ]
    r = client(lfm2).chat.completions.create(
        model="lfm2", messages=history, tools=[WEATHER], tool_choice="none", max_tokens=8
    )
    assert r.choices[0].finish_reason in ("stop", "length")
    assert not r.choices[0].message.tool_calls
