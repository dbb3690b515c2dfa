"""Reading calls written in a notation of their own, neither JSON nor tags: Gemma 4's
object notation and LFM2's lists of Python calls.

As in :mod:`appliance.parsing.calls`, a reader takes a region's complete text and
returns the calls (arguments as a JSON object), or None when it is not a valid call.
"""

from __future__ import annotations

import ast
import json
import math
import re
import warnings
from typing import Any

from appliance.parsing.calls import RawCall, calls_from_json_text
from appliance.parsing.jsonscan import loads_strict

__all__ = [
    "GEMMA_QUOTE",
    "LFM2_CALL",
    "LFM2_CALL_END",
    "gemma4_calls",
    "lfm2_calls",
    "python_literal",
]


# --- Gemma 4 ---------------------------------------------------------------------------

GEMMA_QUOTE = '<|"|>'
GEMMA_CALL, GEMMA_CALL_END = "<|tool_call>", "<tool_call|>"
_GEMMA_NAME = re.compile(r"\s*call:([^\s{}<>:,\[\]]+)\{")
_GEMMA_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_GEMMA_WORDS = {"true": True, "false": False, "null": None}
_GEMMA_WORD = re.compile(r"true|false|null")
_GEMMA_DEPTH = 100


class _Notation:
    """Gemma 4's value notation, as its template's ``format_argument`` writes it:
    strings between ``<|"|>`` marks (taken as they are, no escapes), numbers, ``true``,
    ``false`` and ``null`` bare, ``[a,b]`` lists and ``{key:value}`` objects whose keys
    are bare (or quoted, as the template quotes them elsewhere). Blank space is allowed
    between the parts, as llama.cpp's parser allows it."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def _blank(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def _take(self, literal: str) -> bool:
        self._blank()
        if self.text.startswith(literal, self.pos):
            self.pos += len(literal)
            return True
        return False

    def value(self, depth: int) -> tuple[bool, Any]:
        if depth > _GEMMA_DEPTH:
            return False, None
        self._blank()
        text, pos = self.text, self.pos
        if text.startswith(GEMMA_QUOTE, pos):
            end = text.find(GEMMA_QUOTE, pos + len(GEMMA_QUOTE))
            if end < 0:
                return False, None
            self.pos = end + len(GEMMA_QUOTE)
            return True, text[pos + len(GEMMA_QUOTE) : end]
        if text.startswith("{", pos):
            self.pos += 1
            obj = self.members(depth + 1)
            return obj is not None, obj
        if text.startswith("[", pos):
            self.pos += 1
            return self._items(depth + 1)
        m = _GEMMA_NUMBER.match(text, pos) or _GEMMA_WORD.match(text, pos)
        if m is None or m.end() == pos:
            return False, None
        self.pos = m.end()
        word = m.group()
        return True, _GEMMA_WORDS[word] if word in _GEMMA_WORDS else json.loads(word)

    def _items(self, depth: int) -> tuple[bool, Any]:
        items: list[Any] = []
        if self._take("]"):
            return True, items
        while True:
            ok, item = self.value(depth)
            if not ok:
                return False, None
            items.append(item)
            if self._take("]"):
                return True, items
            if not self._take(","):
                return False, None

    def members(self, depth: int) -> dict[str, Any] | None:
        """An object's members after its ``{``, through its ``}``."""
        obj: dict[str, Any] = {}
        if self._take("}"):
            return obj
        while True:
            self._blank()
            if self.text.startswith(GEMMA_QUOTE, self.pos):
                ok, key = self.value(depth)
                if not ok or not self._take(":"):
                    return None
            else:
                colon = self.text.find(":", self.pos)
                key = self.text[self.pos : colon].strip() if colon >= 0 else ""
                if not key or any(c in key for c in "}{[],<>\n"):
                    return None
                self.pos = colon + 1
            ok, value = self.value(depth)
            if not ok:
                return None
            obj[key] = value
            if self._take("}"):
                return obj
            if not self._take(","):
                return None


def gemma4_calls(text: str) -> list[RawCall] | None:
    """``call:NAME{key:value,...}``: one call's region (between ``<|tool_call>`` and
    ``<tool_call|>``), the arguments in Gemma's notation (see :class:`_Notation`); a
    JSON body is read as JSON. The notation says each value's type, so no schema is
    needed."""
    if text.strip().startswith("{"):
        return calls_from_json_text(text)
    m = _GEMMA_NAME.match(text)
    if m is None:
        return None
    notation = _Notation(text)
    notation.pos = m.end()
    arguments = notation.members(1)
    if arguments is None or text[notation.pos :].strip():
        return None
    return [RawCall(m.group(1), arguments)]


# --- LFM2 / LFM2.5 -------------------------------------------------------------------

LFM2_CALL, LFM2_CALL_END = "<|tool_call_start|>", "<|tool_call_end|>"

# JSON's literals, which LFM2 writes inside values as often as Python's (llama.cpp reads
# both), as the names Python parses them to.
_JSON_NAMES: dict[str, Any] = {"true": True, "false": False, "null": None}


class _NotLiteral(Exception):
    pass


def _python_value(node: ast.expr, source: str) -> Any:
    """A literal's value, read as JSON where the text is JSON: a double-quoted string
    is decoded as JSON (``\\/``, surrogate pairs), anything else as Python would
    (``literal_eval``'s rules, never evaluated). Raises _NotLiteral otherwise."""
    if isinstance(node, ast.Constant):
        value = node.value
        if isinstance(value, str):
            raw = ast.get_source_segment(source, node) or ""
            if raw.startswith('"') and not raw.startswith('"""'):
                ok, loaded = loads_strict(raw)
                if ok and isinstance(loaded, str):
                    return loaded
            return value
        if value is None or isinstance(value, bool | int):
            return value
        if isinstance(value, float) and math.isfinite(value):
            return value
        raise _NotLiteral
    if isinstance(node, ast.Name) and node.id in _JSON_NAMES:
        return _JSON_NAMES[node.id]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        operand = _python_value(node.operand, source)
        if isinstance(operand, bool) or not isinstance(operand, int | float):
            raise _NotLiteral
        return -operand if isinstance(node.op, ast.USub) else operand
    if isinstance(node, ast.List | ast.Tuple):
        return [_python_value(item, source) for item in node.elts]
    if isinstance(node, ast.Dict):
        out: dict[str, Any] = {}
        for key, item in zip(node.keys, node.values, strict=True):
            k = _python_value(key, source) if key is not None else None
            if not isinstance(k, str):
                raise _NotLiteral
            out[k] = _python_value(item, source)
        return out
    raise _NotLiteral


def python_literal(text: str) -> tuple[bool, Any]:
    """(True, value) when ``text`` is one Python literal (``True``, ``None``, ``['a',
    1]``, ``{'k': 2.5}``; JSON's ``true`` and ``null`` too), read as :func:`_python_value`
    reads one (parsed, never evaluated); (False, None) otherwise."""
    try:
        tree = ast.parse(text.strip(), mode="eval")
        return True, _python_value(tree.body, text.strip())
    except (SyntaxError, ValueError, RecursionError, MemoryError, _NotLiteral):
        return False, None


_CONTROL_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# Outside strings, a call's name (after "[" or ",", before "(") and an argument's (after
# "(" or ",", before "="): tool and parameter names need not be Python names
# ("get-weather", "from"), so each stands in as one while the text is parsed.
_NAMES = re.compile(r"((?:^|[\[(,])\s*)([^\s=()'\"\[\]{}:,]+)(?=\s*(?:\(|=(?!=)))")


def _pythonic(source: str) -> tuple[str, list[str]]:
    """``source`` as Python can parse it, and the names that stand in for ``_n{i}``:
    call and argument names replaced, and newlines and tabs written raw inside a
    quoted string (a model writing code) escaped, as Python and JSON refuse them there
    and they mean themselves."""
    names: list[str] = []

    def stand_in(m: re.Match[str]) -> str:
        names.append(m.group(2))
        return f"{m.group(1)}_n{len(names) - 1}"

    out: list[str] = []
    code: list[str] = []
    quote = ""
    escaped = False
    for ch in source:
        if quote:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == quote:
                quote = ""
            elif ch in _CONTROL_ESCAPES:
                out.append(_CONTROL_ESCAPES[ch])
                continue
            out.append(ch)
        elif ch in "\"'":
            out.append(_NAMES.sub(stand_in, "".join(code)) + ch)
            code = []
            quote = ch
        else:
            code.append(ch)
    out.append(_NAMES.sub(stand_in, "".join(code)))
    return "".join(out), names


def _name(stand_in: str | None, names: list[str]) -> str | None:
    if stand_in and stand_in.startswith("_n") and stand_in[2:].isdigit():
        return names[int(stand_in[2:])]
    return None


def lfm2_calls(text: str) -> list[RawCall] | None:
    """``[name(key=VALUE, ...), ...]``: the calls between LFM2's ``<|tool_call_start|>``
    and ``<|tool_call_end|>``, as Python syntax (parsed, never evaluated).

    Values are Python literals (strings in either quote, True/False/None, lists,
    dicts) or JSON ones (``true``, ``null``), as LFM2 writes both; keyword arguments
    only. A lone call without the brackets is read too, and a JSON body as JSON.
    """
    source = text.strip()
    if source.startswith("{") or source.startswith("[{"):
        return calls_from_json_text(source)
    parsed, names = _pythonic(source)
    try:
        with warnings.catch_warnings():  # JSON's "\/" is an invalid escape to Python
            warnings.simplefilter("ignore")
            tree = ast.parse(parsed, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    body = tree.body
    nodes = body.elts if isinstance(body, ast.List) else [body]
    if not nodes:
        return None
    calls: list[RawCall] = []
    for node in nodes:
        if not isinstance(node, ast.Call) or node.args:
            return None
        name = _name(node.func.id if isinstance(node.func, ast.Name) else None, names)
        if not name:
            return None
        arguments: dict[str, Any] = {}
        for kw in node.keywords:
            key = _name(kw.arg, names)
            if key is None or key in arguments:  # **spread, or a name given twice
                return None
            try:
                arguments[key] = _python_value(kw.value, parsed)
            except (_NotLiteral, RecursionError):
                return None
        calls.append(RawCall(name, arguments))
    return calls
