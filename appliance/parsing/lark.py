"""A call layout written out as a Lark grammar in llguidance's dialect, for
onnxruntime-genai (``GeneratorParams.set_guidance("lark_grammar", text)``).

Its own module so that each grammar language has one renderer over the shared
layout (:mod:`appliance.parsing.call_layout`). llguidance checks JSON itself, so the
arguments go in as inline ``%json`` schemas (compact ``", "`` / ``": "`` layout), and
markers that are special tokens are written by id.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from appliance.parsing.call_layout import (
    Alt,
    GemmaAny,
    Lit,
    Node,
    Opt,
    Raw,
    Repeat,
    Rule,
    Seq,
    TextSyntax,
)

__all__ = ["render_lark"]

_X_GUIDANCE = {
    "whitespace_flexible": False,
    "item_separator": ", ",
    "key_separator": ": ",
    "lenient": True,
}
_LARK_TEXT = TextSyntax(
    plain=r"[^<\x00-\x08\x0B-\x1F\x7F]",
    char=r"([^<\x00-\x08\x0B-\x1F\x7F]|<[^\/pft<｜\x00-\x08\x0B-\x1F\x7F])",
    first=r"[^<\x00-\x20\x7F0-9{\[tfn\-]",
    sep="",
    empty="",
)
_LARK_GEMMA_TEXT = TextSyntax(
    plain=r"[^<\x00-\x08\x0B-\x1F\x7F]",
    char=r"([^<\x00-\x08\x0B-\x1F\x7F]|<[^|t<\x00-\x08\x0B-\x1F\x7F])",
    first="",
    sep="",
    empty="",
)
# Any value in Gemma's notation (see call_layout.GemmaAny).
_GEMMA_RULES = {
    "gemma_value": (
        'GEMMA_STRING | "{" gemma_members? "}" | "[" (gemma_value ("," gemma_value)*)? "]" '
        '| GEMMA_NUMBER | "true" | "false" | "null"'
    ),
    "gemma_members": 'GEMMA_KEY ":" gemma_value ("," GEMMA_KEY ":" gemma_value)*',
    "GEMMA_KEY": r"/[A-Za-z_][A-Za-z0-9_]{0,63}/",
    "GEMMA_STRING": r'/<\|"\|>' + _LARK_GEMMA_TEXT.char + r'*<\|"\|>/',
    "GEMMA_NUMBER": r"/-?(0|[1-9][0-9]{0,15})(\.[0-9]{1,16})?([eE][\-+]?[0-9]{1,2})?/",
}
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

    def expr(self, node: Node) -> str:
        if isinstance(node, Lit):
            return self.literal(node.text)
        if isinstance(node, Seq):
            return " ".join(self.expr(i) for i in node.items) or '""'
        if isinstance(node, Alt):
            return "(" + " | ".join(self.expr(i) for i in node.items) + ")"
        if isinstance(node, Opt):
            return f"({self.expr(node.item)})?"
        if isinstance(node, Repeat):
            item = self.expr(node.item)
            sep = self.literal(node.sep) + ("?" if node.optional_sep else "")
            return f"{item} ({sep} {item})*" if node.sep else f"{item}+"
        if isinstance(node, Rule):
            name = node.name.replace("-", "_")
            if name not in self.rules:  # a rule several places share is written once
                self.rules[name] = self.expr(node.body)
            return name
        if isinstance(node, Raw):
            name = f"TEXT_{self._raw}"
            self._raw += 1
            syntax = _LARK_GEMMA_TEXT if node.gemma else _LARK_TEXT
            body = syntax.text(node.min_len, node.max_len, node.guarded)
            # One lexeme up to the closing tag, which the text cannot contain.
            self.rules[name] = f"/{body}{_regex_literal(node.tail)}/"
            return name
        if isinstance(node, GemmaAny):
            self.rules.update(_GEMMA_RULES)
            return "gemma_members" if node.members else "gemma_value"
        name = f"json_{self._json}"
        self._json += 1
        schema = {"x-guidance": _X_GUIDANCE, **node.schema}
        if node.defs:
            schema["$defs"] = dict(node.defs)
        self.rules[name] = "%json " + json.dumps(schema)
        return name


def render_lark(layout: Node, special_tokens: Mapping[str, int]) -> str:
    """The grammar text, its start rule ``start``; ``special_tokens`` (text -> id)
    are the markers to write as ``<[id]>``."""
    lark = _Lark(special_tokens)
    start = lark.expr(layout)
    lines = ["%llguidance {}", f"start: {start}"]
    lines += [f"{n}: {body}" for n, body in lark.rules.items()]
    return "\n".join(lines) + "\n"
