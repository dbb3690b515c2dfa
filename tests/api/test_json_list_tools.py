"""Nemotron Nano v2's, Granite 3's, Command R7B's and Apertus's tool calls (a marker, then
a JSON list of calls) through the daemon and the official `openai` client, on tiny models:
Granite 3.3's and Apertus-8B's own templates (Apertus's calls are keyed by the function's
name, its tool results follow them in the assistant's turn), and small Nemotron Nano
v2-style and Command R7B-style ones
(NVIDIA's is under the NVIDIA Open Model License, Cohere's under CC-BY-NC: not shipped;
see tests/parsing/test_families.py). Nemotron's prompt opens the reasoning block;
Command R7B's closes an empty one, and its calls are numbered."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api.template_tools import (
    ASK,
    client,
    named_call_then_next_turn,
    one_call_whole_and_streamed,
    required_call_ending_at_once,
    start_template_daemon,
    weather,
)
from tests.daemon import Daemon
from tests.parsing.test_families import COMMAND_R7B_LIKE, NEMOTRON_V2_LIKE

TEMPLATES = Path(__file__).resolve().parents[1] / "fixtures" / "chat_templates"
GRANITE = TEMPLATES / "ibm-granite-granite-3.3-2B-Instruct.jinja"
APERTUS = TEMPLATES / "Apertus-8B-Instruct.jinja"
WEATHER = weather({"metric": {"type": "boolean"}}, required=("metric",))
# Apertus's template writes every tool's description and fails on a tool without one.
DESCRIBED = weather({"metric": {"type": "boolean"}}, ("metric",), "The weather in a city.")
TOOL = {"apertus": DESCRIBED}


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    sources = {"nemotron": NEMOTRON_V2_LIKE, "granite": GRANITE.read_text(encoding="utf-8")}
    sources["r7b"] = COMMAND_R7B_LIKE
    sources["apertus"] = APERTUS.read_text(encoding="utf-8")
    d = start_template_daemon(tmp_path_factory.mktemp("jsonlist"), sources)
    yield d
    d.stop()


# Seeded: with 2 or 3 the tiny model writes, in the city, a UTF-8-encoded surrogate that
# the JSON string grammar lets through and that reads back as three U+FFFD, past
# maxLength (as in the LFM2 and GLM tests).
@pytest.mark.parametrize("model", ["nemotron", "granite", "r7b", "apertus"])
def test_a_required_call_comes_back_as_a_tool_call(daemon: Daemon, model: str) -> None:
    tool = TOOL.get(model, WEATHER)
    one_call_whole_and_streamed(
        daemon, tool, model=model, tool_choice="required", max_tokens=600, seed=1
    )


@pytest.mark.parametrize("model", ["nemotron", "granite", "r7b", "apertus"])
def test_a_named_call_then_its_result_in_the_next_turn(daemon: Daemon, model: str) -> None:
    tool = TOOL.get(model, WEATHER)
    first, _ = named_call_then_next_turn(daemon, model, tool, max_tokens=600, seed=1)
    assert first.choices[0].finish_reason == "tool_calls"
    assert not first.choices[0].message.content


def test_nemotron_ending_inside_its_reasoning_still_makes_the_required_call(
    daemon: Daemon,
) -> None:
    # The prompt opens <think>; the model is pushed to end at once, inside it.
    r = required_call_ending_at_once(daemon, "nemotron", WEATHER)
    assert not r.choices[0].message.content


def test_command_r7b_reasoning_in_the_block_its_prompt_opened(daemon: Daemon) -> None:
    # Cohere2 MoE's switch: the prompt opens <|START_THINKING|>, which the tiny model
    # never closes; what it writes is reasoning, not content.
    kw = {"extra_body": {"chat_template_kwargs": {"reasoning": True}}}
    r = client(daemon).chat.completions.create(
        model="r7b", messages=ASK, tools=[WEATHER], max_tokens=16, seed=1, **kw
    )
    message = r.choices[0].message
    assert not message.content and not message.tool_calls
    assert (message.model_extra or {}).get("reasoning_content")
    # Pushed to end inside the block, the required call still comes after its close.
    r = required_call_ending_at_once(daemon, "r7b", WEATHER, **kw)
    assert not r.choices[0].message.content
