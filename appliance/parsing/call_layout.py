"""What a tool-call grammar says, family by family, in no grammar language yet.

:func:`build_layout` turns the tools into a small tree of nodes (literals,
sequences, alternatives, options, repetitions, named rules, JSON values that follow
a schema, raw XML text) that the GBNF renderer (:mod:`appliance.parsing.gbnf`) and
the Lark renderer (:mod:`appliance.parsing.lark`) each write out: one layout, so the
two grammars allow the same text. The family's markers live here too.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from appliance.parsing.calls import (
    DSML,
    KIMI_ARGS,
    KIMI_CALL,
    KIMI_CALL_END,
    KIMI_SECTION,
    KIMI_SECTION_END,
)
from appliance.parsing.calls import _types as xml_declared_types
from appliance.parsing.families import Family
from appliance.parsing.jsonscan import loads_strict
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
    TextSyntax,
    repeat,
    resolve,
    seq,
)
from appliance.parsing.minicpm5_calls import MINICPM5_CALL
from appliance.parsing.notation_calls import (
    GEMMA_CALL,
    GEMMA_QUOTE,
    LFM2_CALL,
    LFM2_CALL_END,
)
from appliance.parsing.notation_layout import gemma_call, lfm2_call
from appliance.parsing.tool_schema import Tool, nonnegative_int

__all__ = [
    "APERTUS_CALL",
    "COHERE_ACTION",
    "DS_CALLS_BEGIN",
    "GEMMA_CALL",
    "GEMMA_QUOTE",
    "GRANITE_CALL",
    "HARMONY_CALL",
    "KIMI_SECTION",
    "LFM2_CALL",
    "MINICPM5_CALL",
    "MINIMAX_CALL",
    "MISTRAL_CALLS",
    "NEMOTRON_CALL",
    "SEED_CALL",
    "TOOL_CALL",
    "Alt",
    "GemmaAny",
    "Json",
    "Lit",
    "Node",
    "Opt",
    "Raw",
    "Repeat",
    "Rule",
    "Seq",
    "TextSyntax",
    "build_layout",
    "dsml_block",
    "repeat",
]

# --- markers ------------------------------------------------------------------------

TOOL_CALL, TOOL_CALL_END = "<tool_call>", "</tool_call>"
SEED_CALL, SEED_CALL_END = "<seed:tool_call>", "</seed:tool_call>"
MINIMAX_CALL, MINIMAX_CALL_END = "<minimax:tool_call>", "</minimax:tool_call>"
DS_CALLS_BEGIN, DS_CALLS_END = "<｜tool▁calls▁begin｜>", "<｜tool▁calls▁end｜>"
DS_CALL_BEGIN, DS_CALL_END = "<｜tool▁call▁begin｜>", "<｜tool▁call▁end｜>"
DS_SEP = "<｜tool▁sep｜>"
HARMONY_CALL = "<|channel|>commentary to=functions."
HARMONY_MESSAGE = " <|constrain|>json<|message|>"
MISTRAL_CALLS, MISTRAL_ARGS = "[TOOL_CALLS]", "[ARGS]"
NEMOTRON_CALL, NEMOTRON_CALL_END = "<TOOLCALL>", "</TOOLCALL>"
GRANITE_CALL = "<|tool_call|>"
COHERE_ACTION, COHERE_ACTION_END = "<|START_ACTION|>", "<|END_ACTION|>"
APERTUS_CALL, APERTUS_CALL_END = "<|tools_prefix|>", "<|tools_suffix|>"


def dsml_block(template: str | None) -> str:
    """The tag that opens DeepSeek's DSML block of calls: V3.2's template names it
    function_calls, V4's tool_calls (the newer one, taken when there is no template,
    as llama.cpp takes it)."""
    name = "function_calls" if template and "function_calls" in template else "tool_calls"
    return f"<{DSML}{name}>"


def _variant(family: Family, template: str | None) -> str:
    """Which of a family's call syntaxes to write (see :mod:`appliance.parsing.constraints`)."""
    if family is Family.MISTRAL:
        if template and MISTRAL_ARGS not in template and MISTRAL_CALLS in template:
            return "list"
        return "args"
    if family is Family.DEEPSEEK:
        if template and "```json" not in template and "tool▁sep" in template:
            return "v3.1"
        return "r1"
    if family is Family.GLM:
        # GLM 4.5 and 4.6 write a newline after the name and after each tag, 4.7 none.
        if template and "<arg_key>" in template and "</arg_key>\n" not in template:
            return "compact"
        return "lines"
    return ""


# --- what the grammars say, family by family ----------------------------------------


def _args(tool: Tool) -> Json:
    return Json(tool.schema, tool.schema.get("$defs") or {})


def _json_call(tool: Tool, key: str) -> Seq:
    return seq(
        '{"name": ' + json.dumps(tool.name, ensure_ascii=False) + f', "{key}": ', _args(tool), "}"
    )


def _xml_value(tool: Tool, prop: str, schema: Mapping[str, Any], tail: str) -> Node:
    """A Qwen3-Coder parameter value as the parser will read it back. The parser
    types a value by the parameter's declared schema (no ``$ref`` or ``allOf``
    resolved): a declared string keeps its text, other declared types read JSON,
    and with no declared type JSON that is not a string is read, other text kept."""
    defs = tool.schema.get("$defs") or {}
    declared_props = tool.declared.get("properties")
    declared = declared_props.get(prop) if isinstance(declared_props, Mapping) else None
    types = xml_declared_types(declared if isinstance(declared, Mapping) else None)
    if types and "string" not in types:
        return seq(Json(schema, defs), tail)
    resolved = resolve(schema, defs)
    alternatives = resolved.get("anyOf")
    options: list[Node] = []
    for alt in alternatives if isinstance(alternatives, list) else [resolved]:
        options.extend(_xml_option(resolve(alt, defs), defs, tail, guarded=not types))
    if not options:
        return seq(Json(schema, defs), tail)
    return Alt(tuple(options)) if len(options) != 1 else options[0]


def _json_non_string(text: str) -> bool:
    ok, value = loads_strict(text)
    return ok and not isinstance(value, str)


def _xml_option(
    schema: Mapping[str, Any], defs: Mapping[str, Any], tail: str, *, guarded: bool
) -> list[Node]:
    if "const" in schema or "enum" in schema:
        values = [schema["const"]] if "const" in schema else list(schema["enum"])
        texts = [v for v in values if isinstance(v, str) and not (guarded and _json_non_string(v))]
        others = [v for v in values if not isinstance(v, str)]
        out: list[Node] = [Lit(v + tail) for v in texts]
        if others:
            out.append(seq(Json({"enum": others}, defs), tail))
        return out
    if schema.get("type") == "string":
        if "pattern" in schema or "format" in schema:
            # The text of such a string would need its own grammar: any text.
            return [Raw(0, None, tail, guarded)]
        low = nonnegative_int(schema.get("minLength")) or 0
        high = nonnegative_int(schema.get("maxLength"))
        return [Raw(low, high, tail, guarded)]
    if not schema and not guarded:
        return [Raw(0, None, tail)]
    return [seq(Json(schema, defs), tail)]


def _xml_call(
    tool: Tool, index: int, tags: tuple[str, str] = (TOOL_CALL, TOOL_CALL_END), nl: str = "\n"
) -> Node:
    """Qwen3-Coder's call (``nl``: the newline around each value), or Seed-OSS's: the
    same in ``<seed:tool_call>`` tags, values with no newline around them."""
    params = _parameters(
        tool,
        index,
        lambda prop, sub: seq(
            f"<parameter={prop}>{nl}", _xml_value(tool, prop, sub, f"{nl}</parameter>\n")
        ),
    )
    return seq(f"{tags[0]}\n<function={tool.name}>\n", *params, f"</function>\n{tags[1]}")


def _parameters(
    tool: Tool, index: int, parameter: Callable[[str, Mapping[str, Any]], Node]
) -> list[Node]:
    """Each of a tool's parameters, in order, as ``parameter`` writes it (from its name
    and schema): a rule of its own, optional unless the schema requires it."""
    top = resolve(tool.schema, tool.schema.get("$defs") or {})
    required = set(top.get("required") or ())
    out: list[Node] = []
    for j, (prop, sub) in enumerate((top.get("properties") or {}).items()):
        item = Rule(f"p{index}-{j}", parameter(prop, sub))
        out.append(item if prop in required else Opt(item))
    return out


def _named_tags(tool: Tool, index: int, call: str, param: str, nl: str = "") -> Node:
    """A call as ``<CALL name="NAME">`` with a ``<PARAM name="KEY">VALUE</PARAM>`` for each
    parameter, each value with no newline around it: MiniMax M2's ``<invoke>`` (``nl``
    after each tag), MiniCPM5's ``<function>`` (nothing between its tags)."""
    params = _parameters(
        tool,
        index,
        lambda prop, sub: seq(
            f'<{param} name="{prop}">', _xml_value(tool, prop, sub, f"</{param}>{nl}")
        ),
    )
    return seq(f'<{call} name="{tool.name}">{nl}', *params, f"</{call}>{nl}")


def _dsml_invoke(tool: Tool, index: int, v4: bool) -> Node:
    """One ``<｜DSML｜invoke>`` as DeepSeek's templates write it: each parameter on a line
    of its own, its value with no newline around it; V4's writes an empty line for a
    call without arguments."""
    top = resolve(tool.schema, tool.schema.get("$defs") or {})
    props = top.get("properties") or {}
    parts: list[Node] = [Lit(f'<{DSML}invoke name="{tool.name}">\n')]
    parts += _parameters(tool, index, lambda prop, sub: _dsml_parameter(tool, prop, sub))
    if v4 and not top.get("required"):
        parts.append(Lit("\n") if not props else Opt(Lit("\n")))
    parts.append(Lit(f"</{DSML}invoke>\n"))
    return Seq(tuple(parts))


def _dsml_parameter(tool: Tool, prop: str, schema: Mapping[str, Any]) -> Node:
    """``<｜DSML｜parameter name="KEY" string="true">text`` for a string, ``string="false">``
    and JSON for any other value, then the closing tag: where the schema allows both,
    either, each as the parser reads it back."""
    defs = tool.schema.get("$defs") or {}
    tail = f"</{DSML}parameter>\n"
    resolved = resolve(schema, defs)
    alternatives = resolved.get("anyOf")
    texts: list[Node] = []
    others: list[Any] = []
    for alt in alternatives if isinstance(alternatives, list) else [resolved]:
        alt = resolve(alt, defs)
        if "const" in alt or "enum" in alt:
            values = [alt["const"]] if "const" in alt else list(alt["enum"])
            texts += [Lit(v + tail) for v in values if isinstance(v, str)]
            rest = [v for v in values if not isinstance(v, str)]
            others += [{"enum": rest}] if rest else []
        elif alt.get("type") == "string":
            bounded = "pattern" not in alt and "format" not in alt
            low = (nonnegative_int(alt.get("minLength")) or 0) if bounded else 0
            high = nonnegative_int(alt.get("maxLength")) if bounded else None
            texts.append(Raw(low, high, tail))
        else:
            if not alt:  # any value: text, or JSON
                texts.append(Raw(0, None, tail))
            others.append(alt)
    head = f'<{DSML}parameter name="{prop}" string='
    options: list[Node] = []
    if texts:
        options.append(seq(f'{head}"true">', Alt(tuple(texts)) if len(texts) > 1 else texts[0]))
    if others:
        value = Json(others[0] if len(others) == 1 else {"anyOf": others}, defs)
        options.append(seq(f'{head}"false">', value, tail))
    if not options:  # no value at all (an empty enum): the schema's grammar says so
        return seq(f'{head}"false">', Json(schema, defs), tail)
    return Alt(tuple(options)) if len(options) > 1 else options[0]


# A Kimi K2 call's index in its id: the template counts the calls of the whole
# conversation, so any.
_KIMI_INDEX = Json({"type": "integer", "minimum": 0}, {})


def _kimi_call(tool: Tool) -> Node:
    """``<|tool_call_begin|>functions.NAME:INDEX<|tool_call_argument_begin|>{...}`` and
    ``<|tool_call_end|>``, as Kimi K2's templates write a call (with its id)."""
    head = f"{KIMI_CALL}functions.{tool.name}:"
    return seq(head, _KIMI_INDEX, KIMI_ARGS, _args(tool), KIMI_CALL_END)


def _glm_call(tool: Tool, index: int, nl: str) -> Node:
    params = _parameters(
        tool,
        index,
        lambda prop, sub: seq(
            f"<arg_key>{prop}</arg_key>{nl}<arg_value>",
            _xml_value(tool, prop, sub, f"</arg_value>{nl}"),
        ),
    )
    return seq(f"{TOOL_CALL}{tool.name}{nl}", *params, TOOL_CALL_END)


# Command R7B's call number: "0", "1", ... counted over the conversation.
_COHERE_ID = Rule("cohere-id", Json({"type": "string", "pattern": "^(0|[1-9][0-9]{0,5})$"}, {}))


def _command_r7b_call(tool: Tool) -> Seq:
    """``{"tool_call_id": "N", "tool_name": NAME, "parameters": {...}}`` as Command R7B's
    and Command A's templates write a call: the number first, any number (the parser
    gives calls ids of its own)."""
    name = json.dumps(tool.name, ensure_ascii=False)
    return seq(
        '{"tool_call_id": ', _COHERE_ID, f', "tool_name": {name}, "parameters": ', _args(tool), "}"
    )


def build_layout(family: Family, tools: list[Tool], parallel: bool, template: str | None) -> Node:
    """The whole output: the calls in the family's syntax."""
    variant = _variant(family, template)
    one: list[Node] = []
    for i, tool in enumerate(tools):
        name = tool.name
        call: Node
        if family is Family.HERMES:
            call = seq(f"{TOOL_CALL}\n", _json_call(tool, "arguments"), f"\n{TOOL_CALL_END}")
        elif family is Family.QWEN3_CODER:
            call = _xml_call(tool, i)
        elif family is Family.SEED_OSS:
            call = _xml_call(tool, i, (SEED_CALL, SEED_CALL_END), "")
        elif family is Family.MINIMAX_M2:
            call = _named_tags(tool, i, "invoke", "parameter", "\n")
        elif family is Family.DEEPSEEK_DSML:
            call = _dsml_invoke(tool, i, dsml_block(template).endswith("tool_calls>"))
        elif family is Family.KIMI_K2:
            call = _kimi_call(tool)
        elif family is Family.GLM:
            call = _glm_call(tool, i, "\n" if variant == "lines" else "")
        elif family is Family.GEMMA4:
            call = gemma_call(tool, i)
        elif family is Family.LFM2:
            call = lfm2_call(tool, i)
        elif family is Family.COMMAND_R7B:
            call = _command_r7b_call(tool)
        elif family is Family.APERTUS:  # the name is the call's one key
            call = seq("{" + json.dumps(name, ensure_ascii=False) + ": ", _args(tool), "}")
        elif family is Family.MINICPM5:  # strings as text (no CDATA section), else JSON
            call = _named_tags(tool, i, "function", "param")
        elif family is Family.LLAMA3:
            call = _json_call(tool, "parameters")
        elif family is Family.MISTRAL and variant == "args":
            call = seq(f"{MISTRAL_CALLS}{name}{MISTRAL_ARGS}", _args(tool))
        elif family is Family.DEEPSEEK and variant == "r1":
            head = f"{DS_CALL_BEGIN}function{DS_SEP}{name}\n```json\n"
            call = seq(head, _args(tool), f"\n```{DS_CALL_END}")
        elif family is Family.DEEPSEEK:
            call = seq(f"{DS_CALL_BEGIN}{name}{DS_SEP}", _args(tool), DS_CALL_END)
        elif family is Family.HARMONY:
            call = seq(f"{HARMONY_CALL}{name}{HARMONY_MESSAGE}", _args(tool))
        else:  # GENERIC, Mistral's list, Nemotron Nano v2, Granite 3
            call = _json_call(tool, "arguments")
        one.append(Rule(f"tool{i}", call))
    calls: Node = Alt(tuple(one)) if len(one) > 1 else one[0]
    many = parallel and family is not Family.HARMONY
    separators = {
        Family.HERMES: "\n",
        Family.QWEN3_CODER: "\n",
        Family.SEED_OSS: "\n",
        Family.MINIMAX_M2: "",
        Family.DEEPSEEK_DSML: "",
        Family.KIMI_K2: "",
        Family.GLM: "\n" if variant == "lines" else "",
        Family.GEMMA4: "",
        Family.LFM2: ", ",
        Family.NEMOTRON_V2: ", ",
        Family.GRANITE3: ", ",
        Family.COMMAND_R7B: ",\n    ",
        Family.APERTUS: ", ",
        Family.MINICPM5: "\n",
        Family.LLAMA3: "; ",
        Family.MISTRAL: ", " if variant == "list" else "",
        Family.DEEPSEEK: "\n" if variant == "r1" else "",
        Family.GENERIC: ", ",
    }
    any_call = Rule("call", calls)
    r1 = family is Family.DEEPSEEK and variant == "r1"
    # R1's template puts a newline between calls; the parser (and llama.cpp's own
    # grammar) take them with or without one.
    body: Node = Repeat(any_call, separators[family], optional_sep=r1) if many else calls
    if family is Family.LFM2:
        return seq(f"{LFM2_CALL}[", body, f"]{LFM2_CALL_END}")
    if family is Family.MISTRAL and variant == "list":
        return seq(f"{MISTRAL_CALLS}[", body, "]")
    # Nemotron Nano v2's and Granite 3's templates write a list even of one call.
    if family is Family.NEMOTRON_V2:
        return seq(f"{NEMOTRON_CALL}[", body, f"]{NEMOTRON_CALL_END}")
    if family is Family.GRANITE3:
        return seq(f"{GRANITE_CALL}[", body, "]")
    # Command R7B's and Command A's templates write the list one call a line.
    if family is Family.COMMAND_R7B:
        return seq(f"{COHERE_ACTION}[\n    ", body, f"\n]{COHERE_ACTION_END}")
    if family is Family.APERTUS:
        return seq(f"{APERTUS_CALL}[", body, f"]{APERTUS_CALL_END}")
    # MiniMax M2's template writes every call of a turn in one block.
    if family is Family.MINIMAX_M2:
        return seq(f"{MINIMAX_CALL}\n", body, MINIMAX_CALL_END)
    if family is Family.DEEPSEEK_DSML:
        block = dsml_block(template)
        return seq(f"{block}\n", body, "</" + block[1:])
    if family is Family.KIMI_K2:
        return seq(KIMI_SECTION, body, KIMI_SECTION_END)
    if family is Family.DEEPSEEK:
        if r1:
            return seq(DS_CALLS_BEGIN, body, Opt(Lit("\n")), DS_CALLS_END)
        return seq(DS_CALLS_BEGIN, body, DS_CALLS_END)
    if family is Family.GENERIC and many:  # a list of calls, or just one
        return Alt((seq("[", body, "]"), any_call))
    return body
