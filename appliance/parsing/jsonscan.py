"""Where a JSON object or array ends, in text that arrives in pieces; strict loading."""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["JsonEnd", "dumps_arguments", "loads_strict"]

_STRUCTURE = re.compile(r'[{}\[\]"]')
_IN_STRING = re.compile(r'["\\]')


class JsonEnd:
    """Finds the end of one JSON object or array without parsing it.

    Feed the text from its opening bracket on. Brackets are only counted, not matched
    (a mismatch surfaces when the text is loaded), and strings are skipped, so a
    bracket or a marker inside a string never ends the value.
    """

    def __init__(self, bail: str = "") -> None:
        self._depth = 0
        self._in_string = False
        self._escaped = False
        self._structure = re.compile(f'[{{}}\\[\\]"{re.escape(bail)}]') if bail else _STRUCTURE
        self._bail = bail
        self.broken = False

    def feed(self, piece: str) -> int | None:
        """Index just past the value's last character in ``piece``; None if not yet.

        A ``bail`` character outside a string (where JSON never has one: ``<`` of a
        closing tag) means the JSON is broken: ``broken`` is set and the index of
        that character is returned.
        """
        i, n = 0, len(piece)
        if self._escaped and n:
            self._escaped = False
            i = 1
        while i < n:
            if self._in_string:
                m = _IN_STRING.search(piece, i)
                if m is None:
                    return None
                j = m.start()
                if piece[j] == "\\":
                    if j + 1 >= n:
                        self._escaped = True
                        return None
                    i = j + 2
                else:
                    self._in_string = False
                    i = j + 1
                continue
            m = self._structure.search(piece, i)
            if m is None:
                return None
            j = m.start()
            c = piece[j]
            if c in self._bail:
                self.broken = True
                return j
            if c == '"':
                self._in_string = True
            elif c in "{[":
                self._depth += 1
            else:
                self._depth -= 1
                if self._depth <= 0:
                    return j + 1
            i = j + 1
        return None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def loads_strict(text: str) -> tuple[bool, Any]:
    """``(True, value)`` for standard JSON (no NaN or Infinity), else ``(False, None)``.

    Never raises: deep nesting or odd input is just "not JSON".
    """
    try:
        return True, json.loads(text, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        return False, None


def dumps_arguments(arguments: dict[str, Any]) -> str:
    """The one serialization of a call's arguments: UTF-8 kept, standard JSON only.

    Raises TypeError or ValueError for what JSON cannot hold (NaN, sets, ...).
    """
    return json.dumps(arguments, ensure_ascii=False, allow_nan=False)
