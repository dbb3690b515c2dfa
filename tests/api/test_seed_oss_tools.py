"""Seed-OSS's tool calls through the daemon and the official `openai` client, on a tiny
model with Seed-OSS-36B's own template."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

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

TEMPLATES = Path(__file__).resolve().parents[1] / "fixtures" / "chat_templates"
WEATHER = weather({"metric": {"type": "boolean"}}, required=("metric",))


@pytest.fixture(scope="module")
def seed_oss(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    source = (TEMPLATES / "ByteDance-Seed-OSS.jinja").read_text(encoding="utf-8")
    assert detect_family(source) is Family.SEED_OSS  # the daemon reads it so too
    d = start_template_daemon(tmp_path_factory.mktemp("seed_oss"), {"seed": source})
    yield d
    d.stop()


def test_a_required_call_comes_back_as_a_tool_call(seed_oss: Daemon) -> None:
    one_call_whole_and_streamed(
        seed_oss, WEATHER, model="seed", tool_choice="required", max_tokens=600, seed=1
    )


def test_a_named_call_then_its_result_in_the_next_turn(seed_oss: Daemon) -> None:
    _, call = named_call_then_next_turn(seed_oss, "seed", WEATHER, max_tokens=600, seed=1)
    assert isinstance(check(call, WEATHER)["metric"], bool)
