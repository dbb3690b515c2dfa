"""MiniMax M2's tool calls through the daemon and the official `openai` client, on a tiny
model with a small MiniMax M2-style template (its prompt opens <think>, in which the
tiny model rambles: the required call is made by pushing it to end there)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from appliance.parsing import Family, detect_family
from tests.api.template_tools import (
    ASK,
    check,
    client,
    start_template_daemon,
    weather,
)
from tests.daemon import Daemon
from tests.parsing.test_families import MINIMAX_M2_LIKE

WEATHER = weather({"metric": {"type": "boolean"}}, required=("metric",))


@pytest.fixture(scope="module")
def minimax(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    source = MINIMAX_M2_LIKE
    assert detect_family(source) is Family.MINIMAX_M2  # the daemon reads it so too
    d = start_template_daemon(tmp_path_factory.mktemp("minimax"), {"minimax": source})
    yield d
    d.stop()


def test_a_named_call_then_its_result_in_the_next_turn(minimax: Daemon) -> None:
    first = client(minimax).chat.completions.create(
        model="minimax",
        messages=ASK,
        tools=[WEATHER],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        max_tokens=600,
        seed=1,
    )
    [call] = first.choices[0].message.tool_calls or []
    assert call.type == "function"
    assert isinstance(check(call, WEATHER)["metric"], bool)
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
    r = client(minimax).chat.completions.create(
        model="minimax", messages=history, tools=[WEATHER], tool_choice="none", max_tokens=8
    )
    assert r.choices[0].finish_reason in ("stop", "length")
    assert not r.choices[0].message.tool_calls


def test_a_required_call_after_the_opened_reasoning(minimax: Daemon) -> None:
    # Loaded first: the end-of-sequence id is known from then on.
    client(minimax).chat.completions.create(model="minimax", messages=ASK, max_tokens=1)
    info = next(m for m in minimax.get("/v1/models").json()["data"] if m["id"] == "minimax")
    bias = {str(info["meta"]["eos_token_id"]): 100}
    kw: dict[str, Any] = {"model": "minimax", "messages": ASK, "tools": [WEATHER]}
    kw |= {"tool_choice": "required", "max_tokens": 600, "logit_bias": bias, "seed": 1}
    r = client(minimax).chat.completions.create(**kw)
    assert r.choices[0].finish_reason == "tool_calls"
    [call] = r.choices[0].message.tool_calls or []
    assert call.type == "function"
    assert isinstance(check(call, WEATHER)["metric"], bool)
