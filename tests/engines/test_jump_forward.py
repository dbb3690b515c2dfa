"""When a sequence's forced text is due, and what of it is left to write (pure)."""

from __future__ import annotations

import re
from typing import Any

from appliance.engines.jump_forward import ForcedText, Jump
from appliance.engines.tool_grammar import ToolConstraint, tool_constraint

TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
OPENING = '<tool_call>\n{"name": "get_weather", "arguments":'


def _params(mode: str, started: bool = False) -> dict[str, Any]:
    choice: dict[str, Any] = {"mode": mode, "parallel": False}
    if mode == "named":
        choice["name"] = "get_weather"
    return {"tools": [TOOL], "tool_choice": choice, "reasoning_started": started}


def _feed(jump: Jump, pieces: list[str]) -> list[str]:
    return [jump.after(p.encode()) for p in pieces]


def test_a_forced_call_is_written_from_the_start_once() -> None:
    constraint = tool_constraint("hermes", _params("named"))
    assert constraint is not None and constraint.forced == ForcedText(OPENING)
    jump = Jump(constraint.forced)
    assert jump.at_start() == OPENING
    assert jump.at_start() == "" and _feed(jump, ["<tool_call>"]) == [""]


def test_after_reasoning_the_call_follows_the_closed_block() -> None:
    constraint = tool_constraint("hermes", _params("required", started=True))
    assert constraint is not None and constraint.forced is not None
    jump = Jump(constraint.forced)
    assert jump.at_start() == ""
    # Written once the block closes: the blank line a template puts there, then the call.
    assert _feed(jump, ["I think", " the tool", "</think>"]) == ["", "", "\n\n" + OPENING]
    assert _feed(jump, ["\n"]) == [""]  # once only
    # The model's own blank line is kept, and the rest written after it.
    jump = Jump(constraint.forced)
    assert _feed(jump, ["ok</think>\n\n"]) == [OPENING]
    # Blank space a template would not write: the model goes on alone (the grammar holds).
    jump = Jump(constraint.forced)
    assert _feed(jump, ["</think> ", "<tool_call>"]) == ["", ""]


def test_auto_writes_the_rest_once_the_model_opens_a_call() -> None:
    constraint = tool_constraint("hermes", _params("auto"))
    assert constraint is not None and constraint.forced is not None
    assert re.fullmatch(constraint.trigger or "", "x<tool_call>")
    jump = Jump(constraint.forced)
    assert jump.at_start() == ""
    assert _feed(jump, ["Let me", " look.", "<tool", "_call>"]) == ["", "", "", OPENING[11:]]


def test_auto_waits_for_a_call_opened_after_the_reasoning() -> None:
    constraint = tool_constraint("hermes", _params("auto", started=True))
    assert constraint is not None and constraint.forced is not None
    jump = Jump(constraint.forced)
    # A call written inside the reasoning is not one: the grammar does not hold there.
    got = _feed(jump, ["maybe <tool_call>", " no", "</think>", "\n\n", "<tool_call>", "\n"])
    assert got == ["", "", "", "", OPENING[11:], ""]


def test_the_marker_is_found_across_pieces_and_in_multibyte_text() -> None:
    forced = ForcedText("<b>rest", r"^[\s\S]*?(<b>)[\s\S]*$", "<b>")
    jump = Jump(forced)
    pieces = ["é".encode()[:1], "é".encode()[1:] + b"<", b"b", b">"]
    assert [jump.after(p) for p in pieces] == ["", "", "", "rest"]


def test_text_that_leaves_the_forced_opening_gets_nothing() -> None:
    forced = ForcedText("<b>rest", r"^[\s\S]*?(<b>)[\s\S]*$", "<b>")
    jump = Jump(forced)
    assert _feed(jump, ["<b>x"]) == [""]
    assert _feed(jump, ["<b>"]) == [""]  # it does not come back


def test_no_forced_text_without_a_call_to_force() -> None:
    assert tool_constraint("hermes", {"tools": [TOOL], "tool_choice": {"mode": "none"}}) is None
    answer = {**_params("auto"), "response_format": {"type": "json_object"}}
    constraint = tool_constraint("hermes", answer)
    assert constraint is not None and constraint.forced is None  # a call or a JSON answer


def test_a_required_text_replaces_an_end_inside_the_reasoning_once() -> None:
    trigger = r"^[\s\S]*?(</think>)[\s\S]*$"
    required = ForcedText("</think>\n\n<tool_call>", trigger, "</think>", required=True)
    jump = Jump(required)
    assert jump.after(b"let me think") == ""
    assert jump.at_end() == "</think>\n\n<tool_call>"  # the model tried to end here
    assert jump.at_end() == "" and jump.after(b"</think>") == ""  # written once
    # Once the model closed the block itself, the rest was written then: nothing to add.
    closed = Jump(required)
    assert closed.after(b"hmm</think>") == "\n\n<tool_call>"
    assert closed.at_end() == ""
    # Without `required` (a call allowed, not required), the model may end.
    assert Jump(ForcedText("<tool_call>", r"^[\s\S]*?(<tool_call>)$", "<tool_call>")).at_end() == ""


def test_gemma4_reasons_in_its_thought_channel() -> None:
    # Lazy: a call written inside the thought channel is not one; after it, it is.
    constraint = tool_constraint("gemma4", _params("auto"))
    assert constraint is not None and constraint.trigger is not None
    thought = "<|channel>thought\nmaybe <|tool_call>call:get_weather{}<tool_call|><channel|>"
    match = re.fullmatch(constraint.trigger, thought + "ok")
    assert match is None
    match = re.fullmatch(constraint.trigger, thought + "<|tool_call>call:")
    assert match is not None and match.start(1) == len(thought)
    # Required after a thought channel the prompt opened: the call follows its close.
    constraint = tool_constraint("gemma4", _params("required", started=True))
    assert constraint is not None and constraint.forced is not None
    jump = Jump(constraint.forced)
    opening = '<|tool_call>call:get_weather{city:<|"|>'
    assert _feed(jump, ["I think", "<channel|>"]) == ["", opening]
    assert constraint.gbnf.startswith('root ::= "<channel|>"')


def _lazy_after_reasoning(family: str, block: str, opener: str) -> ToolConstraint:
    """The lazy constraint of `family`: a call written inside the reasoning `block` is not
    one; `opener` after the block is."""
    constraint = tool_constraint(family, _params("auto"))
    assert constraint is not None and constraint.trigger is not None
    assert re.fullmatch(constraint.trigger, block + "No call.") is None
    match = re.fullmatch(constraint.trigger, block + opener)
    assert match is not None and match.start(1) == len(block)
    return constraint


def test_command_r7b_reasons_in_its_thinking_block() -> None:
    action = '<|START_ACTION|>[\n    {"tool_call_id": "0", "tool_name": "get_weather"'
    thought = "<|START_THINKING|>maybe " + action + "}]<|END_ACTION|><|END_THINKING|>"
    _lazy_after_reasoning("command_r7b", thought, "<|START_ACTION|>[")
    # Required after a block the prompt opened (Cohere2 MoE): the call follows its close
    # with nothing between, as the templates write it.
    constraint = tool_constraint("command_r7b", _params("required", started=True))
    assert constraint is not None and constraint.forced is not None
    jump = Jump(constraint.forced)
    opening = '<|START_ACTION|>[\n    {"tool_call_id":'
    assert _feed(jump, ["I think", "<|END_THINKING|>"]) == ["", opening]
    assert constraint.gbnf.startswith('root ::= "<|END_THINKING|>"')


def test_apertus_deliberates_between_its_inner_markers() -> None:
    call = '<|tools_prefix|>[{"get_weather": {"city": "x"}}]<|tools_suffix|>'
    inner = "<|inner_prefix|>maybe " + call + "<|inner_suffix|>"
    constraint = _lazy_after_reasoning("apertus", inner, "<|tools_prefix|>[")
    assert constraint.forced is not None
    assert constraint.forced.text == '<|tools_prefix|>[{"get_weather":'
