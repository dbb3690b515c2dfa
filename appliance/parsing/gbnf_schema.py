"""JSON values that follow a schema, as GBNF rules for llama.cpp.

The rules come from llama-cpp-python's JSON-schema converter, which this module
extends where it falls short: integer ranges, number ranges (non-negative lower
bound), ``{m,n}`` counts for string lengths and array sizes, strict JSON strings (no
raw control characters), exponents of at most two digits, and correct escaping of
literals (backslashes, characters beyond the BMP). Patterns are written here, from
Python's own regex parse (the converter's takes no ``(?:``, ``\\d`` or escaped dots, and
its counts nest too deep for llama.cpp); one that cannot be written is dropped alone,
its ``format`` and every other constraint kept. What llama.cpp would refuse, a count
beyond its limit or a left-recursive ``$ref`` cycle, is a :class:`SchemaGrammarError`;
so is a cycle through required parts, whose values never end (llama.cpp takes its
grammar, and the model nests until its tokens run out). Its own module
because it is the one part of the GBNF output that knows JSON Schema;
:mod:`appliance.parsing.gbnf` only places its rules.
"""

from __future__ import annotations

import copy
import functools
import math
import re
from collections.abc import Iterator, Mapping
from typing import Any

from appliance.parsing.call_layout import repeat
from appliance.parsing.gbnf_pattern import (
    GRAMMAR_COUNT_LIMIT,
    PatternWriter,
    Unwritable,
    gbnf_literal,
    json_text,
)
from appliance.parsing.jsonscan import loads_strict
from appliance.parsing.tool_schema import finite_number, nonnegative_int

__all__ = [
    "GRAMMAR_COUNT_LIMIT",
    "SchemaGrammarError",
    "char_class",
    "convert_json",
    "gbnf_literal",
    "integer_range",
    "number_range",
]

# Every character a grammar may write: Unicode but the surrogates, which UTF-8 cannot
# carry. llama.cpp's grammar reads more: past U+10FFFF (lead bytes F5-F7) and the
# surrogates (ED A0-BF), which a model with byte tokens can write and no decoder reads
# back (each byte became U+FFFD: a string bounded to 12 characters came back with 14).
_UNICODE = ((0, 0xD7FF), (0xE000, 0x10FFFF))


def _escape(cp: int) -> str:
    if cp < 0x100:
        return f"\\x{cp:02X}"
    if cp < 0x10000:
        return f"\\u{cp:04X}"
    return f"\\U{cp:08X}"


def char_class(excluded: str = "", ranges: tuple[tuple[int, int], ...] = ()) -> str:
    """A GBNF class of every Unicode character but those in `excluded` and `ranges`.

    Written as the ranges it allows, not as a negated class: llama.cpp takes a token that
    ends mid-character when what it may still become meets the class. A negated class
    refuses every lead byte whose range meets an exclusion (ED leads the surrogates and
    Hangul U+D000-D7A3 alike; F4, plane 16 and what lies past Unicode); a positive one
    refuses only the byte that makes an excluded character.
    """
    cut = sorted([(ord(c), ord(c)) for c in excluded] + list(ranges))
    allowed: list[tuple[int, int]] = []
    for low, high in _UNICODE:
        start = low
        for a, b in cut:
            if b < start or a > high:
                continue
            if a > start:
                allowed.append((start, a - 1))
            start = max(start, b + 1)
        if start <= high:
            allowed.append((start, high))
    body = "".join(_escape(a) if a == b else f"{_escape(a)}-{_escape(b)}" for a, b in allowed)
    return f"[{body}]"


# JSON strings: no raw control characters (the converter's own rule lets them in).
_STRICT_CHAR = (
    char_class('"\\\x7f', ((0, 0x1F),)) + ' | "\\\\" (["\\\\/bfnrt] | "u" [0-9a-fA-F]{4})'
)
_MAX_DIGITS = 16  # the converter's integers are at most 16 digits long
# Formats the converter has rules for; any other leaves a plain string.
_CONVERTER_FORMATS = re.compile(r"date|time|date-time|uuid[1-5]?")


class SchemaGrammarError(ValueError):
    """A schema no llama.cpp grammar can follow: callers report it as an invalid schema
    rather than hand llama.cpp a grammar it refuses."""


def _same_length(lo: str, hi: str) -> list[list[str]]:
    """Digit strings of one length from ``lo`` to ``hi``, as sequences of atoms."""
    if lo == hi:
        return [[gbnf_literal(lo)]]
    i = next(k for k in range(len(lo)) if lo[k] != hi[k])
    prefix = [gbnf_literal(lo[:i])] if i else []
    rest = len(lo) - i - 1
    zeros, nines = "0" * rest, "9" * rest
    tail = [f"[0-9]{repeat(rest, rest)}" if rest > 1 else "[0-9]"] if rest else []
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
            out.append(["[1-9]", f"[0-9]{repeat(digits - 1, _MAX_DIGITS - 1)}"])
            break
        out.extend(_same_length(str(start), str(stop)))
    return out


def integer_range(lo: int | None, hi: int | None) -> str | None:
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
    if finite_number(plain):
        found = (
            math.floor(plain) if upper and integral else (math.ceil(plain) if integral else plain)
        )
    if finite_number(exclusive):
        if integral:
            edge = math.ceil(exclusive) - 1 if upper else math.floor(exclusive) + 1
        else:
            edge = exclusive
        if found is None or (edge < found if upper else edge > found):
            found = edge
    if found is not None and abs(found) >= 10 ** (_MAX_DIGITS - 1):
        return None
    return found


def number_range(schema: Mapping[str, Any]) -> str | None:
    """Non-negative numbers within the bounds: an integer part and an optional
    fraction (so ``x.y`` stays below an upper bound), or the top integer itself."""
    lo, hi = _bound(schema, False, False), _bound(schema, False, True)
    if lo is None or lo < 0:
        return None
    exclusive_lo = (
        finite_number(schema.get("exclusiveMinimum")) and schema["exclusiveMinimum"] >= lo
    )
    start = math.floor(lo) + 1 if exclusive_lo or lo != math.floor(lo) else math.floor(lo)
    fraction = '("." [0-9]{1,15})?'
    if hi is None:
        whole = integer_range(start, None)
        return f"{whole} {fraction}" if whole else None
    exclusive_hi = (
        finite_number(schema.get("exclusiveMaximum")) and schema["exclusiveMaximum"] <= hi
    )
    top = math.floor(hi)
    parts = []
    if start <= top - 1:  # i.fff < i + 1 <= hi
        parts.append(f"{integer_range(start, top - 1)} {fraction}")
    if start <= top and (top < hi or not exclusive_hi):
        parts.append(gbnf_literal(str(top)))
    return "(" + " | ".join(parts) + ")" if parts else None


# --- $ref cycles -----------------------------------------------------------------------


def _leading_refs(node: Any) -> list[str]:
    """The refs a value of ``node`` may start with, before it writes a character (the
    converter reads "$ref" first, then "oneOf" or "anyOf")."""
    if not isinstance(node, dict):
        return []
    if isinstance(node.get("$ref"), str):
        return [node["$ref"]]
    alternatives = node.get("oneOf") or node.get("anyOf")
    if isinstance(alternatives, list):
        return [r for a in alternatives for r in _leading_refs(a)]
    return []


def _all_refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            elif key not in ("const", "enum"):
                yield from _all_refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _all_refs(value)


def _check_ref_cycles(whole: Mapping[str, Any]) -> None:
    """Refs that lead back to themselves before any character is written make a
    left-recursive grammar, which llama.cpp refuses: say which."""
    defs = whole.get("$defs") or {}
    edges = {
        ref: _leading_refs(defs.get(ref.removeprefix("#/$defs/")))
        for ref in {*_all_refs(whole), *_leading_refs(whole)}
    }
    done: set[str] = set()

    def walk(ref: str, path: list[str]) -> None:
        if ref in path:
            cycle = [*path[path.index(ref) :], ref]
            raise SchemaGrammarError(
                f"$ref cycle {' -> '.join(cycle)}: each refers to the next before any "
                "value is written, a left-recursive grammar llama.cpp refuses"
            )
        if ref in done:
            return
        for nxt in edges.get(ref) or _leading_refs(defs.get(ref.removeprefix("#/$defs/"))):
            walk(nxt, [*path, ref])
        done.add(ref)

    for ref in sorted(edges):
        walk(ref, [])


def _blocking_ref(node: Any, defs: Mapping[str, Any], ends: set[str]) -> str | None:
    """None when a value of ``node`` can be written to its end, given that values of
    the refs in ``ends`` can; else a ref, not in ``ends``, that every value of ``node``
    must hold (through a required property, a prefix item or a least count of items).
    Keywords are read in the converter's order: "$ref", then "oneOf" or "anyOf"."""
    if not isinstance(node, dict):
        return None
    ref = node.get("$ref")
    if isinstance(ref, str):
        known = ref.removeprefix("#/$defs/") in defs
        return ref if known and ref not in ends else None
    alternatives = node.get("oneOf") or node.get("anyOf")
    if isinstance(alternatives, list) and alternatives:
        blocked = [_blocking_ref(a, defs, ends) for a in alternatives]
        return None if None in blocked else blocked[0]
    if "const" in node or "enum" in node:
        return None
    needed: list[Any] = []
    all_of = node.get("allOf")
    if isinstance(all_of, list):
        needed += all_of
    props, required = node.get("properties"), node.get("required")
    if isinstance(props, dict) and isinstance(required, list):
        needed += [props[r] for r in required if isinstance(r, str) and r in props]
    prefix = node.get("prefixItems")
    prefix = prefix if isinstance(prefix, list) else []
    needed += prefix
    items, least = node.get("items"), nonnegative_int(node.get("minItems")) or 0
    if isinstance(items, dict) and least > len(prefix):
        needed.append(items)
    for part in needed:
        blocking = _blocking_ref(part, defs, ends)
        if blocking is not None:
            return blocking
    return None


def _check_endless_refs(whole: Mapping[str, Any]) -> None:
    """Refs whose every value holds another value of themselves (a required property
    that refers back, ``{"properties": {"x": {"$ref": "#"}}, "required": ["x"]}``) have
    no value that ends: the grammar would let the model nest forever. Say which cycle,
    as for the left-recursive ones; recursion through an optional part is fine."""
    defs = whole.get("$defs") or {}
    refs = sorted({*_all_refs(whole)})
    ends: set[str] = set()  # the refs that have values that end, to a fixed point
    grown = True
    while grown:
        grown = False
        for ref in refs:
            target = defs.get(ref.removeprefix("#/$defs/"))
            if ref not in ends and (target is None or _blocking_ref(target, defs, ends) is None):
                ends.add(ref)
                grown = True
    endless = _blocking_ref(dict(whole), defs, ends) or next(
        (r for r in refs if r not in ends), None
    )
    path: list[str] = []
    while endless is not None and endless not in path:
        path.append(endless)
        endless = _blocking_ref(defs.get(endless.removeprefix("#/$defs/")), defs, ends)
    if endless is not None:
        cycle = [*path[path.index(endless) :], endless]
        raise SchemaGrammarError(
            f"$ref cycle {' -> '.join(cycle)}: a value of each must hold a value of the "
            "next (a required property or item), so no value ever ends; make one of them "
            "optional"
        )


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
                pattern = schema.get("pattern")
                if schema.get("type") in (None, "string") and isinstance(pattern, str):
                    before = dict(self._base._rules)
                    try:
                        written = PatternWriter(self._base._add_rule, rule).body(pattern)
                        return self._base._add_rule(rule, rf'"\"" {written} "\"" space')
                    except Unwritable:  # only this pattern goes; its format stays
                        self._base._rules = before
                        schema = {k: v for k, v in schema.items() if k != "pattern"}
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
                    literal = json_text(value)
            return gbnf_literal(literal)

        def _generate_constant_rule(self, value: Any) -> str:
            return gbnf_literal(json_text(value))

        def _custom(self, schema: dict[str, Any], name: str) -> str | None:
            kind = schema.get("type")
            bounded = any(
                k in schema for k in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")
            )
            if kind == "integer" and bounded:
                lo, hi = _bound(schema, True, False), _bound(schema, True, True)
                body = integer_range(
                    int(lo) if lo is not None else None, int(hi) if hi is not None else None
                )
                return f"{body} space" if body else None
            if kind == "number" and bounded:
                body = number_range(schema)
                return f"{body} space" if body else None
            if (
                kind == "string"
                and "pattern" not in schema
                and not _CONVERTER_FORMATS.fullmatch(str(schema.get("format", "")))
                and ("minLength" in schema or "maxLength" in schema)
            ):
                char = self._base._add_primitive("char", PRIMITIVE_RULES["char"])
                low, high = _counts(schema, "minLength", "maxLength", 0)
                return rf'"\"" {char}{repeat(low, high)} "\"" space'
            if kind == "array":
                low, high = _counts(schema, "minItems", "maxItems", 1)
                if "prefixItems" not in schema:
                    return self._array(schema, name, low, high)
            return None

        def _array(self, schema: dict[str, Any], name: str, low: int, high: int | None) -> str:
            items = schema.get("items")
            item = self.visit(
                items if isinstance(items, dict) else {}, f"{name}{'-' if name else ''}item"
            )
            if high == 0 or (high is not None and high < low):
                return '"[" space "]" space'
            if high == 1:
                more = ""
            else:
                count = repeat(max(low - 1, 0), None if high is None else high - 1)
                more = f'( "," space {item} ){count}'
            if low == 0:
                return f'"[" space ( {item} {more} )? "]" space'
            return f'"[" space {item} {more} "]" space'

    return Converter


def convert_json(schema: Mapping[str, Any], defs: Mapping[str, Any]) -> tuple[str, dict[str, str]]:
    """(top rule, rules) for a JSON value following ``schema``."""
    whole = copy.deepcopy(dict(schema))
    if defs:
        whole["$defs"] = copy.deepcopy(dict(defs))
    _check_ref_cycles(whole)
    _check_endless_refs(whole)
    # Patterns the converter cannot take are dropped one by one as it goes; the
    # second attempt is for anything else it asserts on.
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
        except SchemaGrammarError:
            raise
        except Exception:  # the converter asserts on what it cannot do
            continue
        _tighten(rules)
        return str(top), {str(k): str(v) for k, v in rules.items()}
    return "object", _any_json()  # nothing fits: any JSON object


def _counts(
    schema: Mapping[str, Any], low_key: str, high_key: str, before: int
) -> tuple[int, int | None]:
    """(least, most) of a length or size, less the ``before`` items written ahead of the
    repetition: a least beyond llama.cpp's limit is an error, a most beyond it no most
    (llama.cpp would read it so)."""
    low = nonnegative_int(schema.get(low_key)) or 0
    high = nonnegative_int(schema.get(high_key))
    if low - before > GRAMMAR_COUNT_LIMIT:
        raise SchemaGrammarError(
            f"{low_key} {low} is more than llama.cpp grammars can count: at most "
            f"{GRAMMAR_COUNT_LIMIT + before}"
        )
    if high is not None and high - before > GRAMMAR_COUNT_LIMIT:
        high = None
    return low, high


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
