"""Nemotron Nano v2's and Granite 3's tool calls (a marker, then a JSON list of calls)
through the daemon and the official `openai` client, on tiny models: Granite 3.3's own
template, and a small Nemotron Nano v2-style one (NVIDIA's is under the NVIDIA Open Model
License and is not shipped; see tests/parsing/test_families.py). Nemotron's prompt opens
the reasoning block."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

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
from tests.parsing.test_families import NEMOTRON_V2_LIKE

TEMPLATES = Path(__file__).resolve().parents[1] / "fixtures" / "chat_templates"
GRANITE = TEMPLATES / "ibm-granite-granite-3.3-2B-Instruct.jinja"
WEATHER = weather({"metric": {"type": "boolean"}}, required=("metric",))


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    sources = {"nemotron": NEMOTRON_V2_LIKE, "granite": GRANITE.read_text(encoding="utf-8")}
    d = start_template_daemon(tmp_path_factory.mktemp("jsonlist"), sources)
    yield d
    d.stop()


# Seeded: with 2 or 3 the tiny model writes, in the city, a UTF-8-encoded surrogate that
# the JSON string grammar lets through and that reads back as three U+FFFD, past
# maxLength (as in the LFM2 and GLM tests).
@pytest.mark.parametrize("model", ["nemotron", "granite"])
def test_a_required_call_comes_back_as_a_tool_call(daemon: Daemon, model: str) -> None:
    one_call_whole_and_streamed(
        daemon, WEATHER, model=model, tool_choice="required", max_tokens=600, seed=1
    )


@pytest.mark.parametrize("model", ["nemotron", "granite"])
def test_a_named_call_then_its_result_in_the_next_turn(daemon: Daemon, model: str) -> None:
    first = client(daemon).chat.completions.create(
        model=model,
        messages=ASK,
        tools=[WEATHER],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        max_tokens=600,
        seed=1,
    )
    assert first.choices[0].finish_reason == "tool_calls"
    [call] = first.choices[0].message.tool_calls or []
    assert call.type == "function"
    check(call, WEATHER)
    assert not first.choices[0].message.content
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
    r = client(daemon).chat.completions.create(
        model=model, messages=history, tools=[WEATHER], tool_choice="none", max_tokens=8
    )
    assert r.choices[0].finish_reason in ("stop", "length")
    assert not r.choices[0].message.tool_calls


def test_nemotron_ending_inside_its_reasoning_still_makes_the_required_call(
    daemon: Daemon,
) -> None:
    # The prompt opens <think>; the model is pushed to end at once, inside it.
    eos = next(m for m in daemon.get("/v1/models").json()["data"] if m["id"] == "nemotron")
    bias = {str(eos["meta"]["eos_token_id"]): 100}
    r = client(daemon).chat.completions.create(
        model="nemotron",
        messages=ASK,
        tools=[WEATHER],
        tool_choice="required",
        max_tokens=600,
        logit_bias=bias,
        seed=1,
    )
    assert r.choices[0].finish_reason == "tool_calls"
    [call] = r.choices[0].message.tool_calls or []
    check(call, WEATHER)
    assert not r.choices[0].message.content
