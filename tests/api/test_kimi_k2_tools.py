"""Kimi K2's tool calls through the daemon and the official `openai` client, on a tiny
model with a small Kimi K2-style template (Moonshot's own are not shipped): the calls'
ids are the model's functions.NAME:INDEX, and a result goes back under its call's id."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from appliance.parsing import Family, detect_family
from tests.api.template_tools import (
    check,
    named_call_then_next_turn,
    one_call_whole_and_streamed,
    start_template_daemon,
    weather,
)
from tests.daemon import Daemon
from tests.parsing.test_families import KIMI_K2_LIKE

WEATHER = weather({"metric": {"type": "boolean"}}, required=("metric",))
KIMI_ID = r"functions\.get_weather:[0-9]+"


@pytest.fixture(scope="module")
def kimi(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    assert detect_family(KIMI_K2_LIKE) is Family.KIMI_K2  # the daemon reads it so too
    d = start_template_daemon(tmp_path_factory.mktemp("kimi"), {"kimi": KIMI_K2_LIKE})
    yield d
    d.stop()


def test_a_required_call_comes_back_as_a_tool_call(kimi: Daemon) -> None:
    call = one_call_whole_and_streamed(
        kimi, WEATHER, model="kimi", tool_choice="required", max_tokens=600, seed=1
    )
    assert re.fullmatch(KIMI_ID, call.id), call.id


def test_a_named_call_then_its_result_in_the_next_turn(kimi: Daemon) -> None:
    _, call = named_call_then_next_turn(kimi, "kimi", WEATHER, max_tokens=600, seed=1)
    assert isinstance(check(call, WEATHER)["metric"], bool)
    assert re.fullmatch(KIMI_ID, call.id), call.id
