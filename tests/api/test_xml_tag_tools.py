"""Seed-OSS's and MiniCPM5's tool calls (a call's parameters as tags, each value as text
or JSON) through the daemon and the official `openai` client, on tiny models: Seed-OSS-36B's
own template, and a small MiniCPM5-style one (MiniCPM5's licence could not be confirmed
offline; see tests/parsing/test_families.py)."""

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
from tests.parsing.test_families import MINICPM5_LIKE

TEMPLATES = Path(__file__).resolve().parents[1] / "fixtures" / "chat_templates"
WEATHER = weather({"metric": {"type": "boolean"}}, required=("metric",))
MODELS = ["seed", "minicpm5"]


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    seed = (TEMPLATES / "ByteDance-Seed-OSS.jinja").read_text(encoding="utf-8")
    sources = {"seed": seed, "minicpm5": MINICPM5_LIKE}
    # The daemon reads them so too.
    assert [detect_family(s) for s in sources.values()] == [Family.SEED_OSS, Family.MINICPM5]
    d = start_template_daemon(tmp_path_factory.mktemp("xml_tags"), sources)
    yield d
    d.stop()


@pytest.mark.parametrize("model", MODELS)
def test_a_required_call_comes_back_as_a_tool_call(daemon: Daemon, model: str) -> None:
    one_call_whole_and_streamed(
        daemon, WEATHER, model=model, tool_choice="required", max_tokens=600, seed=1
    )


@pytest.mark.parametrize("model", MODELS)
def test_a_named_call_then_its_result_in_the_next_turn(daemon: Daemon, model: str) -> None:
    _, call = named_call_then_next_turn(daemon, model, WEATHER, max_tokens=600, seed=1)
    assert isinstance(check(call, WEATHER)["metric"], bool)
