"""Tools for a chat template that cannot show them (it never reads `tools`), as
llama-server and LM Studio offer them to such models: the tools are described in a
system message, with the plain JSON call format the generic parser reads and the tool
grammar forces; the calls in the history are written in that format and the tool
results become user turns (many templates accept only alternating user and assistant
turns). The model's calls are then parsed and schema-constrained like any family's.

A template that writes calls in its own syntax but never lists the tools (DeepSeek R1's
distills, DeepSeek V3.1) gets them described with an example call that the template
itself wrote (`example_call`), as llama-server's template polyfill does; its history
stays as the template writes it.

Pure: messages in, messages out.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

Message = dict[str, Any]


def instructions(tools: Sequence[Mapping[str, Any]], *, parallel: bool) -> str:
    functions = [t.get("function", t) for t in tools]
    listing = "\n".join(json.dumps(f, ensure_ascii=False) for f in functions)
    if parallel:
        shape = '[{"name": "<tool name>", "arguments": {<the arguments>}}]'
        how = f"reply with only a JSON list of one or more calls, {shape}, and nothing else"
    else:
        shape = '{"name": "<tool name>", "arguments": {<the arguments>}}'
        how = f"reply with only one JSON call, {shape}, and nothing else"
    return (
        "You can call these tools, described as JSON function definitions:\n"
        f"{listing}\n"
        f"To call tools, {how}; the arguments must match the tool's parameters. "
        "The results come back in the next user turn. To answer without a tool, "
        "reply in plain text."
    )


EXAMPLE_TOOL = "tool_name"
EXAMPLE_ARGUMENT = "some_value"


def example_turns() -> tuple[list[Message], list[Message]]:
    """A conversation before and after an assistant turn calling `EXAMPLE_TOOL`: the
    template's rendering of the difference is the call syntax it writes."""
    before: list[Message] = [{"role": "user", "content": "Hello"}]
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": EXAMPLE_TOOL, "arguments": {"arg1": EXAMPLE_ARGUMENT}},
    }
    return before, [*before, {"role": "assistant", "content": "", "tool_calls": [call]}]


def example_call(prompt: str, with_call: str, eos: str = "") -> str | None:
    """The call syntax a template wrote: what rendering the call turn added after the
    generation prompt (from a token's start, up to the end of the turn, `eos`); None when
    the call is not in it (the template cannot write calls)."""
    start = 0
    while start < min(len(prompt), len(with_call)) and prompt[start] == with_call[start]:
        start += 1
    while start > 0 and with_call[start - 1] not in ">]}) \n":  # not mid-token
        start -= 1
    example = with_call[start:]
    end = example.find(eos, example.find(EXAMPLE_ARGUMENT)) if eos else -1
    example = (example[:end] if end >= 0 else example).strip()
    if EXAMPLE_TOOL not in example or EXAMPLE_ARGUMENT not in example:
        return None
    return example


def native_instructions(tools: Sequence[Mapping[str, Any]], example: str) -> str:
    functions = [t.get("function", t) for t in tools]
    listing = json.dumps(functions, ensure_ascii=False, indent=2)
    return (
        "You can call any of the following tools to satisfy the user's requests:\n"
        f"{listing}\n\nExample tool call syntax:\n\n{example}\n"
    )


def with_instructions(
    messages: Sequence[Mapping[str, Any]], text: str, *, system_role: bool = True
) -> list[Message]:
    """`messages` with `text` at the end of the system message (one is added), or at the
    start of the first user turn for a template that refuses a system message."""
    out = [dict(m) for m in messages]
    if system_role:
        if out and out[0].get("role") == "system":
            out[0]["content"] = f"{out[0].get('content') or ''}\n\n{text}".lstrip()
        else:
            out.insert(0, {"role": "system", "content": text})
        return out
    first = next((i for i, m in enumerate(out) if m.get("role") == "user"), None)
    if first is None:
        out.insert(0, {"role": "user", "content": text})
    else:
        out[first]["content"] = f"{text}\n\n{out[first].get('content') or ''}"
    return out


def _calls_text(calls: Sequence[Mapping[str, Any]], *, parallel: bool) -> str:
    written = []
    for call in calls:
        fn = call.get("function", call)
        args = fn.get("arguments", {})
        if isinstance(args, str):
            with contextlib.suppress(json.JSONDecodeError):
                args = json.loads(args)
        written.append({"name": fn.get("name"), "arguments": args})
    payload: Any = written if parallel or len(written) > 1 else written[0]
    return json.dumps(payload, ensure_ascii=False)


def _result_text(message: Mapping[str, Any]) -> str:
    name = message.get("name")
    call_id = message.get("tool_call_id")
    label = f"{name} (call {call_id})" if name and call_id else name or call_id or "a tool"
    return f"Result of {label}:\n{message.get('content') or ''}"


def with_generic_tools(
    messages: Sequence[Mapping[str, Any]],
    tools: Sequence[Mapping[str, Any]],
    *,
    parallel: bool = True,
    system_role: bool = True,
) -> list[Message]:
    """`messages` with the tools described and the tool turns written as text.
    `system_role` False puts the description at the start of the first user turn, for
    templates that refuse a system message."""
    text = instructions(tools, parallel=parallel)
    return with_instructions(
        tool_turns_as_text(messages, parallel=parallel), text, system_role=system_role
    )


def tool_turns_as_text(
    messages: Sequence[Mapping[str, Any]], *, parallel: bool = True
) -> list[Message]:
    """`messages` with their tool calls and results written as text, for a template that
    cannot show them (it would render an empty assistant turn and drop the results)."""
    out: list[Message] = []
    for m in messages:
        role = m.get("role")
        if role == "tool":
            result = _result_text(m)
            if out and out[-1].get("role") == "user" and out[-1].get("_results"):
                out[-1]["content"] += "\n\n" + result
            else:
                out.append({"role": "user", "content": result, "_results": True})
            continue
        item = {k: v for k, v in m.items() if k not in ("tool_calls", "tool_call_id")}
        if role == "assistant" and m.get("tool_calls"):
            call = _calls_text(m["tool_calls"], parallel=parallel)
            content = str(m.get("content") or "")
            item["content"] = f"{content}\n{call}" if content else call
        out.append(item)
    for item in out:
        item.pop("_results", None)
    return out
