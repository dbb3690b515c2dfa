"""A JSON Schema ``pattern`` as GBNF: the contents of a JSON string that matches it.

Written from Python's own parse of the regex, because llama-cpp-python's converter
takes no ``(?:``, ``\\d`` or escaped dots (zod's email and date-time patterns), matches
raw text where a JSON string escapes ``"`` and ``\\``, and nests its counts deeper than
llama.cpp accepts. A pattern that cannot be written raises :class:`Unwritable`, and the
caller drops that pattern alone.
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Callable
from typing import Any

from appliance.parsing.call_layout import repeat

__all__ = ["GRAMMAR_COUNT_LIMIT", "PatternWriter", "Unwritable", "gbnf_literal", "json_text"]

# llama-grammar.cpp's MAX_REPETITION_THRESHOLD: it refuses a grammar that repeats
# something at least more times than this, and reads a larger most as "no most".
GRAMMAR_COUNT_LIMIT = 2000


class Unwritable(Exception):
    """A pattern that GBNF cannot express: it is dropped, the rest of the schema kept."""


def gbnf_literal(text: str) -> str:
    """``text`` as a GBNF string literal."""
    out = []
    for ch in text:
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02X}")
        elif 0xD800 <= ord(ch) <= 0xDFFF:  # a lone surrogate: unmatchable, but encodable
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def json_text(value: Any) -> str:
    """JSON text as a model writes it: non-ASCII characters as themselves."""
    try:
        return json.dumps(value, ensure_ascii=False).encode("utf-8").decode("utf-8")
    except (UnicodeEncodeError, ValueError, TypeError):  # lone surrogates, odd values
        return json.dumps(value, default=str)


_sre: Any = importlib.import_module("re._parser")  # Python's regex parser (no stubs)
_MAX_CODE = 0x10FFFF
# JSON Schema's classes are ECMA-262's; these are also within Python's, which reads
# the output back (\s without the Unicode spaces that only one of them counts).
_CATEGORIES: dict[str, list[tuple[int, int]]] = {
    "CATEGORY_DIGIT": [(0x30, 0x39)],
    "CATEGORY_WORD": [(0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A)],
    "CATEGORY_SPACE": [(0x09, 0x0D), (0x20, 0x20)],
}
# Characters a JSON string writes escaped: the short escapes, the only ones allowed
# here (other control characters are left out of classes: a narrower, sound grammar).
_SHORT_ESCAPES = {0x22: '"', 0x5C: "\\\\", 0x08: "b", 0x09: "t", 0x0A: "n", 0x0C: "f", 0x0D: "r"}


def _complement(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out, start = [], 0
    for lo, hi in _merged(ranges):
        if lo > start:
            out.append((start, lo - 1))
        start = hi + 1
    if start <= _MAX_CODE:
        out.append((start, _MAX_CODE))
    return out


def _merged(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(hi, out[-1][1]))
        else:
            out.append((lo, hi))
    return out


def _class_char(code: int) -> str:
    if chr(code).isascii() and chr(code).isalnum():
        return chr(code)
    if code < 0x100:
        return f"\\x{code:02X}"
    return f"\\u{code:04X}" if code < 0x10000 else f"\\U{code:08X}"


def _json_class(ranges: list[tuple[int, int]]) -> str:
    """The JSON text of one character from ``ranges``: plain characters as a class, the
    ones JSON escapes by their short escape."""
    plain: list[tuple[int, int]] = []
    for lo, hi in _merged(ranges):  # cut out the control characters, '"' and '\\'
        for a, b in ((lo, min(hi, 0x21)), (max(lo, 0x23), min(hi, 0x5B)), (max(lo, 0x5D), hi)):
            if max(a, 0x20) <= b:
                plain.append((max(a, 0x20), b))
    escapes = "".join(
        e for c, e in _SHORT_ESCAPES.items() if any(lo <= c <= hi for lo, hi in ranges)
    )
    parts = []
    if plain:
        spans = (_class_char(lo) + ("" if lo == hi else "-" + _class_char(hi)) for lo, hi in plain)
        parts.append("[" + "".join(spans) + "]")
    if escapes:
        parts.append(f'"\\\\" [{escapes}]')
    if not parts:
        raise Unwritable("a class that matches no character")
    return parts[0] if len(parts) == 1 else "(" + " | ".join(parts) + ")"


class PatternWriter:
    """A JSON Schema ``pattern`` as the GBNF of a JSON string's contents (each character
    as its JSON text), from Python's parse of it. Repeated parts become rules, so that
    llama.cpp's count of rules times repetitions stays within its limit."""

    def __init__(self, add_rule: Callable[[str, str], str], name: str) -> None:
        self._add_rule = add_rule
        self._name = name
        self._rules = 0

    def body(self, pattern: str) -> str:
        try:
            parsed = _sre.parse(pattern)
        except (re.error, RecursionError, OverflowError, ValueError) as exc:
            raise Unwritable(str(exc)) from exc
        if parsed.state.flags & ~re.UNICODE:  # (?i), (?s), ...
            raise Unwritable("inline flags")
        items = list(parsed)
        lead, trail = _leads(items, 0), _leads(items, -1)
        try:
            text = self._seq(items, lead, trail)
        except RecursionError as exc:
            raise Unwritable("nested too deep") from exc
        anything = f"{_json_class([(0, _MAX_CODE)])}*"
        return " ".join(p for p in ("" if lead else anything, text, "" if trail else anything) if p)

    def _seq(self, items: list[Any], at_start: bool, at_end: bool) -> str:
        out: list[str] = []
        literal = ""
        for i, (op, arg) in enumerate(items):
            kind = str(op)
            if kind == "LITERAL":
                literal += json_text(chr(arg))[1:-1]
                continue
            if literal:
                out.append(gbnf_literal(literal))
                literal = ""
            if kind == "AT":
                first = all(str(o) == "AT" for o, _ in items[:i])
                last = all(str(o) == "AT" for o, _ in items[i + 1 :])
                where = str(arg)
                if where in ("AT_BEGINNING", "AT_BEGINNING_STRING") and at_start and first:
                    continue
                if where in ("AT_END", "AT_END_STRING") and at_end and last:
                    continue
                raise Unwritable(f"anchor {where} inside the pattern")
            first_ = at_start and all(str(o) == "AT" for o, _ in items[:i])
            last_ = at_end and all(str(o) == "AT" for o, _ in items[i + 1 :])
            out.append(self._item(kind, arg, first_, last_))
        if literal:
            out.append(gbnf_literal(literal))
        return " ".join(p for p in out if p) or '""'

    def _item(self, kind: str, arg: Any, at_start: bool, at_end: bool) -> str:
        if kind == "NOT_LITERAL":
            return _json_class(_complement([(arg, arg)]))
        if kind == "ANY":
            return _json_class(_complement([(0x0A, 0x0A)]))
        if kind == "IN":
            return _json_class(_class_ranges(arg))
        if kind == "BRANCH":
            alternatives = [self._seq(list(a), at_start, at_end) for a in arg[1]]
            return "(" + " | ".join(alternatives) + ")"
        if kind == "SUBPATTERN":
            _, add_flags, del_flags, sub = arg
            if add_flags or del_flags:
                raise Unwritable("inline flags")
            return "(" + self._seq(list(sub), at_start, at_end) + ")"
        if kind in ("MAX_REPEAT", "MIN_REPEAT"):  # lazy or not, the same full matches
            low, high, sub = arg
            if low > GRAMMAR_COUNT_LIMIT:
                raise Unwritable(f"a count of {low}, over llama.cpp's {GRAMMAR_COUNT_LIMIT}")
            if high == 0:
                return ""
            inner = self._seq(list(sub), False, False)
            if not re.fullmatch(r'\[[^\]]*\]|"[^"\\]*"|[\w-]+', inner):
                self._rules += 1
                inner = self._add_rule(f"{self._name}-{self._rules}", inner)
            top = None if high == _sre.MAXREPEAT or high > GRAMMAR_COUNT_LIMIT else high
            return inner + repeat(low, top)
        raise Unwritable(f"{kind} in a pattern")  # lookaround, back-references, ...


def _class_ranges(items: list[tuple[Any, Any]]) -> list[tuple[int, int]]:
    ranges: list[tuple[int, int]] = []
    negate = False
    for op, arg in items:
        kind = str(op)
        if kind == "NEGATE":
            negate = True
        elif kind == "LITERAL":
            ranges.append((arg, arg))
        elif kind == "RANGE":
            ranges.append(arg)
        elif kind == "CATEGORY":
            name = str(arg).replace("_NOT_", "_")
            if name not in _CATEGORIES:
                raise Unwritable(f"{arg} in a class")
            found = _CATEGORIES[name]
            ranges += _complement(found) if "_NOT_" in str(arg) else found
        else:
            raise Unwritable(f"{kind} in a class")
    return _complement(ranges) if negate else _merged(ranges)


def _leads(items: list[Any], end: int) -> bool:
    """Whether every match is anchored at that end (0: "^", -1: "$")."""
    if not items:
        return False
    op, arg = items[end]
    kind = str(op)
    if kind == "AT":
        return str(arg) in (
            ("AT_BEGINNING", "AT_BEGINNING_STRING") if end == 0 else ("AT_END", "AT_END_STRING")
        )
    if kind == "BRANCH":
        return all(_leads(list(a), end) for a in arg[1])
    if kind == "SUBPATTERN":
        return _leads(list(arg[3]), end)
    return False
