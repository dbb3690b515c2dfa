"""Tool-call regions: where one starts, where it ends, and what it held.

A region is created at its opening marker and fed the text after it. ``feed``
returns None while the region is open and, once it has ended, the text that came
after it (which may give back a little text taken earlier, when the region turned
out to end before a marker that had started in an earlier piece). ``outcome`` then
reads the region's calls. Deciding where a region ends never parses it, so the
decision is the same however the text was split.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import NamedTuple

from appliance.parsing.calls import RawCall, calls_from_json_value, mistral_named_call
from appliance.parsing.jsonscan import JsonEnd, loads_strict
from appliance.parsing.text import MarkerSearch

__all__ = [
    "BareJson",
    "BareJsonRegion",
    "CdataRegion",
    "JsonRegion",
    "MistralRegion",
    "Outcome",
    "PythonTagRegion",
    "Region",
    "TaggedRegion",
    "Viability",
]

# (text between the markers, whether the closing marker was seen) -> calls or None
Reader = Callable[[str, bool], list[RawCall] | None]


class Outcome(NamedTuple):
    """``calls`` when the region was valid; else its raw text becomes content,
    flagged as a malformed call when ``flagged``."""

    calls: list[RawCall] | None
    flagged: bool


MALFORMED = Outcome(None, True)
NOT_A_CALL = Outcome(None, False)


def _first_non_space(text: str, start: int) -> int:
    for i in range(start, len(text)):
        if not text[i].isspace():
            return i
    return -1


class Region(ABC):
    def __init__(self, opener: str) -> None:
        self.opener = opener
        self._parts: list[str] = []

    @property
    def body(self) -> str:
        return "".join(self._parts)

    @property
    def raw(self) -> str:
        """Everything the region took, opener included: what content gets if invalid."""
        return self.opener + self.body

    @abstractmethod
    def feed(self, piece: str) -> str | None: ...

    def finish(self) -> None:  # noqa: B027 - most regions hold nothing back
        """End of output inside the region: keep whatever is still held."""

    @abstractmethod
    def outcome(self) -> Outcome: ...

    def _take_back(self, n: int) -> str:
        body = self.body
        self._parts = [body[: len(body) - n]]
        return body[len(body) - n :]

    def _break_off(self, piece: str, end: int, marker: str) -> str:
        """A marker that starts another region ended at ``piece[end]``: this one ends
        just before it, and what follows, given back, starts with it."""
        start = end - len(marker)
        if start >= 0:
            self._parts.append(piece[:start])
            return piece[start:]
        return self._take_back(-start) + piece


class TaggedRegion(Region):
    """``OPEN ... CLOSE``: the first closing marker ends it.

    With ``json_body`` a body that starts with ``{`` or ``[`` is skipped as JSON
    first, so a closing marker inside a JSON string does not end the region (one
    outside a string still does: the JSON is broken there). A
    ``restart`` marker before the close ends the region just before it (invalid), so
    a broken call never swallows the next one.
    """

    def __init__(
        self,
        opener: str,
        closers: Sequence[str],
        reader: Reader,
        *,
        json_body: bool = False,
        restarts: Sequence[str] = (),
    ) -> None:
        super().__init__(opener)
        self._closers = tuple(closers)
        self._reader = reader
        self._state = "lead" if json_body else "until"
        self._json = JsonEnd(bail="<")
        self._tail = ""
        self._search = MarkerSearch(self._closers + tuple(restarts))
        self._closer: str | None = None
        self._cut = False

    def feed(self, piece: str) -> str | None:
        i = 0
        while True:
            if self._state == "lead":
                j = _first_non_space(piece, i)
                if j < 0:
                    self._parts.append(piece[i:])
                    return None
                self._parts.append(piece[i:j])
                i = j
                self._state = "json" if piece[j] in "{[" else "until"
            elif self._state == "json":
                end = self._json.feed(piece[i:])
                if end is None:
                    self._parts.append(piece[i:])
                    return None
                self._parts.append(piece[i : i + end])
                i += end
                # Broken JSON (a tag where JSON cannot have one): find the close.
                self._state = "until" if self._json.broken else "tail"
            elif self._state == "tail":
                self._tail += piece[i:]
                stripped = self._tail.lstrip()
                for closer in self._closers:
                    if stripped.startswith(closer):
                        used = len(self._tail) - len(stripped) + len(closer)
                        self._parts.append(self._tail[:used])
                        self._closer = closer
                        return self._tail[used:]
                if any(c.startswith(stripped) for c in self._closers):
                    return None
                piece, i, self._tail = self._tail, 0, ""
                self._state = "until"
            else:
                return self._until(piece[i:])

    def _until(self, piece: str) -> str | None:
        hit = self._search.feed(piece)
        if hit is None:
            self._parts.append(piece)
            return None
        end, marker = hit
        if marker in self._closers:
            self._parts.append(piece[:end])
            self._closer = marker
            return piece[end:]
        self._cut = True
        return self._break_off(piece, end, marker)

    def finish(self) -> None:
        self._parts.append(self._tail)
        self._tail = ""

    def outcome(self) -> Outcome:
        if self._cut:
            return MALFORMED
        body = self.body
        closed = self._closer is not None
        inner = body[: len(body) - len(self._closer)] if self._closer is not None else body
        calls = self._reader(inner, closed)
        return Outcome(calls, False) if calls else MALFORMED


class MistralRegion(Region):
    """After ``[TOOL_CALLS]``: a JSON list of calls (v0.3, Nemo), or
    ``name[ARGS]{...}`` / ``name[CALL_ID]id[ARGS]{...}`` (Small 3.2, Devstral,
    Magistral, Ministral). Ends where the JSON ends."""

    _NAME_LIMIT = 256

    def __init__(self, opener: str) -> None:
        super().__init__(opener)
        self._state = "lead"
        self._listed = False
        self._json = JsonEnd()
        self._args = MarkerSearch(["[ARGS]"])
        self._name_len = 0
        self._done = False

    def feed(self, piece: str) -> str | None:
        i = 0
        while True:
            if self._state in ("lead", "args_lead"):
                j = _first_non_space(piece, i)
                if j < 0:
                    self._parts.append(piece[i:])
                    return None
                self._parts.append(piece[i:j])
                i = j
                if self._state == "lead":
                    self._listed = piece[j] in "[{"
                    self._state = "json" if self._listed else "name"
                elif piece[j] == "{":
                    self._state = "json"
                else:
                    return piece[j:]  # [ARGS] without an object: invalid
            elif self._state == "name":
                rest = piece[i:]
                hit = self._args.feed(rest)
                scanned = rest if hit is None else rest[: hit[0]]
                cut = scanned.find("\n")
                if cut < 0 and self._name_len + len(scanned) > self._NAME_LIMIT:
                    cut = self._NAME_LIMIT - self._name_len
                if cut >= 0:
                    self._parts.append(rest[:cut])
                    return rest[cut:]  # not a name: invalid, the rest is content again
                self._parts.append(scanned)
                self._name_len += len(scanned)
                if hit is None:
                    return None
                i += hit[0]
                self._state = "args_lead"
            else:
                end = self._json.feed(piece[i:])
                if end is None:
                    self._parts.append(piece[i:])
                    return None
                self._parts.append(piece[i : i + end])
                self._done = True
                return piece[i + end :]

    def outcome(self) -> Outcome:
        if not self._done:
            return MALFORMED
        body = self.body
        if self._listed:
            ok, value = loads_strict(body.strip())
            calls = calls_from_json_value(value, require_arguments=False) if ok else None
        else:
            calls = mistral_named_call(body)
        return Outcome(calls, False) if calls else MALFORMED


class JsonRegion(Region):
    """After a marker with no closing one (Granite 3's ``<|tool_call|>``): one JSON
    value, a list of calls or a call, that ends the region where it ends. Text that
    does not start JSON ends it at once, invalid."""

    def __init__(self, opener: str, reader: Callable[[str], list[RawCall] | None]) -> None:
        super().__init__(opener)
        self._reader = reader
        self._lead = True
        self._json = JsonEnd()
        self._done = False

    def feed(self, piece: str) -> str | None:
        if self._lead:
            j = _first_non_space(piece, 0)
            if j < 0:
                self._parts.append(piece)
                return None
            self._parts.append(piece[:j])
            piece = piece[j:]
            if piece[0] not in "[{":
                return piece  # not JSON: invalid, the rest is content again
            self._lead = False
        end = self._json.feed(piece)
        if end is None:
            self._parts.append(piece)
            return None
        self._parts.append(piece[:end])
        self._done = True
        return piece[end:]

    def outcome(self) -> Outcome:
        calls = self._reader(self.body) if self._done else None
        return Outcome(calls, False) if calls else MALFORMED


class PythonTagRegion(Region):
    """After Llama's ``<|python_tag|>``: JSON (ends with the value) or code (ends at
    ``<|eom_id|>`` / ``<|eot_id|>`` or the end of output)."""

    _ENDS = ("<|eom_id|>", "<|eot_id|>")

    def __init__(self, opener: str, reader: Callable[[str], list[RawCall] | None]) -> None:
        super().__init__(opener)
        self._reader = reader
        self._state = "lead"
        self._json = JsonEnd()
        self._search = MarkerSearch(self._ENDS)
        self._end = ""
        self._complete = False

    def feed(self, piece: str) -> str | None:
        if self._state == "lead":
            j = _first_non_space(piece, 0)
            if j < 0:
                self._parts.append(piece)
                return None
            self._parts.append(piece[:j])
            piece = piece[j:]
            self._state = "json" if piece[0] in "{[" else "code"
        if self._state == "json":
            end = self._json.feed(piece)
            if end is None:
                self._parts.append(piece)
                return None
            self._parts.append(piece[:end])
            self._complete = True
            return piece[end:]
        hit = self._search.feed(piece)
        if hit is None:
            self._parts.append(piece)
            return None
        self._parts.append(piece[: hit[0]])
        self._end = hit[1]
        return piece[hit[0] :]

    def finish(self) -> None:
        self._complete = self._complete or self._state == "code"

    def outcome(self) -> Outcome:
        if not (self._complete or self._end):
            return MALFORMED
        body = self.body
        calls = self._reader(body[: len(body) - len(self._end)])
        return Outcome(calls, False) if calls else MALFORMED


class Viability(Enum):
    MAYBE = "maybe"  # could still become a call: hold it
    CALL = "call"  # starts like a call: read it as one
    NO = "no"  # plain content


@dataclass(frozen=True, slots=True)
class BareJson:
    """Calls written as bare JSON (no marker) at the start of the content.

    ``keys``: first keys that make an object look like a call. ``arrays``: a list of
    call objects is accepted. ``fences``: a Markdown ```json fence around it is too.
    """

    keys: frozenset[str]
    arrays: bool = False
    fences: bool = False

    def viability(self, s: str) -> Viability:
        """What the text (from its first non-space character) can still become; the
        answer only moves from MAYBE to CALL or NO as text is added."""
        if not s:
            return Viability.MAYBE
        if self.fences and s.startswith("`"):
            if "```json".startswith(s):
                return Viability.MAYBE
            if not s.startswith("```"):
                return Viability.NO
            rest = s[3:]
            rest = rest[4:] if rest.startswith("json") else rest
            rest = rest.lstrip()
            return self._value(rest) if rest else Viability.MAYBE
        return self._value(s)

    def _value(self, s: str) -> Viability:
        if s.startswith("[") and self.arrays:
            rest = s[1:].lstrip()
            if not rest:
                return Viability.MAYBE
            return self._object(rest) if rest[0] == "{" else Viability.NO
        return self._object(s) if s.startswith("{") else Viability.NO

    def _object(self, s: str) -> Viability:
        rest = s[1:].lstrip()
        if not rest:
            return Viability.MAYBE
        if rest[0] != '"':
            return Viability.NO
        key = rest[1:]
        quote = key.find('"')
        if quote < 0:
            return Viability.MAYBE if any(k.startswith(key) for k in self.keys) else Viability.NO
        return Viability.CALL if key[:quote] in self.keys else Viability.NO


class BareJsonRegion(Region):
    """A JSON call with no marker, optionally fenced; not a call unless it reads as
    one (and names a known tool, when tools are known)."""

    _FENCE_END = re.compile(r"\s*```")

    def __init__(self, known_tools: Collection[str] | None) -> None:
        super().__init__("")
        self._known = known_tools
        self._state = "lead"
        self._fenced = False
        self._json = JsonEnd()
        self._start = 0
        self._stop = 0
        self._tail = ""

    def feed(self, piece: str) -> str | None:
        i = 0
        while True:
            if self._state == "lead":
                j = min((p for p in (piece.find("{", i), piece.find("[", i)) if p >= 0), default=-1)
                if j < 0:
                    self._parts.append(piece[i:])
                    return None
                self._parts.append(piece[i:j])
                self._fenced = "`" in self.body
                self._start = len(self.body)
                i = j
                self._state = "json"
            elif self._state == "json":
                end = self._json.feed(piece[i:])
                if end is None:
                    self._parts.append(piece[i:])
                    return None
                self._parts.append(piece[i : i + end])
                self._stop = len(self.body)
                i += end
                self._state = "tail" if self._fenced else "done"
            elif self._state == "tail":
                self._tail += piece[i:]
                m = self._FENCE_END.match(self._tail)
                if m is not None:
                    self._parts.append(self._tail[: m.end()])
                    self._state = "done"
                    return self._tail[m.end() :]
                if self._tail.strip() and not "```".startswith(self._tail.strip()):
                    self._state = "done"
                    return self._tail
                return None
            else:
                return piece[i:]

    def finish(self) -> None:
        self._parts.append(self._tail)
        self._tail = ""

    def outcome(self) -> Outcome:
        if self._stop == 0:
            return MALFORMED
        ok, value = loads_strict(self.body[self._start : self._stop])
        if not ok:
            return MALFORMED
        calls = calls_from_json_value(value, require_arguments=True)
        if not calls:
            return NOT_A_CALL
        if self._known is not None and any(c.name not in self._known for c in calls):
            return NOT_A_CALL
        return Outcome(calls, False)


class CdataRegion(Region):
    """``OPEN ... CLOSE`` for tags whose values may sit in ``<![CDATA[...]]>`` (MiniCPM5's
    ``<function name=..>..</function>``): the first closing marker outside such a
    section ends it, so a value may hold the closing tag there. The opener again outside
    one ends it just before (invalid), so a broken call never swallows the next one; a
    region the output leaves open is invalid too."""

    _OPEN, _CLOSE = "<![CDATA[", "]]>"

    def __init__(self, opener: str, closer: str, reader: Reader) -> None:
        super().__init__(opener)
        self._closer = closer
        self._reader = reader
        self._outside = (self._OPEN, closer, opener)
        self._search = MarkerSearch(self._outside)
        self._in_cdata = False
        self._closed = False
        self._cut = False

    def feed(self, piece: str) -> str | None:
        while True:
            hit = self._search.feed(piece)
            if hit is None:
                self._parts.append(piece)
                return None
            end, marker = hit
            if self._in_cdata or marker == self._OPEN:  # into or out of a section
                self._parts.append(piece[:end])
                piece = piece[end:]
                self._in_cdata = not self._in_cdata
                self._search = MarkerSearch((self._CLOSE,) if self._in_cdata else self._outside)
            elif marker == self._closer:
                self._parts.append(piece[:end])
                self._closed = True
                return piece[end:]
            else:  # the opener again
                self._cut = True
                return self._break_off(piece, end, marker)

    def outcome(self) -> Outcome:
        if self._cut or not self._closed:
            return MALFORMED
        body = self.body
        calls = self._reader(body[: len(body) - len(self._closer)], True)
        return Outcome(calls, False) if calls else MALFORMED
