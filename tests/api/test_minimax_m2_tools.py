"""MiniMax M2's tool calls through the daemon and the official `openai` client, on a tiny
model with a small MiniMax M2-style template (its prompt opens <think>, in which the
tiny model rambles: the required call is made by pushing it to end there)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from appliance.parsing import Family, detect_family
from tests.api.template_tools import (
    ASK,
    check,
    client,
    named_call_then_next_turn,
    required_call_ending_at_once,
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
    _, call = named_call_then_next_turn(minimax, "minimax", WEATHER, max_tokens=600, seed=1)
    assert isinstance(check(call, WEATHER)["metric"], bool)


def test_a_required_call_after_the_opened_reasoning(minimax: Daemon) -> None:
    # Loaded first: the end-of-sequence id is known from then on.
    client(minimax).chat.completions.create(model="minimax", messages=ASK, max_tokens=1)
    r = required_call_ending_at_once(minimax, "minimax", WEATHER)
    [call] = r.choices[0].message.tool_calls or []
    assert call.type == "function"
    assert isinstance(check(call, WEATHER)["metric"], bool)
