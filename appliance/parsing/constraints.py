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
default) or ``name<｜tool▁sep｜>{...}`` (V3.1); DEEPSEEK_DSML opens its block with
``<｜DSML｜function_calls>`` (V3.2) or ``<｜DSML｜tool_calls>`` (V4; the default).

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

The pieces: :mod:`appliance.parsing.tool_schema` reads and normalizes the tools,
:mod:`appliance.parsing.call_layout` lays the calls out once for both languages,
:mod:`appliance.parsing.gbnf` (with :mod:`appliance.parsing.gbnf_schema` for the
arguments) and :mod:`appliance.parsing.lark` write that layout out.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from appliance.parsing.call_layout import (
    APERTUS_CALL,
    COHERE_ACTION,
    DS_CALLS_BEGIN,
    GEMMA_CALL,
    GRANITE_CALL,
    HARMONY_CALL,
    KIMI_SECTION,
    LFM2_CALL,
    MINICPM5_CALL,
    MINIMAX_CALL,
    MISTRAL_CALLS,
    NEMOTRON_CALL,
    SEED_CALL,
    TOOL_CALL,
    Alt,
    Json,
    Node,
    build_layout,
    dsml_block,
)
from appliance.parsing.families import Family
from appliance.parsing.gbnf import render_gbnf
from appliance.parsing.lark import render_lark
from appliance.parsing.tool_schema import normalize_schema, read_tools

__all__ = [
    "ANY_OBJECT",
    "json_gbnf",
    "special_token_ids",
    "tool_call_gbnf",
    "tool_call_lark",
    "tool_call_layout",
    "tool_call_trigger",
]

# `response_format: json_object`: any JSON object.
ANY_OBJECT: dict[str, Any] = {"type": "object", "additionalProperties": True}


# Where each family's calls open (GENERIC's and LLAMA3's bare JSON: below).
_TRIGGERS: dict[Family, str] = {
    Family.HERMES: TOOL_CALL,
    Family.QWEN3_CODER: TOOL_CALL,
    Family.GLM: TOOL_CALL,
    Family.SEED_OSS: SEED_CALL,
    Family.MINIMAX_M2: MINIMAX_CALL,
    Family.KIMI_K2: KIMI_SECTION,
    Family.GEMMA4: GEMMA_CALL,
    Family.LFM2: LFM2_CALL,
    Family.NEMOTRON_V2: NEMOTRON_CALL,
    Family.GRANITE3: GRANITE_CALL,
    Family.COMMAND_R7B: COHERE_ACTION,
    Family.APERTUS: APERTUS_CALL,
    Family.MINICPM5: MINICPM5_CALL,
    Family.MISTRAL: MISTRAL_CALLS,
    Family.DEEPSEEK: DS_CALLS_BEGIN,
    Family.HARMONY: HARMONY_CALL,
}


def tool_call_trigger(
    family: Family, *, parallel: bool = False, template: str | None = None
) -> str:
    """The literal text that opens a call in ``family``: where a lazy grammar starts.
    The grammars built with the same ``parallel`` and ``template`` begin with it
    (GENERIC's parallel grammar, a list, with ``[{"name"``; its single call, with
    ``{"name"``; DeepSeek DSML's with the block its template names)."""
    if family is Family.DEEPSEEK_DSML:
        return dsml_block(template)
    opener = _TRIGGERS.get(family)
    if opener is not None:
        return opener
    if family is Family.GENERIC and parallel:
        return '[{"name"'
    return '{"name"'


def tool_call_gbnf(
    family: Family,
    tools: list[dict[str, Any]],
    *,
    parallel: bool,
    name: str | None = None,
    template: str | None = None,
    answer: Mapping[str, Any] | None = None,
) -> str:
    """A llama.cpp grammar (root rule ``root``) for tool calls in ``family``'s syntax.

    ``tools``: OpenAI function tools (``{"type": "function", "function": {"name",
    "description", "parameters"}}``). ``parallel``: one or more calls, else exactly
    one. ``name``: only that function (tool_choice naming one). ``template``: the
    chat template, to pick between a family's syntaxes (MISTRAL, DEEPSEEK,
    DEEPSEEK_DSML).
    ``answer``: a JSON schema the output may follow instead of calling (tool_choice
    "auto" with a ``response_format``). Raises ValueError when no tool is left to call.
    """
    return render_gbnf(
        tool_call_layout(
            family, tools, parallel=parallel, name=name, template=template, answer=answer
        )
    )


def json_gbnf(schema: Mapping[str, Any]) -> str:
    """A llama.cpp grammar for one JSON value following ``schema`` (``response_format``),
    with the same strict strings and bounds as the tools' arguments (llama-cpp-python's
    own converter lets raw newlines into strings: JSON that does not load)."""
    return render_gbnf(_json(schema))


def _json(schema: Mapping[str, Any]) -> Json:
    normalized = normalize_schema(schema)
    return Json(normalized, normalized.get("$defs") or {})


def tool_call_layout(
    family: Family,
    tools: list[dict[str, Any]],
    *,
    parallel: bool,
    name: str | None = None,
    template: str | None = None,
    answer: Mapping[str, Any] | None = None,
) -> Node:
    """The calls :func:`tool_call_gbnf` allows (same arguments), as a layout: what the
    grammars are written from, and what `forced_text.forced_prefix` reads the text every
    output starts with from (one layout for both, built once per request)."""
    calls = build_layout(family, read_tools(tools, name), parallel, template)
    return calls if answer is None else Alt((calls, _json(answer)))


def tool_call_lark(
    family: Family,
    tools: list[dict[str, Any]],
    *,
    parallel: bool,
    name: str | None = None,
    template: str | None = None,
    special_tokens: Mapping[str, int] | None = None,
    answer: Mapping[str, Any] | None = None,
) -> str:
    """The same calls as :func:`tool_call_gbnf`, as an llguidance Lark grammar.

    ``special_tokens``: text -> token id of the tokenizer's special tokens
    (:func:`special_token_ids`). llguidance never matches a special token against a
    string literal, and onnxruntime-genai fails when a forced literal tokenizes into
    one ("Error committing tokens"), so a marker that is a special token
    (``[TOOL_CALLS]``, ``<|channel|>``, ``<｜tool▁sep｜>``, ...) must be written
    ``<[id]>``: pass the model's. Without it every marker is plain text.
    """
    layout = tool_call_layout(
        family, tools, parallel=parallel, name=name, template=template, answer=answer
    )
    return render_lark(layout, special_tokens or {})


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
