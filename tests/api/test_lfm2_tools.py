"""LFM2's tool calls through the daemon and the official `openai` client, on a tiny model
with a small LFM2-style template (Liquid's own are under the LFM Open License and are not
shipped; see tests/parsing/test_families.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.api.template_tools import (
    named_call_then_next_turn,
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
    named_call_then_next_turn(lfm2, "lfm2", WEATHER, max_tokens=400, seed=2)
