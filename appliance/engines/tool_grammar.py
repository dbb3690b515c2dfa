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

from appliance.parsing import Family
from appliance.parsing.constraints import ANY_OBJECT, tool_call_gbnf, tool_call_trigger


@dataclass(frozen=True)
class ToolConstraint:
    gbnf: str
    trigger: str | None  # a full-match regex (grammar from its first group), None: from the start


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
    gbnf = tool_call_gbnf(
        fam, tools, parallel=parallel, name=choice.get("name"), template=template, answer=answer
    )
    started = bool(params.get("reasoning_started"))
    if mode in ("required", "named") or answer is not None:
        if started:  # let it reason; once it closes the block, a call must follow
            return ToolConstraint(_with_prefix(gbnf, "</think>"), r"^[\s\S]*?(</think>)[\s\S]*$")
        return ToolConstraint(gbnf, None)
    opener = re.escape(tool_call_trigger(fam, parallel=parallel))
    if started:
        return ToolConstraint(gbnf, rf"^[\s\S]*?</think>[\s\S]*?({opener})[\s\S]*$")
    # Not inside a reasoning block: either none, or one that has closed.
    return ToolConstraint(
        gbnf, rf"^(?:\s*<think>[\s\S]*?</think>)?\s*(?!<think>)[\s\S]*?({opener})[\s\S]*$"
    )


def answer_schema(response_format: dict[str, Any] | None) -> dict[str, Any] | None:
    """The JSON schema a `response_format` asks the answer to follow; None for text."""
    kind = (response_format or {}).get("type")
    if kind == "json_object":
        return ANY_OBJECT
    if kind == "json_schema":
        return dict((response_format or {}).get("schema") or {})
    return None
