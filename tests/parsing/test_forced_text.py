"""The text a forced call's grammar allows in one way only (written without sampling)."""

from __future__ import annotations

from typing import Any

import pytest

from appliance.parsing import Family
from appliance.parsing.constraints import tool_call_layout
from appliance.parsing.forced_text import forced_prefix

CITY: dict[str, Any] = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
}


def tool_call_forced(family: Family, tools: list[dict[str, Any]], **layout: Any) -> str:
    """What the scheduler writes unsampled for these tools."""
    return forced_prefix(tool_call_layout(family, tools, **layout))


def _tool(name: str) -> dict[str, Any]:
    return {"type": "function", "function": {"name": name, "parameters": CITY}}


@pytest.mark.parametrize(
    ("family", "opening"),
    [
        (Family.HERMES, '<tool_call>\n{"name": "final_result", "arguments":'),
        (Family.QWEN3_CODER, "<tool_call>\n<function=final_result>\n<parameter=city>"),
        (Family.GLM, "<tool_call>final_result\n<arg_key>city</arg_key>\n<arg_value>"),
        (Family.SEED_OSS, "<seed:tool_call>\n<function=final_result>\n<parameter=city>"),
        (
            Family.MINIMAX_M2,
            '<minimax:tool_call>\n<invoke name="final_result">\n<parameter name="city">',
        ),
        (
            Family.DEEPSEEK_DSML,
            '<｜DSML｜tool_calls>\n<｜DSML｜invoke name="final_result">\n'
            '<｜DSML｜parameter name="city" string="true">',
        ),
        (
            Family.KIMI_K2,
            "<|tool_calls_section_begin|><|tool_call_begin|>functions.final_result:",
        ),
        (Family.GEMMA4, '<|tool_call>call:final_result{city:<|"|>'),
        (Family.LFM2, "<|tool_call_start|>[final_result(city="),
        (Family.NEMOTRON_V2, '<TOOLCALL>[{"name": "final_result", "arguments":'),
        (Family.GRANITE3, '<|tool_call|>[{"name": "final_result", "arguments":'),
        # The call's number comes before its name: the model writes it.
        (Family.COMMAND_R7B, '<|START_ACTION|>[\n    {"tool_call_id":'),
        (Family.APERTUS, '<|tools_prefix|>[{"final_result":'),
        (Family.MINICPM5, '<function name="final_result"><param name="city">'),
        (Family.LLAMA3, '{"name": "final_result", "parameters":'),
        (Family.MISTRAL, "[TOOL_CALLS]final_result[ARGS]"),
        (
            Family.DEEPSEEK,
            "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>final_result\n```json",
        ),
        (
            Family.HARMONY,
            "<|channel|>commentary to=functions.final_result <|constrain|>json<|message|>",
        ),
        (Family.GENERIC, '{"name": "final_result", "arguments":'),
    ],
)
def test_a_named_call_is_forced_up_to_its_arguments(family: Family, opening: str) -> None:
    tools = [_tool("final_result"), _tool("final_other")]
    assert tool_call_forced(family, tools, parallel=False, name="final_result") == opening
    # One tool, required: the same opening; several calls allowed: the first's too.
    one = [_tool("final_result")]
    assert tool_call_forced(family, one, parallel=False) == opening
    if family is not Family.GENERIC:  # GENERIC's parallel calls may be a list or one call
        assert tool_call_forced(family, one, parallel=True) == opening


@pytest.mark.parametrize(
    ("family", "opening"),
    [
        (Family.HERMES, '<tool_call>\n{"name":'),
        (Family.QWEN3_CODER, "<tool_call>\n<function="),
        (Family.GLM, "<tool_call>"),
        (Family.SEED_OSS, "<seed:tool_call>\n<function="),
        (Family.MINIMAX_M2, "<minimax:tool_call>\n<invoke name="),
        (Family.DEEPSEEK_DSML, "<｜DSML｜tool_calls>\n<｜DSML｜invoke name="),
        (Family.KIMI_K2, "<|tool_calls_section_begin|><|tool_call_begin|>functions."),
        (Family.GEMMA4, "<|tool_call>call:"),
        (Family.LFM2, "<|tool_call_start|>["),
        (Family.NEMOTRON_V2, '<TOOLCALL>[{"name":'),
        (Family.GRANITE3, '<|tool_call|>[{"name":'),
        (Family.COMMAND_R7B, '<|START_ACTION|>[\n    {"tool_call_id":'),
        (Family.APERTUS, "<|tools_prefix|>[{"),
        (Family.MINICPM5, "<function name="),
        (Family.MISTRAL, "[TOOL_CALLS]"),
        (Family.HARMONY, "<|channel|>commentary to=functions."),
    ],
)
def test_between_tools_the_name_is_left_whole_to_the_model(family: Family, opening: str) -> None:
    # The names share "final_": forcing it would split a token the model writes whole.
    tools = [_tool("final_result"), _tool("final_other")]
    assert tool_call_forced(family, tools, parallel=False) == opening


def test_an_optional_first_parameter_and_an_answer_stop_the_forced_text() -> None:
    loose = {
        "type": "function",
        "function": {
            "name": "f",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
    assert tool_call_forced(Family.QWEN3_CODER, [loose], parallel=False) == (
        "<tool_call>\n<function=f>"
    )
    assert tool_call_forced(Family.LFM2, [loose], parallel=False) == "<|tool_call_start|>[f("
    # A call or a JSON answer: nothing is the same in both.
    answer = {"type": "object"}
    assert tool_call_forced(Family.HERMES, [_tool("f")], parallel=False, answer=answer) == ""


def test_deepseek_v3_2_is_forced_in_its_own_block() -> None:
    """V3.2's template names the block function_calls (V4's, the default, tool_calls)."""
    v3_2 = "{%- set dsml_token = '｜DSML｜' -%}{{ '<' + dsml_token + 'function_calls>' }}"
    forced = tool_call_forced(Family.DEEPSEEK_DSML, [_tool("f")], parallel=True, template=v3_2)
    assert forced == '<｜DSML｜function_calls>\n<｜DSML｜invoke name="f">\n' + (
        '<｜DSML｜parameter name="city" string="true">'
    )
