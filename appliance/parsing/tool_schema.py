"""The tools a grammar constrains to: their names, and their parameters normalized
into a schema that the GBNF and the Lark renderers read the same way.

Its own module because both renderers, and the call layouts between them, need the
same reading of a tool list; the rules themselves are in
:mod:`appliance.parsing.constraints`'s docstring.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from appliance.parsing.validate import _is_type

__all__ = ["Tool", "finite_number", "nonnegative_int", "normalize_schema", "read_tools"]


@dataclass(frozen=True, slots=True)
class Tool:
    """One function tool, as the grammars see it."""

    name: str
    schema: dict[str, Any]  # normalized, with its own "$defs"
    declared: Mapping[str, Any]  # the parameters as given (what the XML reader types by)


def read_tools(tools: Iterable[Any], name: str | None) -> list[Tool]:
    """The function tools (only the one called ``name``, when given), the first of
    each name; ValueError when none is left."""
    found: list[Tool] = []
    seen: set[str] = set()
    for tool in tools:
        if not isinstance(tool, Mapping):
            continue
        if tool.get("type", "function") != "function":
            continue
        fn = tool.get("function", tool)  # {"type": "function", "function": {...}} or bare
        if not isinstance(fn, Mapping):
            continue
        tool_name = fn.get("name")
        if not isinstance(tool_name, str) or not tool_name.strip() or tool_name in seen:
            continue
        if name is not None and tool_name != name:
            continue
        seen.add(tool_name)
        params = fn.get("parameters")
        declared = params if isinstance(params, Mapping) else {}
        found.append(Tool(tool_name, _normalize_parameters(params), declared))
    if not found:
        if name is not None:
            raise ValueError(f"no function tool named {name!r}")
        raise ValueError("no function tools to constrain to")
    return found


# --- schema normalization -----------------------------------------------------------

_TYPE_NAMES = ("string", "integer", "number", "boolean", "null", "object", "array")
_MAX_DEPTH = 48
_LOWER = ("minimum", "minLength", "minItems")
_UPPER = ("maximum", "maxLength", "maxItems")


def finite_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def nonnegative_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _reasonable(value: Any) -> bool:
    """A bound both grammars can write out (llguidance refuses astronomic ones)."""
    return finite_number(value) and abs(value) < 1e15


def _counts(s: Mapping[str, Any], out: dict[str, Any], low: str, high: str) -> None:
    """Copy a min/max count pair, unless it contradicts itself."""
    lo, hi = nonnegative_int(s.get(low)), nonnegative_int(s.get(high))
    if lo is not None and hi is not None and lo > hi:
        return
    if lo:
        out[low] = lo
    if hi is not None:
        out[high] = hi


_LOOKAROUND = re.compile(r"\(\?<?[=!]|\\[1-9]|\\k<")


def _usable_pattern(pattern: Any) -> bool:
    """A regex both converters can take: Python compiles it, and it has no
    lookaround or back-reference (neither grammar can express those)."""
    if not isinstance(pattern, str) or _LOOKAROUND.search(pattern):
        return False
    try:
        re.compile(pattern)
    except (re.error, RecursionError, OverflowError):
        return False
    return True


def _type_set(declared: Any) -> set[str]:
    if isinstance(declared, str):
        return {declared}
    if isinstance(declared, list):
        return {t for t in declared if isinstance(t, str)}
    return set(_TYPE_NAMES)


def _merge(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    """Both schemas at once, approximately (for ``allOf`` and ``anyOf`` siblings)."""
    out = dict(a)
    for key, value in b.items():
        if key not in out:
            out[key] = value
        elif key == "properties" and isinstance(value, Mapping) and isinstance(out[key], Mapping):
            props = dict(out[key])
            for prop, sub in value.items():
                props[prop] = {"allOf": [props[prop], sub]} if prop in props else sub
            out[key] = props
        elif key == "required" and isinstance(value, list) and isinstance(out[key], list):
            out[key] = list(dict.fromkeys([*out[key], *value]))
        elif key == "type":
            mine, theirs = _type_set(out[key]), _type_set(value)
            both = [t for t in _TYPE_NAMES if t in mine and t in theirs]
            if "integer" not in both and {"integer", "number"} <= (mine | theirs):
                both.append("integer")  # an integer is a number
            out[key] = both if len(both) != 1 else both[0]
        elif key in _LOWER and finite_number(value) and finite_number(out[key]):
            out[key] = max(out[key], value)
        elif key in _UPPER and finite_number(value) and finite_number(out[key]):
            out[key] = min(out[key], value)
        else:
            out[key] = value
    return out


class _Normalizer:
    """One tool's parameters as a schema both converters read the same way.

    Every local ref (``#/$defs/X``, ``#/definitions/X``, ``#`` itself, any JSON
    pointer into the parameters) becomes ``#/$defs/<name>``, its target a def."""

    def __init__(self, root: Mapping[str, Any]) -> None:
        self._root = root
        self._raw: dict[str, Any] = {}  # pointer -> the schema it points to
        # Rule-safe names, unlike any the GBNF converter makes for properties
        # (those start with "a") or primitives: it names a ref's rule after it.
        self._safe: dict[str, str] = {}
        self._merging: set[str] = set()

    def defs(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        while len(out) < len(self._raw):  # normalizing a def may reach new ones
            for pointer in list(self._raw):
                if self._safe[pointer] not in out:
                    out[self._safe[pointer]] = self.node(self._raw[pointer], 1)
        return out

    def _ref(self, ref: str) -> str | None:
        """The pointer's key once its target is known, or None."""
        if ref in self._raw:
            return ref
        if not ref.startswith("#") or (len(ref) > 1 and ref[1] != "/"):
            return None
        target: Any = self._root
        for raw in ref[2:].split("/") if len(ref) > 1 else ():
            part = raw.replace("~1", "/").replace("~0", "~")
            if isinstance(target, Mapping) and part in target:
                target = target[part]
            elif isinstance(target, list) and part.isdigit() and int(part) < len(target):
                target = target[int(part)]
            else:
                return None
        if not isinstance(target, Mapping | bool):
            return None
        tail = ref.rsplit("/", 1)[-1] if len(ref) > 1 else "root"
        self._safe[ref] = f"d{len(self._raw)}-" + (re.sub(r"[^A-Za-z0-9-]+", "-", tail) or "x")
        self._raw[ref] = target
        return ref

    def node(self, schema: Any, depth: int) -> dict[str, Any]:
        if not isinstance(schema, Mapping) or depth > _MAX_DEPTH:
            return {}
        s = {str(k): v for k, v in schema.items()}
        if s.pop("nullable", None) is True:
            return {"anyOf": [self.node(s, depth + 1), {"type": "null"}]}
        all_of = s.pop("allOf", None)
        if isinstance(all_of, list):
            merged: dict[str, Any] = s
            for part in all_of:
                merged = _merge(merged, self._inline(part))
            return self.node(merged, depth + 1)
        ref = s.pop("$ref", None)
        name = self._ref(ref) if isinstance(ref, str) else None
        if name is not None:  # (its siblings are annotations, in practice)
            return {"$ref": f"#/$defs/{self._safe[name]}"}
        for union in ("anyOf", "oneOf"):
            alternatives = s.pop(union, None)
            if isinstance(alternatives, list) and alternatives:
                s.pop("oneOf", None)
                rest = {k: v for k, v in s.items() if k not in ("title", "description", "default")}
                alts = [_merge(rest, a if isinstance(a, Mapping) else {}) for a in alternatives]
                return {"anyOf": [self.node(a, depth + 1) for a in alts]}
        return self._typed(s, depth)

    def _inline(self, part: Any) -> Mapping[str, Any]:
        """An ``allOf`` part, a ref replaced by what it names (once per chain)."""
        if not isinstance(part, Mapping):
            return {}
        ref = part.get("$ref")
        if isinstance(ref, str):
            name = self._ref(ref)
            if name is None or name in self._merging:
                return {}
            self._merging.add(name)
            try:
                target = self._raw[name]
                inner = self._inline(target) if isinstance(target, Mapping) else {}
            finally:
                self._merging.discard(name)
            rest = {k: v for k, v in part.items() if k != "$ref"}
            return _merge(inner, rest)
        return part

    def _typed(self, s: dict[str, Any], depth: int) -> dict[str, Any]:
        declared = s.get("type")
        types: list[str] | None = None
        if isinstance(declared, str) and declared in _TYPE_NAMES:
            types = [declared]
        elif isinstance(declared, list):
            types = [t for t in _TYPE_NAMES if t in declared] or None
        if "const" in s:
            return {"const": s["const"]}
        enum = s.get("enum")
        if isinstance(enum, list) and enum:
            kept = [v for v in enum if types is None or any(_is_type(v, t) for t in types)]
            return {"enum": kept or enum}
        if types is not None and len(types) > 1:
            return {"anyOf": [self._typed({**s, "type": t}, depth + 1) for t in types]}
        kind = types[0] if types else None
        out: dict[str, Any] = {"type": kind} if kind else {}
        # Untyped, object and array keywords still say what it is; string and number
        # keywords alone would allow anything else.
        if kind in (None, "object"):
            self._object(s, out, depth)
        if kind == "array" or (kind is None and "type" not in out):
            self._array(s, out, depth)
        if kind == "string":
            _counts(s, out, "minLength", "maxLength")
            if isinstance(s.get("format"), str):
                out["format"] = s["format"]
            if _usable_pattern(s.get("pattern")):
                out["pattern"] = s["pattern"]
        if kind in ("integer", "number"):
            self._bounds(s, out)
        return out

    def _object(self, s: dict[str, Any], out: dict[str, Any], depth: int) -> None:
        declared = s.get("properties")
        listed = s.get("required")
        required = [r for r in listed if isinstance(r, str)] if isinstance(listed, list) else []
        additional = s.get("additionalProperties")
        if not isinstance(declared, Mapping) and not required and additional is None:
            return
        props = {
            str(k): self.node(v, depth + 1)
            for k, v in (declared.items() if isinstance(declared, Mapping) else ())
        }
        for name in required:
            props.setdefault(name, {})
        out["type"] = "object"
        out["properties"] = props
        if required:
            out["required"] = list(dict.fromkeys(required))
        if isinstance(additional, Mapping):
            out["additionalProperties"] = self.node(additional, depth + 1)
        elif isinstance(additional, bool):
            out["additionalProperties"] = additional
        else:  # declared properties: the others are refused
            out["additionalProperties"] = not isinstance(declared, Mapping) and not required

    def _array(self, s: dict[str, Any], out: dict[str, Any], depth: int) -> None:
        items, prefix = s.get("items"), s.get("prefixItems")
        if isinstance(items, list):
            prefix, items = items, s.get("additionalItems")
        if isinstance(prefix, list) and prefix:
            out["prefixItems"] = [self.node(p, depth + 1) for p in prefix]
        if isinstance(items, Mapping) and items:
            out["items"] = self.node(items, depth + 1)
        elif items is False:
            out["maxItems"] = len(out.get("prefixItems", ()))
        limit = out.pop("maxItems", None)
        _counts(s, out, "minItems", "maxItems")
        if limit is not None:
            out["maxItems"] = min(limit, out.get("maxItems", limit))
        if out and "type" not in out:
            out["type"] = "array"

    def _bounds(self, s: dict[str, Any], out: dict[str, Any]) -> None:
        found: dict[str, Any] = {}
        for plain, exclusive in (("minimum", "exclusiveMinimum"), ("maximum", "exclusiveMaximum")):
            value, flag = s.get(plain), s.get(exclusive)
            if flag is True and _reasonable(value):  # draft 4
                found[exclusive] = value
            elif _reasonable(value):
                found[plain] = value
            if _reasonable(flag):
                found[exclusive] = flag
        lows = [found[k] for k in ("minimum", "exclusiveMinimum") if k in found]
        highs = [found[k] for k in ("maximum", "exclusiveMaximum") if k in found]
        if lows and highs and max(lows) > min(highs):
            return  # nothing fits: leave it unbounded rather than refuse the tool
        out.update(found)


def _normalize_parameters(params: Any) -> dict[str, Any]:
    if not isinstance(params, Mapping):
        return {"type": "object", "properties": {}, "additionalProperties": False}
    schema = normalize_schema(params)
    if not any(k in schema for k in ("anyOf", "$ref")) and schema.get("type") != "object":
        return {"type": "object"}  # arguments are always an object
    return schema


def normalize_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """Any JSON schema (a tool's parameters, a response format's) read the way the
    grammars read it, its refs' targets in its own "$defs"."""
    normalizer = _Normalizer(schema)
    out = normalizer.node(schema, 0)
    defs = normalizer.defs()
    if defs:
        out["$defs"] = defs
    return out
