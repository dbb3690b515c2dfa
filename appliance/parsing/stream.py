"""The public parser: feed output deltas, get reasoning, content and tool-call events.

The family machines decide what each piece of text is; this layer trims whitespace,
gives calls their ids, sets the flags and keeps the running message, so the deltas
always add up to the final message exactly.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
import string
from collections.abc import Callable, Collection

from appliance.parsing.calls import ToolSchemas
from appliance.parsing.families import Family, family_from_name
from appliance.parsing.harmony import HarmonyMachine
from appliance.parsing.machine import TextMachine
from appliance.parsing.segments import Kind, Seg
from appliance.parsing.syntax import Context, syntax_for
from appliance.parsing.text import Trimmed
from appliance.parsing.types import (
    ContentDelta,
    Event,
    Final,
    ParsedMessage,
    ReasoningDelta,
    ToolCall,
    ToolCallArgumentsDelta,
    ToolCallStart,
)

__all__ = ["StreamParser", "new_call_id", "parse_output"]

_ALPHANUM = string.ascii_letters + string.digits


def new_call_id(length: int | None = None) -> str:
    """``call_`` + 24 random characters, or ``length`` bare alphanumerics (Mistral's
    templates accept only 9)."""
    if length is not None:
        return "".join(secrets.choice(_ALPHANUM) for _ in range(length))
    return "call_" + "".join(secrets.choice(_ALPHANUM) for _ in range(24))


class StreamParser:
    """Splits one chat completion's output text into reasoning, content and calls.

    ``feed`` each text delta in order, then ``finish`` once at the end of output; the
    last event is ``Final``. The final message is the same however the text was
    split, and the deltas add up to it. Nothing raises on odd output.

    - ``reasoning_started``: the prompt already opened the reasoning block (see
      ``prompt_opens_reasoning``), so the output starts inside it.
    - ``known_tools``: the request's tool names. Calls to other names are still
      returned but listed in ``unknown_tools``; a bare JSON "call" (no marker) to an
      unknown name is left as content.
    - ``tool_schemas``: tool name -> parameters JSON schema; only used to type the
      string values of XML parameters (Qwen3-Coder), exactly as declared.
    - ``id_factory``: makes call ids (tests inject a counter). Ids the model wrote
      itself (Mistral) are kept when unique.

    A call is emitted only once it is complete and valid, so arguments come in one
    delta and a client never sees a call that is later withdrawn.
    """

    def __init__(
        self,
        family: Family | str = Family.GENERIC,
        *,
        reasoning_started: bool = False,
        known_tools: Collection[str] | None = None,
        tool_schemas: ToolSchemas | None = None,
        id_factory: Callable[[], str] | None = None,
        calls: bool = True,
    ) -> None:
        """``calls`` False: no tools were offered, so the family's markup splits reasoning
        and drops its stray markers, and what would open a call is content (a gpt-oss
        call, which its channels mark apart, as the JSON of its name and arguments)."""
        self.family = family if isinstance(family, Family) else family_from_name(family)
        known = frozenset(known_tools) if known_tools is not None else None
        self._machine: TextMachine | HarmonyMachine
        if self.family is Family.HARMONY:
            self._machine = HarmonyMachine(reasoning_started=reasoning_started)
            id_length = None
        else:
            syntax = syntax_for(self.family)
            if not calls:
                syntax = dataclasses.replace(syntax, openers=(), bare=None, after_call=())
            ctx = Context(known, tool_schemas or {})
            self._machine = TextMachine(syntax, ctx, reasoning_started=reasoning_started)
            id_length = syntax.id_length
        self._new_id = id_factory or (lambda: new_call_id(id_length))
        self._calls_allowed = calls
        self._known = known
        self._reasoning_out = Trimmed()
        self._content_out = Trimmed()
        self._reasoning: list[str] = []
        self._content: list[str] = []
        self._has_reasoning = False
        self._calls: list[ToolCall] = []
        self._ids: set[str] = set()
        self._flags = {"malformed": False, "unclosed": False, "recovered": False}
        self._finished = False

    def feed(self, delta: str) -> list[Event]:
        if self._finished:
            raise RuntimeError("feed() after finish()")
        return self._events(self._machine.feed(delta))

    def finish(self) -> list[Event]:
        if self._finished:
            raise RuntimeError("finish() called twice")
        self._finished = True
        events = self._events(self._machine.finish())
        events.append(Final(self.message()))
        return events

    def message(self) -> ParsedMessage:
        """The message so far (final once ``finish`` was called)."""
        unknown: list[str] = []
        if self._known is not None:
            for call in self._calls:
                if call.name not in self._known and call.name not in unknown:
                    unknown.append(call.name)
        pairs = [(c.name, c.arguments) for c in self._calls]
        return ParsedMessage(
            content="".join(self._content),
            reasoning="".join(self._reasoning) if self._has_reasoning else None,
            tool_calls=tuple(self._calls),
            malformed_tool_call=self._flags["malformed"],
            reasoning_unclosed=self._flags["unclosed"],
            tool_call_in_unclosed_reasoning=self._flags["recovered"],
            unknown_tools=tuple(unknown),
            duplicate_tool_calls=len(set(pairs)) < len(pairs),
        )

    def _events(self, segs: list[Seg]) -> list[Event]:
        events: list[Event] = []
        for seg in segs:
            if seg.kind is Kind.REASONING:
                self._has_reasoning = True
                text = self._reasoning_out.push(seg.text)
                if text:
                    self._reasoning.append(text)
                    events.append(ReasoningDelta(text))
            elif seg.kind in (Kind.CONTENT, Kind.MALFORMED):
                if seg.kind is Kind.MALFORMED:
                    self._flags["malformed"] = True
                events.extend(self._text(seg.text))
            elif seg.kind is Kind.CALLS and not self._calls_allowed:
                for call in seg.calls:
                    events.extend(self._text(_call_as_text(call.name, call.arguments)))
            elif seg.kind is Kind.CALLS:
                for call in seg.calls:
                    events.extend(self._call(call.name, call.arguments, call.id))
            elif seg.kind is Kind.OPENED:
                self._has_reasoning = True
            elif seg.kind is Kind.UNCLOSED:
                self._flags["unclosed"] = True
            elif seg.kind is Kind.RECOVERED:
                self._flags["recovered"] = True
        return events

    def _text(self, piece: str) -> list[Event]:
        text = self._content_out.push(piece)
        if not text:
            return []
        self._content.append(text)
        return [ContentDelta(text)]

    def _call(self, name: str, arguments: str, model_id: str | None) -> list[Event]:
        index = len(self._calls)
        call_id = model_id if model_id and model_id not in self._ids else self._new_id()
        for _ in range(8):
            if call_id not in self._ids:
                break
            call_id = self._new_id()
        else:
            call_id = f"{call_id}_{index}"  # a factory that repeats itself
        self._ids.add(call_id)
        self._calls.append(ToolCall(call_id, name, arguments))
        return [ToolCallStart(index, call_id, name), ToolCallArgumentsDelta(index, arguments)]


def _call_as_text(name: str, arguments: str) -> str:
    try:
        args: object = json.loads(arguments)
    except json.JSONDecodeError:
        args = arguments
    return json.dumps({"name": name, "arguments": args}, ensure_ascii=False)


def parse_output(
    text: str,
    family: Family | str = Family.GENERIC,
    *,
    reasoning_started: bool = False,
    known_tools: Collection[str] | None = None,
    tool_schemas: ToolSchemas | None = None,
    id_factory: Callable[[], str] | None = None,
) -> ParsedMessage:
    """The whole-output form of :class:`StreamParser` (same result, by construction)."""
    parser = StreamParser(
        family,
        reasoning_started=reasoning_started,
        known_tools=known_tools,
        tool_schemas=tool_schemas,
        id_factory=id_factory,
    )
    parser.feed(text)
    parser.finish()
    return parser.message()
