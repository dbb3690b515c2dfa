"""Every shipped real chat template renders an agent turn in our sandbox: the tools, an
assistant message carrying tool calls (arguments as a JSON object, as the API passes
them) and the tool's result, and the model's next turn is opened."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from appliance.engines.chat_template import ChatTemplate, render_prompt, supports_tools
from appliance.engines.engine import EngineRequestError

TEMPLATES = sorted(
    (Path(__file__).resolve().parents[1] / "fixtures" / "chat_templates").glob("*.jinja")
)
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather in a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]
CALL_ID = "abcDEF123"  # Mistral's templates accept only 9 letters and digits


def agent_turn() -> list[dict[str, Any]]:
    return [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "id": CALL_ID,
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": {"city": "Paris"}},
                }
            ],
        },
        {"role": "tool", "tool_call_id": CALL_ID, "name": "get_weather", "content": "18 C sunny"},
    ]


def test_there_are_templates() -> None:
    assert len(TEMPLATES) >= 10


# Templates that render tool calls and results but never the list of tools: a request
# with tools gets a 400 (set a chat template with tool support for such a model).
NO_TOOL_LIST = {
    "HuggingFaceTB-SmolLM3-3B",
    "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B",
    "deepseek-ai-DeepSeek-V3.1",
    "microsoft-Phi-3.5-mini-instruct",
}


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.stem)
def test_template_renders_tools_calls_and_results(path: Path) -> None:
    source = path.read_text()
    template = ChatTemplate(source, bos_token="<s>", eos_token="</s>")
    if path.stem in NO_TOOL_LIST:
        assert not supports_tools(source)
        with pytest.raises(EngineRequestError, match="does not support tools"):
            render_prompt(template, agent_turn(), TOOLS)
        return
    assert supports_tools(source)
    prompt, _ = render_prompt(template, agent_turn(), TOOLS)
    assert "get_weather" in prompt
    assert "Weather in a city" in prompt or "city" in prompt  # the tool's description
    assert "Paris" in prompt  # the call's arguments
    assert "18 C sunny" in prompt  # the tool's result


def test_a_template_without_tools_refuses_them() -> None:
    template = ChatTemplate("{% for m in messages %}{{ m.content }}{% endfor %}")
    with pytest.raises(EngineRequestError) as info:
        render_prompt(template, agent_turn(), TOOLS)
    assert info.value.param == "tools" and info.value.code == "tools_unsupported"
    text, _ = render_prompt(template, [{"role": "user", "content": "hi"}], None)
    assert text == "hi"
