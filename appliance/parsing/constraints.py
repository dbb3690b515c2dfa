"""Grammars that make a model write tool calls in its family's syntax.

The text they allow is what :func:`appliance.parsing.parse_output` reads back as
calls, with arguments that follow each tool's ``parameters`` schema:

- :func:`tool_call_gbnf`: GBNF for llama.cpp. The arguments' rules come from
  llama-cpp-python's JSON-schema converter, extended with integer ranges, number
  ranges (non-negative lower bound), ``{m,n}`` counts for string lengths and array
  sizes, strict JSON strings (no raw control characters), exponents of at most two
  digits, and correct escaping of literals (backslashes, characters beyond the BMP);
- :func:`tool_call_lark`: the same text as a Lark grammar in llguidance's dialect,
  for onnxruntime-genai (``GeneratorParams.set_guidance("lark_grammar", text)``),
  the arguments as inline ``%json`` schemas (compact ``", "`` / ``": "`` layout);
- :func:`tool_call_trigger`: the text that opens a call, for lazy grammars; the
  grammar built with the same arguments starts with it.

The grammars force the calls (tool_choice "required" or a named function): the
output is one call, or one or more with ``parallel``, and nothing else; the model's
own end-of-turn token ends it. Stop tokens that end a call (gpt-oss ``<|call|>``,
Llama's ``<|eom_id|>``) are left out: they end generation before a grammar could
match them, and the parser does not need them. gpt-oss calls one function per
message, so HARMONY grammars allow exactly one call. GENERIC with ``parallel`` takes
a JSON list of calls or a single call object.

Where a family has two call syntaxes, ``template`` (the model's chat template
source) picks the one it renders for assistant tool calls: MISTRAL writes
``[TOOL_CALLS]name[ARGS]{...}`` (Small 3.2, Devstral, Magistral, Ministral; the
default) or ``[TOOL_CALLS][{"name": ..., "arguments": {...}}]`` (v0.3, Nemo);
DEEPSEEK writes ``function<｜tool▁sep｜>name`` and a fenced JSON block (R1, V3; the
default) or ``name<｜tool▁sep｜>{...}`` (V3.1).

Qwen3-Coder's XML values are written the way the parser types them back, which is
by the parameter's *declared* schema: text for a declared string (no ``<`` that
could open or close a tag), JSON for other declared types, and for a parameter that
declares no type (a ``$ref``, an ``allOf``) JSON or text that cannot be read as JSON.
Pass the same ``tool_schemas`` to the parser.

Schemas are normalized first, the same way for both outputs: every local ``$ref``
(``#/$defs/X``, ``#/definitions/X``, ``#``, any pointer) is kept as a ref to a def
(other refs allow any value), ``nullable`` and type lists become ``anyOf``,
``allOf`` is merged, an object's undeclared properties are refused unless
``additionalProperties`` allows them, required properties that are not declared are
added, and bounds that contradict each other or are beyond 1e15 are dropped. Not
enforced: ``multipleOf``, ``uniqueItems``, ``oneOf``'s exclusivity, patterns with
lookaround or back-references, and in GBNF the bounds of a ``number`` whose lower
bound is negative or missing (llguidance enforces number bounds itself).
"""

from __future__ import annotations

import copy
import functools
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from appliance.parsing.calls import _types as xml_declared_types
from appliance.parsing.families import Family
from appliance.parsing.jsonscan import loads_strict
from appliance.parsing.validate import _is_type

__all__ = ["special_token_ids", "tool_call_gbnf", "tool_call_lark", "tool_call_trigger"]

# --- markers ------------------------------------------------------------------------

TOOL_CALL, TOOL_CALL_END = "<tool_call>", "</tool_call>"
DS_CALLS_BEGIN, DS_CALLS_END = "<｜tool▁calls▁begin｜>", "<｜tool▁calls▁end｜>"
DS_CALL_BEGIN, DS_CALL_END = "<｜tool▁call▁begin｜>", "<｜tool▁call▁end｜>"
DS_SEP = "<｜tool▁sep｜>"
HARMONY_CALL = "<|channel|>commentary to=functions."
HARMONY_MESSAGE = " <|constrain|>json<|message|>"
MISTRAL_CALLS, MISTRAL_ARGS = "[TOOL_CALLS]", "[ARGS]"


def _variant(family: Family, template: str | None) -> str:
    """Which of a family's call syntaxes to write (see the module docstring)."""
    if family is Family.MISTRAL:
        if template and MISTRAL_ARGS not in template and MISTRAL_CALLS in template:
            return "list"
        return "args"
    if family is Family.DEEPSEEK:
        if template and "```json" not in template and "tool▁sep" in template:
            return "v3.1"
        return "r1"
    return ""


def tool_call_trigger(family: Family, *, parallel: bool = False) -> str:
    """The literal text that opens a call in ``family``: where a lazy grammar starts.
    The grammars built with the same ``parallel`` begin with it (GENERIC's parallel
    grammar, a list, with ``[{"name"``; its single call, with ``{"name"``)."""
    if family in (Family.HERMES, Family.QWEN3_CODER):
        return TOOL_CALL
    if family is Family.MISTRAL:
        return MISTRAL_CALLS
    if family is Family.DEEPSEEK:
        return DS_CALLS_BEGIN
    if family is Family.HARMONY:
        return HARMONY_CALL
    if family is Family.GENERIC and parallel:
        return '[{"name"'
    return '{"name"'


# --- tools --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Tool:
    name: str
    schema: dict[str, Any]  # normalized, with its own "$defs"
    declared: Mapping[str, Any]  # the parameters as given (what the XML reader types by)


def _read_tools(tools: Iterable[Any], name: str | None) -> list[_Tool]:
    found: list[_Tool] = []
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
        found.append(_Tool(tool_name, _normalize_parameters(params), declared))
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


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _reasonable(value: Any) -> bool:
    """A bound both grammars can write out (llguidance refuses astronomic ones)."""
    return _finite(value) and abs(value) < 1e15


def _counts(s: Mapping[str, Any], out: dict[str, Any], low: str, high: str) -> None:
    """Copy a min/max count pair, unless it contradicts itself."""
    lo, hi = _count(s.get(low)), _count(s.get(high))
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
        elif key in _LOWER and _finite(value) and _finite(out[key]):
            out[key] = max(out[key], value)
        elif key in _UPPER and _finite(value) and _finite(out[key]):
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
    normalizer = _Normalizer(params)
    schema = normalizer.node(params, 0)
    if not any(k in schema for k in ("anyOf", "$ref")) and schema.get("type") != "object":
        schema = {"type": "object"}  # arguments are always an object
    defs = normalizer.defs()
    if defs:
        schema["$defs"] = defs
    return schema


# --- what the grammars say, family by family ----------------------------------------


@dataclass(frozen=True, slots=True)
class _Lit:
    text: str


@dataclass(frozen=True, slots=True)
class _Json:
    """A JSON value following ``schema`` (``defs`` resolve its refs)."""

    schema: Mapping[str, Any]
    defs: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class _Raw:
    """Raw text for an XML parameter value, then ``tail``: no ``<`` that could open
    or close a tag, no control character but tab and newline. ``guarded``: it must
    not read as JSON either (no leading space, digit, ``-``, ``{``, ``[``, ``t``,
    ``f``, ``n``), for a parameter whose declared schema names no type."""

    min_len: int
    max_len: int | None
    tail: str
    guarded: bool = False


@dataclass(frozen=True, slots=True)
class _Seq:
    items: tuple[_Node, ...]


@dataclass(frozen=True, slots=True)
class _Alt:
    items: tuple[_Node, ...]


@dataclass(frozen=True, slots=True)
class _Opt:
    item: _Node


@dataclass(frozen=True, slots=True)
class _Rule:
    """A named rule (one per tool, so the grammars stay readable)."""

    name: str
    body: _Node


@dataclass(frozen=True, slots=True)
class _Repeat:
    """``item (sep item)*``."""

    item: _Node
    sep: str
    optional_sep: bool = False


_Node = _Lit | _Json | _Raw | _Seq | _Alt | _Opt | _Rule | _Repeat


def _seq(*items: _Node | str) -> _Seq:
    return _Seq(tuple(_Lit(i) if isinstance(i, str) else i for i in items))


def _args(tool: _Tool) -> _Json:
    return _Json(tool.schema, tool.schema.get("$defs") or {})


def _json_call(tool: _Tool, key: str) -> _Seq:
    return _seq(
        '{"name": ' + json.dumps(tool.name, ensure_ascii=False) + f', "{key}": ', _args(tool), "}"
    )


def _xml_value(tool: _Tool, prop: str, schema: Mapping[str, Any], tail: str) -> _Node:
    """A Qwen3-Coder parameter value as the parser will read it back. The parser
    types a value by the parameter's declared schema (no ``$ref`` or ``allOf``
    resolved): a declared string keeps its text, other declared types read JSON,
    and with no declared type JSON that is not a string is read, other text kept."""
    defs = tool.schema.get("$defs") or {}
    declared_props = tool.declared.get("properties")
    declared = declared_props.get(prop) if isinstance(declared_props, Mapping) else None
    types = xml_declared_types(declared if isinstance(declared, Mapping) else None)
    if types and "string" not in types:
        return _seq(_Json(schema, defs), tail)
    resolved = _resolve(schema, defs)
    alternatives = resolved.get("anyOf")
    options: list[_Node] = []
    for alt in alternatives if isinstance(alternatives, list) else [resolved]:
        options.extend(_xml_option(_resolve(alt, defs), defs, tail, guarded=not types))
    if not options:
        return _seq(_Json(schema, defs), tail)
    return _Alt(tuple(options)) if len(options) != 1 else options[0]


def _resolve(schema: Any, defs: Mapping[str, Any]) -> Mapping[str, Any]:
    for _ in range(8):
        ref = schema.get("$ref") if isinstance(schema, Mapping) else None
        if not isinstance(ref, str):
            break
        schema = defs.get(ref.rsplit("/", 1)[-1], {})
    return schema if isinstance(schema, Mapping) else {}


def _json_non_string(text: str) -> bool:
    ok, value = loads_strict(text)
    return ok and not isinstance(value, str)


def _xml_option(
    schema: Mapping[str, Any], defs: Mapping[str, Any], tail: str, *, guarded: bool
) -> list[_Node]:
    if "const" in schema or "enum" in schema:
        values = [schema["const"]] if "const" in schema else list(schema["enum"])
        texts = [v for v in values if isinstance(v, str) and not (guarded and _json_non_string(v))]
        others = [v for v in values if not isinstance(v, str)]
        out: list[_Node] = [_Lit(v + tail) for v in texts]
        if others:
            out.append(_seq(_Json({"enum": others}, defs), tail))
        return out
    if schema.get("type") == "string":
        if "pattern" in schema or "format" in schema:
            # The text of such a string would need its own grammar: any text.
            return [_Raw(0, None, tail, guarded)]
        low, high = _count(schema.get("minLength")) or 0, _count(schema.get("maxLength"))
        return [_Raw(low, high, tail, guarded)]
    if not schema and not guarded:
        return [_Raw(0, None, tail)]
    return [_seq(_Json(schema, defs), tail)]


def _xml_call(tool: _Tool, index: int) -> _Node:
    top = _resolve(tool.schema, tool.schema.get("$defs") or {})
    props = top.get("properties")
    required = set(top.get("required") or ())
    parts: list[_Node] = [_Lit(f"{TOOL_CALL}\n<function={tool.name}>\n")]
    for j, (prop, sub) in enumerate((props or {}).items()):
        value = _xml_value(tool, prop, sub, "\n</parameter>\n")
        item = _Rule(f"p{index}-{j}", _seq(f"<parameter={prop}>\n", value))
        parts.append(item if prop in required else _Opt(item))
    parts.append(_Lit(f"</function>\n{TOOL_CALL_END}"))
    return _Seq(tuple(parts))


def _layout(family: Family, tools: list[_Tool], parallel: bool, template: str | None) -> _Node:
    """The whole output: the calls in the family's syntax."""
    variant = _variant(family, template)
    one: list[_Node] = []
    for i, tool in enumerate(tools):
        name = tool.name
        call: _Node
        if family is Family.HERMES:
            call = _seq(f"{TOOL_CALL}\n", _json_call(tool, "arguments"), f"\n{TOOL_CALL_END}")
        elif family is Family.QWEN3_CODER:
            call = _xml_call(tool, i)
        elif family is Family.LLAMA3:
            call = _json_call(tool, "parameters")
        elif family is Family.MISTRAL and variant == "args":
            call = _seq(f"{MISTRAL_CALLS}{name}{MISTRAL_ARGS}", _args(tool))
        elif family is Family.DEEPSEEK and variant == "r1":
            head = f"{DS_CALL_BEGIN}function{DS_SEP}{name}\n```json\n"
            call = _seq(head, _args(tool), f"\n```{DS_CALL_END}")
        elif family is Family.DEEPSEEK:
            call = _seq(f"{DS_CALL_BEGIN}{name}{DS_SEP}", _args(tool), DS_CALL_END)
        elif family is Family.HARMONY:
            call = _seq(f"{HARMONY_CALL}{name}{HARMONY_MESSAGE}", _args(tool))
        else:  # GENERIC, Mistral's list
            call = _json_call(tool, "arguments")
        one.append(_Rule(f"tool{i}", call))
    calls: _Node = _Alt(tuple(one)) if len(one) > 1 else one[0]
    many = parallel and family is not Family.HARMONY
    separators = {
        Family.HERMES: "\n",
        Family.QWEN3_CODER: "\n",
        Family.LLAMA3: "; ",
        Family.MISTRAL: ", " if variant == "list" else "",
        Family.DEEPSEEK: "\n" if variant == "r1" else "",
        Family.GENERIC: ", ",
    }
    any_call = _Rule("call", calls)
    r1 = family is Family.DEEPSEEK and variant == "r1"
    # R1's template puts a newline between calls; the parser (and llama.cpp's own
    # grammar) take them with or without one.
    body: _Node = _Repeat(any_call, separators[family], optional_sep=r1) if many else calls
    if family is Family.MISTRAL and variant == "list":
        return _seq(f"{MISTRAL_CALLS}[", body, "]")
    if family is Family.DEEPSEEK:
        if r1:
            return _seq(DS_CALLS_BEGIN, body, _Opt(_Lit("\n")), DS_CALLS_END)
        return _seq(DS_CALLS_BEGIN, body, DS_CALLS_END)
    if family is Family.GENERIC and many:  # a list of calls, or just one
        return _Alt((_seq("[", body, "]"), any_call))
    return body


# --- GBNF ---------------------------------------------------------------------------

_GBNF_TOKEN = re.compile(
    r'"(?:\\.|[^"\\])*"|\[(?:\\.|[^\]\\])*\]|\{[0-9, ]*\}|[A-Za-z0-9_-]+|\s+|.', re.DOTALL
)
# JSON strings: no raw control characters (the converter's own rule lets them in).
_STRICT_CHAR = r'[^"\\\x7F\x00-\x1F] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F]{4})'
_RAW_PLAIN = r"[^<\x00-\x08\x0B-\x1F\x7F]"
_RAW_CHAR = rf'({_RAW_PLAIN} | "<" [^/pft<\x00-\x08\x0B-\x1F\x7F])'
_RAW_FIRST = r"[^<\x00-\x20\x7F0-9{\[tfn-]"  # what JSON cannot start with


@dataclass(frozen=True, slots=True)
class _TextSyntax:
    """The pieces of raw XML text in one grammar language."""

    plain: str  # a character that is not "<"
    char: str  # a character, or "<" and one that cannot make it a tag
    first: str  # a first character that JSON cannot start with
    sep: str  # between items
    empty: str

    def text(self, low: int, high: int | None, guarded: bool) -> str:
        """``low`` to ``high`` characters (counted exactly: then no ``<`` at all),
        starting with ``first`` when ``guarded``."""
        if high == 0:
            return self.empty
        if not guarded:
            if high is None and low == 0:
                return f"{self.char}*"
            return f"{self.plain}{_repeat(low, high)}"
        if high is None and low == 0:
            return f"({self.first}{self.sep}{self.char}*)?"
        rest = _repeat(max(low - 1, 0), None if high is None else high - 1)
        body = f"{self.first}{self.sep}{self.plain}{rest}"
        return f"({body})?" if low == 0 else f"({body})"


_GBNF_TEXT = _TextSyntax(_RAW_PLAIN, _RAW_CHAR, _RAW_FIRST, " ", '""')
_MAX_DIGITS = 16  # the converter's integers are at most 16 digits long


def _gbnf_literal(text: str) -> str:
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


def _repeat(lo: int, hi: int | None) -> str:
    if hi is None:
        return "*" if lo == 0 else ("+" if lo == 1 else f"{{{lo},}}")
    return f"{{{lo}}}" if lo == hi else f"{{{lo},{hi}}}"


def _same_length(lo: str, hi: str) -> list[list[str]]:
    """Digit strings of one length from ``lo`` to ``hi``, as sequences of atoms."""
    if lo == hi:
        return [[_gbnf_literal(lo)]]
    i = next(k for k in range(len(lo)) if lo[k] != hi[k])
    prefix = [_gbnf_literal(lo[:i])] if i else []
    rest = len(lo) - i - 1
    zeros, nines = "0" * rest, "9" * rest
    tail = [f"[0-9]{_repeat(rest, rest)}" if rest > 1 else "[0-9]"] if rest else []
    out: list[list[str]] = []
    first, last = lo[i], hi[i]
    if lo[i + 1 :] != zeros:
        out += [[*prefix, f'"{lo[i]}"', *s] for s in _same_length(lo[i + 1 :], nines)]
        first = chr(ord(first) + 1)
    if hi[i + 1 :] != nines:
        out += [[*prefix, f'"{hi[i]}"', *s] for s in _same_length(zeros, hi[i + 1 :])]
        last = chr(ord(last) - 1)
    if first <= last:
        digit = f"[{first}]" if first == last else f"[{first}-{last}]"
        out.append([*prefix, digit, *tail])
    return out


def _natural_range(lo: int, hi: int | None) -> list[list[str]]:
    """Canonical decimal numerals of the integers from ``lo`` >= 0 to ``hi`` (or on)."""
    out: list[list[str]] = []
    top = hi if hi is not None else 10**_MAX_DIGITS - 1
    for digits in range(len(str(lo)), len(str(top)) + 1):
        start = max(lo, 10 ** (digits - 1) if digits > 1 else 0)
        stop = min(top, 10**digits - 1)
        if start > stop:
            continue
        if hi is None and start == 10 ** (digits - 1) and digits > 1:
            out.append(["[1-9]", f"[0-9]{_repeat(digits - 1, _MAX_DIGITS - 1)}"])
            break
        out.extend(_same_length(str(start), str(stop)))
    return out


def _integer_range(lo: int | None, hi: int | None) -> str | None:
    """A GBNF body for the integers in [lo, hi] (either open); None if empty."""
    alternatives: list[list[str]] = []
    if lo is None or lo < 0:  # the negative part: "-" and a magnitude
        top = -lo if lo is not None else None
        bottom = max(1, -hi) if hi is not None else 1
        if top is None or bottom <= top:
            alternatives += [['"-"', *a] for a in _natural_range(bottom, top)]
    if hi is None or hi >= 0:
        alternatives += _natural_range(max(lo or 0, 0), hi)
    if not alternatives:
        return None
    return "(" + " | ".join(" ".join(a) for a in alternatives) + ")"


def _bound(schema: Mapping[str, Any], integral: bool, upper: bool) -> float | None:
    """The tightest bound on one side, made inclusive for integers."""
    plain: Any = schema.get("maximum" if upper else "minimum")
    exclusive: Any = schema.get("exclusiveMaximum" if upper else "exclusiveMinimum")
    found: float | None = None
    if _finite(plain):
        found = (
            math.floor(plain) if upper and integral else (math.ceil(plain) if integral else plain)
        )
    if _finite(exclusive):
        if integral:
            edge = math.ceil(exclusive) - 1 if upper else math.floor(exclusive) + 1
        else:
            edge = exclusive
        if found is None or (edge < found if upper else edge > found):
            found = edge
    if found is not None and abs(found) >= 10 ** (_MAX_DIGITS - 1):
        return None
    return found


def _number_range(schema: Mapping[str, Any]) -> str | None:
    """Non-negative numbers within the bounds: an integer part and an optional
    fraction (so ``x.y`` stays below an upper bound), or the top integer itself."""
    lo, hi = _bound(schema, False, False), _bound(schema, False, True)
    if lo is None or lo < 0:
        return None
    exclusive_lo = _finite(schema.get("exclusiveMinimum")) and schema["exclusiveMinimum"] >= lo
    start = math.floor(lo) + 1 if exclusive_lo or lo != math.floor(lo) else math.floor(lo)
    fraction = '("." [0-9]{1,15})?'
    if hi is None:
        whole = _integer_range(start, None)
        return f"{whole} {fraction}" if whole else None
    exclusive_hi = _finite(schema.get("exclusiveMaximum")) and schema["exclusiveMaximum"] <= hi
    top = math.floor(hi)
    parts = []
    if start <= top - 1:  # i.fff < i + 1 <= hi
        parts.append(f"{_integer_range(start, top - 1)} {fraction}")
    if start <= top and (top < hi or not exclusive_hi):
        parts.append(_gbnf_literal(str(top)))
    return "(" + " | ".join(parts) + ")" if parts else None


def _json_text(value: Any) -> str:
    """JSON text as a model writes it: non-ASCII characters as themselves."""
    try:
        return json.dumps(value, ensure_ascii=False).encode("utf-8").decode("utf-8")
    except (UnicodeEncodeError, ValueError, TypeError):  # lone surrogates, odd values
        return json.dumps(value, default=str)


@functools.cache
def _converter_class() -> Any:
    from llama_cpp.llama_grammar import PRIMITIVE_RULES, RESERVED_NAMES, SchemaConverter

    class Converter(SchemaConverter):
        """llama-cpp-python's converter, with integer and number ranges and {m,n}
        repetitions for string lengths and array sizes (its nested optionals grow
        with the bound)."""

        def visit(self, schema: Any, name: str) -> Any:
            if isinstance(schema, dict) and not any(
                k in schema for k in ("$ref", "anyOf", "oneOf", "allOf", "const", "enum")
            ):
                rule = name + "-" if name in RESERVED_NAMES else name or "root"
                body = self._custom(schema, name)
                if body is not None:
                    return self._base._add_rule(rule, body)
            base: Any = super()
            return base.visit(schema, name)

        @property
        def _base(self) -> Any:
            return self

        def _format_literal(self, literal: str) -> str:
            # The converter's own escaping misses backslashes, and its JSON text is
            # ASCII: a character beyond the BMP would be two unmatchable surrogates.
            if len(literal) >= 2 and literal[0] == literal[-1] == '"':
                ok, value = loads_strict(literal)
                if ok and isinstance(value, str):
                    literal = _json_text(value)
            return _gbnf_literal(literal)

        def _generate_constant_rule(self, value: Any) -> str:
            return _gbnf_literal(_json_text(value))

        def _custom(self, schema: dict[str, Any], name: str) -> str | None:
            kind = schema.get("type")
            bounded = any(
                k in schema for k in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")
            )
            if kind == "integer" and bounded:
                lo, hi = _bound(schema, True, False), _bound(schema, True, True)
                body = _integer_range(
                    int(lo) if lo is not None else None, int(hi) if hi is not None else None
                )
                return f"{body} space" if body else None
            if kind == "number" and bounded:
                body = _number_range(schema)
                return f"{body} space" if body else None
            if (
                kind == "string"
                and not any(k in schema for k in ("pattern", "format"))
                and ("minLength" in schema or "maxLength" in schema)
            ):
                char = self._base._add_primitive("char", PRIMITIVE_RULES["char"])
                low = _count(schema.get("minLength")) or 0
                high = _count(schema.get("maxLength"))
                return rf'"\"" {char}{_repeat(low, high)} "\"" space'
            if kind == "array" and "prefixItems" not in schema:
                low = _count(schema.get("minItems")) or 0
                high = _count(schema.get("maxItems"))
                items = schema.get("items")
                item = self.visit(
                    items if isinstance(items, dict) else {}, f"{name}{'-' if name else ''}item"
                )
                if high == 0 or (high is not None and high < low):
                    return '"[" space "]" space'
                if high == 1:
                    more = ""
                else:
                    count = _repeat(max(low - 1, 0), None if high is None else high - 1)
                    more = f'( "," space {item} ){count}'
                if low == 0:
                    return f'"[" space ( {item} {more} )? "]" space'
                return f'"[" space {item} {more} "]" space'
            return None

    return Converter


def _convert_json(schema: Mapping[str, Any], defs: Mapping[str, Any]) -> tuple[str, dict[str, str]]:
    """(top rule, rules) for a JSON value following ``schema``."""
    whole = copy.deepcopy(dict(schema))
    if defs:
        whole["$defs"] = copy.deepcopy(dict(defs))
    for attempt in (whole, _without(whole, ("pattern", "format"))):
        try:
            converter = _converter_class()(
                prop_order={}, allow_fetch=False, dotall=False, raw_pattern=False
            )
            # Every ref is "#/$defs/NAME" by now (resolve_refs would also walk the
            # data in const and enum values).
            converter._refs.update(
                {f"#/$defs/{n}": d for n, d in (attempt.get("$defs") or {}).items()}
            )
            # "a": every rule made for a property is then named "a-..."
            top = converter.visit(attempt, "a")
            rules = dict(converter._rules)
        except Exception:  # the converter asserts on what it cannot do
            continue
        _tighten(rules)
        return str(top), {str(k): str(v) for k, v in rules.items()}
    return "object", _any_json()  # nothing fits: any JSON object


def _any_json() -> dict[str, str]:
    from llama_cpp.llama_grammar import PRIMITIVE_RULES

    rules = {"space": '" "?'}
    for name in (
        "object",
        "value",
        "array",
        "string",
        "number",
        "boolean",
        "null",
        "char",
        "integral-part",
        "decimal-part",
    ):
        rules[name] = PRIMITIVE_RULES[name].content
    _tighten(rules)
    return rules


def _tighten(rules: dict[str, Any]) -> None:
    """Strings without raw control characters; exponents of two digits at most (a
    float beyond 1e308 reads back as infinity, which is no JSON)."""
    if "char" in rules:
        rules["char"] = _STRICT_CHAR
    if "number" in rules:
        rules["number"] = str(rules["number"]).replace(
            "([eE] [-+]? integral-part)", "([eE] [-+]? [0-9]{1,2})"
        )


def _without(schema: Any, keys: tuple[str, ...]) -> Any:
    if isinstance(schema, dict):
        return {
            k: _without(v, keys)
            for k, v in schema.items()
            if k not in keys or not isinstance(v, str)
        }
    if isinstance(schema, list):
        return [_without(v, keys) for v in schema]
    return schema


def _rename(body: str, names: Mapping[str, str]) -> str:
    return "".join(names.get(tok, tok) for tok in _GBNF_TOKEN.findall(body))


class _Gbnf:
    def __init__(self) -> None:
        self.rules: dict[str, str] = {}
        self._converted = 0
        self._raw: dict[tuple[int, int | None, bool], str] = {}

    def expr(self, node: _Node) -> str:
        if isinstance(node, _Lit):
            return _gbnf_literal(node.text)
        if isinstance(node, _Seq):
            return " ".join(self.expr(i) for i in node.items) or '""'
        if isinstance(node, _Alt):
            return "(" + " | ".join(self.expr(i) for i in node.items) + ")"
        if isinstance(node, _Opt):
            return f"({self.expr(node.item)})?"
        if isinstance(node, _Repeat):
            item = self.expr(node.item)
            sep = _gbnf_literal(node.sep) + ("?" if node.optional_sep else "")
            return f"{item} ({sep} {item})*" if node.sep else f"{item}+"
        if isinstance(node, _Rule):
            name = f"tc-{node.name}"
            self.rules[name] = self.expr(node.body)
            return name
        if isinstance(node, _Raw):
            text = self._raw_rule(node.min_len, node.max_len, node.guarded)
            return f"{text} {_gbnf_literal(node.tail)}"
        return self._json(node)

    def _raw_rule(self, low: int, high: int | None, guarded: bool) -> str:
        key = (low, high, guarded)
        if key not in self._raw:
            name = f"tc-text{len(self._raw)}"
            self.rules[name] = _GBNF_TEXT.text(low, high, guarded)
            self._raw[key] = name
        return self._raw[key]

    def _json(self, node: _Json) -> str:
        top, rules = _convert_json(node.schema, node.defs)
        prefix = f"j{self._converted}-"
        self._converted += 1
        names = {name: prefix + name for name in rules}
        for name, body in rules.items():
            self.rules[names[name]] = _rename(body, names)
        return names.get(top, top)


def tool_call_gbnf(
    family: Family,
    tools: list[dict[str, Any]],
    *,
    parallel: bool,
    name: str | None = None,
    template: str | None = None,
) -> str:
    """A llama.cpp grammar (root rule ``root``) for tool calls in ``family``'s syntax.

    ``tools``: OpenAI function tools (``{"type": "function", "function": {"name",
    "description", "parameters"}}``). ``parallel``: one or more calls, else exactly
    one. ``name``: only that function (tool_choice naming one). ``template``: the
    chat template, to pick between a family's syntaxes (MISTRAL, DEEPSEEK). Raises
    ValueError when no tool is left to call.
    """
    layout = _layout(family, _read_tools(tools, name), parallel, template)
    gbnf = _Gbnf()
    root = gbnf.expr(layout)
    lines = [f"root ::= {root}"]
    lines += [f"{n} ::= {body}" for n, body in gbnf.rules.items()]
    return "\n".join(lines) + "\n"


# --- Lark (llguidance) -----------------------------------------------------------------

_X_GUIDANCE = {
    "whitespace_flexible": False,
    "item_separator": ", ",
    "key_separator": ": ",
    "lenient": True,
}
_LARK_TEXT = _TextSyntax(
    plain=r"[^<\x00-\x08\x0B-\x1F\x7F]",
    char=r"([^<\x00-\x08\x0B-\x1F\x7F]|<[^\/pft<\x00-\x08\x0B-\x1F\x7F])",
    first=r"[^<\x00-\x20\x7F0-9{\[tfn\-]",
    sep="",
    empty="",
)
_REGEX_META = set(".+*?()|[]{}^$#&-~/\\")


def _regex_literal(text: str) -> str:
    out = []
    for ch in text:
        if ch == "\n":
            out.append("\\n")
        elif ch in _REGEX_META:
            out.append("\\" + ch)
        else:
            out.append(ch)
    return "".join(out)


class _Lark:
    def __init__(self, special_tokens: Mapping[str, int]) -> None:
        self.rules: dict[str, str] = {}
        self._special = sorted(special_tokens.items(), key=lambda kv: -len(kv[0]))
        self._json = 0
        self._raw = 0

    def literal(self, text: str) -> str:
        parts: list[str] = []
        rest = text
        while rest:
            hits = [(rest.find(m), m, i) for m, i in self._special if m and m in rest]
            if not hits:
                parts.append(json.dumps(rest))
                break
            pos, marker, token = min(hits, key=lambda h: (h[0], -len(h[1])))
            if pos:
                parts.append(json.dumps(rest[:pos]))
            parts.append(f"<[{token}]>")
            rest = rest[pos + len(marker) :]
        return " ".join(parts) or '""'

    def expr(self, node: _Node) -> str:
        if isinstance(node, _Lit):
            return self.literal(node.text)
        if isinstance(node, _Seq):
            return " ".join(self.expr(i) for i in node.items) or '""'
        if isinstance(node, _Alt):
            return "(" + " | ".join(self.expr(i) for i in node.items) + ")"
        if isinstance(node, _Opt):
            return f"({self.expr(node.item)})?"
        if isinstance(node, _Repeat):
            item = self.expr(node.item)
            sep = self.literal(node.sep) + ("?" if node.optional_sep else "")
            return f"{item} ({sep} {item})*" if node.sep else f"{item}+"
        if isinstance(node, _Rule):
            name = node.name.replace("-", "_")
            self.rules[name] = self.expr(node.body)
            return name
        if isinstance(node, _Raw):
            name = f"TEXT_{self._raw}"
            self._raw += 1
            body = _LARK_TEXT.text(node.min_len, node.max_len, node.guarded)
            # One lexeme up to the closing tag, which the text cannot contain.
            self.rules[name] = f"/{body}{_regex_literal(node.tail)}/"
            return name
        name = f"json_{self._json}"
        self._json += 1
        schema = {"x-guidance": _X_GUIDANCE, **node.schema}
        if node.defs:
            schema["$defs"] = dict(node.defs)
        self.rules[name] = "%json " + json.dumps(schema)
        return name


def tool_call_lark(
    family: Family,
    tools: list[dict[str, Any]],
    *,
    parallel: bool,
    name: str | None = None,
    template: str | None = None,
    special_tokens: Mapping[str, int] | None = None,
) -> str:
    """The same calls as :func:`tool_call_gbnf`, as an llguidance Lark grammar.

    ``special_tokens``: text -> token id of the tokenizer's special tokens
    (:func:`special_token_ids`). llguidance never matches a special token against a
    string literal, and onnxruntime-genai fails when a forced literal tokenizes into
    one ("Error committing tokens"), so a marker that is a special token
    (``[TOOL_CALLS]``, ``<|channel|>``, ``<｜tool▁sep｜>``, ...) must be written
    ``<[id]>``: pass the model's. Without it every marker is plain text.
    """
    layout = _layout(family, _read_tools(tools, name), parallel, template)
    lark = _Lark(special_tokens or {})
    start = lark.expr(layout)
    lines = ["%llguidance {}", f"start: {start}"]
    lines += [f"{n}: {body}" for n, body in lark.rules.items()]
    return "\n".join(lines) + "\n"


def special_token_ids(tokenizer_json: Mapping[str, Any]) -> dict[str, int]:
    """Text -> id of a Hugging Face ``tokenizer.json``'s special added tokens: the
    ``special_tokens`` for :func:`tool_call_lark`."""
    found: dict[str, int] = {}
    added = tokenizer_json.get("added_tokens")
    for token in added if isinstance(added, list) else ():
        if not isinstance(token, Mapping) or token.get("special") is not True:
            continue
        content, token_id = token.get("content"), token.get("id")
        if isinstance(content, str) and content and isinstance(token_id, int):
            found[content] = token_id
    return found
