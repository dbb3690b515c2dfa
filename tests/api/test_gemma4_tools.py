"""Gemma 4's tool calls through the daemon and the official `openai` client, on a tiny
model carrying a template in Gemma 4's style (Gemma's own templates are not shipped:
see tests/gemma4_like.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

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
from tests.gemma4_like import GEMMA4_LIKE

HOURS = {"type": "array", "items": {"type": "integer"}, "maxItems": 3}
WEATHER = weather({"metric": {"type": "boolean"}, "hours": HOURS}, required=("metric",))


@pytest.fixture(scope="module")
def gemma(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    d = start_template_daemon(tmp_path_factory.mktemp("gemma4"), {"gemma4": GEMMA4_LIKE})
    yield d
    d.stop()


@pytest.mark.parametrize("choice", ["required", "named"])
def test_a_required_call_comes_back_as_a_tool_call(gemma: Daemon, choice: str) -> None:
    tool_choice: Any = choice
    if choice == "named":
        tool_choice = {"type": "function", "function": {"name": "get_weather"}}
    one_call_whole_and_streamed(
        gemma, WEATHER, model="gemma4", tool_choice=tool_choice, max_tokens=600, seed=1
    )


def test_a_past_call_and_its_result_render_and_the_next_answer_parses(gemma: Daemon) -> None:
    past: Any = {
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
    result: Any = {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}
    r = client(gemma).chat.completions.create(
        model="gemma4",
        messages=[*ASK, past, result],
        tools=[WEATHER],
        tool_choice="required",
        max_tokens=600,
        seed=2,
    )
    assert r.choices[0].finish_reason == "tool_calls"
    [call] = r.choices[0].message.tool_calls or []
    check(call, WEATHER)
