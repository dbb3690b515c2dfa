"""Reading MiniCPM5's calls: ``<function name="NAME"><param name="KEY">VALUE</param>...
</function>``, one region a call.

Its template writes a string value as it is, or inside ``<![CDATA[...]]>`` when it holds
``<``, ``&`` or a newline, and any other value as Jinja prints it: Python's spelling
(``True``, ``None``, ``['a', 1]``). llama.cpp's grammar has the model write those as JSON.
Values are read by the tool's schema as Qwen3-Coder's are (a declared string keeps its
text, other types read JSON), and Python's spelling where JSON does not read.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from appliance.parsing.calls import RawCall, ToolSchemas, _matches, _types, _xml_value
from appliance.parsing.notation_calls import python_literal

__all__ = ["MINICPM5_CALL", "MINICPM5_CALL_END", "minicpm5_call"]

MINICPM5_CALL, MINICPM5_CALL_END = '<function name="', "</function>"
_NAME = re.compile(r'([^"<>\n]+)">')
_PARAM = re.compile(r'\s*<param name="([^"<>\n]+)">')
_CDATA, _CDATA_END = "<![CDATA[", "]]>"
_PARAM_END = "</param>"


def minicpm5_call(body: str, schemas: ToolSchemas) -> list[RawCall] | None:
    """One call from the text between ``<function name="`` and ``</function>``."""
    m = _NAME.match(body)
    if m is None or not m.group(1).strip():
        return None
    name = m.group(1).strip()
    schema = schemas.get(name)
    properties = schema.get("properties") if schema else None
    if not isinstance(properties, Mapping):
        properties = {}
    arguments: dict[str, Any] = {}
    pos = m.end()
    while (param := _PARAM.match(body, pos)) is not None:
        read = _value(body, param.end())
        key = param.group(1)
        if read is None or key in arguments:
            return None
        text, pos = read
        sub = properties.get(key)
        arguments[key] = _typed(text, sub if isinstance(sub, Mapping) else None)
    if body[pos:].strip():
        return None
    return [RawCall(name, arguments)]


def _value(body: str, start: int) -> tuple[str, int] | None:
    """(a value's text, where what follows its ``</param>`` starts)."""
    if body.startswith(_CDATA, start):
        end = body.find(_CDATA_END, start + len(_CDATA))
        if end < 0 or not body.startswith(_PARAM_END, end + len(_CDATA_END)):
            return None
        return body[start + len(_CDATA) : end], end + len(_CDATA_END) + len(_PARAM_END)
    end = body.find(_PARAM_END, start)
    if end < 0:
        return None
    return body[start:end], end + len(_PARAM_END)


def _typed(text: str, schema: Mapping[str, Any] | None) -> Any:
    value = _xml_value(text, schema)
    others = _types(schema) - {"string"}
    if value is text and others:  # not JSON: the template's Python spelling, if it fits
        ok, literal = python_literal(text)
        if ok and _matches(literal, others):
            return literal
    return value
