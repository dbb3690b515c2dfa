"""Every shipped real chat template renders an agent turn in our sandbox: the tools, an
assistant message carrying tool calls (arguments as a JSON object, as the API passes
them) and the tool's result, and the model's next turn is opened."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from appliance.engines.chat_prompt import render_prompt, supports_tools
from appliance.engines.chat_template import ChatTemplate
from appliance.engines.engine import EngineRequestError
from appliance.parsing import detect_family

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "chat_templates"
TEMPLATES = sorted(FIXTURES.glob("*.jinja"))
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


# Templates that render tool calls and results but never the list of tools. A model
# whose calls are plain JSON (the generic family) gets the tools described in a system
# message; one whose template writes calls in another syntax, with an example call the
# template wrote.
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
    family = detect_family(source).value
    if path.stem in NO_TOOL_LIST:
        assert not supports_tools(source)
    else:
        assert supports_tools(source)
    prompt, _ = render_prompt(template, agent_turn(), TOOLS, family=family)
    if path.stem in NO_TOOL_LIST and family != "generic":
        assert "Example tool call syntax:" in prompt
    assert "get_weather" in prompt
    assert "Weather in a city" in prompt or "city" in prompt  # the tool's description
    assert "Paris" in prompt  # the call's arguments
    assert "18 C sunny" in prompt  # the tool's result


def test_a_template_without_tools_gets_them_described_or_refuses_them() -> None:
    template = ChatTemplate(
        "{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}"
        "{% if add_generation_prompt %}[assistant] {% endif %}"
    )
    text, _ = render_prompt(template, agent_turn(), TOOLS, family="generic", parallel=False)
    system, user, assistant, result = text.split("\n[")[:4]
    assert system.startswith("[system] You are helpful.") and '"name": "get_weather"' in system
    assert 'reply with only one JSON call, {"name": "<tool name>"' in system
    assert user == "user] Weather in Paris?"
    assert assistant == 'assistant] {"name": "get_weather", "arguments": {"city": "Paris"}}'
    assert result == f"user] Result of get_weather (call {CALL_ID}):\n18 C sunny"
    with pytest.raises(EngineRequestError) as info:
        render_prompt(template, agent_turn(), TOOLS, family="hermes")
    assert info.value.param == "tools" and info.value.code == "tools_unsupported"
    text, _ = render_prompt(template, [{"role": "user", "content": "hi"}], None)
    assert text == "[user] hi\n[assistant] "


def test_deepseek_templates_get_the_tools_with_their_own_call_syntax() -> None:
    eos = "<｜end▁of▁sentence｜>"
    v31 = ChatTemplate((FIXTURES / "deepseek-ai-DeepSeek-V3.1.jinja").read_text(), eos_token=eos)
    prompt, _ = render_prompt(v31, agent_turn(), TOOLS, family="deepseek")
    example = (
        "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>tool_name<｜tool▁sep｜>"
        '{"arg1": "some_value"}<｜tool▁call▁end｜><｜tool▁calls▁end｜>'
    )
    assert f"Example tool call syntax:\n\n{example}\n" in prompt
    assert '"name": "get_weather"' in prompt and '"description": "Weather in a city"' in prompt
    # DeepSeek R1's template leaves the prompt after tool results with no turn opened.
    r1_source = (FIXTURES / "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja").read_text()
    r1 = ChatTemplate(r1_source, eos_token=eos)
    prompt, _ = render_prompt(r1, agent_turn(), TOOLS, family="deepseek")
    assert (
        "Example tool call syntax:\n\n<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function" in prompt
    )
    assert prompt.endswith(
        f"18 C sunny<｜tool▁output▁end｜><｜tool▁outputs▁end｜>{eos}<｜Assistant｜>"
    )
    prompt, _ = render_prompt(r1, agent_turn(), None)  # without tools too
    assert prompt.endswith(f"<｜tool▁outputs▁end｜>{eos}<｜Assistant｜>")


def test_a_template_that_refuses_a_system_turn_gets_the_tools_in_the_first_user_turn() -> None:
    template = ChatTemplate(
        "{% for m in messages %}{% if m.role == 'system' %}"
        "{{ raise_exception('System role not supported') }}{% endif %}"
        "|{{ m.role }}|{{ m.content }}{% endfor %}"
    )
    messages = [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": "Let me look.",
            "tool_calls": [
                {
                    "id": "a",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": "{}"},
                },
                {
                    "id": "b",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": "{}"},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "a", "name": "get_weather", "content": "18 C"},
        {"role": "tool", "tool_call_id": "b", "name": "get_weather", "content": "19 C"},
    ]
    text, _ = render_prompt(template, messages, TOOLS, family="generic")
    turns = text.split("|")[1:]
    assert turns[0::2] == ["user", "assistant", "user"]  # alternating
    turns = turns[1::2]
    assert turns[0].startswith("You can call these tools") and "Weather in Paris?" in turns[0]
    assert "a JSON list of one or more calls" in turns[0]
    assert turns[1] == (
        'Let me look.\n[{"name": "get_weather", "arguments": {}}, '
        '{"name": "get_weather", "arguments": {}}]'
    )
    assert "Result of get_weather (call a):\n18 C" in turns[2]
    assert "Result of get_weather (call b):\n19 C" in turns[2]


def test_a_history_of_calls_sent_without_tools_keeps_its_calls_and_results() -> None:
    """The final answer's turn, as LangChain sends it (no `tools`): a template that cannot
    show calls rendered an empty assistant turn and lost the call."""
    from appliance.tiny_model import CHATML_TEMPLATE

    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
    }
    messages = [
        {"role": "user", "content": "weather in Paris?"},
        {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "name": "get_weather", "content": "sunny"},
    ]
    assert not supports_tools(CHATML_TEMPLATE)
    text, _ = render_prompt(ChatTemplate(CHATML_TEMPLATE), messages)
    assert '"name": "get_weather"' in text and '"city": "Paris"' in text
    assert "Result of get_weather (call call_1):\nsunny" in text
    assert "<|im_start|>assistant\n<|im_end|>" not in text
