"""The text a call layout allows in one way only, at its start.

A grammar that forces a call (tool_choice "required" or naming a function) lets the
model pick its tokens one at a time, and the name's text can be spelled by several
token splits ("final" or "fin" + "al"). A small model forced to call can pick an odd
split, and the odd tokens then steer its arguments. Text that is the same in every
output is better written as the tokenizer splits it, without sampling (SGLang's
"jump-forward"): :func:`forced_prefix` says what that text is.
"""

from __future__ import annotations

import re

from appliance.parsing.call_layout import Alt, Lit, Node, Opt, Repeat, Rule, Seq

__all__ = ["forced_prefix"]

_WORD_END = re.compile(r'"?\w+$|"$')


def _prefix(node: Node) -> tuple[str, bool]:
    """(the text every output of `node` starts with, whether that is all it allows)."""
    if isinstance(node, Lit):
        return node.text, True
    if isinstance(node, Rule):
        return _prefix(node.body)
    if isinstance(node, Seq):
        out = ""
        for item in node.items:
            text, whole = _prefix(item)
            out += text
            if not whole:
                return out, False
        return out, True
    if isinstance(node, Alt):
        found = [_prefix(item) for item in node.items]
        texts = [text for text, _ in found]
        common = _common_start(texts)
        if all(w for _, w in found) and all(t == common for t in texts):
            return common, True
        # Where the alternatives part inside a word (two tools' names), the word's
        # start and the quote before it are left to the model: forced, they would
        # split tokens the model writes whole (`"final` + `_result`).
        return _WORD_END.sub("", common), False
    if isinstance(node, Repeat):  # at least one item
        return _prefix(node.item)[0], False
    if isinstance(node, Opt):
        return "", False
    return "", False  # a JSON value or raw text: the model's to write


def _common_start(texts: list[str]) -> str:
    first, last = min(texts), max(texts)  # what all share, the two furthest apart share
    n = 0
    while n < min(len(first), len(last)) and first[n] == last[n]:
        n += 1
    return first[:n]


def forced_prefix(layout: Node) -> str:
    """The text every output of `layout` starts with, up to its last non-blank
    character: a token for trailing blank space would split one the model writes
    whole (`": "` then `{` instead of `":` then ` {`)."""
    text, _ = _prefix(layout)
    return text.rstrip(" \t\n")
