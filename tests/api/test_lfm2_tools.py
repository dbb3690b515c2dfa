"""LFM2's tool calls through the daemon and the official `openai` client, on a tiny model
with a small LFM2-style template (Liquid's own are under the LFM Open License and are not
shipped; see tests/parsing/test_families.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.api.template_tools import (
    ASK,
    check,
    client,
    one_call_whole_and_streamed,
    start_template_daemon,
    weather,
)
from tests.daemon import Daemon
from tests.parsing.test_families import LFM2_LIKE

WEATHER = weather({"metric": {"type": "boolean"}}, required=("metric",))


@pytest.fixture(scope="module")
def lfm2(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    d = start_template_daemon(tmp_path_factory.mktemp("lfm2"), {"lfm2": LFM2_LIKE})
    yield d
    d.stop()


def test_a_required_call_comes_back_as_a_tool_call(lfm2: Daemon) -> None:
    # Seed 2: with 1 the tiny model writes, in the city, a UTF-8-encoded surrogate that the
    # JSON grammar lets through and that decodes to three U+FFFD (Hermes too).
    one_call_whole_and_streamed(
        lfm2, WEATHER, model="lfm2", tool_choice="required", max_tokens=400, seed=2
    )


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
    assert call.type == "function"
    check(call, WEATHER)
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
