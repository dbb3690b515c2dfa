"""The nodes a tool-call grammar's layout is made of, in no grammar language yet:
literals, sequences, alternatives, options, repetitions, named rules, JSON values that
follow a schema, raw XML text, Gemma 4's values. `call_layout` builds them family by
family; the GBNF and Lark renderers write them out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Lit:
    text: str


@dataclass(frozen=True, slots=True)
class Json:
    """A JSON value following ``schema`` (``defs`` resolve its refs)."""

    schema: Mapping[str, Any]
    defs: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Raw:
    """Raw text for an XML parameter value, then ``tail``: no ``<`` that could open
    or close a tag, no control character but tab and newline. ``guarded``: it must
    not read as JSON either (no leading space, digit, ``-``, ``{``, ``[``, ``t``,
    ``f``, ``n``), for a parameter whose declared schema names no type."""

    min_len: int
    max_len: int | None
    tail: str
    guarded: bool = False
    gemma: bool = False  # a Gemma 4 string: no "<|" (its marks), "<t" or "<<" either


@dataclass(frozen=True, slots=True)
class GemmaAny:
    """Any value in Gemma 4's notation (strings between ``<|"|>`` marks, JSON's numbers,
    ``true``, ``false``, ``null``, ``[..]`` lists, ``{key:value}`` objects with bare
    keys): for a schema the layout does not spell out. ``members``: an object's
    ``key:value`` list without its braces (one or more)."""

    members: bool = False


@dataclass(frozen=True, slots=True)
class Seq:
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Alt:
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Opt:
    item: Node


@dataclass(frozen=True, slots=True)
class Rule:
    """A named rule (one per tool, so the grammars stay readable)."""

    name: str
    body: Node


@dataclass(frozen=True, slots=True)
class Repeat:
    """``item (sep item)*``."""

    item: Node
    sep: str
    optional_sep: bool = False


Node = Lit | Json | Raw | GemmaAny | Seq | Alt | Opt | Rule | Repeat


def seq(*items: Node | str) -> Seq:
    """A sequence of nodes, text as literals."""
    return Seq(tuple(Lit(i) if isinstance(i, str) else i for i in items))


def resolve(schema: Any, defs: Mapping[str, Any]) -> Mapping[str, Any]:
    """A schema with its ``$ref`` followed into ``defs`` (a few levels; {} when lost)."""
    for _ in range(8):
        ref = schema.get("$ref") if isinstance(schema, Mapping) else None
        if not isinstance(ref, str):
            break
        schema = defs.get(ref.rsplit("/", 1)[-1], {})
    return schema if isinstance(schema, Mapping) else {}


@dataclass(frozen=True, slots=True)
class TextSyntax:
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
            return f"{self.plain}{repeat(low, high)}"
        if high is None and low == 0:
            return f"({self.first}{self.sep}{self.char}*)?"
        rest = repeat(max(low - 1, 0), None if high is None else high - 1)
        body = f"{self.first}{self.sep}{self.plain}{rest}"
        return f"({body})?" if low == 0 else f"({body})"


def repeat(lo: int, hi: int | None) -> str:
    """``lo`` to ``hi`` (or more) of the item before: GBNF and llguidance's regexes
    write the count the same way."""
    if hi is None:
        return "*" if lo == 0 else ("+" if lo == 1 else f"{{{lo},}}")
    return f"{{{lo}}}" if lo == hi else f"{{{lo},{hi}}}"
