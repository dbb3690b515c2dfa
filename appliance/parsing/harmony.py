"""gpt-oss "harmony" output: messages on channels instead of tags.

The generation prompt ends with ``<|start|>assistant``, so the output opens with the
rest of a message header, then ``<|message|>`` and the body::

    <|channel|>analysis<|message|>...<|end|>
    <|start|>assistant<|channel|>final<|message|>...<|return|>
    <|start|>assistant<|channel|>commentary to=functions.NAME <|constrain|>json
        <|message|>{...}<|call|>

``analysis`` is reasoning; ``final`` and ``commentary`` without a recipient are
content; a ``functions.NAME`` recipient (in the role or the channel part of the
header, on any channel) is a call. A message to any other recipient (built-in
``python``, ``browser.*``, ``container.*``) is a call this API never offered: its
raw text becomes content, flagged malformed. Tool text inside an analysis body is
just reasoning. Stop tokens (``<|call|>``, ``<|return|>``) may be missing when the
engine strips them: the end of the output ends the message.
"""

from __future__ import annotations

import re

from appliance.parsing.calls import RawCall
from appliance.parsing.jsonscan import loads_strict
from appliance.parsing.segments import Kind, Seg, ready_calls
from appliance.parsing.text import MarkerSearch, find_first, held_suffix

__all__ = ["HarmonyMachine"]

MESSAGE = "<|message|>"
_ENDS = ("<|end|>", "<|call|>", "<|return|>")  # end a message, consumed
_HEADS = ("<|start|>", "<|channel|>")  # begin the next header, kept
_MARKERS = _ENDS + _HEADS
_HEADER_STARTS = ("<|start|>", "<|channel|>", "<|constrain|>", MESSAGE, "to=", "assistant")
_HEADER_LIMIT = 512  # a header is short; longer text before <|message|> is content
_CHANNEL = re.compile(r"<\|channel\|>\s*([\w.-]+)")
_RECIPIENT = re.compile(r"to=([^\s<]+)")
_TO_MODEL = ("assistant", "user", "all")
_FUNCTIONS = "functions."


def _plausible_header(text: str) -> bool:
    s = text.lstrip()
    return any(s.startswith(h) or h.startswith(s) for h in _HEADER_STARTS)


class HarmonyMachine:
    def __init__(self, *, reasoning_started: bool) -> None:
        self._buf = ""
        self._header = ""
        self._out: list[Seg] = []
        self._kind = "reasoning"
        self._name = ""
        self._raw_header = ""
        self._parts: list[str] = []
        self._search = MarkerSearch(_MARKERS)
        if reasoning_started:
            self._state = "body"
            self._out.append(Seg(Kind.OPENED))
        else:
            self._state = "header"

    def feed(self, piece: str) -> list[Seg]:
        self._buf += piece
        return self._run(eof=False)

    def finish(self) -> list[Seg]:
        return self._run(eof=True)

    def _run(self, *, eof: bool) -> list[Seg]:
        while True:
            if self._state == "header":
                more = self._head(eof)
            elif self._state == "body" and self._kind in ("reasoning", "content"):
                more = self._text_body(eof)
            elif self._state == "body":
                more = self._call_body(eof)
            else:
                more = False
            if not more:
                break
        out, self._out = self._out, []
        return out

    def _head(self, eof: bool) -> bool:
        text, self._buf = self._header + self._buf, ""
        window = text[: _HEADER_LIMIT + len(MESSAGE)]
        pos = window.find(MESSAGE)
        # Judged on the text before <|message|> (or before what may yet become it),
        # so the verdict is the same however the text was split.
        head = text[:pos] if pos >= 0 else text[: len(text) - held_suffix(text, (MESSAGE,))]
        if pos >= 0 and _plausible_header(head):
            self._header = ""
            self._buf = text[pos + len(MESSAGE) :]
            self._begin(head)
            return True
        if len(window) == _HEADER_LIMIT + len(MESSAGE) or not _plausible_header(head):
            # Not a header: the model wrote plain text, which is the answer.
            self._header, self._buf = "", text
            self._kind, self._raw_header = "content", ""
            self._state = "body"
            return True
        if eof:
            self._header = ""  # a dangling header (the turn ended): nothing to say
            self._state = "done"
            return False
        self._header = text
        return False

    def _begin(self, header: str) -> None:
        channels = _CHANNEL.findall(header)
        recipients = [r for r in _RECIPIENT.findall(header) if r not in _TO_MODEL]
        self._raw_header = header
        self._parts = []
        self._search = MarkerSearch(_MARKERS)
        if recipients:
            recipient = recipients[-1]
            if recipient.startswith(_FUNCTIONS) and len(recipient) > len(_FUNCTIONS):
                self._kind, self._name = "call", recipient[len(_FUNCTIONS) :]
            else:
                self._kind, self._name = "foreign", recipient
        elif channels and channels[-1] == "analysis":
            self._kind = "reasoning"
            self._out.append(Seg(Kind.OPENED))
        else:
            self._kind = "content"
            # Messages are paragraphs: kept apart when there is text on both sides.
            self._out.append(Seg(Kind.CONTENT, "\n\n"))
        self._state = "body"

    def _text_body(self, eof: bool) -> bool:
        kind = Kind.REASONING if self._kind == "reasoning" else Kind.CONTENT
        hit = find_first(self._buf, _MARKERS)
        if hit is None:
            keep = 0 if eof else held_suffix(self._buf, _MARKERS)
            self._emit(kind, self._buf[: len(self._buf) - keep])
            self._buf = self._buf[len(self._buf) - keep :]
            if eof:
                if kind is Kind.REASONING:
                    self._out.append(Seg(Kind.UNCLOSED))
                self._state = "done"
            return False
        pos, marker = hit
        self._emit(kind, self._buf[:pos])
        self._buf = self._buf[pos + len(marker) :] if marker in _ENDS else self._buf[pos:]
        self._state = "header"
        return True

    def _call_body(self, eof: bool) -> bool:
        rest: str | None = None
        if self._buf:
            piece, self._buf = self._buf, ""
            hit = self._search.feed(piece)
            if hit is None:
                self._parts.append(piece)
            else:
                end, marker = hit
                start = end - len(marker)
                if start >= 0:
                    self._parts.append(piece[:start])
                    rest = piece[start:]
                else:
                    body = "".join(self._parts)
                    self._parts = [body[: len(body) + start]]
                    rest = body[len(body) + start :] + piece
        if rest is None and not eof:
            return False
        self._close_call()
        if rest is not None:
            for end_marker in _ENDS:
                if rest.startswith(end_marker):
                    rest = rest[len(end_marker) :]
                    break
        self._buf = rest or ""
        self._state = "header"
        return True

    def _close_call(self) -> None:
        body = "".join(self._parts)
        raw = self._raw_header + MESSAGE + body
        if self._kind == "call":
            ok, value = loads_strict(body.strip())
            if ok and isinstance(value, dict):
                ready = ready_calls([RawCall(self._name, value)])
                if ready:
                    self._out.append(Seg(Kind.CALLS, calls=ready))
                    return
        self._out.append(Seg(Kind.MALFORMED, raw))

    def _emit(self, kind: Kind, text: str) -> None:
        if text:
            self._out.append(Seg(kind, text))
