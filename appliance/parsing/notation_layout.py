"""The grammar layouts of the families that write calls in a notation of their own
(`notation_calls` reads them back): Gemma 4's `call:NAME{key:value,...}` with its
quote marks, and LFM2's Python-like `[name(key=value, ...)]`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from appliance.parsing.layout_nodes import (
    Alt,
    GemmaAny,
    Json,
    Lit,
    Node,
    Opt,
    Raw,
    Repeat,
    Rule,
    Seq,
    resolve,
    seq,
)
from appliance.parsing.notation_calls import GEMMA_CALL, GEMMA_CALL_END, GEMMA_QUOTE
from appliance.parsing.tool_schema import Tool, nonnegative_int

# --- Gemma 4: call:NAME{key:value,...} --------------------------------------------------

_GEMMA_DEPTH = 6
_SCALARS = {"integer", "number", "boolean", "null"}


def _gemma_literal(value: Any) -> str:
    """A constant in Gemma's notation, as its template writes it."""
    if isinstance(value, str):
        return GEMMA_QUOTE + value + GEMMA_QUOTE
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{k}:{_gemma_literal(v)}" for k, v in sorted(value.items())) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_gemma_literal(v) for v in value) + "]"
    return json.dumps(value)


class _Gemma:
    """A tool's arguments in Gemma's notation, following its schema: strings as raw text
    between ``<|"|>`` marks, numbers, booleans and null as JSON writes them, lists and
    objects spelled out (an object's keys sorted, as the template's ``dictsort`` writes
    them), and any value where the schema says too little or nests too deep."""

    def __init__(self, defs: Mapping[str, Any], prefix: str) -> None:
        self.defs = defs
        self.prefix = prefix
        self.count = 0

    def _name(self) -> str:
        self.count += 1
        return f"{self.prefix}-{self.count}"

    def value(self, schema: Any, depth: int) -> Node:
        schema = resolve(schema, self.defs)
        if depth > _GEMMA_DEPTH or not schema:
            return GemmaAny()
        if "const" in schema or "enum" in schema:
            values = [schema["const"]] if "const" in schema else list(schema["enum"])
            options = tuple(Lit(_gemma_literal(v)) for v in values)
            return Alt(options) if len(options) != 1 else options[0]
        alternatives = schema.get("anyOf") or schema.get("oneOf")
        if isinstance(alternatives, list) and alternatives:
            return Alt(tuple(self.value(alt, depth + 1) for alt in alternatives))
        kind = schema.get("type")
        if kind == "string":
            low = nonnegative_int(schema.get("minLength")) or 0
            high = nonnegative_int(schema.get("maxLength"))
            if "pattern" in schema or "format" in schema:
                low, high = 0, None
            return seq(GEMMA_QUOTE, Raw(low, high, GEMMA_QUOTE, gemma=True))
        if kind in _SCALARS:
            return Json(schema, self.defs)
        if kind == "array":
            items = schema.get("items")
            if not isinstance(items, Mapping) or schema.get("prefixItems"):
                return GemmaAny()
            item = Rule(self._name(), self.value(items, depth + 1))
            some = seq("[", Repeat(item, ","), "]")
            return (
                some
                if (nonnegative_int(schema.get("minItems")) or 0) > 0
                else Alt((Lit("[]"), some))
            )
        if kind == "object":
            return seq("{", self.members(schema, depth + 1), "}")
        return GemmaAny()

    def members(self, schema: Mapping[str, Any], depth: int) -> Node:
        """An object's ``key:value`` list between its braces (what may be left out, left
        out with its comma)."""
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        if not isinstance(props, Mapping) or (extra is not None and extra is not False):
            return Opt(GemmaAny(members=True))
        required = set(schema.get("required") or ())
        items = [
            (Rule(self._name(), seq(f"{key}:", self.value(props[key], depth))), key in required)
            for key in sorted(props)
        ]
        if not items:
            return Seq(())

        def after(i: int) -> list[Node]:
            return [seq(",", kv) if req else Opt(seq(",", kv)) for kv, req in items[i:]]

        firsts: list[Node] = []
        for i, (kv, req) in enumerate(items):
            firsts.append(Seq((kv, *after(i + 1))))
            if req:
                break
        else:
            firsts.append(Seq(()))
        return Alt(tuple(firsts)) if len(firsts) > 1 else firsts[0]


def gemma_call(tool: Tool, index: int) -> Node:
    gemma = _Gemma(tool.schema.get("$defs") or {}, f"g{index}")
    top = resolve(tool.schema, gemma.defs)
    members = gemma.members(top, 1)
    return seq(f"{GEMMA_CALL}call:{tool.name}{{", members, f"}}{GEMMA_CALL_END}")


_LFM2_PLAIN_KEYS = frozenset({"anyOf", "description", "title", "default", "examples"})


def _lfm2_value(schema: Mapping[str, Any], defs: Mapping[str, Any]) -> Node:
    """An argument's value as LFM2's template writes it: a boolean and null in Python's
    spelling (True, False, None), anything else as JSON, which Python reads the same
    (the parser takes JSON's true and null too, and strings as JSON)."""
    resolved = resolve(schema, defs)
    if "enum" not in resolved and "const" not in resolved:
        if resolved.get("type") == "boolean":
            return Alt((Lit("True"), Lit("False")))
        if resolved.get("type") == "null":
            return Lit("None")
    alternatives = resolved.get("anyOf")
    if isinstance(alternatives, list) and alternatives and set(resolved) <= _LFM2_PLAIN_KEYS:
        options = [_lfm2_value(a, defs) for a in alternatives if isinstance(a, Mapping)]
        if len(options) == len(alternatives):
            return Alt(tuple(options)) if len(options) > 1 else options[0]
    return Json(schema, defs)


def lfm2_call(tool: Tool, index: int) -> Node:
    """``name(key=VALUE, ...)``: the properties in the schema's order, each optional one
    left out or written, with ", " between those written."""
    defs = tool.schema.get("$defs") or {}
    top = resolve(tool.schema, defs)
    props = list((top.get("properties") or {}).items())
    required = set(top.get("required") or ())
    items = [
        Rule(f"p{index}-{j}", seq(f"{prop}=", _lfm2_value(sub, defs)))
        for j, (prop, sub) in enumerate(props)
    ]
    needed = [j for j, (prop, _) in enumerate(props) if prop in required]
    args: Node
    if needed:
        first = needed[0]
        parts: list[Node] = [Opt(seq(items[j], ", ")) for j in range(first)]
        parts.append(items[first])
        for j in range(first + 1, len(items)):
            item = seq(", ", items[j])
            parts.append(item if j in needed else Opt(item))
        args = Seq(tuple(parts))
    elif items:
        # None required: any of them first, then any of those after it. The tails are
        # rules, shared by the alternatives.
        tails: list[Node] = [Lit("")] * len(items)  # what may follow item j
        for j in range(len(items) - 2, -1, -1):
            tails[j] = Rule(f"t{index}-{j}", Seq((Opt(seq(", ", items[j + 1])), tails[j + 1])))
        args = Opt(Alt(tuple(seq(items[j], tails[j]) for j in range(len(items)))))
    else:
        args = Lit("")
    return seq(f"{tool.name}(", args, ")")
