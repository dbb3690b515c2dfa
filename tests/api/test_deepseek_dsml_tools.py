"""DeepSeek V3.2's and V4's tool calls through the daemon and the official `openai`
client, on tiny models with DeepSeek's own templates: their DSML calls, whose block is
named function_calls (V3.2) or tool_calls (V4), with thinking off and on."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.parsing import Family, detect_family
from tests.api.template_tools import (
    ASK,
    check,
    client,
    named_call_then_next_turn,
    one_call_whole_and_streamed,
    required_call_ending_at_once,
    start_template_daemon,
    weather,
)
from tests.daemon import Daemon

TEMPLATES = Path(__file__).resolve().parents[1] / "fixtures" / "chat_templates"
WEATHER = weather({"metric": {"type": "boolean"}}, required=("metric",))
MODELS = {"ds32": "deepseek-ai-DeepSeek-V3.2.jinja", "ds4": "deepseek-ai-DeepSeek-V4.jinja"}
THINKING = {"chat_template_kwargs": {"thinking": True}}


@pytest.fixture(scope="module")
def deepseek(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    sources = {
        name: (TEMPLATES / file).read_text(encoding="utf-8") for name, file in MODELS.items()
    }
    for source in sources.values():
        assert detect_family(source) is Family.DEEPSEEK_DSML  # the daemon reads them so too
    d = start_template_daemon(tmp_path_factory.mktemp("deepseek"), sources)
    yield d
    d.stop()


@pytest.mark.parametrize("model", list(MODELS))
def test_a_required_call_comes_back_as_a_tool_call(deepseek: Daemon, model: str) -> None:
    one_call_whole_and_streamed(
        deepseek, WEATHER, model=model, tool_choice="required", max_tokens=600, seed=1
    )


@pytest.mark.parametrize("model", list(MODELS))
def test_a_named_call_then_its_result_in_the_next_turn(deepseek: Daemon, model: str) -> None:
    _, call = named_call_then_next_turn(deepseek, model, WEATHER, max_tokens=600, seed=1)
    assert isinstance(check(call, WEATHER)["metric"], bool)


@pytest.mark.parametrize("model", list(MODELS))
def test_a_required_call_after_the_opened_reasoning(deepseek: Daemon, model: str) -> None:
    # Thinking on, the prompt opens <think>; loaded first, the end-of-sequence id is known.
    client(deepseek).chat.completions.create(model=model, messages=ASK, max_tokens=1)
    r = required_call_ending_at_once(deepseek, model, WEATHER, extra_body=THINKING)
    message = r.choices[0].message
    assert not message.content
    assert getattr(message, "reasoning_content", None) == ""  # the block was opened
