"""A chat answer's generated text as an OpenAI assistant message, whole or as deltas.

Without tools, a `<think>` block is split into `reasoning_content` (`reasoning.py`), or
the family's own reasoning markup by its parser (gpt-oss's analysis channel, Gemma 4's
thought channel, Magistral's [THINK], Seed-OSS's <seed:think>...), calls left as text.
With tools, the model family's parser (`appliance.parsing`) splits reasoning first and
reads tool calls from the rest: a call reaches the client only once it is complete
and valid (`tool_calls` deltas: id and name, then the arguments), never as content,
and a call written inside the reasoning stays reasoning. What the parser flags (a
call it could not read, returned as content; an unknown tool; repeated calls;
arguments that miss the tool's schema) is listed in the choice's `warnings`.
Reasoning is sent under both names clients use: `reasoning_content` and `reasoning`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from appliance.api.reasoning import ReasoningSplitter
from appliance.api.tools import Tools
from appliance.parsing import (
    ContentDelta,
    Event,
    Final,
    ParsedMessage,
    ReasoningDelta,
    StreamParser,
    ToolCallArgumentsDelta,
    ToolCallStart,
)
from appliance.parsing.syntax import marks_reasoning_otherwise
from appliance.parsing.validate import schema_errors

Delta = dict[str, Any]


def _reasoning(text: str) -> Delta:
    return {"reasoning_content": text, "reasoning": text}


def opening_delta(first: Delta | None) -> Delta:
    """The stream's first delta, the role, sent just before the answer's `first` delta (None:
    the answer is empty): content "" before text, null before a call or reasoning, as OpenAI
    sends it. A "" there opened an empty text part in clients that keep one per delta kind
    (the AI SDK's openai provider gave every tool-call step a blank text part)."""
    return {"role": "assistant", "content": "" if first is None or "content" in first else None}


class ChatOutput:
    def __init__(
        self,
        *,
        split_reasoning: bool,
        reasoning_started: bool,
        family: str | None,
        tools: Tools,
        id_factory: Callable[[], str] | None = None,
    ) -> None:
        self.tools = tools
        self._splitter: ReasoningSplitter | None = None
        self._parser: StreamParser | None = None
        if tools.active:
            self._parser = StreamParser(
                family or "generic",
                reasoning_started=reasoning_started,
                known_tools=tools.names(),
                tool_schemas={t.name: t.parameters for t in tools.specs},
                id_factory=id_factory,
            )
        elif split_reasoning and marks_reasoning_otherwise(family):
            self._parser = StreamParser(
                family or "generic", reasoning_started=reasoning_started, calls=False
            )
        elif split_reasoning:
            self._splitter = ReasoningSplitter(started=reasoning_started)
        self._content: list[str] = []
        self._reasoning: list[str] = []
        self._has_reasoning = reasoning_started and split_reasoning
        self.parsed: ParsedMessage | None = None

    # -- streaming ----------------------------------------------------------------------------

    def feed(self, text: str) -> list[Delta]:
        if self._parser is not None:
            return self._events(self._parser.feed(text))
        if self._splitter is None:
            self._content.append(text)
            return [{"content": text}] if text else []
        reasoning, content = self._splitter.feed(text)
        return self._split(reasoning, content)

    def finish(self) -> list[Delta]:
        if self._parser is not None:
            return self._events(self._parser.finish())
        if self._splitter is None:
            return []
        reasoning, content = self._splitter.flush()
        return self._split(reasoning, content)

    def _split(self, reasoning: str, content: str) -> list[Delta]:
        out: list[Delta] = []
        if self._splitter is not None and self._splitter.has_reasoning:
            self._has_reasoning = True
        if reasoning:
            self._reasoning.append(reasoning)
            out.append(_reasoning(reasoning))
        if content:
            self._content.append(content)
            out.append({"content": content})
        return out

    def _events(self, events: list[Event]) -> list[Delta]:
        out: list[Delta] = []
        for ev in events:
            if isinstance(ev, ReasoningDelta) and ev.text:
                out.append(_reasoning(ev.text))
            elif isinstance(ev, ContentDelta) and ev.text:
                out.append({"content": ev.text})
            elif isinstance(ev, ToolCallStart | ToolCallArgumentsDelta) and self.tools.legacy:
                if ev.index == 0:  # a legacy answer holds one call
                    part = {"name": ev.name} if isinstance(ev, ToolCallStart) else {}
                    args = ev.text if isinstance(ev, ToolCallArgumentsDelta) else ""
                    out.append({"function_call": {**part, "arguments": args}})
            elif isinstance(ev, ToolCallStart):
                call = {
                    "index": ev.index,
                    "id": ev.id,
                    "type": "function",
                    "function": {"name": ev.name, "arguments": ""},
                }
                out.append({"tool_calls": [call]})
            elif isinstance(ev, ToolCallArgumentsDelta):
                out.append(
                    {"tool_calls": [{"index": ev.index, "function": {"arguments": ev.text}}]}
                )
            elif isinstance(ev, Final):
                self.parsed = ev.message
        return out

    # -- the whole answer ---------------------------------------------------------------------

    def message(self) -> Delta:
        """The assistant message, once `finish` has run."""
        if self._parser is not None:
            parsed = self.parsed
            assert parsed is not None, "finish() first"
            msg: Delta = {"role": "assistant", "content": parsed.content or None}
            if parsed.reasoning is not None:
                msg.update(_reasoning(parsed.reasoning))
            if parsed.tool_calls and self.tools.legacy:
                first = parsed.tool_calls[0]
                msg["function_call"] = {"name": first.name, "arguments": first.arguments}
            elif parsed.tool_calls:
                msg["tool_calls"] = [
                    {
                        "id": c.id,
                        "type": "function",
                        "function": {"name": c.name, "arguments": c.arguments},
                    }
                    for c in parsed.tool_calls
                ]
            elif msg["content"] is None:
                msg["content"] = ""
            return msg
        msg = {"role": "assistant", "content": "".join(self._content)}
        if self._has_reasoning:
            msg.update(_reasoning("".join(self._reasoning)))
        return msg

    def finish_reason(self, engine_reason: str) -> str:
        """Say "tool_calls" when the answer made calls, unless it was cut at max_tokens
        ("function_call" for a legacy `functions` request)."""
        if engine_reason != "length" and self.parsed is not None and self.parsed.tool_calls:
            return "function_call" if self.tools.legacy else "tool_calls"
        return engine_reason if engine_reason in ("stop", "length") else "stop"

    def warnings(self) -> list[str]:
        parsed = self.parsed
        if parsed is None:
            return []
        out = []
        if parsed.malformed_tool_call:
            out.append(
                "malformed_tool_call: the model began a tool call that could not be read; "
                "its text is in the content"
            )
        if parsed.unknown_tools:
            out.append(f"unknown_tool: the model called {', '.join(parsed.unknown_tools)}")
        if parsed.duplicate_tool_calls:
            out.append("duplicate_tool_calls: the same call was made twice")
        if parsed.reasoning_unclosed:
            out.append("reasoning_unclosed: the answer ended inside the reasoning block")
        if len(parsed.tool_calls) > 1 and self.tools.legacy:
            out.append(
                f"the model made {len(parsed.tool_calls)} calls; a 'functions' request "
                "answers with the first (send 'tools' for several)"
            )
        elif len(parsed.tool_calls) > 1 and not self.tools.parallel:
            out.append(
                f"one call was asked for (parallel_tool_calls false, or a forced tool_choice "
                f"without it) but the model made {len(parsed.tool_calls)} calls; all are "
                "returned"
            )
        specs = {t.name: t for t in self.tools.specs}
        for call in parsed.tool_calls:
            spec = specs.get(call.name)
            if spec is None:
                continue
            for problem in argument_problems(call.arguments, spec.parameters):
                out.append(f"invalid_arguments: {call.name}: {problem}")
        return out


def argument_problems(arguments: str, schema: dict[str, Any]) -> list[str]:
    """Where a call's arguments miss its tool's schema (empty when they match)."""
    try:
        value = json.loads(arguments)
    except json.JSONDecodeError as exc:
        return [f"not JSON: {exc}"]
    return list(schema_errors(value, schema))
