"""Constrained decoding for tool calls: which grammar a request's sampler gets, and when.

- `tool_choice` "required" or a named function: the output is a call from its first
  token (after the reasoning block, for a prompt that opened one), so it always parses.
- "auto": the grammar is lazy; it takes hold when the model opens a call in its
  family's syntax (after any reasoning), so a call's arguments always match the
  tool's schema while free text stays free.
- "auto" with a `response_format` (an agent with tools and a typed result): the output
  is calls or JSON in that format, from its first token (after the reasoning block), as
  llama-server's "tool call or schema response" grammar.

Pure: the engines turn the text into their runtime's grammar object.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from appliance.engines.jump_forward import ForcedText
from appliance.parsing import Family
from appliance.parsing.constraints import ANY_OBJECT, tool_call_layout, tool_call_trigger
from appliance.parsing.forced_text import forced_prefix
from appliance.parsing.gbnf import render_gbnf
from appliance.parsing.syntax import APERTUS_INNER, COHERE_THINK, GEMMA_THOUGHT, SEED_THINK, THINK

# What a reasoning template writes between the closed block and the answer.
AFTER_REASONING = "\n\n"
# What follows a closed block where a family's template writes otherwise: Gemma 4
# and Kimi K2 answer right after it, Seed-OSS after one newline, Command R7B and
# Command A right after <|END_THINKING|>, Apertus right after <|inner_suffix|>.
_REASONING: dict[Family, tuple[tuple[str, str], str]] = {
    Family.GEMMA4: (GEMMA_THOUGHT, ""),
    Family.SEED_OSS: (SEED_THINK, "\n"),
    Family.KIMI_K2: (THINK, ""),
    Family.COMMAND_R7B: (COHERE_THINK, ""),
    Family.APERTUS: (APERTUS_INNER, ""),
}


def _reasoning_tags(family: Family) -> tuple[str, str, str]:
    """(open, close, what follows the close) of the family's reasoning block."""
    (open_tag, close), after = _REASONING.get(family, (THINK, AFTER_REASONING))
    return open_tag, close, after


@dataclass(frozen=True)
class ToolConstraint:
    gbnf: str
    trigger: str | None  # a full-match regex (grammar from its first group), None: from the start
    forced: ForcedText | None = None  # the opening it allows in one way only


def _with_prefix(gbnf: str, prefix: str) -> str:
    """`gbnf` whose root first expects `prefix` (and blank space) literally."""
    renamed = re.sub(r"^root(\s*::=)", r"tool-calls\1", gbnf, count=1, flags=re.MULTILINE)
    literal = prefix.replace("\\", "\\\\").replace('"', '\\"')
    return f'root ::= "{literal}" [ \\t\\n]* tool-calls\n{renamed}'


def tools_active(params: dict[str, Any]) -> bool:
    """Whether the request offers tools the model may (or must) call; then a response
    format applies only through the calls' grammar (`answer_schema`)."""
    mode = (params.get("tool_choice") or {}).get("mode")
    return bool(params.get("tools")) and mode in ("auto", "required", "named")


def tool_constraint(
    family: str, params: dict[str, Any], template: str | None = None
) -> ToolConstraint | None:
    if not tools_active(params):
        return None
    choice = params["tool_choice"]
    tools = params["tools"]
    mode = choice.get("mode")
    fam = Family(family)
    parallel = bool(choice.get("parallel", True))
    answer = answer_schema(params.get("response_format")) if mode == "auto" else None
    name = choice.get("name")
    layout = tool_call_layout(
        fam, tools, parallel=parallel, name=name, template=template, answer=answer
    )
    gbnf, text = render_gbnf(layout), forced_prefix(layout)
    started = bool(params.get("reasoning_started"))
    open_tag, close, after = _reasoning_tags(fam)
    open_re, close_re = re.escape(open_tag), re.escape(close)
    if mode in ("required", "named") or answer is not None:
        if started:  # let it reason; once it closes the block, a call must follow
            trigger = rf"^[\s\S]*?({close_re})[\s\S]*$"
            closing = close + after + text
            forced = ForcedText(closing, trigger, close, required=True)
            return ToolConstraint(_with_prefix(gbnf, close), trigger, forced)
        return ToolConstraint(gbnf, None, ForcedText(text) if text else None)
    literal = tool_call_trigger(fam, parallel=parallel, template=template)
    opener = re.escape(literal)
    if started:
        trigger = rf"^[\s\S]*?{close_re}[\s\S]*?({opener})[\s\S]*$"
    else:  # not inside a reasoning block: either none, or one that has closed
        trigger = rf"^(?:\s*{open_re}[\s\S]*?{close_re})?\s*(?!{open_re})[\s\S]*?({opener})[\s\S]*$"
    # Written once the model has opened a call, when there is more to it than the opener.
    worth = len(text) > len(literal) and text.startswith(literal)
    return ToolConstraint(gbnf, trigger, ForcedText(text, trigger, literal) if worth else None)


def answer_schema(response_format: dict[str, Any] | None) -> dict[str, Any] | None:
    """The JSON schema a `response_format` asks the answer to follow; None for text."""
    kind = (response_format or {}).get("type")
    if kind == "json_object":
        return ANY_OBJECT
    if kind == "json_schema":
        return dict((response_format or {}).get("schema") or {})
    return None
