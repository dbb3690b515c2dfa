"""Tools in a chat request: the function definitions, `tool_choice`, and the tool calls
earlier assistant turns made, validated into typed values (400 naming the parameter).

The legacy `functions` / `function_call` fields map onto `tools` / `tool_choice`; such a
request makes one call, answered in the legacy shape (`message.function_call`,
finish_reason "function_call"), which is what its clients read.
Arguments of earlier calls reach the chat template as JSON objects (what templates
index into and serialise), not as the JSON text the client sent.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, NoReturn

from appliance.api.errors import invalid_request

ToolMode = Literal["none", "auto", "required", "named"]
_NAME_RE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
MAX_TOOLS = 256


def _fail(param: str, message: str) -> NoReturn:
    raise invalid_request(message, param=param)


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str | None
    parameters: dict[str, Any]
    strict: bool = False

    def openai(self) -> dict[str, Any]:
        """The tool as the chat template expects it (OpenAI's shape)."""
        function: dict[str, Any] = {"name": self.name, "parameters": self.parameters}
        if self.description is not None:
            function["description"] = self.description
        return {"type": "function", "function": function}


@dataclass(frozen=True)
class ToolChoice:
    mode: ToolMode = "auto"
    name: str | None = None  # for "named"
    allowed: tuple[str, ...] = ()  # `allowed_tools`: only these may be called (empty: all)


@dataclass(frozen=True)
class ToolCallIn:
    """A call an earlier assistant turn made, as the client sent it back."""

    id: str
    name: str
    arguments: str  # JSON text

    def for_template(self) -> dict[str, Any]:
        try:
            args: Any = json.loads(self.arguments) if self.arguments.strip() else {}
        except json.JSONDecodeError:
            args = self.arguments  # the template gets what the client sent
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": args},
        }


@dataclass(frozen=True)
class Tools:
    specs: tuple[ToolSpec, ...] = ()
    choice: ToolChoice = field(default_factory=ToolChoice)
    parallel: bool = True
    legacy: bool = False  # sent as `functions`: answered as `function_call`

    @property
    def active(self) -> bool:
        """Tools are offered and the model may (or must) call them."""
        return bool(self.specs) and self.choice.mode != "none"

    def names(self) -> set[str]:
        return {t.name for t in self.specs}

    def offered(self) -> tuple[ToolSpec, ...]:
        """The tools the prompt describes: only the named one when the choice names one,
        only the allowed ones when it lists them."""
        if self.choice.mode == "named":
            return tuple(t for t in self.specs if t.name == self.choice.name)
        if self.choice.allowed:
            return tuple(t for t in self.specs if t.name in self.choice.allowed)
        return self.specs


def _name(value: Any, param: str) -> str:
    if not isinstance(value, str) or not _NAME_RE.fullmatch(value):
        _fail(
            param,
            f"'{param}' must be 1 to 64 letters, digits, '_', '-', '.' or ':', "
            f"got {json.dumps(value)[:60]}.",
        )
    return value


def _parameters(value: Any, param: str) -> dict[str, Any]:
    if value is None:
        return {"type": "object", "properties": {}}
    if not isinstance(value, dict):
        _fail(param, f"'{param}' must be a JSON Schema object.")
    return dict(value)


def _function(value: Any, param: str) -> ToolSpec:
    if not isinstance(value, dict):
        _fail(param, f"'{param}' must be an object with a 'name'.")
    description = value.get("description")
    if description is not None and not isinstance(description, str):
        _fail(f"{param}.description", f"'{param}.description' must be a string.")
    strict = value.get("strict", False)
    return ToolSpec(
        name=_name(value.get("name"), f"{param}.name"),
        description=description,
        parameters=_parameters(value.get("parameters"), f"{param}.parameters"),
        strict=bool(strict),
    )


def _tool_list(body: Mapping[str, Any]) -> tuple[ToolSpec, ...]:
    tools, functions = body.get("tools"), body.get("functions")
    if tools is not None and functions is not None:
        _fail("functions", "Send 'tools' or the legacy 'functions', not both.")
    if functions is not None:
        if not isinstance(functions, list):
            _fail("functions", "'functions' must be a list of function definitions.")
        specs = [_function(f, f"functions[{i}]") for i, f in enumerate(functions)]
    elif tools is not None:
        if not isinstance(tools, list):
            _fail("tools", "'tools' must be a list of tools.")
        specs = []
        for i, tool in enumerate(tools):
            param = f"tools[{i}]"
            if not isinstance(tool, dict):
                _fail(param, f"'{param}' must be an object.")
            if tool.get("type", "function") != "function":
                _fail(
                    f"{param}.type",
                    f"Only function tools are supported, got type {json.dumps(tool.get('type'))}.",
                )
            specs.append(_function(tool.get("function"), f"{param}.function"))
    else:
        return ()
    if len(specs) > MAX_TOOLS:
        _fail("tools", f"At most {MAX_TOOLS} tools may be given, got {len(specs)}.")
    seen: set[str] = set()
    for i, spec in enumerate(specs):
        if spec.name in seen:
            _fail(f"tools[{i}].function.name", f"Tool name '{spec.name}' is given twice.")
        seen.add(spec.name)
    return tuple(specs)


def _choice(body: Mapping[str, Any], names: set[str]) -> ToolChoice:
    key = (
        "function_call" if "function_call" in body and "tool_choice" not in body else "tool_choice"
    )
    value = body.get(key)
    if value is None:
        return ToolChoice("auto")
    if value in ("none", "auto", "required"):
        choice = ToolChoice(value)
    elif isinstance(value, dict) and key == "tool_choice" and value.get("type") == "allowed_tools":
        choice = _allowed(value.get("allowed_tools"), names)
    elif isinstance(value, dict):
        fn = value.get("function") if key == "tool_choice" else value
        if key == "tool_choice" and value.get("type", "function") != "function":
            _fail(f"{key}.type", "Only function tools can be chosen.")
        if not isinstance(fn, dict):
            _fail(key, f'\'{key}\' must name a function: {{"type": "function", ...}}.')
        name = _name(fn.get("name"), f"{key}.function.name" if key == "tool_choice" else key)
        choice = ToolChoice("named", name)
    else:
        _fail(
            key,
            f"'{key}' must be 'none', 'auto', 'required', a named function or allowed_tools, "
            f"got {json.dumps(value)[:60]}.",
        )
    if choice.mode in ("required", "named") and not names:
        _fail(key, f"'{key}' asks for a tool call but no 'tools' are given.")
    if choice.mode == "named" and choice.name not in names:
        _fail(key, f"'{key}' names '{choice.name}', which is not among the given tools.")
    return choice


def _allowed(value: Any, names: set[str]) -> ToolChoice:
    """`{"type": "allowed_tools", "allowed_tools": {"mode": "auto" | "required", "tools":
    [{"type": "function", "function": {"name": ...}}, ...]}}`: the model may (or must)
    call only these of the tools given."""
    param = "tool_choice.allowed_tools"
    if not isinstance(value, dict):
        _fail(param, f"'{param}' must be an object with 'mode' and 'tools'.")
    mode = value.get("mode", "auto")
    if mode not in ("auto", "required"):
        _fail(f"{param}.mode", f"'{param}.mode' must be 'auto' or 'required'.")
    listed = value.get("tools")
    if not isinstance(listed, list) or not listed:
        _fail(f"{param}.tools", f"'{param}.tools' must list at least one tool.")
    allowed: list[str] = []
    for i, tool in enumerate(listed):
        p = f"{param}.tools[{i}]"
        fn = tool.get("function", tool) if isinstance(tool, dict) else None
        if not isinstance(fn, dict):
            _fail(p, f'\'{p}\' must name a function: {{"type": "function", ...}}.')
        name = _name(fn.get("name"), f"{p}.function.name")
        if name not in names:
            _fail(p, f"'{p}' names '{name}', which is not among the given tools.")
        allowed.append(name)
    return ToolChoice(mode, None, tuple(dict.fromkeys(allowed)))


def parse_tools(body: Mapping[str, Any]) -> Tools:
    """The request's tools. Unless `parallel_tool_calls` says otherwise, a forced choice
    (`required`, a named function) makes one call, as llama-server's default: its grammar
    then ends after the call. Forced into a list, a model that keeps choosing "another
    call" repeats the same call until max_tokens (SmolLM2-135M: 2048 tokens in 150 s and
    no call returned). With `auto` the model may make several calls, and ends its list."""
    specs = _tool_list(body)
    choice = _choice(body, {s.name for s in specs})
    legacy = body.get("functions") is not None
    parallel = body.get("parallel_tool_calls")
    if parallel is None or legacy:
        parallel = choice.mode not in ("required", "named") and not legacy
    if not isinstance(parallel, bool):
        _fail("parallel_tool_calls", "'parallel_tool_calls' must be true or false.")
    return Tools(specs, choice, parallel, legacy)


def parse_tool_calls(value: Any, param: str) -> tuple[ToolCallIn, ...]:
    """An assistant message's `tool_calls` (or legacy `function_call`)."""
    if value is None:
        return ()
    if isinstance(value, dict) and "name" in value:  # legacy function_call
        value = [{"id": "call_0", "type": "function", "function": value}]
    if not isinstance(value, list):
        _fail(param, f"'{param}' must be a list of tool calls.")
    calls = []
    for i, call in enumerate(value):
        p = f"{param}[{i}]"
        if not isinstance(call, dict):
            _fail(p, f"'{p}' must be an object.")
        fn = call.get("function")
        if not isinstance(fn, dict):
            _fail(f"{p}.function", f"'{p}.function' must be an object with name and arguments.")
        arguments = fn.get("arguments", "")
        if isinstance(arguments, dict):
            arguments = json.dumps(arguments, ensure_ascii=False)
        if not isinstance(arguments, str):
            _fail(f"{p}.function.arguments", f"'{p}.function.arguments' must be a JSON string.")
        call_id = call.get("id") or f"call_{i}"
        if not isinstance(call_id, str):
            _fail(f"{p}.id", f"'{p}.id' must be a string.")
        calls.append(ToolCallIn(call_id, _name(fn.get("name"), f"{p}.function.name"), arguments))
    return tuple(calls)
