"""Random messages, written out in each family's syntax, parse back to themselves."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from typing import Any

from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from appliance.parsing import Family, ToolCall
from tests.parsing.helpers import run

Calls = list[tuple[str, dict[str, Any]]]

TEXT = st.text(alphabet="ab <>/|_[]\n:é東", max_size=25)
NAME = st.from_regex(r"[a-z][a-z_]{0,9}", fullmatch=True)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**6), 10**6) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
ARGS = st.dictionaries(st.text(max_size=6), JSON, max_size=4)
# XML parameter values are text; any text without the structural tags reads back.
XML_ARGS = st.dictionaries(
    st.from_regex(r"[a-z]{1,6}", fullmatch=True),
    st.text(alphabet="ab <>/=\n\t{}\"'", max_size=12),
    max_size=3,
)

MARKERS = {
    Family.HERMES: ["<think>", "</think>", "<tool_call>"],
    Family.QWEN3_CODER: ["<think>", "</think>", "<tool_call>", "<function="],
    Family.MISTRAL: ["[THINK]", "[/THINK]", "<think>", "</think>", "[TOOL_CALLS]"],
    Family.DEEPSEEK: ["<think>", "</think>", "<｜tool"],
    Family.HARMONY: ["<|"],
    Family.LLAMA3: ["<think>", "</think>", "<|python_tag|>"],
    Family.GENERIC: ["<think>", "</think>", "<tool_call>"],
}


def _dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _hermes(reasoning: str, content: str, calls: Calls) -> str:
    body = "".join(
        f"<tool_call>\n{_dump({'name': n, 'arguments': a})}\n</tool_call>\n" for n, a in calls
    )
    return f"<think>{reasoning}</think>{content}\n{body}"


def _xml(reasoning: str, content: str, calls: Calls) -> str:
    out = [f"{reasoning}</think>\n\n{content}\n"]
    for name, args in calls:
        params = "".join(f"<parameter={k}>\n{v}\n</parameter>\n" for k, v in args.items())
        out.append(f"<tool_call>\n<function={name}>\n{params}</function>\n</tool_call>\n")
    return "".join(out)


def _mistral(reasoning: str, content: str, calls: Calls) -> str:
    body = "".join(f"[TOOL_CALLS]{n}[ARGS]{_dump(a)}" for n, a in calls)
    return f"[THINK]{reasoning}[/THINK]{content}{body}"


def _deepseek(reasoning: str, content: str, calls: Calls) -> str:
    if not calls:
        return f"{reasoning}</think>{content}"
    body = "".join(
        f"<｜tool▁call▁begin｜>{n}<｜tool▁sep｜>{_dump(a)}<｜tool▁call▁end｜>" for n, a in calls
    )
    return f"{reasoning}</think>{content}<｜tool▁calls▁begin｜>{body}<｜tool▁calls▁end｜>"


def _harmony(reasoning: str, content: str, calls: Calls) -> str:
    out = f"<|channel|>analysis<|message|>{reasoning}<|end|>"
    out += f"<|start|>assistant<|channel|>commentary<|message|>{content}<|end|>"
    for name, args in calls:
        out += (
            f"<|start|>assistant<|channel|>commentary to=functions.{name} <|constrain|>json"
            f"<|message|>{_dump(args)}<|call|>"
        )
    return out


def _llama(reasoning: str, content: str, calls: Calls) -> str:
    body = "; ".join(_dump({"name": n, "parameters": a}) for n, a in calls)
    return f"<think>{reasoning}</think>{body}\n{content}"


def _generic(reasoning: str, content: str, calls: Calls) -> str:
    body = _dump({"tool_calls": [{"name": n, "arguments": a} for n, a in calls]}) if calls else ""
    return (
        f"<think>{reasoning}</think>```json\n{body}\n```\n{content}"
        if calls
        else (f"<think>{reasoning}</think>{content}")
    )


WRITERS: dict[Family, tuple[Callable[[str, str, Calls], str], bool]] = {
    # family: (writer, whether the prompt opened the reasoning)
    Family.HERMES: (_hermes, False),
    Family.QWEN3_CODER: (_xml, True),
    Family.MISTRAL: (_mistral, False),
    Family.DEEPSEEK: (_deepseek, True),
    Family.HARMONY: (_harmony, False),
    Family.LLAMA3: (_llama, False),
    Family.GENERIC: (_generic, False),
}


@settings(max_examples=300, deadline=None)
@given(
    family=st.sampled_from(list(WRITERS)),
    reasoning=TEXT,
    content=TEXT,
    names=st.lists(NAME, max_size=3),
    json_args=st.lists(ARGS, min_size=3, max_size=3),
    xml_args=st.lists(XML_ARGS, min_size=3, max_size=3),
    cuts=st.lists(st.integers(0, 2000), max_size=8),
)
@example(  # found in CI: calls to one tool, a string argument that reads as JSON
    family=Family.QWEN3_CODER,
    reasoning="",
    content="",
    names=["a", "a", "a"],
    json_args=[{}, {}, {}],
    xml_args=[{}, {"a": "{}"}, {}],
    cuts=[],
)
def test_written_message_reads_back(
    family: Family,
    reasoning: str,
    content: str,
    names: list[str],
    json_args: list[dict[str, Any]],
    xml_args: list[dict[str, str]],
    cuts: list[int],
) -> None:
    for text in (reasoning, content):
        assume(not any(m in text for m in MARKERS[family]))
    if family in (Family.LLAMA3, Family.GENERIC) and names:
        assume(not content.strip().startswith(("{", "[", "`")))
    args = xml_args if family is Family.QWEN3_CODER else json_args
    calls: Calls = list(zip(names, args, strict=False))
    write, started = WRITERS[family]
    text = write(reasoning, content, calls)
    # One schema per tool name: calls to the same tool share it (all their keys strings).
    schemas: dict[str, dict[str, Any]] = {}
    for n, a in calls:
        props = schemas.setdefault(n, {"type": "object", "properties": {}})["properties"]
        props.update({k: {"type": "string"} for k in a})

    bounds = sorted({0, len(text), *(c for c in cuts if c <= len(text))})
    pieces = [text[a:b] for a, b in itertools.pairwise(bounds)]
    message, _ = run(pieces, family, started=started, schemas=schemas)

    assert message.reasoning == reasoning.strip()
    assert message.content == content.strip()
    ids = (f"call_{i}" for i in itertools.count())
    assert message.tool_calls == tuple(ToolCall(next(ids), n, _dump(a)) for n, a in calls)
    assert not message.malformed_tool_call
