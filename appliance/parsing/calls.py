"""Reading the calls out of one tool-call region's text, per output family.

Each reader takes the complete text of a region and returns the calls, or None when
the text is not a valid call (the caller then returns it as content, flagged).
Arguments are always a JSON object.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from appliance.parsing.jsonscan import loads_strict

__all__ = [
    "DSML",
    "DSML_TAGS",
    "MINIMAX_TAGS",
    "InvokeTags",
    "RawCall",
    "ToolSchemas",
    "apertus_calls",
    "calls_from_json_text",
    "calls_from_json_value",
    "command_r7b_calls",
    "deepseek_calls",
    "glm_calls",
    "invoke_calls",
    "kimi_calls",
    "marked_calls",
    "mistral_named_call",
    "python_tag_calls",
    "xml_calls",
]

# Tool name -> the JSON schema of its parameters (used to type XML parameter values).
ToolSchemas = Mapping[str, Mapping[str, Any]]


@dataclass(frozen=True, slots=True)
class RawCall:
    name: str
    arguments: dict[str, Any]
    id: str | None = None


def _arguments(value: Any) -> dict[str, Any] | None:
    """A call's arguments as an object: an object, or a string holding one."""
    if isinstance(value, dict):
        return value
    if isinstance(value, str):
        ok, loaded = loads_strict(value)
        if ok and isinstance(loaded, dict):
            return loaded
    return None


def _call_from_object(obj: Any, *, require_arguments: bool) -> RawCall | None:
    """``{"name", "arguments"|"parameters"[, "id"]}``, optionally under ``"function"``."""
    if not isinstance(obj, dict):
        return None
    call_id = obj.get("id")
    inner = obj.get("function")
    if isinstance(inner, dict) and "name" in inner:
        obj = inner
    name = obj.get("name")
    if not isinstance(name, str) or not name.strip():
        return None
    raw_args: Any = None
    for key in ("arguments", "parameters"):
        if key in obj:
            raw_args = obj[key]
            break
    else:
        if require_arguments:
            return None
        raw_args = {}
    arguments = _arguments(raw_args)
    if arguments is None:
        return None
    return RawCall(name.strip(), arguments, call_id if isinstance(call_id, str) else None)


def calls_from_json_value(value: Any, *, require_arguments: bool) -> list[RawCall] | None:
    """Calls from a loaded JSON value: one call, a list of calls, or a
    ``{"tool_calls": [...]}`` / ``{"tool_call": {...}}`` wrapper."""
    if isinstance(value, dict):
        if "tool_calls" in value and "name" not in value:
            value = value["tool_calls"]
        elif "tool_call" in value and "name" not in value:
            value = [value["tool_call"]]
        else:
            value = [value]
    if not isinstance(value, list) or not value:
        return None
    calls = [_call_from_object(item, require_arguments=require_arguments) for item in value]
    if any(c is None for c in calls):
        return None
    return [c for c in calls if c is not None]


def calls_from_json_text(text: str, *, require_arguments: bool = False) -> list[RawCall] | None:
    ok, value = loads_strict(text.strip())
    if not ok:
        return None
    return calls_from_json_value(value, require_arguments=require_arguments)


def command_r7b_calls(text: str) -> list[RawCall] | None:
    """Command R7B's and Command A's ``[{"tool_call_id": "0", "tool_name": NAME,
    "parameters": {...}}, ...]``: the JSON reader's calls under Cohere's keys (``name``
    and ``arguments`` are taken too). ``tool_call_id`` only numbers the calls ("0",
    "1", ...: the templates count them afresh from the messages), so the call gets an
    id of ours, as unique as clients expect, instead."""
    ok, value = loads_strict(text.strip())
    if not ok:
        return None
    items = value if isinstance(value, list) else [value]
    renamed = [_cohere_keys(item) for item in items]
    return calls_from_json_value(renamed, require_arguments=False)


def _cohere_keys(item: Any) -> Any:
    if not isinstance(item, dict) or "tool_name" not in item:
        return item
    kept = {k: item[k] for k in ("parameters", "arguments") if k in item}
    return {"name": item["tool_name"], **kept}


def apertus_calls(text: str) -> list[RawCall] | None:
    """Apertus's ``[{"NAME": {...}}, ...]``: each call an object whose one key is the
    function's name and whose value its arguments (an object, or a string holding one).
    An object with more keys is read as the JSON reader reads a call (``name``,
    ``arguments``), should the model write that form."""
    ok, value = loads_strict(text.strip())
    if not ok:
        return None
    items = value if isinstance(value, list) else [value]
    calls = [_keyed_call(item) for item in items]
    if not calls or any(c is None for c in calls):
        return None
    return [c for c in calls if c is not None]


def _keyed_call(item: Any) -> RawCall | None:
    if not isinstance(item, dict) or len(item) != 1:
        return _call_from_object(item, require_arguments=False)
    [(name, raw)] = item.items()
    arguments = _arguments(raw)
    if not name.strip() or arguments is None:
        return None
    return RawCall(name.strip(), arguments)


# --- Qwen3-Coder XML ---------------------------------------------------------------

_FUNCTION = re.compile(r"<function=([^>\n]*)>")
_PARAMETER = re.compile(r"<parameter=([^>\n]*)>")
_FUNCTION_END = "</function>"
_PARAMETER_END = "</parameter>"


def _types(schema: Mapping[str, Any] | None) -> set[str]:
    if not schema:
        return set()
    declared = schema.get("type")
    if isinstance(declared, str):
        return {declared}
    if isinstance(declared, list):
        return {t for t in declared if isinstance(t, str)}
    for union in ("anyOf", "oneOf"):
        alternatives = schema.get(union)
        if isinstance(alternatives, list):
            return set().union(*(_types(a) for a in alternatives if isinstance(a, Mapping)))
    enum = schema.get("enum")
    if isinstance(enum, list) and enum and all(isinstance(v, str) for v in enum):
        return {"string"}
    return set()


def _matches(value: Any, types: set[str]) -> bool:
    checks = {
        "object": lambda v: isinstance(v, dict),
        "array": lambda v: isinstance(v, list),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "boolean": lambda v: isinstance(v, bool),
        "null": lambda v: v is None,
    }
    return any(checks[t](value) for t in types if t in checks)


def _xml_value(text: str, schema: Mapping[str, Any] | None) -> Any:
    """A parameter's text as the value its schema asks for.

    A declared string stays the exact text (``null`` when null is allowed too); other
    declared types take the JSON reading when it fits. Without a schema, a JSON
    number, boolean, null, object or array is taken as such and anything else is text.
    """
    types = _types(schema)
    ok, loaded = loads_strict(text)
    if "string" in types:
        others = types - {"string"}
        if ok and others and _matches(loaded, others):
            return loaded
        return text
    if types:
        return loaded if ok else text
    return loaded if ok and not isinstance(loaded, str) else text


def _strip_one_newline(value: str) -> str:
    if value.startswith("\r\n"):
        value = value[2:]
    elif value.startswith("\n"):
        value = value[1:]
    if value.endswith("\r\n"):
        value = value[:-2]
    elif value.endswith("\n"):
        value = value[:-1]
    return value


def _xml_parameters(
    body: str,
    schema: Mapping[str, Any] | None,
    strip: bool,
    tags: tuple[re.Pattern[str], str] = (_PARAMETER, _PARAMETER_END),
) -> dict[str, Any] | None:
    """The parameters of one call's body; ``tags``: the opening tag's pattern (its
    first group the key, a second, where it has one, DSML's ``string`` attribute) and
    the closing tag."""
    pattern, end_tag = tags
    properties = schema.get("properties") if schema else None
    if not isinstance(properties, Mapping):
        properties = {}
    arguments: dict[str, Any] = {}
    pos = 0
    while True:
        m = pattern.search(body, pos)
        if m is None:
            return arguments if not body[pos:].strip() else None
        if body[pos : m.start()].strip():
            return None
        name = m.group(1).strip()
        end = body.find(end_tag, m.end())
        following = pattern.search(body, m.end())
        if end < 0 or (following is not None and following.start() < end):
            # A missing closing tag: the value runs to the next parameter or the end.
            stop = following.start() if following is not None else len(body)
            raw, pos = body[m.end() : stop], stop
        else:
            raw, pos = body[m.end() : end], end + len(end_tag)
        if not name:
            return None
        sub = properties.get(name)
        text = _strip_one_newline(raw) if strip else raw
        sub = sub if isinstance(sub, Mapping) else None
        flag = m.group(2) if pattern.groups > 1 else None
        arguments[name] = _xml_value(text, sub) if flag is None else _flagged_value(text, sub, flag)


def _flagged_value(text: str, schema: Mapping[str, Any] | None, string: str) -> Any:
    """A DSML value, which says whether it is a string (``string="true"``: the text as
    written) or JSON (``"false"``). Where that cannot be (a string for a parameter
    that declares no string type, JSON that does not load), the schema decides, as
    for a value that says nothing."""
    types = _types(schema)
    if string == "true" and (not types or "string" in types):
        return text
    if string == "false":
        ok, loaded = loads_strict(text)
        if ok:
            return loaded
    return _xml_value(text, schema)


def xml_calls(text: str, schemas: ToolSchemas, *, strip: bool = True) -> list[RawCall] | None:
    """``<function=NAME><parameter=P>value</parameter>...</function>``, one or more.

    A JSON body (a Qwen3 model answering in the Hermes form) is read as JSON.
    ``strip``: drop one newline at each end of a value, as Qwen3-Coder's template
    writes them; Seed-OSS's writes the value with none, so its text is kept whole.
    """
    if text.strip().startswith("{"):
        return calls_from_json_text(text)
    calls: list[RawCall] = []
    pos = 0
    while True:
        m = _FUNCTION.search(text, pos)
        if m is None:
            break
        if text[pos : m.start()].strip():
            return None
        end = text.find(_FUNCTION_END, m.end())
        if end < 0:
            return None
        name = m.group(1).strip()
        if not name:
            return None
        arguments = _xml_parameters(text[m.end() : end], schemas.get(name), strip)
        if arguments is None:
            return None
        calls.append(RawCall(name, arguments))
        pos = end + len(_FUNCTION_END)
    if not calls or text[pos:].strip():
        return None
    return calls


# --- <invoke name=..> calls: MiniMax M2, DeepSeek V3.2 and V4 (DSML) ----------------


@dataclass(frozen=True, slots=True)
class InvokeTags:
    """The tags of a family that writes a call as ``<invoke name="NAME">`` with a
    ``<parameter name="KEY">`` per argument: the patterns' first group is the name,
    a parameter's second (DSML's) its ``string`` attribute."""

    invoke: re.Pattern[str]
    invoke_end: str
    parameter: re.Pattern[str]
    parameter_end: str
    json_body: bool = False  # an invoke may hold its arguments as one JSON object


MINIMAX_TAGS = InvokeTags(
    re.compile(r'<invoke name="([^"\n]*)">'),
    "</invoke>",
    re.compile(r'<parameter name="([^"\n]*)">'),
    "</parameter>",
)
DSML = "｜DSML｜"
DSML_TAGS = InvokeTags(
    re.compile(rf'<{DSML}invoke name="([^"\n]*)">'),
    f"</{DSML}invoke>",
    re.compile(rf'<{DSML}parameter name="([^"\n]*)"(?: string="(true|false)")?>'),
    f"</{DSML}parameter>",
    json_body=True,
)


def invoke_calls(text: str, schemas: ToolSchemas, tags: InvokeTags) -> list[RawCall] | None:
    """``<invoke name="NAME"><parameter name="P">value</parameter>...</invoke>``, one or
    more, in ``tags``' spelling. MiniMax M2's and DeepSeek's templates write a string as
    its text and any other value as JSON, with no newline around it: the text is kept
    whole and read as Qwen3-Coder's values are, by the schema (DSML's ``string``
    attribute says which it is). With ``json_body``, an invoke whose body is a JSON
    object takes it as the arguments (DeepSeek models sometimes write them so)."""
    calls: list[RawCall] = []
    pos = 0
    while True:
        m = tags.invoke.search(text, pos)
        if m is None:
            break
        if text[pos : m.start()].strip():
            return None
        end = text.find(tags.invoke_end, m.end())
        if end < 0:
            return None
        name = m.group(1).strip()
        if not name:
            return None
        body = text[m.end() : end]
        arguments: dict[str, Any] | None
        if tags.json_body and body.strip().startswith("{"):
            arguments = _arguments(body.strip())
        else:
            params = (tags.parameter, tags.parameter_end)
            arguments = _xml_parameters(body, schemas.get(name), False, params)
        if arguments is None:
            return None
        calls.append(RawCall(name, arguments))
        pos = end + len(tags.invoke_end)
    if not calls or text[pos:].strip():
        return None
    return calls


# --- Mistral ------------------------------------------------------------------------

_MISTRAL_NAME = re.compile(r"\s*([^\s\[\]]+)\s*(?:\[CALL_ID\]\s*([^\s\[\]]*)\s*)?\[ARGS\]")


def mistral_named_call(text: str) -> list[RawCall] | None:
    """``name[ARGS]{...}`` or ``name[CALL_ID]id[ARGS]{...}`` (after ``[TOOL_CALLS]``)."""
    m = _MISTRAL_NAME.match(text)
    if m is None:
        return None
    ok, value = loads_strict(text[m.end() :].strip())
    if not ok or not isinstance(value, dict):
        return None
    return [RawCall(m.group(1), value, m.group(2) or None)]


# --- DeepSeek R1 / V3 / V3.1 ----------------------------------------------------------

CALL_BEGIN = "<｜tool▁call▁begin｜>"
CALL_END = "<｜tool▁call▁end｜>"
TOOL_SEP = "<｜tool▁sep｜>"
_FENCE = re.compile(r"\A\s*```[a-zA-Z]*\s*\n?(.*?)\n?\s*```\s*\Z", re.DOTALL)


def _unfence(text: str) -> str:
    m = _FENCE.match(text)
    return m.group(1) if m else text


def _deepseek_call(segment: str) -> RawCall | None:
    """``function<｜tool▁sep｜>NAME\\n```json\\n{...}\\n```  (R1, V3) or
    ``NAME<｜tool▁sep｜>{...}`` (V3.1)."""
    left, sep, right = segment.partition(TOOL_SEP)
    if not sep:
        return None
    if right.lstrip().startswith(("{", "```")):
        name, args_text = left.strip(), right
    else:
        if left.strip() not in ("function", ""):
            return None
        name, _, args_text = right.partition("\n")
        name = name.strip()
    if not name or any(c.isspace() for c in name):
        return None
    ok, value = loads_strict(_unfence(args_text).strip())
    if not ok or not isinstance(value, dict):
        return None
    return RawCall(name, value)


def deepseek_calls(body: str) -> list[RawCall] | None:
    """The calls between ``<｜tool▁calls▁begin｜>`` and ``<｜tool▁calls▁end｜>``.

    The last call may lack its ``<｜tool▁call▁end｜>`` (output cut at EOS): it is kept
    when its arguments are complete.
    """
    return marked_calls(body, (CALL_BEGIN, CALL_END), _deepseek_call, ends_optional=False)


def marked_calls(
    body: str,
    markers: tuple[str, str],
    read: Callable[[str], RawCall | None],
    *,
    ends_optional: bool,
) -> list[RawCall] | None:
    """Calls each between a begin and an end marker (special tokens), with only blank
    space around them; ``read`` reads what one holds. The last call may lack its end;
    with ``ends_optional`` any may, ending where the next begins."""
    begin, end_marker = markers
    calls: list[RawCall] = []
    pos = 0
    while True:
        start = body.find(begin, pos)
        if start < 0:
            break
        if body[pos:start].strip():
            return None
        end = body.find(end_marker, start)
        stop = end if end >= 0 else len(body)
        nested = body.find(begin, start + len(begin))
        if 0 <= nested < stop:
            if not ends_optional:
                return None
            end, stop = -1, nested
        call = read(body[start + len(begin) : stop])
        if call is None:
            return None
        calls.append(call)
        pos = stop + len(end_marker) if end >= 0 else stop
    if not calls or body[pos:].strip():
        return None
    return calls


# --- Kimi K2 ------------------------------------------------------------------------

KIMI_SECTION, KIMI_SECTION_END = "<|tool_calls_section_begin|>", "<|tool_calls_section_end|>"
KIMI_CALL, KIMI_CALL_END = "<|tool_call_begin|>", "<|tool_call_end|>"
KIMI_ARGS = "<|tool_call_argument_begin|>"
# functions.NAME:INDEX, as Kimi's templates write a call's id and the model copies it.
_KIMI_ID = re.compile(r"\s*(functions\.)?([^\s:<>]+)(:[0-9]+)?\s*")


def _kimi_call(segment: str) -> RawCall | None:
    """``functions.NAME:INDEX<|tool_call_argument_begin|>{...}``: the id is kept as the
    call's when it has that form (Kimi K2's older template shows it back with the result),
    the name alone is taken too."""
    head, sep, args = segment.partition(KIMI_ARGS)
    m = _KIMI_ID.fullmatch(head)
    if not sep or m is None:
        return None
    ok, value = loads_strict(args.strip())
    arguments = _arguments(value) if ok else None
    if arguments is None:
        return None
    call_id = head.strip() if m.group(1) and m.group(3) else None
    return RawCall(m.group(2), arguments, call_id)


def kimi_calls(body: str) -> list[RawCall] | None:
    """The calls in ``<|tool_calls_section_begin|>``, or written without it:
    ``<|tool_call_begin|>functions.NAME:INDEX<|tool_call_argument_begin|>{json}`` and
    ``<|tool_call_end|>``, which Kimi K2 at times leaves out (llama.cpp takes such calls
    too, each ending where the next begins)."""
    return marked_calls(body, (KIMI_CALL, KIMI_CALL_END), _kimi_call, ends_optional=True)


# --- Llama 3.x <|python_tag|> ---------------------------------------------------------


def python_tag_calls(body: str) -> list[RawCall] | None:
    """After ``<|python_tag|>``: JSON call(s), a built-in ``tool.call(k=v, ...)``, or
    plain code for the ``python`` (code interpreter) tool."""
    text = body.strip()
    if not text:
        return None
    if text.startswith(("{", "[")):
        return calls_from_json_text(text)
    builtin = _builtin_call(text)
    if builtin is not None:
        return [builtin]
    return [RawCall("python", {"code": text})]


def _builtin_call(text: str) -> RawCall | None:
    """``brave_search.call(query="...")``: literal keyword arguments only, never eval."""
    if ".call(" not in text:
        return None
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, RecursionError):
        return None
    node = tree.body
    if not (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "call"
        and isinstance(node.func.value, ast.Name)
        and not node.args
    ):
        return None
    arguments: dict[str, Any] = {}
    for kw in node.keywords:
        if kw.arg is None:
            return None
        try:
            arguments[kw.arg] = ast.literal_eval(kw.value)
        except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError):
            return None
    return RawCall(node.func.value.id, arguments)


# --- GLM 4.5-4.7 ---------------------------------------------------------------------

_ARG_PAIR = re.compile(r"<arg_key>(.*?)</arg_key>\s*<arg_value>(.*?)</arg_value>", re.DOTALL)


def glm_calls(text: str, schemas: ToolSchemas) -> list[RawCall] | None:
    """``NAME<arg_key>K</arg_key><arg_value>V</arg_value>...``: one call's region.

    GLM 4.5 and 4.6 put a newline after the name and after each tag, 4.7 none. A value is
    the text itself for a string parameter and JSON for others, as the templates write
    it (``tojson`` unless a string); a JSON body is read as JSON.
    """
    if text.strip().startswith("{"):
        return calls_from_json_text(text)
    head, _, _ = text.partition("<arg_key>")
    name = head.strip()
    if not name or any(c in name for c in "<>\n"):
        return None
    schema = schemas.get(name)
    properties = schema.get("properties") if schema else None
    if not isinstance(properties, Mapping):
        properties = {}
    arguments: dict[str, Any] = {}
    pos = len(head)
    for m in _ARG_PAIR.finditer(text, pos):
        key = m.group(1).strip()
        if text[pos : m.start()].strip() or not key:
            return None
        sub = properties.get(key)
        arguments[key] = _xml_value(m.group(2), sub if isinstance(sub, Mapping) else None)
        pos = m.end()
    if text[pos:].strip():
        return None
    return [RawCall(name, arguments)]
