"""GLM's tool calls through the daemon and the official `openai` client, on tiny models
with GLM 4.6's and GLM 4.7's own templates (4.7's prompt opens the reasoning block)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api.template_tools import (
    one_call_whole_and_streamed,
    required_call_ending_at_once,
    start_template_daemon,
    weather,
)
from tests.daemon import Daemon

TEMPLATES = Path(__file__).resolve().parents[1] / "fixtures" / "chat_templates"
WEATHER = weather()


@pytest.fixture(scope="module")
def glm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    sources = {
        name: (TEMPLATES / file).read_text(encoding="utf-8")
        for name, file in (("glm46", "GLM-4.6.jinja"), ("glm47", "GLM-4.7-Flash.jinja"))
    }
    d = start_template_daemon(tmp_path_factory.mktemp("glm"), sources)
    yield d
    d.stop()


@pytest.mark.parametrize("model", ["glm46", "glm47"])
def test_a_required_call_comes_back_as_a_tool_call(glm: Daemon, model: str) -> None:
    one_call_whole_and_streamed(
        glm, WEATHER, model=model, tool_choice="required", max_tokens=600, seed=1
    )


def test_a_model_that_ends_inside_its_reasoning_still_makes_the_required_call(
    glm: Daemon,
) -> None:
    # GLM 4.7's prompt opens <think>; the model is pushed to end at once, inside it.
    r = required_call_ending_at_once(glm, "glm47", WEATHER)
    assert not r.choices[0].message.content
