"""A call layout written out as GBNF, the grammar language of llama.cpp.

Its own module so that each grammar language has one renderer over the shared
layout (:mod:`appliance.parsing.call_layout`); the JSON values' rules come from
:mod:`appliance.parsing.gbnf_schema`, renamed apart per value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from appliance.parsing.call_layout import (
    GEMMA_QUOTE,
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
    TextSyntax,
)
from appliance.parsing.gbnf_schema import char_class, convert_json, gbnf_literal

__all__ = ["render_gbnf"]

_GBNF_TOKEN = re.compile(
    r'"(?:\\.|[^"\\])*"|\[(?:\\.|[^\]\\])*\]|\{[0-9, ]*\}|[A-Za-z0-9_-]+|\s+|.', re.DOTALL
)
_CONTROLS = ((0, 0x08), (0x0B, 0x1F))  # tab and newline stay
_RAW_PLAIN = char_class("<\x7f", _CONTROLS)
# After "<", not what opens a tag: </..>, <parameter, <function, <tool_call, DSML's <｜.
_RAW_AFTER_LT = char_class("/pft<｜\x7f", _CONTROLS)
_RAW_CHAR = f'({_RAW_PLAIN} | "<" {_RAW_AFTER_LT})'
# What JSON cannot start with.
_RAW_FIRST = char_class("<\x7f0123456789{[tfn-", ((0, 0x20),))
_GBNF_TEXT = TextSyntax(_RAW_PLAIN, _RAW_CHAR, _RAW_FIRST, " ", '""')
# A Gemma 4 string's text: no "<|" (its marks, its call markers), "<t" or "<<".
_GEMMA_AFTER_LT = char_class("|t<\x7f", _CONTROLS)
_GEMMA_CHAR = f'({_RAW_PLAIN} | "<" {_GEMMA_AFTER_LT})'
_GBNF_GEMMA_TEXT = TextSyntax(_RAW_PLAIN, _GEMMA_CHAR, _RAW_FIRST, " ", '""')
_QUOTE = gbnf_literal(GEMMA_QUOTE)
# Any value in Gemma's notation (see call_layout.GemmaAny).
_GEMMA_RULES = {
    "tc-gemma-value": (
        'tc-gemma-string | "{" tc-gemma-members? "}" '
        '| "[" (tc-gemma-value ("," tc-gemma-value)*)? "]" '
        '| tc-gemma-number | "true" | "false" | "null"'
    ),
    "tc-gemma-members": 'tc-gemma-key ":" tc-gemma-value ("," tc-gemma-key ":" tc-gemma-value)*',
    "tc-gemma-key": "[A-Za-z_] [A-Za-z0-9_]{0,63}",
    "tc-gemma-string": f"{_QUOTE} {_GEMMA_CHAR}* {_QUOTE}",
    "tc-gemma-number": '"-"? ("0" | [1-9] [0-9]{0,15}) ("." [0-9]{1,16})? ([eE] [-+]? [0-9]{1,2})?',
}


def _rename(body: str, names: Mapping[str, str]) -> str:
    return "".join(names.get(tok, tok) for tok in _GBNF_TOKEN.findall(body))


class _Gbnf:
    def __init__(self) -> None:
        self.rules: dict[str, str] = {}
        self._converted = 0
        self._raw: dict[tuple[int, int | None, bool, bool], str] = {}

    def expr(self, node: Node) -> str:
        if isinstance(node, Lit):
            return gbnf_literal(node.text)
        if isinstance(node, Seq):
            return " ".join(self.expr(i) for i in node.items) or '""'
        if isinstance(node, Alt):
            return "(" + " | ".join(self.expr(i) for i in node.items) + ")"
        if isinstance(node, Opt):
            return f"({self.expr(node.item)})?"
        if isinstance(node, Repeat):
            item = self.expr(node.item)
            sep = gbnf_literal(node.sep) + ("?" if node.optional_sep else "")
            return f"{item} ({sep} {item})*" if node.sep else f"{item}+"
        if isinstance(node, Rule):
            name = f"tc-{node.name}"
            if name not in self.rules:  # a rule several places share is written once
                self.rules[name] = self.expr(node.body)
            return name
        if isinstance(node, Raw):
            text = self._raw_rule(node.min_len, node.max_len, node.guarded, node.gemma)
            return f"{text} {gbnf_literal(node.tail)}"
        if isinstance(node, GemmaAny):
            self.rules.update(_GEMMA_RULES)
            return "tc-gemma-members" if node.members else "tc-gemma-value"
        return self._json(node)

    def _raw_rule(self, low: int, high: int | None, guarded: bool, gemma: bool) -> str:
        key = (low, high, guarded, gemma)
        if key not in self._raw:
            name = f"tc-text{len(self._raw)}"
            syntax = _GBNF_GEMMA_TEXT if gemma else _GBNF_TEXT
            self.rules[name] = syntax.text(low, high, guarded)
            self._raw[key] = name
        return self._raw[key]

    def _json(self, node: Json) -> str:
        top, rules = convert_json(node.schema, node.defs)
        prefix = f"j{self._converted}-"
        self._converted += 1
        names = {name: prefix + name for name in rules}
        for name, body in rules.items():
            self.rules[names[name]] = _rename(body, names)
        return names.get(top, top)


def render_gbnf(layout: Node) -> str:
    """The grammar text, its root rule ``root``."""
    gbnf = _Gbnf()
    root = gbnf.expr(layout)
    lines = [f"root ::= {root}"]
    lines += [f"{n} ::= {body}" for n, body in gbnf.rules.items()]
    return "\n".join(lines) + "\n"
