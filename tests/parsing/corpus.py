# ruff: noqa: E501 - raw outputs read best on one line
"""Raw model output -> the message it means, per output family.

Most cases are transcribed from llama.cpp's ``tests/test-chat.cpp`` (MIT, the ggml
authors; as vendored in the llama-cpp-python 0.3.36 sdist): same outputs, same
tools, same expected calls. Where this package's rules differ the expectation is
ours and the case says so:

- content and reasoning are whitespace-trimmed (llama.cpp compares them trimmed too);
- arguments are re-serialized with ``json.dumps`` (llama.cpp compares them
  re-serialized too);
- llama.cpp's "continuation" cases prefill part of the message; here only the
  output is parsed, so the prefilled words are absent;
- a ``<think>`` repeated after a prompt-opened one is dropped (llama.cpp keeps it);
- a malformed call comes back verbatim as content with ``malformed_tool_call``.

Cases named ``ours-*`` are this package's own edge cases. Ids are ``call_0``,
``call_1``, ... from an injected factory, except those the model wrote itself.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from appliance.parsing import Family, ParsedMessage, ToolCall

HELLO = "Hello, world!\nWhat's up?"
THINKING = "I'm\nthinking"
ARG1 = {"arg1": 1}
INVOICE = '{"amount": 123.45, "date": "2025-12-03"}'
PY_HELLO = 'def hello():\n    print("Hello, world!")\n\nhello()'

# The tools of llama.cpp's test-chat.cpp, as name -> parameters schema.
_S, _I = {"type": "string"}, {"type": "integer"}
TOOL_SCHEMAS: dict[str, dict[str, Any]] = {
    "special_function": {"type": "object", "properties": {"arg1": _I}},
    "special_function_with_opt": {"type": "object", "properties": {"arg1": _I, "arg2": _I}},
    "python": {"type": "object", "properties": {"code": _S}},
    "html": {"type": "object", "properties": {"markup": _S}},
    "get_time": {"type": "object", "properties": {"city": _S}},
    "get_weather": {"type": "object", "properties": {"city": _S}},
    "todo_list": {"type": "object", "properties": {"todos": {"type": "array"}}},
    "edit": {
        "type": "object",
        "properties": {
            "filename": _S,
            "oldString": _S,
            "newString": _S,
            "replaceAll": {"type": "boolean"},
        },
    },
    "run_in_terminal": {"type": "object", "properties": {"command": _S}},
    "empty_args": {"type": "object", "properties": {}},
    "empty_args_no_props": {"type": "object"},
    "magic_int": {"type": "object", "properties": {"ref": _I, "name": _S}},
    "amount": {"type": "object", "properties": {"orig": {"type": "number"}}},
    "toggle": {"type": "object", "properties": {"enabled": {"type": "boolean"}}},
    "set_config": {"type": "object", "properties": {"config": {"type": "object"}}},
    "set_nullable_str": {"type": "object", "properties": {"name": {"type": ["string", "null"]}}},
    "set_nullable_str_nf": {"type": "object", "properties": {"name": {"type": ["null", "string"]}}},
    "set_nullable_int": {"type": "object", "properties": {"count": {"type": ["integer", "null"]}}},
    "set_union": {
        "type": "object",
        "properties": {
            "value": {"type": ["string", "object"]},
            "amount": {"type": ["string", "integer"]},
        },
    },
    "set_unit": {"type": "object", "properties": {"unit": {"enum": ["celsius", "fahrenheit"]}}},
    "union_args": {
        "type": "object",
        "properties": {
            "filter": {"anyOf": [{"type": "array"}, {"type": "object"}]},
            "label": {"oneOf": [{"type": "string"}, {"type": "object"}]},
            "limit": {"oneOf": [{"type": "integer"}, {"type": "object"}]},
        },
    },
    "tool_2req_4opt": {
        "type": "object",
        "properties": {
            "req1": _S,
            "req2": _I,
            "opt1": _S,
            "opt2": _I,
            "opt3": _S,
            "opt4": _I,
        },
    },
    "tool_2req_5opt": {
        "type": "object",
        "properties": {
            "req1": _S,
            "req2": _I,
            "opt1": _S,
            "opt2": _I,
            "opt3": _S,
            "opt4": _I,
            "opt5": _S,
        },
    },
}

Calls = tuple[tuple[str, dict[str, Any]], ...]


@dataclass(frozen=True)
class Case:
    name: str
    family: Family
    text: str
    content: str = ""
    reasoning: str | None = None
    calls: Calls = ()
    ids: tuple[str, ...] = ()  # the final ids, when the model wrote some itself
    started: bool = False  # reasoning_started
    known: frozenset[str] | None = None
    schemas: bool = True  # pass TOOL_SCHEMAS
    flags: frozenset[str] = field(default_factory=frozenset)
    unknown: tuple[str, ...] = ()

    def expected(self) -> ParsedMessage:
        import json

        ids = self.ids or tuple(f"call_{i}" for i in range(len(self.calls)))
        calls = tuple(
            ToolCall(i, name, json.dumps(args, ensure_ascii=False))
            for i, (name, args) in zip(ids, self.calls, strict=True)
        )
        pairs = [(c.name, c.arguments) for c in calls]
        return ParsedMessage(
            content=self.content,
            reasoning=self.reasoning,
            tool_calls=calls,
            malformed_tool_call="malformed" in self.flags,
            reasoning_unclosed="unclosed" in self.flags,
            tool_call_in_unclosed_reasoning="recovered" in self.flags,
            unknown_tools=self.unknown,
            duplicate_tool_calls=len(set(pairs)) < len(pairs),
        )


def _flags(*names: str) -> frozenset[str]:
    return frozenset(names)


MALFORMED = _flags("malformed")
UNCLOSED = _flags("unclosed")
RECOVERED = _flags("unclosed", "recovered")


# --- Hermes 2/3, Qwen2.5, Qwen3, QwQ, Granite 4: <tool_call>{json}</tool_call> ------

H = Family.HERMES
_HCALL = '<tool_call>\n{"name": "special_function", "arguments": {"arg1": 1}}</tool_call>'


def _hermes(name: str, args: str) -> str:
    return f'<tool_call>\n{{"name": "{name}", "arguments": {args}}}\n</tool_call>'


HERMES = [
    Case("hermes-content", H, HELLO, HELLO),
    Case("ours-hermes-empty", H, "", ""),
    Case("hermes-call", H, _HCALL, calls=(("special_function", ARG1),)),
    Case(
        "hermes-call-newlines",
        H,
        _hermes("special_function", '{"arg1": 1}'),
        calls=(("special_function", ARG1),),
    ),
    Case("hermes-content-then-call", H, HELLO + _HCALL, HELLO, calls=(("special_function", ARG1),)),
    Case(
        "hermes-parallel",
        H,
        _hermes("special_function", '{"arg1": 1}')
        + "\n"
        + _hermes("special_function_with_opt", '{"arg1": 1, "arg2": 2}'),
        calls=(("special_function", ARG1), ("special_function_with_opt", {"arg1": 1, "arg2": 2})),
    ),
    Case(
        "ours-hermes-call-then-content",
        H,
        _HCALL + "\nDone.",
        "Done.",
        calls=(("special_function", ARG1),),
    ),
    Case(
        "ours-hermes-content-call-content",
        H,
        "Let me check.\n" + _HCALL + "\nOK.",
        "Let me check.\n\nOK.",
        calls=(("special_function", ARG1),),
    ),
    Case("qwen3-thoughts", H, "<think>\nI'm\nthinking\n</think>\n\n" + HELLO, HELLO, THINKING),
    Case(
        "qwen3-thoughts-call",
        H,
        "<think>\nI'm\nthinking\n</think>\n\n" + _hermes("special_function", '{"arg1": 1}'),
        reasoning=THINKING,
        calls=(("special_function", ARG1),),
    ),
    Case(
        "qwq-thoughts",
        H,
        "Let me think about this...\n</think>\nThe answer is 42.",
        "The answer is 42.",
        "Let me think about this...",
        started=True,
    ),
    Case("qwq-empty-thoughts", H, "</think>Hello, world!", "Hello, world!", "", started=True),
    Case(
        "qwq-continuation",
        H,
        " thinking\n</think>\nHello, world!\nWhat's up?",
        HELLO,
        "thinking",
        started=True,
    ),
    Case("ours-hermes-empty-think", H, "<think></think>Hello", "Hello", ""),
    Case("ours-hermes-stray-close", H, "</think>\n\nHello", "Hello"),
    Case(
        "ours-hermes-unclosed",
        H,
        "<think>I was thinking and",
        reasoning="I was thinking and",
        flags=UNCLOSED,
    ),
    Case(
        "ours-hermes-started-unclosed",
        H,
        "I'm thinking",
        reasoning="I'm thinking",
        started=True,
        flags=UNCLOSED,
    ),
    Case(
        "ours-hermes-call-in-reasoning",
        H,
        '<think>I could use <tool_call>{"name": "get_time", "arguments": {"city": "Paris"}}</tool_call> here</think>Sure.',
        "Sure.",
        'I could use <tool_call>{"name": "get_time", "arguments": {"city": "Paris"}}</tool_call> here',
    ),
    Case(
        "ours-hermes-literal-markers-in-reasoning",
        H,
        "<think>The user typed <think> and </thin without closing</think>ok",
        "ok",
        "The user typed <think> and </thin without closing",
    ),
    Case(
        "ours-hermes-call-ends-open-thinking",
        H,
        "Need to inspect the current directory.\n"
        + _hermes("run_in_terminal", '{"command": "pwd"}'),
        reasoning="Need to inspect the current directory.",
        calls=(("run_in_terminal", {"command": "pwd"}),),
        started=True,
        flags=RECOVERED,
    ),
    Case(
        "ours-hermes-unclosed-mentions-tag",
        H,
        "<think>I will use the <tool_call> tag soon",
        reasoning="I will use the <tool_call> tag soon",
        flags=UNCLOSED,
    ),
    Case(
        "ours-hermes-unclosed-call-then-text",
        H,
        '<think>plan\n<tool_call>{"name": "get_time", "arguments": {"city": "Paris"}}</tool_call>\nDone',
        "Done",
        "plan",
        calls=(("get_time", {"city": "Paris"}),),
        flags=RECOVERED,
    ),
    Case(
        "ours-hermes-unclosed-broken-call",
        H,
        '<think>plan\n<tool_call>{"name": "get_time", "arguments": {"city": </tool_call>',
        reasoning='plan\n<tool_call>{"name": "get_time", "arguments": {"city": </tool_call>',
        flags=UNCLOSED,
    ),
    Case(
        "ours-hermes-bad-json",
        H,
        '<tool_call>\n{"name": "special_function", "arguments": {"arg1": }\n</tool_call>',
        '<tool_call>\n{"name": "special_function", "arguments": {"arg1": }\n</tool_call>',
        flags=MALFORMED,
    ),
    Case(
        "ours-hermes-truncated",
        H,
        '<tool_call>\n{"name": "special_function", "arguments": {"arg1"',
        '<tool_call>\n{"name": "special_function", "arguments": {"arg1"',
        flags=MALFORMED,
    ),
    Case(
        "ours-hermes-truncated-name",
        H,
        'Sure.\n<tool_call>\n{"na',
        'Sure.\n<tool_call>\n{"na',
        flags=MALFORMED,
    ),
    Case("ours-hermes-bare-open-tag", H, "<tool_call>", "<tool_call>", flags=MALFORMED),
    Case(
        "ours-hermes-missing-close-tag",
        H,
        '<tool_call>\n{"name": "special_function", "arguments": {"arg1": 1}}',
        calls=(("special_function", ARG1),),
    ),
    Case(
        "ours-hermes-not-a-call",
        H,
        '<tool_call>{"foo": 1}</tool_call>',
        '<tool_call>{"foo": 1}</tool_call>',
        flags=MALFORMED,
    ),
    Case(
        "ours-hermes-string-arguments",
        H,
        '<tool_call>{"name": "special_function", "arguments": "{\\"arg1\\": 1}"}</tool_call>',
        calls=(("special_function", ARG1),),
    ),
    Case(
        "ours-hermes-parameters-key",
        H,
        '<tool_call>{"name": "special_function", "parameters": {"arg1": 1}}</tool_call>',
        calls=(("special_function", ARG1),),
    ),
    Case(
        "ours-hermes-no-arguments",
        H,
        '<tool_call>{"name": "get_time"}</tool_call>',
        calls=(("get_time", {}),),
    ),
    Case(
        "ours-hermes-close-tag-in-string",
        H,
        '<tool_call>{"name": "python", "arguments": {"code": "print(\'</tool_call>\')"}}</tool_call>',
        calls=(("python", {"code": "print('</tool_call>')"}),),
    ),
    Case(
        "ours-hermes-broken-then-good",
        H,
        "<tool_call>oops</tool_call>\n" + _hermes("get_time", '{"city": "Paris"}'),
        "<tool_call>oops</tool_call>",
        calls=(("get_time", {"city": "Paris"}),),
        flags=MALFORMED,
    ),
    Case(
        "ours-hermes-missing-brace",
        H,
        '<tool_call>{"name": "a", "arguments": {"x": 1}</tool_call>\n<tool_call>{"name": "b", "arguments": {}}</tool_call>\nMore.',
        '<tool_call>{"name": "a", "arguments": {"x": 1}</tool_call>\n\nMore.',
        calls=(("b", {}),),
        flags=MALFORMED,
    ),
    Case(
        "ours-hermes-restart",
        H,
        'Hm <tool_call>garbage <tool_call>{"name": "get_time", "arguments": {"city": "Paris"}}</tool_call>',
        "Hm <tool_call>garbage",
        calls=(("get_time", {"city": "Paris"}),),
        flags=MALFORMED,
    ),
    Case(
        "ours-hermes-unknown-tool",
        H,
        _hermes("other", "{}"),
        calls=(("other", {}),),
        known=frozenset({"special_function"}),
        unknown=("other",),
    ),
    Case(
        "ours-hermes-known-tool",
        H,
        _HCALL,
        calls=(("special_function", ARG1),),
        known=frozenset({"special_function"}),
    ),
    Case(
        "ours-hermes-duplicate",
        H,
        _HCALL + "\n" + _HCALL,
        calls=(("special_function", ARG1), ("special_function", ARG1)),
    ),
    Case(
        "ours-hermes-unicode",
        H,
        _hermes("get_time", '{"city": "東京"}') + "\n東京です。",
        "東京です。",
        calls=(("get_time", {"city": "東京"}),),
    ),
    Case(
        "apriel-list-in-tag",
        H,
        '<tool_call>[{"name": "get_time", "arguments": {}}, {"name": "get_weather", "arguments": {"city": "Oslo"}}]</tool_call>',
        calls=(("get_time", {}), ("get_weather", {"city": "Oslo"})),
    ),
    Case(
        "ours-hermes-openai-shape",
        H,
        '<tool_call>{"type": "function", "function": {"name": "get_time", "arguments": {"city": "Paris"}}}</tool_call>',
        calls=(("get_time", {"city": "Paris"}),),
    ),
    Case("ours-hermes-lookalike", H, "Use <tool_cal> tags, a < b.", "Use <tool_cal> tags, a < b."),
    Case("ours-hermes-partial-marker-at-end", H, "a < b and <tool", "a < b and <tool"),
    Case("ours-hermes-late-think", H, "Hello <think>x</think>", "Hello <think>x</think>"),
    Case("ours-hermes-stray-close-tag", H, "Hi </tool_call> there", "Hi </tool_call> there"),
    Case(
        "ours-hermes-nan",
        H,
        '<tool_call>{"name": "f", "arguments": {"x": NaN}}</tool_call>',
        '<tool_call>{"name": "f", "arguments": {"x": NaN}}</tool_call>',
        flags=MALFORMED,
    ),
    Case(
        "ours-hermes-escapes",
        H,
        '<tool_call>{"name": "python", "arguments": {"code": "print(\\"hi\\")\\n# }"}}</tool_call>',
        calls=(("python", {"code": 'print("hi")\n# }'}),),
    ),
    Case(
        "ours-hermes-repeated-think",
        H,
        "<think>\nplan\n</think>\nanswer",
        "answer",
        "plan",
        started=True,
    ),
    Case(
        "ours-hermes-empty-thinking-call",
        H,
        "</think>\n\n" + _hermes("run_in_terminal", '{"command": "pwd"}'),
        reasoning="",
        calls=(("run_in_terminal", {"command": "pwd"}),),
        started=True,
    ),
    Case(
        "ours-hermes-json-content-after-thinking",
        H,
        "I need to output the invoice details in JSON\n</think>\n\n" + INVOICE,
        INVOICE,
        "I need to output the invoice details in JSON",
        started=True,
    ),
    Case(
        "ours-hermes-whitespace-between-calls",
        H,
        "\n\n" + _HCALL + "\n\n \n" + _hermes("get_time", '{"city": "Paris"}') + "\n\n",
        calls=(("special_function", ARG1), ("get_time", {"city": "Paris"})),
    ),
]


# --- Qwen3-Coder, Qwen3.5, Nemotron 3: <tool_call><function=..><parameter=..> ---------

Q = Family.QWEN3_CODER


def _xml(name: str, *params: tuple[str, str], open_tag: bool = True) -> str:
    body = "".join(f"<parameter={p}>\n{v}\n</parameter>\n" for p, v in params)
    call = f"<function={name}>\n{body}</function>\n</tool_call>"
    return ("<tool_call>\n" if open_tag else "") + call


_XCALL = _xml("special_function", ("arg1", "1"))
_XOPT = _xml("special_function_with_opt", ("arg1", "1"), ("arg2", "2"))

QWEN3_CODER = [
    Case("qwen3coder-content", Q, HELLO, HELLO),
    Case("qwen3coder-call", Q, _XCALL, calls=(("special_function", ARG1),)),
    Case(
        "qwen3coder-no-open-tag",
        Q,
        _xml("special_function", ("arg1", "1"), open_tag=False),
        calls=(("special_function", ARG1),),
    ),
    Case(
        "qwen3coder-content-no-open-tag",
        Q,
        "Let me call it.\n" + _xml("special_function", ("arg1", "1"), open_tag=False),
        "Let me call it.",
        calls=(("special_function", ARG1),),
    ),
    Case(
        "qwen3coder-first-without-open-tag",
        Q,
        _xml("special_function", ("arg1", "1"), open_tag=False) + "\n" + _XOPT,
        calls=(("special_function", ARG1), ("special_function_with_opt", {"arg1": 1, "arg2": 2})),
    ),
    Case(
        "qwen3coder-parallel",
        Q,
        _XCALL + "\n" + _XOPT,
        calls=(("special_function", ARG1), ("special_function_with_opt", {"arg1": 1, "arg2": 2})),
    ),
    Case(
        "qwen3coder-multiline-code",
        Q,
        _xml("python", ("code", PY_HELLO)),
        calls=(("python", {"code": PY_HELLO}),),
    ),
    Case(
        "qwen3coder-unicode", Q, _xml("python", ("code", "格")), calls=(("python", {"code": "格"}),)
    ),
    Case(
        "qwen3coder-html",
        Q,
        _xml("html", ("markup", "<html>\n <head>\n  <title>Hello!</title>\n </head>\n</html>")),
        calls=(
            ("html", {"markup": "<html>\n <head>\n  <title>Hello!</title>\n </head>\n</html>"}),
        ),
    ),
    Case(
        "qwen3coder-array-param",
        Q,
        _xml(
            "todo_list",
            (
                "todos",
                '[{"item": "Check stuff", "selected": false}, {"item": "Prepare stuff", "selected": true}]',
            ),
        ),
        calls=(
            (
                "todo_list",
                {
                    "todos": [
                        {"item": "Check stuff", "selected": False},
                        {"item": "Prepare stuff", "selected": True},
                    ]
                },
            ),
        ),
    ),
    Case(
        "qwen3coder-param-order",
        Q,
        _xml("edit", ("newString", "#include"), ("filename", "foo.c"), ("oldString", "#iclunde")),
        calls=(("edit", {"newString": "#include", "filename": "foo.c", "oldString": "#iclunde"}),),
    ),
    Case(
        "qwen3.5-value-ending-in-newline",
        Q,
        _xml("edit", ("filename", "foo.c"), ("oldString", "#iclunde"), ("newString", "#include\n")),
        calls=(
            ("edit", {"filename": "foo.c", "oldString": "#iclunde", "newString": "#include\n"}),
        ),
    ),
    Case(
        "qwen3.5-indented-code",
        Q,
        _xml("python", ("code", '    print("Hello, world!")')),
        calls=(("python", {"code": '    print("Hello, world!")'}),),
    ),
    Case(
        "qwen3coder-2req-4opt",
        Q,
        _xml("tool_2req_4opt", ("req2", "42"), ("req1", "hello"), ("opt2", "200")),
        calls=(("tool_2req_4opt", {"req2": 42, "req1": "hello", "opt2": 200}),),
    ),
    Case(
        "qwen3coder-2req-5opt",
        Q,
        _xml(
            "tool_2req_5opt",
            ("req1", "test"),
            ("req2", "99"),
            ("opt3", "c"),
            ("opt1", "a"),
            ("opt5", "e"),
            ("opt4", "4"),
            ("opt2", "2"),
        ),
        calls=(
            (
                "tool_2req_5opt",
                {
                    "req1": "test",
                    "req2": 99,
                    "opt3": "c",
                    "opt1": "a",
                    "opt5": "e",
                    "opt4": 4,
                    "opt2": 2,
                },
            ),
        ),
    ),
    Case(
        "qwen3coder-nullable-string",
        Q,
        _xml("set_nullable_str", ("name", "hello world")),
        calls=(("set_nullable_str", {"name": "hello world"}),),
    ),
    Case(
        "qwen3coder-nullable-string-null-first",
        Q,
        _xml("set_nullable_str_nf", ("name", "hello world")),
        calls=(("set_nullable_str_nf", {"name": "hello world"}),),
    ),
    Case(
        "qwen3coder-nullable-int",
        Q,
        _xml("set_nullable_int", ("count", "42")),
        calls=(("set_nullable_int", {"count": 42}),),
    ),
    Case(
        "qwen3coder-nullable-string-null",
        Q,
        _xml("set_nullable_str", ("name", "null")),
        calls=(("set_nullable_str", {"name": None}),),
    ),
    Case(
        "qwen3coder-string-unions",
        Q,
        _xml("set_union", ("value", '{"a": 1}'), ("amount", "2 dollars")),
        calls=(("set_union", {"value": {"a": 1}, "amount": "2 dollars"}),),
    ),
    Case(
        "qwen3coder-string-union-invalid-json",
        Q,
        _xml("set_union", ("value", "{not valid json"), ("amount", "42")),
        calls=(("set_union", {"value": "{not valid json", "amount": 42}),),
    ),
    Case(
        "qwen3coder-enum-without-type",
        Q,
        _xml("set_unit", ("unit", "celsius")),
        calls=(("set_unit", {"unit": "celsius"}),),
    ),
    Case(
        "ours-qwen3coder-any-of",
        Q,
        _xml("union_args", ("filter", '["a", "b"]'), ("label", "plain"), ("limit", "5")),
        calls=(("union_args", {"filter": ["a", "b"], "label": "plain", "limit": 5}),),
    ),
    Case(
        "qwen3.5-no-args",
        Q,
        "<tool_call>\n<function=empty_args>\n</function>\n</tool_call>",
        calls=(("empty_args", {}),),
    ),
    Case(
        "qwen3.5-no-args-no-props",
        Q,
        "<tool_call>\n<function=empty_args_no_props>\n</function>\n</tool_call>",
        calls=(("empty_args_no_props", {}),),
    ),
    Case(
        "qwen3.5-thoughts", Q, "I'm\nthinking\n</think>\n\n" + HELLO, HELLO, THINKING, started=True
    ),
    Case(
        "qwen3.5-thoughts-call",
        Q,
        "I'm\nthinking\n</think>\n\n" + _XCALL,
        reasoning=THINKING,
        calls=(("special_function", ARG1),),
        started=True,
    ),
    Case(
        "qwen3.5-call-ends-open-thinking",
        Q,
        "Need to inspect the current directory.\n" + _xml("run_in_terminal", ("command", "pwd")),
        reasoning="Need to inspect the current directory.",
        calls=(("run_in_terminal", {"command": "pwd"}),),
        started=True,
        flags=RECOVERED,
    ),
    Case(
        "qwen3.5-call-right-after-open-thinking",
        Q,
        _xml("run_in_terminal", ("command", "pwd")),
        reasoning="",
        calls=(("run_in_terminal", {"command": "pwd"}),),
        started=True,
        flags=RECOVERED,
    ),
    Case(
        "qwen3.5-empty-thinking-content-call",
        Q,
        "</think>\n\nLet me inspect the current directory.\n"
        + _xml("run_in_terminal", ("command", "pwd")),
        "Let me inspect the current directory.",
        "",
        calls=(("run_in_terminal", {"command": "pwd"}),),
        started=True,
    ),
    Case(
        "qwen3.5-thinking-content-call",
        Q,
        "I should inspect the directory.\n</think>\n\nLet me inspect it now.\n"
        + _xml("run_in_terminal", ("command", "pwd")),
        "Let me inspect it now.",
        "I should inspect the directory.",
        calls=(("run_in_terminal", {"command": "pwd"}),),
        started=True,
    ),
    Case(
        "qwen3.5-repeated-think-tags",
        Q,
        "<think>\n\n</think>\n\n" + _XCALL,
        reasoning="",
        calls=(("special_function", ARG1),),
        started=True,
    ),
    Case("nemotron3-trailing-newline", Q, _XCALL + "\n", calls=(("special_function", ARG1),)),
    Case(
        "ours-qwen3coder-untyped-values",
        Q,
        _xml("unlisted", ("n", "1"), ("flag", "true"), ("word", "hello"), ("quoted", '"x"')),
        calls=(("unlisted", {"n": 1, "flag": True, "word": "hello", "quoted": '"x"'}),),
    ),
    Case(
        "ours-qwen3coder-declared-string-stays-text",
        Q,
        _xml("python", ("code", "true")),
        calls=(("python", {"code": "true"}),),
    ),
    Case(
        "ours-qwen3coder-no-schemas",
        Q,
        _xml("python", ("code", "1")),
        calls=(("python", {"code": 1}),),
        schemas=False,
    ),
    Case(
        "ours-qwen3coder-missing-parameter-close",
        Q,
        "<tool_call>\n<function=edit>\n<parameter=filename>\nfoo.c\n<parameter=oldString>\nx\n</parameter>\n</function>\n</tool_call>",
        calls=(("edit", {"filename": "foo.c", "oldString": "x"}),),
    ),
    Case(
        "ours-qwen3coder-truncated",
        Q,
        "<tool_call>\n<function=python>\n<parameter=code>\nprint(",
        "<tool_call>\n<function=python>\n<parameter=code>\nprint(",
        flags=MALFORMED,
    ),
    Case(
        "ours-qwen3coder-truncated-no-open-tag",
        Q,
        "<function=python>\n<parameter=code>\nprint(1)\n</parameter>\n",
        "<function=python>\n<parameter=code>\nprint(1)\n</parameter>",
        flags=MALFORMED,
    ),
    Case(
        "ours-qwen3coder-missing-close-tag",
        Q,
        "<tool_call>\n<function=python>\n<parameter=code>\nprint(1)\n</parameter>\n</function>",
        calls=(("python", {"code": "print(1)"}),),
    ),
    Case(
        "ours-qwen3coder-json-body",
        Q,
        _hermes("get_time", '{"city": "Paris"}'),
        calls=(("get_time", {"city": "Paris"}),),
    ),
    Case(
        "ours-qwen3coder-junk-in-function",
        Q,
        "<tool_call>\n<function=f>\nhello\n<parameter=a>\n1\n</parameter>\n</function>\n</tool_call>",
        "<tool_call>\n<function=f>\nhello\n<parameter=a>\n1\n</parameter>\n</function>\n</tool_call>",
        flags=MALFORMED,
    ),
    Case(
        "ours-qwen3coder-empty-name",
        Q,
        "<tool_call>\n<function=>\n</function>\n</tool_call>",
        "<tool_call>\n<function=>\n</function>\n</tool_call>",
        flags=MALFORMED,
    ),
    Case(
        "ours-qwen3coder-call-in-reasoning",
        Q,
        "<think>maybe <tool_call>\n<function=f>\n</function>\n</tool_call></think>no call",
        "no call",
        "maybe <tool_call>\n<function=f>\n</function>\n</tool_call>",
    ),
    Case(
        "ours-qwen3coder-restart",
        Q,
        "<tool_call>\n<function=a>\n<tool_call>\n<function=b>\n</function>\n</tool_call>",
        "<tool_call>\n<function=a>",
        calls=(("b", {}),),
        flags=MALFORMED,
    ),
    Case(
        "qwen3.5-json-content-after-thinking",
        Q,
        "I need to output the invoice details in JSON\n</think>\n\n" + INVOICE,
        INVOICE,
        "I need to output the invoice details in JSON",
        started=True,
    ),
    Case(
        "ours-qwen3coder-unknown-tool",
        Q,
        _XCALL,
        calls=(("special_function", ARG1),),
        known=frozenset({"python"}),
        unknown=("special_function",),
    ),
    Case(
        "ours-qwen3coder-function-lookalike",
        Q,
        "Call <function> or <function=x without closing",
        "Call <function> or <function=x without closing",
        flags=MALFORMED,
    ),
]


# --- GLM 4.5-4.7: <tool_call>name<arg_key>..</arg_key><arg_value>..</arg_value> ----------

G = Family.GLM


def _glm(name: str, *params: tuple[str, str], nl: str = "") -> str:
    """GLM 4.7's compact form, or with ``nl="\n"`` the lines of 4.5 and 4.6."""
    body = "".join(f"<arg_key>{k}</arg_key>{nl}<arg_value>{v}</arg_value>{nl}" for k, v in params)
    return f"<tool_call>{name}{nl}{body}</tool_call>"


_GCALL = _glm("special_function", ("arg1", "1"))
_GOPT = _glm("special_function_with_opt", ("arg1", "1"), ("arg2", "2"))
_GCALL_LINES = _glm("special_function", ("arg1", "1"), nl="\n")
_GOPT_LINES = _glm("special_function_with_opt", ("arg1", "1"), ("arg2", "2"), nl="\n")
_TWO = (("special_function", ARG1), ("special_function_with_opt", {"arg1": 1, "arg2": 2}))

GLM = [
    Case("glm-content", G, HELLO, HELLO),
    Case("glm4.6-call", G, _GCALL_LINES, calls=(("special_function", ARG1),)),
    Case("glm4.7-call", G, _GCALL, calls=(("special_function", ARG1),)),
    Case(
        "glm4.7-reasoning-content",
        G,
        "I'm\nthinking</think>" + HELLO,
        HELLO,
        reasoning=THINKING,
        started=True,
    ),
    Case(
        "glm4.7-call-thoughts",
        G,
        "I'm\nthinking</think>" + _GCALL,
        reasoning=THINKING,
        calls=(("special_function", ARG1),),
        started=True,
    ),
    Case("glm4.7-parallel", G, _GCALL + _GOPT, calls=_TWO),
    Case("glm4.6-parallel", G, _GCALL_LINES + "\n" + _GOPT_LINES, calls=_TWO),
    Case("glm-no-args", G, "<tool_call>empty_args</tool_call>", calls=(("empty_args", {}),)),
    Case("glm4.6-no-args", G, "<tool_call>empty_args\n</tool_call>", calls=(("empty_args", {}),)),
    Case(
        "glm-content-then-call",
        G,
        "Let me read the diff content.\n" + _GCALL_LINES,
        "Let me read the diff content.",
        calls=(("special_function", ARG1),),
    ),
    Case(
        "glm-think-then-call",
        G,
        "<think>\nI'm\nthinking\n</think>\n" + _GCALL_LINES,
        reasoning=THINKING,
        calls=(("special_function", ARG1),),
    ),
    Case(
        "glm-string-stays-text",
        G,
        _glm("get_time", ("city", "123")),
        calls=(("get_time", {"city": "123"}),),
    ),
    Case(
        "glm-typed-values",
        G,
        _glm("magic_int", ("ref", "42"), ("name", "x"), nl="\n"),
        calls=(("magic_int", {"ref": 42, "name": "x"}),),
    ),
    Case(
        "glm-boolean",
        G,
        _glm("toggle", ("enabled", "true")),
        calls=(("toggle", {"enabled": True}),),
    ),
    Case(
        "glm-object-value",
        G,
        _glm("set_config", ("config", '{"theme": "dark", "size": 3}')),
        calls=(("set_config", {"config": {"theme": "dark", "size": 3}}),),
    ),
    Case(
        "glm-array-value",
        G,
        _glm("todo_list", ("todos", '[{"item": "Check stuff", "selected": false}]')),
        calls=(("todo_list", {"todos": [{"item": "Check stuff", "selected": False}]}),),
    ),
    Case(
        "glm-multiline-code",
        G,
        _glm("python", ("code", PY_HELLO), nl="\n"),
        calls=(("python", {"code": PY_HELLO}),),
    ),
    Case("glm-unicode", G, _glm("python", ("code", "格")), calls=(("python", {"code": "格"}),)),
    Case(
        "glm-html-value",
        G,
        _glm("html", ("markup", "<html>\n <head>\n  <title>Hello!</title>\n </head>\n</html>")),
        calls=(
            ("html", {"markup": "<html>\n <head>\n  <title>Hello!</title>\n </head>\n</html>"}),
        ),
    ),
    Case(
        "glm-nullable",
        G,
        _glm("set_nullable_str", ("name", "null")),
        calls=(("set_nullable_str", {"name": None}),),
    ),
    Case(
        "ours-glm-json-body",
        G,
        '<tool_call>{"name": "special_function", "arguments": {"arg1": 1}}</tool_call>',
        calls=(("special_function", ARG1),),
    ),
    Case(
        "ours-glm-key-without-value",
        G,
        "<tool_call>special_function<arg_key>arg1</arg_key></tool_call>",
        "<tool_call>special_function<arg_key>arg1</arg_key></tool_call>",
        flags=MALFORMED,
    ),
    Case(
        "ours-glm-truncated",
        G,
        "<tool_call>special_function\n<arg_key>arg1</arg_key>\n<arg_val",
        "<tool_call>special_function\n<arg_key>arg1</arg_key>\n<arg_val",
        flags=MALFORMED,
    ),
]


# --- Seed-OSS: <seed:tool_call><function=..><parameter=..>value</parameter>, <seed:think> --

S = Family.SEED_OSS


def _seed(name: str, *params: tuple[str, str]) -> str:
    """A call as Seed-OSS's template writes it: no newline around a value."""
    body = "".join(f"<parameter={k}>{v}</parameter>\n" for k, v in params)
    return f"<seed:tool_call>\n<function={name}>\n{body}</function>\n</seed:tool_call>"


_SCALL = _seed("special_function", ("arg1", "1"))
_SOPT = _seed("special_function_with_opt", ("arg1", "1"), ("arg2", "2"))
_OLD = 'def foo(arg = "14"):\n    return arg + "bar"\n'
_NEW = 'def foo(arg = "15"):\n    pass\n'

SEED_OSS = [
    Case("seed-content", S, HELLO, HELLO),
    Case(
        "seed-reasoning",
        S,
        "<seed:think>I'm thinking about the answer</seed:think>\nHello, world!",
        "Hello, world!",
        reasoning="I'm thinking about the answer",
    ),
    Case("seed-call", S, _SCALL, calls=(("special_function", ARG1),)),
    Case(
        "seed-parallel",
        S,
        _SCALL + "\n" + _SOPT,
        calls=(("special_function", ARG1), ("special_function_with_opt", {"arg1": 1, "arg2": 2})),
    ),
    Case(
        "seed-todo-list",
        S,
        _seed(
            "todo_list",
            (
                "todos",
                '[{"item": "Check stuff", "selected": false}, {"item": "Prepare stuff", "selected": true}]',
            ),
        ),
        calls=(
            (
                "todo_list",
                {
                    "todos": [
                        {"item": "Check stuff", "selected": False},
                        {"item": "Prepare stuff", "selected": True},
                    ]
                },
            ),
        ),
    ),
    # llama.cpp keeps a value's text whole, its last newline too.
    Case(
        "seed-inside-quotes",
        S,
        _seed("edit", ("filename", "foo.cpp"), ("oldString", _OLD), ("newString", _NEW)),
        calls=(("edit", {"filename": "foo.cpp", "oldString": _OLD, "newString": _NEW}),),
    ),
    # llama.cpp's continuations: the prefilled "Hello, " and "I'm" are not in the output.
    Case("seed-continue-content", S, "world!\nWhat's up?", "world!\nWhat's up?"),
    Case(
        "seed-continue-reasoning",
        S,
        " thinking</seed:think>\nHello, world!\nWhat's up?",
        HELLO,
        reasoning="thinking",
        started=True,
    ),
    Case(
        "ours-seed-think-then-call",
        S,
        "<seed:think>I'm\nthinking</seed:think>\n" + _SCALL,
        reasoning=THINKING,
        calls=(("special_function", ARG1),),
    ),
    Case(
        "ours-seed-content-then-call",
        S,
        "Let me check.\n" + _SCALL,
        "Let me check.",
        calls=(("special_function", ARG1),),
    ),
    Case(
        "ours-seed-no-args",
        S,
        "<seed:tool_call>\n<function=empty_args>\n</function>\n</seed:tool_call>",
        calls=(("empty_args", {}),),
    ),
    Case(
        "ours-seed-string-stays-text",
        S,
        _seed("get_time", ("city", "123")),
        calls=(("get_time", {"city": "123"}),),
    ),
    Case(
        "ours-seed-typed-values",
        S,
        _seed("magic_int", ("ref", "42"), ("name", "x")),
        calls=(("magic_int", {"ref": 42, "name": "x"}),),
    ),
    Case(
        "ours-seed-boolean",
        S,
        _seed("toggle", ("enabled", "true")),
        calls=(("toggle", {"enabled": True}),),
    ),
    Case(
        "ours-seed-object-value",
        S,
        _seed("set_config", ("config", '{"theme": "dark", "size": 3}')),
        calls=(("set_config", {"config": {"theme": "dark", "size": 3}}),),
    ),
    Case(
        "ours-seed-multiline-code",
        S,
        _seed("python", ("code", PY_HELLO)),
        calls=(("python", {"code": PY_HELLO}),),
    ),
    Case(
        "ours-seed-nullable",
        S,
        _seed("set_nullable_str", ("name", "null")),
        calls=(("set_nullable_str", {"name": None}),),
    ),
    Case(
        "ours-seed-call-in-reasoning",
        S,
        "<seed:think>maybe " + _SCALL + "</seed:think>\nNo call needed.",
        "No call needed.",
        reasoning="maybe " + _SCALL,
    ),
    Case(
        "ours-seed-plain-think-is-content",
        S,
        "<think>not Seed's</think>Hi",
        "<think>not Seed's</think>Hi",
    ),
    Case(
        "ours-seed-truncated",
        S,
        "<seed:tool_call>\n<function=special_function>\n<parameter=arg1>1",
        "<seed:tool_call>\n<function=special_function>\n<parameter=arg1>1",
        flags=MALFORMED,
    ),
    Case(
        "ours-seed-unclosed-think",
        S,
        "<seed:think>still going",
        reasoning="still going",
        flags=UNCLOSED,
    ),
]


# --- MiniMax M2: <minimax:tool_call><invoke name=..><parameter name=..>, <think> -------

MM = Family.MINIMAX_M2


def _invoke(name: str, *params: tuple[str, str]) -> str:
    """An invoke as MiniMax M2's template writes it: no newline around a value."""
    body = "".join(f'<parameter name="{k}">{v}</parameter>\n' for k, v in params)
    return f'<invoke name="{name}">\n{body}</invoke>\n'


def _mm(*invokes: str) -> str:
    return "<minimax:tool_call>\n" + "".join(invokes) + "</minimax:tool_call>"


_MMCALL = _mm(_invoke("special_function", ("arg1", "1")))

MINIMAX_M2 = [
    # llama.cpp's cases: the prompt opens <think>, so the output starts inside it.
    Case("minimax-content", MM, "\n</think>\n\n" + HELLO, HELLO, "", started=True),
    Case(
        "minimax-reasoning",
        MM,
        "I'm\nthinking\n</think>\n\n" + HELLO,
        HELLO,
        THINKING,
        started=True,
    ),
    Case(
        "minimax-empty-args",
        MM,
        "Let's call a tool:\n</think>\n\n"
        '<minimax:tool_call>\n<invoke name="empty_args">\n</invoke>\n</minimax:tool_call>',
        reasoning="Let's call a tool:",
        calls=(("empty_args", {}),),
        started=True,
    ),
    Case(
        "minimax-call",
        MM,
        "\n</think>\n\n" + _MMCALL,
        reasoning="",
        calls=(("special_function", ARG1),),
        started=True,
    ),
    # llama.cpp's continuations: the prefilled "Hello, " and "I'm" are not in the output.
    Case("minimax-continue-content", MM, "world!\nWhat's up?", "world!\nWhat's up?"),
    Case(
        "minimax-continue-reasoning",
        MM,
        " thinking\n</think>\n\n" + HELLO,
        HELLO,
        reasoning="thinking",
        started=True,
    ),
    Case("ours-minimax-call", MM, _MMCALL, calls=(("special_function", ARG1),)),
    Case(
        "ours-minimax-parallel-one-block",
        MM,
        _mm(
            _invoke("special_function", ("arg1", "1")),
            _invoke("special_function_with_opt", ("arg1", "1"), ("arg2", "2")),
        ),
        calls=(("special_function", ARG1), ("special_function_with_opt", {"arg1": 1, "arg2": 2})),
    ),
    Case(
        "ours-minimax-parallel-two-blocks",
        MM,
        _mm(_invoke("get_time", ("city", "Paris")))
        + "\n"
        + _mm(_invoke("get_weather", ("city", "Paris"))),
        calls=(("get_time", {"city": "Paris"}), ("get_weather", {"city": "Paris"})),
    ),
    Case(
        "ours-minimax-content-then-call",
        MM,
        "Let me check.\n" + _MMCALL,
        "Let me check.",
        calls=(("special_function", ARG1),),
    ),
    Case(
        "ours-minimax-think-then-call",
        MM,
        "<think>\nI'm\nthinking\n</think>\n\n" + _MMCALL,
        reasoning=THINKING,
        calls=(("special_function", ARG1),),
    ),
    Case(
        "ours-minimax-string-stays-text",
        MM,
        _mm(_invoke("get_time", ("city", "123"))),
        calls=(("get_time", {"city": "123"}),),
    ),
    Case(
        "ours-minimax-typed-values",
        MM,
        _mm(_invoke("magic_int", ("ref", "-14"), ("name", "foo bar"))),
        calls=(("magic_int", {"ref": -14, "name": "foo bar"}),),
    ),
    Case(
        "ours-minimax-number",
        MM,
        _mm(_invoke("amount", ("orig", "3.14"))),
        calls=(("amount", {"orig": 3.14}),),
    ),
    Case(
        "ours-minimax-boolean",
        MM,
        _mm(_invoke("toggle", ("enabled", "true"))),
        calls=(("toggle", {"enabled": True}),),
    ),
    Case(
        "ours-minimax-object-value",
        MM,
        _mm(_invoke("set_config", ("config", '{"theme": "dark", "size": 3}'))),
        calls=(("set_config", {"config": {"theme": "dark", "size": 3}}),),
    ),
    Case(
        "ours-minimax-array-value",
        MM,
        _mm(_invoke("todo_list", ("todos", '[{"item": "Check stuff", "selected": false}]'))),
        calls=(("todo_list", {"todos": [{"item": "Check stuff", "selected": False}]}),),
    ),
    Case(
        "ours-minimax-multiline-code",
        MM,
        _mm(_invoke("python", ("code", PY_HELLO))),
        calls=(("python", {"code": PY_HELLO}),),
    ),
    Case(
        "ours-minimax-nullable",
        MM,
        _mm(_invoke("set_nullable_str", ("name", "null"))),
        calls=(("set_nullable_str", {"name": None}),),
    ),
    Case(
        "ours-minimax-markup-in-value",
        MM,
        _mm(_invoke("html", ("markup", '<p class="x">a &amp; b</p>'))),
        calls=(("html", {"markup": '<p class="x">a &amp; b</p>'}),),
    ),
    Case(
        "ours-minimax-call-in-reasoning",
        MM,
        "maybe " + _MMCALL + "\n</think>\n\nNo call needed.",
        "No call needed.",
        reasoning="maybe " + _MMCALL,
        started=True,
    ),
    Case(
        "ours-minimax-truncated",
        MM,
        '<minimax:tool_call>\n<invoke name="special_function">\n<parameter name="arg1">1',
        '<minimax:tool_call>\n<invoke name="special_function">\n<parameter name="arg1">1',
        flags=MALFORMED,
    ),
    Case(
        "ours-minimax-qwen-form-is-malformed",
        MM,
        "<minimax:tool_call>\n<function=special_function>\n</function>\n</minimax:tool_call>",
        "<minimax:tool_call>\n<function=special_function>\n</function>\n</minimax:tool_call>",
        flags=MALFORMED,
    ),
    Case(
        "ours-minimax-unclosed-think",
        MM,
        "still going",
        reasoning="still going",
        started=True,
        flags=UNCLOSED,
    ),
]


# --- DeepSeek V3.2 and V4: <｜DSML｜invoke name=..><｜DSML｜parameter name=.. string=..> -------

DS = Family.DEEPSEEK_DSML
_DSML = "｜DSML｜"


def _dparam(key: str, value: str, string: bool) -> str:
    flag = "true" if string else "false"
    return f'<{_DSML}parameter name="{key}" string="{flag}">{value}</{_DSML}parameter>\n'


def _dinvoke(name: str, *params: str, empty: str = "") -> str:
    """An invoke as DeepSeek's templates write it (V4's writes a line for no arguments)."""
    return f'<{_DSML}invoke name="{name}">\n' + ("".join(params) or empty) + f"</{_DSML}invoke>\n"


def _dsml(*invokes: str, block: str = "function_calls") -> str:
    return f"<{_DSML}{block}>\n" + "".join(invokes) + f"</{_DSML}{block}>"


def _v4(*invokes: str) -> str:
    return _dsml(*invokes, block="tool_calls")


_ARG1_FALSE = _dparam("arg1", "1", False)
_DSCALL = _dsml(_dinvoke("special_function", _ARG1_FALSE))
_TOKYO = _dinvoke("get_time", _dparam("city", "Tokyo", True))
_BOTH = (
    _dinvoke("get_time", _dparam("city", "Paris", True)),
    _dinvoke("get_weather", _dparam("city", "Paris", True)),
)
_PARIS_BOTH = (("get_time", {"city": "Paris"}), ("get_weather", {"city": "Paris"}))
_MULTI = _dinvoke("magic_int", _dparam("ref", "42", False), _dparam("name", "foo bar", True))


def _dtyped(label: str, invoke: str, call: tuple[str, dict[str, Any]]) -> Case:
    """llama.cpp's typed-value cases: thinking, then one call in V3.2's block."""
    return Case(
        f"dsml-{label}",
        DS,
        f"Test {label}</think>\n\n" + _dsml(invoke),
        reasoning=f"Test {label}",
        calls=(call,),
        started=True,
    )


DEEPSEEK_DSML = [
    # llama.cpp's V3.2 cases: with thinking the prompt opens <think>, without it the
    # prompt closes an empty block and the output is the answer.
    Case("dsml-content", DS, HELLO, HELLO),
    Case("dsml-thoughts", DS, "I'm\nthinking</think>" + HELLO, HELLO, THINKING, started=True),
    Case(
        "dsml-thinking-call",
        DS,
        "Let me check the time</think>\n\n" + _dsml(_TOKYO),
        reasoning="Let me check the time",
        calls=(("get_time", {"city": "Tokyo"}),),
        started=True,
    ),
    Case("dsml-call", DS, _DSCALL, calls=(("special_function", ARG1),)),
    Case(
        "dsml-parallel",
        DS,
        "Calling both</think>\n\n" + _dsml(*_BOTH),
        reasoning="Calling both",
        calls=_PARIS_BOTH,
        started=True,
    ),
    Case(
        "dsml-content-then-call",
        DS,
        "Thinking about it</think>Let me call the function.\n\n" + _DSCALL,
        "Let me call the function.",
        "Thinking about it",
        calls=(("special_function", ARG1),),
        started=True,
    ),
    _dtyped(
        "negative",
        _dinvoke("magic_int", _dparam("ref", "-14", False)),
        ("magic_int", {"ref": -14}),
    ),
    _dtyped(
        "decimal", _dinvoke("amount", _dparam("orig", "3.14", False)), ("amount", {"orig": 3.14})
    ),
    _dtyped(
        "boolean",
        _dinvoke("toggle", _dparam("enabled", "true", False)),
        ("toggle", {"enabled": True}),
    ),
    _dtyped(
        "array",
        _dinvoke("todo_list", _dparam("todos", '["buy milk","walk dog"]', False)),
        ("todo_list", {"todos": ["buy milk", "walk dog"]}),
    ),
    _dtyped(
        "object",
        _dinvoke("set_config", _dparam("config", '{"theme":"dark","level":2}', False)),
        ("set_config", {"config": {"theme": "dark", "level": 2}}),
    ),
    Case(
        "dsml-empty-reasoning",
        DS,
        "</think>\n\n" + _dsml(_dinvoke("get_time", _dparam("city", "XYZCITY", True))),
        reasoning="",
        calls=(("get_time", {"city": "XYZCITY"}),),
        started=True,
    ),
    Case(
        "dsml-multi-arg",
        DS,
        "Multi-arg call</think>\n\n" + _dsml(_MULTI),
        reasoning="Multi-arg call",
        calls=(("magic_int", {"ref": 42, "name": "foo bar"}),),
        started=True,
    ),
    # llama.cpp's continuations: the prefilled "Hello, " and "I'm" are not in the output.
    Case("dsml-continue-content", DS, "world!\nWhat's up?", "world!\nWhat's up?"),
    Case(
        "dsml-continue-reasoning",
        DS,
        " thinking</think>" + HELLO,
        HELLO,
        reasoning="thinking",
        started=True,
    ),
    # llama.cpp's V4 cases: the block is tool_calls.
    Case(
        "dsml-v4-thinking-call",
        DS,
        "Let me check the time</think>\n\n" + _v4(_TOKYO),
        reasoning="Let me check the time",
        calls=(("get_time", {"city": "Tokyo"}),),
        started=True,
    ),
    Case(
        "dsml-v4-call",
        DS,
        _v4(_dinvoke("special_function", _ARG1_FALSE)),
        calls=(("special_function", ARG1),),
    ),
    Case(
        "dsml-v4-parallel",
        DS,
        "Calling both</think>\n\n" + _v4(*_BOTH),
        reasoning="Calling both",
        calls=_PARIS_BOTH,
        started=True,
    ),
    Case(
        "dsml-v4-content-then-call",
        DS,
        "Thinking about it</think>Let me call the function.\n\n"
        + _v4(_dinvoke("special_function", _ARG1_FALSE)),
        "Let me call the function.",
        "Thinking about it",
        calls=(("special_function", ARG1),),
        started=True,
    ),
    Case(
        "dsml-v4-multi-arg",
        DS,
        "Multi-arg call</think>\n\n" + _v4(_MULTI),
        reasoning="Multi-arg call",
        calls=(("magic_int", {"ref": 42, "name": "foo bar"}),),
        started=True,
    ),
    # The block opened in the reasoning, never closed: llama.cpp ends the reasoning
    # there, as this package does for calls in an unclosed block.
    Case(
        "dsml-v4-call-in-open-thinking",
        DS,
        "Let me check the time\n\n" + _v4(_TOKYO),
        reasoning="Let me check the time",
        calls=(("get_time", {"city": "Tokyo"}),),
        started=True,
        flags=RECOVERED,
    ),
    # V4-Flash-0731: the separator before the block is not content.
    Case(
        "dsml-v4-flash-separator",
        DS,
        "\n\n" + _v4(_dinvoke("special_function", _ARG1_FALSE)),
        calls=(("special_function", ARG1),),
    ),
    Case(
        "ours-dsml-empty-args",
        DS,
        _dsml(_dinvoke("empty_args")),
        calls=(("empty_args", {}),),
    ),
    Case(
        "ours-dsml-v4-empty-args-line",
        DS,
        _v4(_dinvoke("empty_args", empty="\n")),
        calls=(("empty_args", {}),),
    ),
    Case(
        "ours-dsml-two-blocks",
        DS,
        _dsml(_BOTH[0]) + "\n\n" + _dsml(_BOTH[1]),
        calls=_PARIS_BOTH,
    ),
    Case(
        "ours-dsml-string-stays-text",
        DS,
        _dsml(_dinvoke("get_time", _dparam("city", "123", True))),
        calls=(("get_time", {"city": "123"}),),
    ),
    # The attribute says which a value is where the schema allows both.
    Case(
        "ours-dsml-union-by-attribute",
        DS,
        _dsml(
            _dinvoke(
                "set_union",
                _dparam("value", '{"a": 1}', True),
                _dparam("amount", "12", False),
            )
        ),
        calls=(("set_union", {"value": '{"a": 1}', "amount": 12}),),
    ),
    # No schema: the attribute alone.
    Case(
        "ours-dsml-unknown-tool-by-attribute",
        DS,
        _dsml(_dinvoke("lookup", _dparam("id", "42", True), _dparam("n", "42", False))),
        calls=(("lookup", {"id": "42", "n": 42}),),
    ),
    # Where the attribute cannot be right, the schema reads the value.
    Case(
        "ours-dsml-attribute-overruled",
        DS,
        _dsml(_dinvoke("magic_int", _dparam("ref", "7", True), _dparam("name", "a b", False))),
        calls=(("magic_int", {"ref": 7, "name": "a b"}),),
    ),
    Case(
        "ours-dsml-no-attribute",
        DS,
        _dsml(
            f'<{_DSML}invoke name="special_function">\n<{_DSML}parameter name="arg1">1</{_DSML}parameter>\n</{_DSML}invoke>\n'
        ),
        calls=(("special_function", ARG1),),
    ),
    Case(
        "ours-dsml-json-body",
        DS,
        _dsml(f'<{_DSML}invoke name="special_function">\n{{"arg1": 1}}\n</{_DSML}invoke>\n'),
        calls=(("special_function", ARG1),),
    ),
    Case(
        "ours-dsml-multiline-code",
        DS,
        _v4(_dinvoke("python", _dparam("code", PY_HELLO, True))),
        calls=(("python", {"code": PY_HELLO}),),
    ),
    Case(
        "ours-dsml-markup-in-value",
        DS,
        _dsml(_dinvoke("html", _dparam("markup", '<p class="x">a &amp; b</p>', True))),
        calls=(("html", {"markup": '<p class="x">a &amp; b</p>'}),),
    ),
    Case(
        "ours-dsml-nullable",
        DS,
        _dsml(_dinvoke("set_nullable_str", _dparam("name", "null", False))),
        calls=(("set_nullable_str", {"name": None}),),
    ),
    Case(
        "ours-dsml-call-in-reasoning",
        DS,
        "maybe " + _DSCALL + "</think>\n\nNo call needed.",
        "No call needed.",
        reasoning="maybe " + _DSCALL,
        started=True,
    ),
    Case(
        "ours-dsml-truncated",
        DS,
        f'<{_DSML}tool_calls>\n<{_DSML}invoke name="special_function">\n<{_DSML}parameter name="arg1" string="false">1',
        f'<{_DSML}tool_calls>\n<{_DSML}invoke name="special_function">\n<{_DSML}parameter name="arg1" string="false">1',
        flags=MALFORMED,
    ),
    Case(
        "ours-dsml-minimax-form-is-malformed",
        DS,
        f'<{_DSML}function_calls>\n<invoke name="special_function">\n</invoke>\n</{_DSML}function_calls>',
        f'<{_DSML}function_calls>\n<invoke name="special_function">\n</invoke>\n</{_DSML}function_calls>',
        flags=MALFORMED,
    ),
    Case(
        "ours-dsml-unclosed-think",
        DS,
        "still going",
        reasoning="still going",
        started=True,
        flags=UNCLOSED,
    ),
]


# --- Kimi K2: <|tool_calls_section_begin|><|tool_call_begin|>functions.NAME:N.., <think> ----

KK = Family.KIMI_K2
_KSEC, _KSEC_END = "<|tool_calls_section_begin|>", "<|tool_calls_section_end|>"


def _kcall(name: str, index: int, args: str, end: str = "<|tool_call_end|>") -> str:
    """A call as Kimi K2's templates write it, its id functions.NAME:INDEX."""
    return f"<|tool_call_begin|>functions.{name}:{index}<|tool_call_argument_begin|>{args}{end}"


def _kimi(*calls: str) -> str:
    return _KSEC + "".join(calls) + _KSEC_END


_KCALL = _kimi(_kcall("special_function", 0, '{"arg1": 1}'))
_KID = ("functions.special_function:0",)
_KTWO = _kcall("special_function", 0, '{"arg1": 1}') + _kcall(
    "python", 1, '{"code": "print(\'hey\')"}'
)
_KTWO_CALLS = (("special_function", ARG1), ("python", {"code": "print('hey')"}))
_KTWO_IDS = ("functions.special_function:0", "functions.python:1")
_COMMAND = {"command": "ls -lah", "cwd": "/home/user/development/exllamav3", "timeout": 10}

KIMI_K2 = [
    # llama.cpp's Kimi-K2-Thinking cases (its moonshotai-Kimi-K2 and Kimi-K2-Instruct
    # cases are the first two again): the model's ids are the calls' ids.
    Case("kimi-content", KK, HELLO, HELLO),
    Case("kimi-call", KK, _KCALL, calls=(("special_function", ARG1),), ids=_KID),
    Case(
        "kimi-thoughts-call",
        KK,
        "<think>I'm thinking about this</think>" + _KCALL,
        reasoning="I'm thinking about this",
        calls=(("special_function", ARG1),),
        ids=_KID,
    ),
    Case(
        "kimi-content-then-call",
        KK,
        HELLO + _KCALL,
        HELLO,
        calls=(("special_function", ARG1),),
        ids=_KID,
    ),
    Case(
        "kimi-parallel",
        KK,
        _kimi(
            _kcall("special_function", 0, '{"arg1": 1}'),
            _kcall("special_function_with_opt", 1, '{"arg1": 1, "arg2": 2}'),
        ),
        calls=(("special_function", ARG1), ("special_function_with_opt", {"arg1": 1, "arg2": 2})),
        ids=("functions.special_function:0", "functions.special_function_with_opt:1"),
    ),
    Case(
        "kimi-parallel-thoughts",
        KK,
        "<think>I need to call two functions</think>" + _kimi(_KTWO),
        reasoning="I need to call two functions",
        calls=_KTWO_CALLS,
        ids=_KTWO_IDS,
    ),
    Case(
        "kimi-multiline-code",
        KK,
        _kimi(_kcall("python", 0, json.dumps({"code": PY_HELLO}))),
        calls=(("python", {"code": PY_HELLO}),),
        ids=("functions.python:0",),
    ),
    Case(
        "kimi-empty-args",
        KK,
        _kimi(_kcall("empty_args", 0, "{}")),
        calls=(("empty_args", {}),),
        ids=("functions.empty_args:0",),
    ),
    # llama.cpp streams a call's arguments as they come; here a call is only ever
    # complete, so a cut one comes back as it was written.
    Case(
        "kimi-partial-call",
        KK,
        _KSEC + _kcall("special_function", 0, '{"arg1": ', end=""),
        _KSEC + _kcall("special_function", 0, '{"arg1":', end=""),
        flags=MALFORMED,
    ),
    Case(
        "kimi-three-calls",
        KK,
        _kimi(
            _kcall("special_function", 0, '{"arg1": 1}'),
            _kcall("python", 1, '{"code": "print(1)"}'),
            _kcall("html", 2, '{"markup": "<p>test</p>"}'),
        ),
        calls=(
            ("special_function", ARG1),
            ("python", {"code": "print(1)"}),
            ("html", {"markup": "<p>test</p>"}),
        ),
        ids=("functions.special_function:0", "functions.python:1", "functions.html:2"),
    ),
    # The calls inside an unclosed reasoning block end it.
    Case(
        "kimi-calls-in-open-thinking",
        KK,
        "<think>I need to call two functions" + _kimi(_KTWO),
        reasoning="I need to call two functions",
        calls=_KTWO_CALLS,
        ids=_KTWO_IDS,
        flags=RECOVERED,
    ),
    Case(
        "kimi-bare-calls-in-open-thinking",
        KK,
        "<think>I need to call two functions"
        + _kcall("special_function", 0, '{"arg1": 1}', end="")
        + _kcall("python", 1, '{"code": "print(\'hey\')"}', end=""),
        reasoning="I need to call two functions",
        calls=_KTWO_CALLS,
        ids=_KTWO_IDS,
        flags=RECOVERED,
    ),
    Case(
        "kimi-bare-call-no-end",
        KK,
        _kcall("execute_command", 0, json.dumps(_COMMAND), end=""),
        calls=(("execute_command", _COMMAND),),
        ids=("functions.execute_command:0",),
    ),
    # llama.cpp's continuations: the prefilled "Hello, " and "I'm" are not in the output.
    Case("kimi-continue-content", KK, "world!\nWhat's up?", "world!\nWhat's up?"),
    Case(
        "kimi-continue-reasoning",
        KK,
        " thinking</think>" + HELLO,
        HELLO,
        reasoning="thinking",
        started=True,
    ),
    Case(
        "ours-kimi-call-then-content",
        KK,
        _KCALL + "\nDone.",
        "Done.",
        calls=(("special_function", ARG1),),
        ids=_KID,
    ),
    Case(
        "ours-kimi-no-call-end",
        KK,
        _kimi(_kcall("special_function", 0, '{"arg1": 1}', end="")),
        calls=(("special_function", ARG1),),
        ids=_KID,
    ),
    Case(
        "ours-kimi-section-never-closed",
        KK,
        _KSEC + _kcall("special_function", 0, '{"arg1": 1}'),
        calls=(("special_function", ARG1),),
        ids=_KID,
    ),
    # An id in another form is not kept; the name still is.
    Case(
        "ours-kimi-plain-name",
        KK,
        _kimi(
            '<|tool_call_begin|>get_time<|tool_call_argument_begin|>{"city": "Paris"}<|tool_call_end|>'
        ),
        calls=(("get_time", {"city": "Paris"}),),
    ),
    Case(
        "ours-kimi-same-id-twice",
        KK,
        _kimi(
            _kcall("get_time", 0, '{"city": "Paris"}'), _kcall("get_time", 0, '{"city": "Oslo"}')
        ),
        calls=(("get_time", {"city": "Paris"}), ("get_time", {"city": "Oslo"})),
        ids=("functions.get_time:0", "call_0"),
    ),
    # Kimi K2's first template writes a client's string arguments as a JSON string.
    Case(
        "ours-kimi-arguments-as-json-string",
        KK,
        _kimi(_kcall("get_time", 0, json.dumps('{"city": "Paris"}'))),
        calls=(("get_time", {"city": "Paris"}),),
        ids=("functions.get_time:0",),
    ),
    Case(
        "ours-kimi-unicode-nested",
        KK,
        _kimi(_kcall("set_config", 3, '{"config": {"city": "Zürich 東京", "tags": [1, null]}}')),
        calls=(("set_config", {"config": {"city": "Zürich 東京", "tags": [1, None]}}),),
        ids=("functions.set_config:3",),
    ),
    Case(
        "ours-kimi-call-in-reasoning",
        KK,
        "<think>maybe " + _KCALL + "</think>No call needed.",
        "No call needed.",
        reasoning="maybe " + _KCALL,
    ),
    Case(
        "ours-kimi-bad-json",
        KK,
        _kimi(_kcall("special_function", 0, '{"arg1": }')),
        _kimi(_kcall("special_function", 0, '{"arg1": }')),
        flags=MALFORMED,
    ),
    Case(
        "ours-kimi-arguments-not-an-object",
        KK,
        _kimi(_kcall("special_function", 0, "[1, 2]")),
        _kimi(_kcall("special_function", 0, "[1, 2]")),
        flags=MALFORMED,
    ),
    Case("ours-kimi-empty-section", KK, _kimi(), _kimi(), flags=MALFORMED),
    Case(
        "ours-kimi-unclosed-think",
        KK,
        "<think>still going",
        reasoning="still going",
        flags=UNCLOSED,
    ),
]


# --- Gemma 4: <|tool_call>call:name{key:value}<tool_call|>, <|channel>thought ------------

G4 = Family.GEMMA4
Q = '<|"|>'  # Gemma's string mark


def _g4(name: str, body: str) -> str:
    return f"<|tool_call>call:{name}{{{body}}}<tool_call|>"


_G4_THOUGHT = "<|channel>thought\nI'm\nthinking<channel|>"
_G4_PARIS = _g4("get_time", f"city:{Q}Paris{Q}")
_PARIS = (("get_time", {"city": "Paris"}),)

GEMMA4 = [
    Case("gemma4-content", G4, HELLO, HELLO),
    Case("gemma4-reasoning-content", G4, _G4_THOUGHT + HELLO, HELLO, reasoning=THINKING),
    Case(
        "gemma4-empty-reasoning",
        G4,
        "<|channel>thought<channel|>" + HELLO,
        HELLO,
        reasoning="",
    ),
    Case(
        "gemma4-call",
        G4,
        _g4("get_time", f"city:{Q}London{Q}"),
        calls=(("get_time", {"city": "London"}),),
    ),
    Case(
        "gemma4-call-space",
        G4,
        _g4("get_time", f"city:{Q}San Francisco{Q}"),
        calls=(("get_time", {"city": "San Francisco"}),),
    ),
    Case("gemma4-empty-args", G4, _g4("empty_args", ""), calls=(("empty_args", {}),)),
    Case("gemma4-content-then-call", G4, HELLO + _G4_PARIS, HELLO, calls=_PARIS),
    Case(
        "gemma4-reasoning-then-call",
        G4,
        _G4_THOUGHT + _G4_PARIS,
        reasoning=THINKING,
        calls=_PARIS,
    ),
    Case(
        "gemma4-parallel",
        G4,
        _g4("get_time", f"city:{Q}London{Q}") + _g4("get_weather", f"city:{Q}Paris{Q}"),
        calls=(("get_time", {"city": "London"}), ("get_weather", {"city": "Paris"})),
    ),
    Case(
        "gemma4-integer",
        G4,
        _g4("special_function", "arg1:42"),
        calls=(("special_function", {"arg1": 42}),),
    ),
    Case(
        "gemma4-negative",
        G4,
        _g4("special_function", "arg1:-7"),
        calls=(("special_function", {"arg1": -7}),),
    ),
    Case("gemma4-decimal", G4, _g4("amount", "orig:3.14"), calls=(("amount", {"orig": 3.14}),)),
    Case(
        "gemma4-exponent", G4, _g4("amount", "orig:1.5e10"), calls=(("amount", {"orig": 1.5e10}),)
    ),
    Case("gemma4-true", G4, _g4("toggle", "enabled:true"), calls=(("toggle", {"enabled": True}),)),
    Case(
        "gemma4-false", G4, _g4("toggle", "enabled:false"), calls=(("toggle", {"enabled": False}),)
    ),
    Case(
        "gemma4-null",
        G4,
        _g4("set_nullable_str", "name:null"),
        calls=(("set_nullable_str", {"name": None}),),
    ),
    Case(
        "gemma4-array",
        G4,
        _g4("todo_list", f"todos:[{Q}buy milk{Q},{Q}walk dog{Q}]"),
        calls=(("todo_list", {"todos": ["buy milk", "walk dog"]}),),
    ),
    Case(
        "gemma4-object",
        G4,
        _g4("set_config", f"config:{{theme:{Q}dark{Q},count:3}}"),
        calls=(("set_config", {"config": {"theme": "dark", "count": 3}}),),
    ),
    Case(
        "gemma4-empty-array",
        G4,
        _g4("todo_list", "todos:[]"),
        calls=(("todo_list", {"todos": []}),),
    ),
    Case(
        "gemma4-empty-object",
        G4,
        _g4("set_config", "config:{}"),
        calls=(("set_config", {"config": {}}),),
    ),
    Case(
        "gemma4-later-empty-reasoning",
        G4,
        "<|channel>thought\n<channel|>" + HELLO + "<|channel>thought\n<channel|>",
        HELLO,
        reasoning="",
    ),
    Case(
        "gemma4-stray-channel-end",
        G4,
        "<|channel>thought\n<channel|>" + HELLO + "<channel|>",
        HELLO,
        reasoning="",
    ),
    Case(
        "gemma4-later-reasoning-and-stray",
        G4,
        "<|channel>thought\n<channel|>" + HELLO + "<|channel>thought\n<channel|><channel|>",
        HELLO,
        reasoning="",
    ),
    Case(
        "gemma4-doubled-channel",
        G4,
        "<|channel><|channel>thought\n<channel|>" + HELLO,
        HELLO,
        reasoning="",
    ),
    Case(
        "ours-gemma4-string-punctuation",
        G4,
        _g4("python", f"code:{Q}{PY_HELLO}{Q}"),
        calls=(("python", {"code": PY_HELLO}),),
    ),
    Case(
        "ours-gemma4-string-with-marks",
        G4,
        _g4(
            "edit",
            f'filename:{Q}a.c{Q},oldString:{Q}if (x) {{ f(a, "b"); }}{Q},newString:{Q}x: [1,2]}}{Q},replaceAll:false',
        ),
        calls=(
            (
                "edit",
                {
                    "filename": "a.c",
                    "oldString": 'if (x) { f(a, "b"); }',
                    "newString": "x: [1,2]}",
                    "replaceAll": False,
                },
            ),
        ),
    ),
    Case(
        "ours-gemma4-unicode",
        G4,
        _g4("python", f"code:{Q}格 — ☃ 🎉{Q}"),
        calls=(("python", {"code": "格 — ☃ 🎉"}),),
    ),
    Case(
        "ours-gemma4-nested",
        G4,
        _g4(
            "todo_list",
            f"todos:[{{item:{Q}Check, then {{fix}}{Q},tags:[[1,2],[]],done:false,note:null}},[{Q}a{Q}]]",
        ),
        calls=(
            (
                "todo_list",
                {
                    "todos": [
                        {
                            "item": "Check, then {fix}",
                            "tags": [[1, 2], []],
                            "done": False,
                            "note": None,
                        },
                        ["a"],
                    ]
                },
            ),
        ),
    ),
    Case(
        "ours-gemma4-blank-space",
        G4,
        '<|tool_call>call:set_config{config:{ theme:<|"|>dark<|"|>, count: 3 }, level: [ 1, 2 ] }\n<tool_call|>',
        calls=(("set_config", {"config": {"theme": "dark", "count": 3}, "level": [1, 2]}),),
    ),
    Case(
        "ours-gemma4-quoted-keys",
        G4,
        _g4("set_config", f"config:{{{Q}the theme{Q}:{Q}dark{Q}}}"),
        calls=(("set_config", {"config": {"the theme": "dark"}}),),
    ),
    Case(
        "ours-gemma4-multiline-content-calls",
        G4,
        "Let me check both.\n" + _G4_PARIS + "\n" + _g4("get_weather", f"city:{Q}Paris{Q}"),
        "Let me check both.",
        calls=(("get_time", {"city": "Paris"}), ("get_weather", {"city": "Paris"})),
    ),
    Case(
        "ours-gemma4-json-body",
        G4,
        '<|tool_call>{"name": "special_function", "arguments": {"arg1": 1}}<tool_call|>',
        calls=(("special_function", ARG1),),
    ),
    Case(
        "ours-gemma4-unclosed-string",
        G4,
        _g4("get_time", f"city:{Q}Paris"),
        _g4("get_time", f"city:{Q}Paris"),
        flags=MALFORMED,
    ),
    Case(
        "ours-gemma4-bare-word",
        G4,
        _g4("get_time", "city:Paris"),
        _g4("get_time", "city:Paris"),
        flags=MALFORMED,
    ),
    Case(
        "ours-gemma4-no-call-prefix",
        G4,
        "<|tool_call>get_time{}<tool_call|>",
        "<|tool_call>get_time{}<tool_call|>",
        flags=MALFORMED,
    ),
    Case(
        "ours-gemma4-truncated",
        G4,
        HELLO + f"<|tool_call>call:get_time{{city:{Q}Par",
        HELLO + f"<|tool_call>call:get_time{{city:{Q}Par",
        flags=MALFORMED,
    ),
    Case(
        "ours-gemma4-restart",
        G4,
        "<|tool_call>call:get_time{city:" + _G4_PARIS,
        "<|tool_call>call:get_time{city:",
        calls=_PARIS,
        flags=MALFORMED,
    ),
    Case(
        "ours-gemma4-call-in-unclosed-reasoning",
        G4,
        "<|channel>thought\nI'm\nthinking" + _G4_PARIS,
        reasoning=THINKING,
        calls=_PARIS,
        flags=RECOVERED,
    ),
    Case(
        "ours-gemma4-call-inside-reasoning",
        G4,
        "<|channel>thought\nmaybe " + _G4_PARIS + "<channel|>" + HELLO,
        HELLO,
        reasoning="maybe " + _G4_PARIS,
    ),
    Case(
        "ours-gemma4-prompt-opened",
        G4,
        "I'm\nthinking<channel|>" + _G4_PARIS,
        reasoning=THINKING,
        calls=_PARIS,
        started=True,
    ),
]


# --- LFM2 / LFM2.5: <|tool_call_start|>[name(key=value, ...)]<|tool_call_end|> ----------

F = Family.LFM2


def _lfm(*calls: str) -> str:
    return "<|tool_call_start|>[" + ", ".join(calls) + "]<|tool_call_end|>"


_FCALL = _lfm("special_function(arg1=1)")
_FTIME = _lfm('get_time(city="Paris")')

LFM2 = [
    Case("lfm2-content", F, HELLO, HELLO),
    Case("lfm2-call", F, _FCALL, calls=(("special_function", ARG1),)),
    Case(
        "lfm2-string-arg",
        F,
        _lfm('get_time(city="XYZCITY")'),
        calls=(("get_time", {"city": "XYZCITY"}),),
    ),
    Case(
        "lfm2-python-true",
        F,
        _lfm("toggle(enabled=True)"),
        calls=(("toggle", {"enabled": True}),),
    ),
    Case(
        "lfm2-python-none",
        F,
        _lfm("set_nullable_str(name=None)"),
        calls=(("set_nullable_str", {"name": None}),),
    ),
    Case(
        "lfm2-nested-python-literal",
        F,
        _lfm('set_config(config={"enabled": True, "count": 3})'),
        calls=(("set_config", {"config": {"enabled": True, "count": 3}}),),
    ),
    Case(
        "lfm2-json-literals",
        F,
        _lfm('set_config(config={"enabled": true, "note": null})'),
        calls=(("set_config", {"config": {"enabled": True, "note": None}}),),
    ),
    Case(
        "lfm2-dotted-name",
        F,
        _lfm(
            'Calendar.create_event(title="demo", participants=["Alice", "Bob"], '
            'metadata={"priority": "high", "reminder": true})'
        ),
        calls=(
            (
                "Calendar.create_event",
                {
                    "title": "demo",
                    "participants": ["Alice", "Bob"],
                    "metadata": {"priority": "high", "reminder": True},
                },
            ),
        ),
    ),
    Case(
        "lfm2-markdown-links-stay-content",
        F,
        "Use this format: [link text](url). Example: [Wikipedia](https://www.wikipedia.org).",
        "Use this format: [link text](url). Example: [Wikipedia](https://www.wikipedia.org).",
    ),
    Case(
        "lfm2-multiline-code",
        F,
        _lfm("python(code=\"def hello():\\n    print('hey')\")"),
        calls=(("python", {"code": "def hello():\n    print('hey')"}),),
    ),
    Case(
        "lfm2-escapes",
        F,
        _lfm('python(code="First line\\nSecond line\\tindented")'),
        calls=(("python", {"code": "First line\nSecond line\tindented"}),),
    ),
    Case(
        "lfm2-escaped-quotes",
        F,
        _lfm('python(code="print(\\"hi\\")")'),
        calls=(("python", {"code": 'print("hi")'}),),
    ),
    Case(
        "lfm2-content-then-call",
        F,
        "Let me check the time." + _FTIME,
        "Let me check the time.",
        calls=(("get_time", {"city": "Paris"}),),
    ),
    Case(
        "lfm2-parallel",
        F,
        _lfm("special_function(arg1=1)", "special_function_with_opt(arg1=1, arg2=2)"),
        calls=(("special_function", ARG1), ("special_function_with_opt", {"arg1": 1, "arg2": 2})),
    ),
    Case("lfm2-empty-args", F, _lfm("empty_args()"), calls=(("empty_args", {}),)),
    Case(
        "lfm2.5-call-thoughts",
        F,
        "<think>I'm\nthinking</think>" + _FCALL,
        reasoning=THINKING,
        calls=(("special_function", ARG1),),
    ),
    Case(
        "lfm2.5-reasoning-content-call",
        F,
        "<think>I need to call a function</think>Let me check the time." + _FTIME,
        "Let me check the time.",
        reasoning="I need to call a function",
        calls=(("get_time", {"city": "Paris"}),),
    ),
    Case(
        "lfm2.5-call-inside-reasoning",
        F,
        "<think>Let me think about " + _FCALL + " hmm</think>" + _FCALL,
        reasoning="Let me think about " + _FCALL + " hmm",
        calls=(("special_function", ARG1),),
    ),
    Case(
        "lfm2.5-reasoning-content",
        F,
        "<think>I'm\nthinking</think>" + HELLO,
        HELLO,
        reasoning=THINKING,
    ),
    Case(
        "ours-lfm2-single-quotes",
        F,
        _lfm("get_time(city='Paris, \"FR\" (yes)')"),
        calls=(("get_time", {"city": 'Paris, "FR" (yes)'}),),
    ),
    Case(
        "ours-lfm2-commas-parens-brackets",
        F,
        _lfm("run_in_terminal(command=\"echo (a, b)]; ls [x], 'y'\")"),
        calls=(("run_in_terminal", {"command": "echo (a, b)]; ls [x], 'y'"}),),
    ),
    Case(
        "ours-lfm2-raw-newlines-in-string",
        F,
        _lfm('python(code="' + PY_HELLO.replace('"', "'") + '")'),
        calls=(("python", {"code": PY_HELLO.replace('"', "'")}),),
    ),
    Case(
        "ours-lfm2-unicode",
        F,
        _lfm('python(code="格 ✓ \\u00e9 \\ud83d\\ude00 a\\/b")'),
        calls=(("python", {"code": "格 ✓ é 😀 a/b"}),),
    ),
    Case(
        "ours-lfm2-numbers",
        F,
        _lfm("amount(orig=-12.5e3)", 'magic_int(ref=42, name="42")'),
        calls=(("amount", {"orig": -12500.0}), ("magic_int", {"ref": 42, "name": "42"})),
    ),
    Case(
        "ours-lfm2-python-list-repr",
        F,
        _lfm("todo_list(todos=['a', \"b\", None, False, 1.5, {'item': 'x', 'done': True}])"),
        calls=(
            ("todo_list", {"todos": ["a", "b", None, False, 1.5, {"item": "x", "done": True}]}),
        ),
    ),
    Case(
        "ours-lfm2-spaces-and-newlines",
        F,
        "<|tool_call_start|>[\n  special_function( arg1 = 1 ),\n  empty_args()\n]<|tool_call_end|>",
        calls=(("special_function", ARG1), ("empty_args", {})),
    ),
    Case(
        "ours-lfm2-json-body",
        F,
        '<|tool_call_start|>[{"name": "special_function", "arguments": {"arg1": 1}}]<|tool_call_end|>',
        calls=(("special_function", ARG1),),
    ),
    Case(
        "ours-lfm2-unclosed-at-the-end",
        F,
        "<|tool_call_start|>[special_function(arg1=1)]",
        calls=(("special_function", ARG1),),
    ),
    Case(
        "ours-lfm2-names-python-refuses",
        F,
        _lfm('get-weather(from="Paris", in=3)'),
        calls=(("get-weather", {"from": "Paris", "in": 3}),),
    ),
    Case(
        "ours-lfm2-argument-twice",
        F,
        _lfm("special_function(arg1=1, arg1=2)"),
        _lfm("special_function(arg1=1, arg1=2)"),
        flags=MALFORMED,
    ),
    Case(
        "ours-lfm2-positional-argument",
        F,
        _lfm("special_function(1)"),
        _lfm("special_function(1)"),
        flags=MALFORMED,
    ),
    Case(
        "ours-lfm2-not-a-call",
        F,
        _lfm("1, 2"),
        _lfm("1, 2"),
        flags=MALFORMED,
    ),
    Case(
        "ours-lfm2-code-is-not-evaluated",
        F,
        _lfm('python(code=__import__("os").getcwd())'),
        _lfm('python(code=__import__("os").getcwd())'),
        flags=MALFORMED,
    ),
    Case(
        "ours-lfm2-truncated",
        F,
        "<|tool_call_start|>[special_function(arg1=",
        "<|tool_call_start|>[special_function(arg1=",
        flags=MALFORMED,
    ),
    Case(
        "ours-lfm2-broken-call-then-a-call",
        F,
        "<|tool_call_start|>[special_function(arg1=" + _FCALL,
        "<|tool_call_start|>[special_function(arg1=",
        calls=(("special_function", ARG1),),
        flags=MALFORMED,
    ),
]


# --- Llama 3.1-3.3: {"name", "parameters"} and <|python_tag|> ---------------------------

L = Family.LLAMA3
_LCALL = '{"name": "special_function", "parameters": {"arg1": 1}}'

LLAMA3 = [
    Case("llama3-content", L, HELLO, HELLO),
    Case("llama3-json-call", L, _LCALL, calls=(("special_function", ARG1),)),
    Case(
        "llama3-json-call-typed",
        L,
        '{"type": "function", "name": "special_function", "parameters": {"arg1": 1}}',
        calls=(("special_function", ARG1),),
    ),
    Case(
        "llama3-python-tag-json", L, "<|python_tag|>" + _LCALL, calls=(("special_function", ARG1),)
    ),
    Case(
        "llama3-builtin-python",
        L,
        "<|python_tag|>python.call(code=\"print('hey')\")",
        calls=(("python", {"code": "print('hey')"}),),
    ),
    Case(
        "llama3-builtin-brave-search",
        L,
        '<|python_tag|>brave_search.call(query="current weather in Menlo Park, California")',
        calls=(("brave_search", {"query": "current weather in Menlo Park, California"}),),
    ),
    Case(
        "llama3-builtin-wolfram",
        L,
        '<|python_tag|>wolfram_alpha.call(query="solve x^3 - 4x^2 + 6x - 24 = 0")',
        calls=(("wolfram_alpha", {"query": "solve x^3 - 4x^2 + 6x - 24 = 0"}),),
    ),
    Case(
        "llama3-code-interpreter",
        L,
        "<|python_tag|>print('hey')",
        calls=(("python", {"code": "print('hey')"}),),
    ),
    Case(
        "ours-llama3-code-multiline",
        L,
        "<|python_tag|>import math\nprint(math.pi)\n",
        calls=(("python", {"code": "import math\nprint(math.pi)"}),),
    ),
    Case(
        "ours-llama3-code-eom",
        L,
        "<|python_tag|>print(1)<|eom_id|>",
        calls=(("python", {"code": "print(1)"}),),
    ),
    Case(
        "ours-llama3-json-eom",
        L,
        '<|python_tag|>{"name": "get_time", "parameters": {"city": "Paris"}}<|eom_id|>',
        calls=(("get_time", {"city": "Paris"}),),
    ),
    Case(
        "ours-llama3-semicolon-calls",
        L,
        '{"name": "get_time", "parameters": {}}; {"name": "get_weather", "parameters": {"city": "Oslo"}}',
        calls=(("get_time", {}), ("get_weather", {"city": "Oslo"})),
    ),
    Case(
        "ours-llama3-newline-calls",
        L,
        '{"name": "get_time", "parameters": {}}\n{"name": "get_weather", "parameters": {"city": "Oslo"}}',
        calls=(("get_time", {}), ("get_weather", {"city": "Oslo"})),
    ),
    Case("ours-llama3-leading-space", L, "\n\n " + _LCALL, calls=(("special_function", ARG1),)),
    Case("ours-llama3-json-not-a-call", L, '{"answer": 42}', '{"answer": 42}'),
    Case("ours-llama3-name-only", L, '{"name": "John"}', '{"name": "John"}'),
    Case("ours-llama3-person", L, '{"name": "John", "age": 30}', '{"name": "John", "age": 30}'),
    Case(
        "ours-llama3-json-after-text",
        L,
        'Here you go: {"name": "x", "parameters": {}}',
        'Here you go: {"name": "x", "parameters": {}}',
    ),
    Case(
        "ours-llama3-call-then-text",
        L,
        '{"name": "get_time", "parameters": {"city": "Paris"}} Let me know.',
        "Let me know.",
        calls=(("get_time", {"city": "Paris"}),),
    ),
    Case(
        "ours-llama3-bare-unknown-name",
        L,
        '{"name": "jump", "parameters": {"height": 3}}',
        '{"name": "jump", "parameters": {"height": 3}}',
        known=frozenset({"get_time"}),
    ),
    Case(
        "ours-llama3-bare-known-name",
        L,
        '{"name": "get_time", "parameters": {"city": "Rome"}}',
        calls=(("get_time", {"city": "Rome"}),),
        known=frozenset({"get_time"}),
    ),
    Case(
        "ours-llama3-tagged-unknown-name",
        L,
        '<|python_tag|>{"name": "jump", "parameters": {"height": 3}}',
        calls=(("jump", {"height": 3}),),
        known=frozenset({"get_time"}),
        unknown=("jump",),
    ),
    Case(
        "ours-llama3-truncated",
        L,
        '{"name": "get_time", "parameters": {"city": "Par',
        '{"name": "get_time", "parameters": {"city": "Par',
        flags=MALFORMED,
    ),
    Case(
        "ours-llama3-invalid",
        L,
        '{"name": "get_time", "parameters": {city: 1}}',
        '{"name": "get_time", "parameters": {city: 1}}',
        flags=MALFORMED,
    ),
    Case(
        "ours-llama3-python-tag-truncated",
        L,
        '<|python_tag|>{"name": "get_time", "param',
        '<|python_tag|>{"name": "get_time", "param',
        flags=MALFORMED,
    ),
    Case("ours-llama3-python-tag-empty", L, "<|python_tag|>", "<|python_tag|>", flags=MALFORMED),
    Case("ours-llama3-arguments-key", L, '{"name": "x", "arguments": {}}', calls=(("x", {}),)),
    Case(
        "ours-llama3-spaced",
        L,
        '{ "name" : "special_function" , "parameters" : { "arg1" : 1 } }',
        calls=(("special_function", ARG1),),
    ),
    Case(
        "ours-llama3-function-wrapper",
        L,
        '{"function": {"name": "x", "arguments": {"a": 1}}}',
        calls=(("x", {"a": 1}),),
    ),
    Case(
        "ours-llama3-other-first-key",
        L,
        '{"parameters": {}, "name": "x"}',
        '{"parameters": {}, "name": "x"}',
    ),
    Case(
        "ours-llama3-builtin-non-literal",
        L,
        "<|python_tag|>brave_search.call(query=foo)",
        calls=(("python", {"code": "brave_search.call(query=foo)"}),),
    ),
    Case(
        "ours-llama3-brace-in-string",
        L,
        '{"name": "python", "parameters": {"code": "x = {1: \'}\'}"}}',
        calls=(("python", {"code": "x = {1: '}'}"}),),
    ),
    Case("ours-llama3-brace-text", L, "{x} is a set", "{x} is a set"),
    Case(
        "ours-llama3-thoughts-call",
        L,
        "<think>plan</think>\n" + _LCALL,
        reasoning="plan",
        calls=(("special_function", ARG1),),
    ),
]


# --- Mistral: [TOOL_CALLS] ----------------------------------------------------------------

M = Family.MISTRAL

MISTRAL = [
    Case("mistral-content", M, HELLO, HELLO),
    Case(
        "nemo-call-with-id",
        M,
        '[TOOL_CALLS][{"name": "special_function", "arguments": {"arg1": 1}, "id": "123456789"}]',
        calls=(("special_function", ARG1),),
        ids=("123456789",),
    ),
    Case(
        "ours-nemo-call-without-id",
        M,
        '[TOOL_CALLS][{"name": "special_function", "arguments": {"arg1": 1}}]',
        calls=(("special_function", ARG1),),
    ),
    Case(
        "ours-nemo-two-calls",
        M,
        '[TOOL_CALLS][{"name": "get_time", "arguments": {"city": "Paris"}, "id": "aaaaaaaa1"}, '
        '{"name": "get_weather", "arguments": {"city": "Paris"}, "id": "aaaaaaaa2"}]',
        calls=(("get_time", {"city": "Paris"}), ("get_weather", {"city": "Paris"})),
        ids=("aaaaaaaa1", "aaaaaaaa2"),
    ),
    Case(
        "ours-mistral-v03-space",
        M,
        '[TOOL_CALLS] [{"name": "get_time", "arguments": {"city": "Paris"}}]',
        calls=(("get_time", {"city": "Paris"}),),
    ),
    Case(
        "mistral-small-3.2-call-id",
        M,
        '[TOOL_CALLS]special_function[CALL_ID]123456789[ARGS]{"arg1": 1}',
        calls=(("special_function", ARG1),),
        ids=("123456789",),
    ),
    Case(
        "mistral-small-3.2-parallel",
        M,
        '[TOOL_CALLS]special_function[CALL_ID]000000001[ARGS]{"arg1": 1}'
        '[TOOL_CALLS]special_function_with_opt[CALL_ID]000000002[ARGS]{"arg1": 1, "arg2": 2}',
        calls=(("special_function", ARG1), ("special_function_with_opt", {"arg1": 1, "arg2": 2})),
        ids=("000000001", "000000002"),
    ),
    Case(
        "devstral-call",
        M,
        '[TOOL_CALLS]special_function[ARGS]{"arg1": 1}',
        calls=(("special_function", ARG1),),
    ),
    Case(
        "devstral-content-then-call",
        M,
        HELLO + '[TOOL_CALLS]special_function[ARGS]{"arg1": 1}',
        HELLO,
        calls=(("special_function", ARG1),),
    ),
    Case("ministral-thoughts", M, "[THINK]I'm\nthinking[/THINK]" + HELLO, HELLO, THINKING),
    Case(
        "ministral-thoughts-call",
        M,
        '[THINK]I\'m\nthinking[/THINK][TOOL_CALLS]special_function[ARGS]{"arg1":1}',
        reasoning=THINKING,
        calls=(("special_function", ARG1),),
    ),
    Case(
        "ministral-call",
        M,
        '[TOOL_CALLS]special_function[ARGS]{"arg1":1}',
        calls=(("special_function", ARG1),),
    ),
    Case(
        "ministral-parallel",
        M,
        '[TOOL_CALLS]special_function[ARGS]{"arg1": 1}[TOOL_CALLS]special_function_with_opt[ARGS]{"arg1": 1, "arg2": 2}',
        calls=(("special_function", ARG1), ("special_function_with_opt", {"arg1": 1, "arg2": 2})),
    ),
    Case(
        "ministral-fake-marker-in-reasoning",
        M,
        '[THINK]Let me think about [TOOL_CALLS]special_function[ARGS]{"arg1":1} and more[/THINK]'
        '[TOOL_CALLS]special_function[ARGS]{"arg1": 1}',
        reasoning='Let me think about [TOOL_CALLS]special_function[ARGS]{"arg1":1} and more',
        calls=(("special_function", ARG1),),
    ),
    Case("ours-magistral-think-tags", M, "<think>plan</think>Answer", "Answer", "plan"),
    Case(
        "ministral-json-content",
        M,
        "[THINK]I need to output the invoice details in JSON[/THINK]```json\n" + INVOICE + "\n```",
        "```json\n" + INVOICE + "\n```",
        "I need to output the invoice details in JSON",
    ),
    Case(
        "ministral-continuation",
        M,
        " thinking[/THINK]Hello, world!\nWhat's up?",
        HELLO,
        "thinking",
        started=True,
    ),
    Case(
        "ours-mistral-truncated-args",
        M,
        '[TOOL_CALLS]special_function[ARGS]{"arg1": ',
        '[TOOL_CALLS]special_function[ARGS]{"arg1":',
        flags=MALFORMED,
    ),
    Case(
        "ours-mistral-no-args-marker",
        M,
        "[TOOL_CALLS]special_function",
        "[TOOL_CALLS]special_function",
        flags=MALFORMED,
    ),
    Case(
        "ours-mistral-not-a-name",
        M,
        "[TOOL_CALLS]I think\nthat is it",
        "[TOOL_CALLS]I think\nthat is it",
        flags=MALFORMED,
    ),
    Case(
        "ours-mistral-args-not-object",
        M,
        '[TOOL_CALLS]f[ARGS]"x"',
        '[TOOL_CALLS]f[ARGS]"x"',
        flags=MALFORMED,
    ),
    Case(
        "ours-mistral-list-entry-without-name",
        M,
        '[TOOL_CALLS][{"arguments": {}}]',
        '[TOOL_CALLS][{"arguments": {}}]',
        flags=MALFORMED,
    ),
    Case(
        "ours-mistral-call-then-text", M, "[TOOL_CALLS]f[ARGS]{}\nDone", "Done", calls=(("f", {}),)
    ),
    Case(
        "ours-mistral-marker-in-args",
        M,
        '[TOOL_CALLS]python[ARGS]{"code": "print(\'[TOOL_CALLS]\')"}',
        calls=(("python", {"code": "print('[TOOL_CALLS]')"}),),
    ),
    Case(
        "ours-mistral-duplicate-model-id",
        M,
        "[TOOL_CALLS]a[CALL_ID]abcdefghi[ARGS]{}[TOOL_CALLS]b[CALL_ID]abcdefghi[ARGS]{}",
        calls=(("a", {}), ("b", {})),
        ids=("abcdefghi", "call_0"),
    ),
    Case("ours-mistral-stray-close", M, "[/THINK]Hello", "Hello"),
    Case("ours-mistral-unclosed", M, "[THINK]still going", reasoning="still going", flags=UNCLOSED),
    Case(
        "ours-mistral-single-object",
        M,
        '[TOOL_CALLS]{"name": "get_time", "arguments": {"city": "Paris"}}',
        calls=(("get_time", {"city": "Paris"}),),
    ),
    Case(
        "ours-mistral-unicode",
        M,
        '[TOOL_CALLS]get_time[ARGS]{"city": "Zürich"}',
        calls=(("get_time", {"city": "Zürich"}),),
    ),
    Case(
        "ours-mistral-lookalike",
        M,
        "[TOOL_CALL] and [ARGS] are text",
        "[TOOL_CALL] and [ARGS] are text",
    ),
    Case(
        "ours-mistral-think-pairs",
        M,
        "[THINK]a </think> b[/THINK]c",
        "c",
        "a </think> b",
    ),
    Case(
        "ours-mistral-unknown",
        M,
        "[TOOL_CALLS]nope[ARGS]{}",
        calls=(("nope", {}),),
        known=frozenset({"get_time"}),
        unknown=("nope",),
    ),
]


# --- DeepSeek R1 / V3 / V3.1 ---------------------------------------------------------------

D = Family.DEEPSEEK
BEGIN, END = "<｜tool▁calls▁begin｜>", "<｜tool▁calls▁end｜>"
CB, CE, SEP = "<｜tool▁call▁begin｜>", "<｜tool▁call▁end｜>", "<｜tool▁sep｜>"
_R1CALL = BEGIN + CB + "function" + SEP + 'special_function\n```json\n{"arg1": 1}```' + CE + END


def _v31(name: str, args: str) -> str:
    return CB + name + SEP + args + CE


DEEPSEEK = [
    Case("deepseek-content", D, HELLO, HELLO),
    Case(
        "r1-call-after-empty-thoughts",
        D,
        "</think>" + _R1CALL,
        reasoning="",
        calls=(("special_function", ARG1),),
        started=True,
    ),
    Case("r1-call", D, _R1CALL, calls=(("special_function", ARG1),)),
    Case("r1-thoughts", D, "I'm\nthinking</think>" + HELLO, HELLO, THINKING, started=True),
    Case("ours-r1-think-tag-emitted", D, "<think>I'm\nthinking</think>" + HELLO, HELLO, THINKING),
    Case("r1-empty-thoughts", D, "</think>" + HELLO, HELLO, "", started=True),
    Case(
        "ours-r1-fence-newline",
        D,
        BEGIN + CB + "function" + SEP + 'get_time\n```json\n{"city": "Paris"}\n```' + CE + END,
        calls=(("get_time", {"city": "Paris"}),),
    ),
    Case(
        "ours-r1-two-calls",
        D,
        BEGIN
        + CB
        + "function"
        + SEP
        + 'get_time\n```json\n{"city": "Paris"}\n```'
        + CE
        + "\n"
        + CB
        + "function"
        + SEP
        + 'get_weather\n```json\n{"city": "Paris"}\n```'
        + CE
        + END,
        calls=(("get_time", {"city": "Paris"}), ("get_weather", {"city": "Paris"})),
    ),
    Case(
        "ours-r1-content-before",
        D,
        "Let me check." + _R1CALL,
        "Let me check.",
        calls=(("special_function", ARG1),),
    ),
    Case(
        "v3.1-call",
        D,
        BEGIN + _v31("get_time", '{"city": "XYZCITY"}') + END,
        calls=(("get_time", {"city": "XYZCITY"}),),
    ),
    Case(
        "v3.1-thoughts-call",
        D,
        "REASONING</think>" + BEGIN + _v31("get_time", '{"city": "Tokyo"}') + END,
        reasoning="REASONING",
        calls=(("get_time", {"city": "Tokyo"}),),
        started=True,
    ),
    Case(
        "v3.1-thoughts-content-calls",
        D,
        "REASONING</think>CONTENT"
        + BEGIN
        + _v31("get_time", '{"city": "Paris"}')
        + _v31("get_weather", '{"city": "Paris"}')
        + END,
        "CONTENT",
        "REASONING",
        calls=(("get_time", {"city": "Paris"}), ("get_weather", {"city": "Paris"})),
        started=True,
    ),
    Case(
        "v3.1-thoughts-content",
        D,
        "REASONING</think>\nCONTENT",
        "CONTENT",
        "REASONING",
        started=True,
    ),
    Case("v3.1-content", D, "CONTENT", "CONTENT"),
    Case(
        "v3.1-continuation",
        D,
        " thinking</think>Hello, world!\nWhat's up?",
        HELLO,
        "thinking",
        started=True,
    ),
    Case(
        "ours-deepseek-variant-opener",
        D,
        "<｜tool_calls_begin｜>" + _v31("get_time", '{"city": "Paris"}') + END,
        calls=(("get_time", {"city": "Paris"}),),
    ),
    Case(
        "ours-deepseek-missing-outer-begin",
        D,
        _v31("get_time", '{"city": "Paris"}'),
        calls=(("get_time", {"city": "Paris"}),),
    ),
    Case(
        "ours-deepseek-missing-outer-end",
        D,
        BEGIN + _v31("get_time", '{"city": "Paris"}'),
        calls=(("get_time", {"city": "Paris"}),),
    ),
    Case(
        "ours-deepseek-missing-call-end",
        D,
        BEGIN + CB + "get_time" + SEP + '{"city": "Paris"}',
        calls=(("get_time", {"city": "Paris"}),),
    ),
    Case(
        "ours-deepseek-truncated",
        D,
        BEGIN + CB + "get_time" + SEP + '{"city": "Pa',
        BEGIN + CB + "get_time" + SEP + '{"city": "Pa',
        flags=MALFORMED,
    ),
    Case(
        "ours-deepseek-no-sep",
        D,
        BEGIN + CB + "get_time {}" + CE + END,
        BEGIN + CB + "get_time {}" + CE + END,
        flags=MALFORMED,
    ),
    Case(
        "ours-deepseek-call-in-reasoning",
        D,
        "<think>maybe " + BEGIN + _v31("get_time", "{}") + END + "</think>Answer",
        "Answer",
        "maybe " + BEGIN + _v31("get_time", "{}") + END,
    ),
    Case(
        "ours-deepseek-unclosed-reasoning-call",
        D,
        "I need the time." + BEGIN + _v31("get_time", '{"city": "Oslo"}') + END,
        reasoning="I need the time.",
        calls=(("get_time", {"city": "Oslo"}),),
        started=True,
        flags=RECOVERED,
    ),
    Case(
        "ours-deepseek-content-after",
        D,
        BEGIN + _v31("get_time", "{}") + END + "Done.",
        "Done.",
        calls=(("get_time", {}),),
    ),
    Case(
        "ours-deepseek-unicode",
        D,
        BEGIN + _v31("get_time", '{"city": "北京"}') + END,
        calls=(("get_time", {"city": "北京"}),),
    ),
    Case(
        "ours-r1-plain-fence",
        D,
        BEGIN + CB + "function" + SEP + 'get_time\n```\n{"city": "Paris"}\n```' + CE + END,
        calls=(("get_time", {"city": "Paris"}),),
    ),
    Case(
        "ours-v3.1-nested-args",
        D,
        BEGIN + _v31("set_config", '{"config": {"theme": "dark", "level": 2}}') + END,
        calls=(("set_config", {"config": {"theme": "dark", "level": 2}}),),
    ),
    Case(
        "ours-r1-no-type",
        D,
        BEGIN + CB + SEP + 'get_time\n```json\n{"city": "Paris"}\n```' + CE + END,
        calls=(("get_time", {"city": "Paris"}),),
    ),
    Case(
        "ours-deepseek-junk-between-calls",
        D,
        BEGIN + _v31("a", "{}") + "junk" + _v31("b", "{}") + END,
        BEGIN + _v31("a", "{}") + "junk" + _v31("b", "{}") + END,
        flags=MALFORMED,
    ),
    Case(
        "ours-deepseek-restart",
        D,
        BEGIN + CB + "broken" + BEGIN + _v31("get_time", "{}") + END,
        BEGIN + CB + "broken",
        calls=(("get_time", {}),),
        flags=MALFORMED,
    ),
]


# --- gpt-oss harmony -------------------------------------------------------------------------

G = Family.HARMONY
_A = "<|channel|>analysis<|message|>"
_F = "<|start|>assistant<|channel|>final<|message|>"
_EDIT_ARGS = '{"oldString": "if (part < railCount - 1) {", "newString": "if (part < 4) {", "replaceAll": false}'

HARMONY = [
    Case("gptoss-final", G, "<|channel|>final<|message|>" + HELLO, HELLO),
    Case("gptoss-commentary", G, "<|channel|>commentary<|message|>" + HELLO, HELLO),
    Case("gptoss-analysis-final", G, _A + THINKING + "<|end|>" + _F + HELLO, HELLO, THINKING),
    Case("gptoss-analysis-partial", G, _A + THINKING, reasoning=THINKING, flags=UNCLOSED),
    Case(
        "gptoss-recipient-in-role",
        G,
        ' to=functions.special_function<|channel|>analysis<|message|>{"arg1": 1}',
        calls=(("special_function", ARG1),),
    ),
    Case(
        "gptoss-recipient-in-channel",
        G,
        '<|channel|>analysis to=functions.special_function<|message|>{"arg1": 1}',
        calls=(("special_function", ARG1),),
    ),
    Case(
        "gptoss-constrain",
        G,
        ' to=functions.special_function<|channel|>analysis <|constrain|>json<|message|>{"arg1": 1}',
        calls=(("special_function", ARG1),),
    ),
    Case(
        "gptoss-commentary-call",
        G,
        '<|channel|>commentary to=functions.special_function<|message|>{"arg1": 1}',
        calls=(("special_function", ARG1),),
    ),
    Case(
        "gptoss-thoughts-call",
        G,
        _A
        + THINKING
        + '<|end|><|start|>assistant to=functions.special_function<|channel|>analysis<|message|>{"arg1": 1}',
        reasoning=THINKING,
        calls=(("special_function", ARG1),),
    ),
    Case(
        "gptoss-complex-call",
        G,
        _A
        + "Thinking about edit...<|end|><|start|>assistant<|channel|>commentary to=functions.edit <|constrain|>json"
        "<|message|>" + _EDIT_ARGS,
        reasoning="Thinking about edit...",
        calls=(
            (
                "edit",
                {
                    "oldString": "if (part < railCount - 1) {",
                    "newString": "if (part < 4) {",
                    "replaceAll": False,
                },
            ),
        ),
    ),
    Case(
        "gptoss-structured-output",
        G,
        _A
        + "I need to output the invoice details in JSON<|end|><|start|>assistant<|channel|>final <|constrain|>json"
        "<|message|>" + INVOICE,
        INVOICE,
        "I need to output the invoice details in JSON",
    ),
    Case(
        "gptoss-builtin-in-role",
        G,
        _A + "I will execute python to say hello<|end|>"
        "<|start|>assistant to=container.exec<|channel|>commentary<|message|>python3 -c 'print(\"hello\")'",
        "<|start|>assistant to=container.exec<|channel|>commentary<|message|>python3 -c 'print(\"hello\")'",
        "I will execute python to say hello",
        flags=MALFORMED,
    ),
    Case(
        "gptoss-builtin-in-channel",
        G,
        _A + "I will execute python to say hello<|end|>"
        '<|start|>assistant<|channel|>commentary to=python <|constrain|>code<|message|>print("hello")',
        '<|start|>assistant<|channel|>commentary to=python <|constrain|>code<|message|>print("hello")',
        "I will execute python to say hello",
        flags=MALFORMED,
    ),
    Case(
        "gptoss-to-assistant-before-reasoning",
        G,
        "<|channel|>commentary to=assistant" + _A + THINKING + "<|end|>" + _F + HELLO,
        HELLO,
        THINKING,
    ),
    Case(
        "gptoss-to-assistant-before-final",
        G,
        _A
        + THINKING
        + "<|end|><|start|>assistant<|channel|>commentary to=assistant<|channel|>final<|message|>"
        + HELLO,
        HELLO,
        THINKING,
    ),
    Case(
        "gptoss-continuation",
        G,
        " thinking<|end|>" + _F + HELLO,
        HELLO,
        "thinking",
        started=True,
    ),
    Case("ours-gptoss-return", G, "<|channel|>final<|message|>Hi<|return|>", "Hi"),
    Case(
        "ours-gptoss-call-token",
        G,
        '<|channel|>commentary to=functions.get_time <|constrain|>json<|message|>{"city": "Paris"}<|call|>',
        calls=(("get_time", {"city": "Paris"}),),
    ),
    Case(
        "ours-gptoss-preamble-call",
        G,
        _A
        + "Need time.<|end|><|start|>assistant<|channel|>commentary<|message|>Let me check.<|end|>"
        '<|start|>assistant<|channel|>commentary to=functions.get_time <|constrain|>json<|message|>{"city": "Oslo"}<|call|>',
        "Let me check.",
        "Need time.",
        calls=(("get_time", {"city": "Oslo"}),),
    ),
    Case(
        "ours-gptoss-two-calls",
        G,
        '<|channel|>commentary to=functions.get_time<|message|>{"city": "A"}<|call|>'
        '<|start|>assistant<|channel|>commentary to=functions.get_weather<|message|>{"city": "B"}<|call|>',
        calls=(("get_time", {"city": "A"}), ("get_weather", {"city": "B"})),
    ),
    Case(
        "ours-gptoss-bad-json",
        G,
        "<|channel|>commentary to=functions.get_time<|message|>{city: A}<|call|>",
        "<|channel|>commentary to=functions.get_time<|message|>{city: A}",
        flags=MALFORMED,
    ),
    Case(
        "ours-gptoss-truncated-call",
        G,
        '<|channel|>commentary to=functions.get_time<|message|>{"city": "Pa',
        '<|channel|>commentary to=functions.get_time<|message|>{"city": "Pa',
        flags=MALFORMED,
    ),
    Case(
        "ours-gptoss-call-text-in-analysis",
        G,
        _A + "I could send to=functions.x <|constrain|>json {} here<|end|>" + _F + "Hi",
        "Hi",
        "I could send to=functions.x <|constrain|>json {} here",
    ),
    Case(
        "ours-gptoss-preamble-and-final",
        G,
        "<|channel|>commentary<|message|>Checking.<|end|>" + _F + "Done.",
        "Checking.\n\nDone.",
    ),
    Case("ours-gptoss-no-header", G, "Just text.", "Just text."),
    Case("ours-gptoss-empty", G, "", ""),
    Case("ours-gptoss-closed-analysis-only", G, _A + "done<|end|>", reasoning="done"),
    Case(
        "ours-gptoss-dangling-header",
        G,
        "<|channel|>final<|message|>Hi<|end|><|start|>assistant",
        "Hi",
    ),
    Case(
        "ours-gptoss-unknown-tool",
        G,
        "<|channel|>commentary to=functions.nope<|message|>{}",
        calls=(("nope", {}),),
        known=frozenset({"get_time"}),
        unknown=("nope",),
    ),
    Case(
        "ours-gptoss-args-not-object",
        G,
        "<|channel|>commentary to=functions.get_time<|message|>[1]",
        "<|channel|>commentary to=functions.get_time<|message|>[1]",
        flags=MALFORMED,
    ),
    Case(
        "ours-gptoss-empty-function-name",
        G,
        "<|channel|>commentary to=functions.<|message|>{}",
        "<|channel|>commentary to=functions.<|message|>{}",
        flags=MALFORMED,
    ),
]


# --- Generic: bare JSON calls (and <tool_call> tags) -------------------------------------------

J = Family.GENERIC

GENERIC = [
    Case("generic-content", J, HELLO, HELLO),
    Case(
        "generic-call",
        J,
        '{"name": "get_time", "arguments": {"city": "Paris"}}',
        calls=(("get_time", {"city": "Paris"}),),
    ),
    Case(
        "generic-tool-calls",
        J,
        '{"tool_calls": [{"name": "get_time", "arguments": {"city": "A"}, "id": "x1"}, '
        '{"name": "get_weather", "arguments": {"city": "B"}}]}',
        calls=(("get_time", {"city": "A"}), ("get_weather", {"city": "B"})),
        ids=("x1", "call_0"),
    ),
    Case(
        "generic-tool-call",
        J,
        '{"tool_call": {"name": "special_function", "arguments": {"arg1": 1}}}',
        calls=(("special_function", ARG1),),
    ),
    Case(
        "ours-generic-list", J, '[{"name": "get_time", "arguments": {}}]', calls=(("get_time", {}),)
    ),
    Case(
        "ours-generic-fenced",
        J,
        '```json\n{"name": "get_time", "arguments": {"city": "Paris"}}\n```',
        calls=(("get_time", {"city": "Paris"}),),
    ),
    Case(
        "ours-generic-plain-fence",
        J,
        '```\n{"name": "get_time", "arguments": {"city": "Paris"}}\n```',
        calls=(("get_time", {"city": "Paris"}),),
    ),
    Case(
        "ours-generic-fenced-not-a-call",
        J,
        '```json\n{"answer": 42}\n```',
        '```json\n{"answer": 42}\n```',
    ),
    Case("ours-generic-hermes-tags", J, _HCALL, calls=(("special_function", ARG1),)),
    Case("generic-response-is-content", J, '{"response": "Hi"}', '{"response": "Hi"}'),
    Case("ours-generic-number-list", J, "[1, 2]", "[1, 2]"),
    Case(
        "ours-generic-json-after-text",
        J,
        'Sure! {"name": "get_time", "arguments": {}}',
        'Sure! {"name": "get_time", "arguments": {}}',
    ),
    Case(
        "ours-generic-unknown-bare",
        J,
        '{"name": "jump", "arguments": {}}',
        '{"name": "jump", "arguments": {}}',
        known=frozenset({"get_time"}),
    ),
    Case(
        "ours-generic-truncated",
        J,
        '{"name": "get_time", "arguments": {"ci',
        '{"name": "get_time", "arguments": {"ci',
        flags=MALFORMED,
    ),
    Case(
        "ours-generic-thoughts-call",
        J,
        '<think>plan</think>\n{"name": "get_time", "arguments": {}}',
        reasoning="plan",
        calls=(("get_time", {}),),
    ),
    Case(
        "ours-generic-fenced-then-text",
        J,
        '```json\n{"name": "get_time", "arguments": {}}\n```\nDone.',
        "Done.",
        calls=(("get_time", {}),),
    ),
    Case(
        "ours-generic-fence-unclosed",
        J,
        '```json\n{"name": "get_time", "arguments": {}}',
        calls=(("get_time", {}),),
    ),
    Case("ours-generic-code-fence", J, "```python\nprint(1)\n```", "```python\nprint(1)\n```"),
    Case(
        "ours-generic-parameters-key",
        J,
        '{"name": "get_time", "parameters": {"city": "Paris"}}',
        calls=(("get_time", {"city": "Paris"}),),
    ),
    Case("ours-generic-backtick-text", J, "`code` here", "`code` here"),
]


# --- NVIDIA Nemotron Nano v2: <TOOLCALL>[{json}, ...]</TOOLCALL> --------------------

N = Family.NEMOTRON_V2
_NCALL = '<TOOLCALL>[{"name": "special_function", "arguments": {"arg1": 1}}]</TOOLCALL>'


def _ncalls(*calls: str) -> str:
    return "<TOOLCALL>[" + ", ".join(calls) + "]</TOOLCALL>"


def _jcall(name: str, args: str) -> str:
    return '{"name": "' + name + '", "arguments": ' + args + "}"


NEMOTRON_V2 = [
    # llama.cpp's two NVIDIA-Nemotron-Nano-v2 cases: the prompt opens <think>.
    Case(
        "nemotron-v2-thoughts-call",
        N,
        "I'm\nthinking\n</think>\n" + _NCALL,
        reasoning=THINKING,
        calls=(("special_function", ARG1),),
        started=True,
    ),
    Case(
        "nemotron-v2-thoughts-call-newlines",
        N,
        "I'm\nthinking\n</think>\n\n" + _NCALL + "\n",
        reasoning=THINKING,
        calls=(("special_function", ARG1),),
        started=True,
    ),
    Case("nemotron-v2-continuation", N, "</think>" + HELLO, HELLO, "", started=True),
    Case("ours-nemotron-v2-content", N, HELLO, HELLO),
    Case("ours-nemotron-v2-thoughts", N, "<think>I'm\nthinking</think>" + HELLO, HELLO, THINKING),
    Case("ours-nemotron-v2-call", N, _NCALL, calls=(("special_function", ARG1),)),
    Case(
        "ours-nemotron-v2-content-then-call",
        N,
        "Let me check.\n" + _ncalls(_jcall("get_time", '{"city": "Paris"}')),
        "Let me check.",
        calls=(("get_time", {"city": "Paris"}),),
    ),
    Case(
        "ours-nemotron-v2-parallel",
        N,
        _ncalls(
            _jcall("get_time", '{"city": "Paris"}'), _jcall("get_weather", '{"city": "Tokyo"}')
        ),
        calls=(("get_time", {"city": "Paris"}), ("get_weather", {"city": "Tokyo"})),
    ),
    Case(
        "ours-nemotron-v2-brackets-and-markers-in-strings",
        N,
        _ncalls(_jcall("python", '{"code": "x = [1, 2]\\nprint(\\"</TOOLCALL>]\\")"}')),
        calls=(("python", {"code": 'x = [1, 2]\nprint("</TOOLCALL>]")'}),),
    ),
    Case(
        "ours-nemotron-v2-unicode",
        N,
        _ncalls(_jcall("get_time", '{"city": "São Paulo \\u2013 東京"}')),
        calls=(("get_time", {"city": "São Paulo – 東京"}),),
    ),
    Case(
        "ours-nemotron-v2-nested",
        N,
        _ncalls(_jcall("set_config", '{"config": {"a": [1, {"b": null}], "c": true}}')),
        calls=(("set_config", {"config": {"a": [1, {"b": None}], "c": True}}),),
    ),
    Case(
        "ours-nemotron-v2-arguments-as-string",
        N,
        _ncalls(_jcall("special_function", '"{\\"arg1\\": 1}"')),
        calls=(("special_function", ARG1),),
    ),
    Case(
        "ours-nemotron-v2-empty-arguments",
        N,
        _ncalls(_jcall("empty_args", "{}")),
        calls=(("empty_args", {}),),
    ),
    Case(
        "ours-nemotron-v2-single-object",
        N,
        "<TOOLCALL>" + _jcall("special_function", '{"arg1": 1}') + "</TOOLCALL>",
        calls=(("special_function", ARG1),),
    ),
    Case(
        "ours-nemotron-v2-unclosed-at-end",
        N,
        "<TOOLCALL>[" + _jcall("special_function", '{"arg1": 1}') + "]",
        calls=(("special_function", ARG1),),
    ),
    Case(
        "ours-nemotron-v2-call-then-text",
        N,
        _NCALL + "\nDone.",
        "Done.",
        calls=(("special_function", ARG1),),
    ),
    Case(
        "ours-nemotron-v2-broken-json",
        N,
        '<TOOLCALL>[{"name": "special_function", "arguments": {"arg1": 1]</TOOLCALL>',
        '<TOOLCALL>[{"name": "special_function", "arguments": {"arg1": 1]</TOOLCALL>',
        flags=MALFORMED,
    ),
    Case(
        "ours-nemotron-v2-not-json",
        N,
        "<TOOLCALL>special_function(arg1=1)</TOOLCALL>",
        "<TOOLCALL>special_function(arg1=1)</TOOLCALL>",
        flags=MALFORMED,
    ),
    Case(
        "ours-nemotron-v2-entry-without-name",
        N,
        '<TOOLCALL>[{"arguments": {}}]</TOOLCALL>',
        '<TOOLCALL>[{"arguments": {}}]</TOOLCALL>',
        flags=MALFORMED,
    ),
    Case(
        "ours-nemotron-v2-cut-off",
        N,
        '<TOOLCALL>[{"name": "special_function", "arguments": {"ar',
        '<TOOLCALL>[{"name": "special_function", "arguments": {"ar',
        flags=MALFORMED,
    ),
    Case(
        "ours-nemotron-v2-empty-list",
        N,
        "<TOOLCALL>[]</TOOLCALL>",
        "<TOOLCALL>[]</TOOLCALL>",
        flags=MALFORMED,
    ),
    Case(
        "ours-nemotron-v2-call-in-reasoning-stays",
        N,
        "<think>maybe " + _NCALL + "</think>" + HELLO,
        HELLO,
        "maybe " + _NCALL,
    ),
    Case(
        "ours-nemotron-v2-lookalike",
        N,
        "Write <TOOL_CALL> or <TOOLCAL>, a < b.",
        "Write <TOOL_CALL> or <TOOLCAL>, a < b.",
    ),
    Case(
        "ours-nemotron-v2-unknown-tool",
        N,
        _ncalls(_jcall("other", "{}")),
        calls=(("other", {}),),
        known=frozenset({"special_function"}),
        unknown=("other",),
    ),
]


# --- IBM Granite 3.x: <|tool_call|>[{json}, ...] (the list ends the answer) --------

G3 = Family.GRANITE3
_G3CALL = '<|tool_call|>[{"name": "special_function", "arguments": {"arg1": 1}}]'


def _g3calls(*calls: str) -> str:
    return "<|tool_call|>[" + ", ".join(calls) + "]"


GRANITE3 = [
    # llama.cpp's ibm-granite-granite-3.3-2B-Instruct cases.
    Case("granite3-content", G3, HELLO, HELLO),
    Case("granite3-thoughts", G3, "<think>I'm\nthinking</think>" + HELLO, HELLO, THINKING),
    # Its pending WRAPPED_WITH_REASONING case: the answer's <response> tags are dropped.
    Case(
        "granite3-thoughts-response",
        G3,
        "<think>I'm\nthinking</think><response>" + HELLO + "</response>",
        HELLO,
        THINKING,
    ),
    Case("granite3-continuation", G3, " thinking</think>" + HELLO, HELLO, "thinking", started=True),
    # The rest are ours (llama.cpp's autoparser has no Granite 3 call case).
    Case("ours-granite3-call", G3, _G3CALL, calls=(("special_function", ARG1),)),
    Case(
        "ours-granite3-content-then-call",
        G3,
        "Let me check. " + _g3calls(_jcall("get_time", '{"city": "Paris"}')),
        "Let me check.",
        calls=(("get_time", {"city": "Paris"}),),
    ),
    Case(
        "ours-granite3-parallel",
        G3,
        _g3calls(
            _jcall("get_time", '{"city": "Paris"}'), _jcall("get_weather", '{"city": "Tokyo"}')
        ),
        calls=(("get_time", {"city": "Paris"}), ("get_weather", {"city": "Tokyo"})),
    ),
    Case(
        "ours-granite3-thoughts-then-call",
        G3,
        "<think>I'm\nthinking</think>" + _G3CALL,
        reasoning=THINKING,
        calls=(("special_function", ARG1),),
    ),
    Case(
        "ours-granite3-call-in-response",
        G3,
        "<think>ok</think><response>" + _G3CALL + "</response>",
        reasoning="ok",
        calls=(("special_function", ARG1),),
    ),
    Case(
        "ours-granite3-brackets-quotes-in-strings",
        G3,
        _g3calls(_jcall("python", '{"code": "a = [\\"]\\"]\\n# <|tool_call|> {"}')),
        calls=(("python", {"code": 'a = ["]"]\n# <|tool_call|> {'}),),
    ),
    Case(
        "ours-granite3-unicode",
        G3,
        _g3calls(_jcall("get_time", '{"city": "Zürich 🌧 \\ud83c\\udf1e"}')),
        calls=(("get_time", {"city": "Zürich 🌧 🌞"}),),
    ),
    Case(
        "ours-granite3-nested",
        G3,
        _g3calls(_jcall("todo_list", '{"todos": [{"id": 1, "tags": ["a", "b"]}, []]}')),
        calls=(("todo_list", {"todos": [{"id": 1, "tags": ["a", "b"]}, []]}),),
    ),
    Case(
        "ours-granite3-arguments-as-string",
        G3,
        _g3calls(_jcall("get_time", '"{\\"city\\": \\"Paris\\"}"')),
        calls=(("get_time", {"city": "Paris"}),),
    ),
    Case(
        "ours-granite3-space-after-marker",
        G3,
        "<|tool_call|> \n" + _g3calls(_jcall("empty_args", "{}"))[len("<|tool_call|>") :],
        calls=(("empty_args", {}),),
    ),
    Case(
        "ours-granite3-single-object",
        G3,
        "<|tool_call|>" + _jcall("special_function", '{"arg1": 1}'),
        calls=(("special_function", ARG1),),
    ),
    Case(
        "ours-granite3-call-then-text",
        G3,
        _G3CALL + "\nDone.",
        "Done.",
        calls=(("special_function", ARG1),),
    ),
    Case(
        "ours-granite3-not-json",
        G3,
        "<|tool_call|>special_function(arg1=1)",
        "<|tool_call|>special_function(arg1=1)",
        flags=MALFORMED,
    ),
    Case(
        "ours-granite3-broken-json",
        G3,
        '<|tool_call|>[{"name": "special_function", "arguments": {"arg1": 1]}',
        '<|tool_call|>[{"name": "special_function", "arguments": {"arg1": 1]}',
        flags=MALFORMED,
    ),
    Case(
        "ours-granite3-cut-off",
        G3,
        '<|tool_call|>[{"name": "special_function", "argu',
        '<|tool_call|>[{"name": "special_function", "argu',
        flags=MALFORMED,
    ),
    Case(
        "ours-granite3-bare-marker",
        G3,
        "<|tool_call|>",
        "<|tool_call|>",
        flags=MALFORMED,
    ),
    Case(
        "ours-granite3-arguments-not-object",
        G3,
        '<|tool_call|>[{"name": "get_time", "arguments": [1]}]',
        '<|tool_call|>[{"name": "get_time", "arguments": [1]}]',
        flags=MALFORMED,
    ),
    Case(
        "ours-granite3-lookalike",
        G3,
        "Use <|tool_calls|> or <tool_call>, a < b.",
        "Use <|tool_calls|> or <tool_call>, a < b.",
    ),
    Case(
        "ours-granite3-unclosed-think",
        G3,
        "<think>still going",
        reasoning="still going",
        flags=UNCLOSED,
    ),
]


# --- Command R7B, Command A, Cohere2 MoE: <|START_ACTION|>[{"tool_call_id", "tool_name",
# "parameters"}, ...]<|END_ACTION|>, reasoning in <|START_THINKING|> --------------------

CR = Family.COMMAND_R7B
_CTHINK = "<|START_THINKING|>I'm\nthinking<|END_THINKING|>"


def _ccall(number: int, name: str, parameters: str) -> str:
    return f'{{"tool_call_id": "{number}", "tool_name": "{name}", "parameters": {parameters}}}'


def _action(*calls: str) -> str:
    """The calls as Command R7B's and Command A's templates write them, one a line."""
    return "<|START_ACTION|>[\n    " + ",\n    ".join(calls) + "\n]<|END_ACTION|>"


_CCALL = _action(_ccall(0, "special_function", '{"arg1": 1}'))
_CPARTIAL = '<|START_ACTION|>[\n    {"tool_call_id": "0", "tool_name": "special_function", '

COMMAND_R7B = [
    # llama.cpp's CohereForAI-c4ai-command-r7b-12-2024-tool_use cases (it keeps the
    # model's "0" as the call's id; ours are our own). Its case with reasoning_format
    # none (the thoughts kept in the content) has no counterpart here.
    Case("command-r7b-response", CR, "<|START_RESPONSE|>" + HELLO + "<|END_RESPONSE|>", HELLO),
    Case(
        "command-r7b-thoughts",
        CR,
        _CTHINK + "<|START_RESPONSE|>" + HELLO + "<|END_RESPONSE|>",
        HELLO,
        THINKING,
    ),
    Case(
        "command-r7b-thoughts-call",
        CR,
        _CTHINK + _CCALL,
        reasoning=THINKING,
        calls=(("special_function", ARG1),),
    ),
    # Its partial call, here the whole output: cut off, so kept as content.
    Case(
        "command-r7b-thoughts-cut-off-call",
        CR,
        _CTHINK + _CPARTIAL,
        _CPARTIAL.rstrip(),
        THINKING,
        flags=MALFORMED,
    ),
    Case(
        "command-r7b-empty-thoughts-call",
        CR,
        "<|START_THINKING|><|END_THINKING|>" + _CCALL,
        reasoning="",
        calls=(("special_function", ARG1),),
    ),
    # llama.cpp's Cohere2MoE cases: the prompt opens <|START_THINKING|>, the answer is in
    # <|START_TEXT|>.
    Case(
        "cohere2moe-thoughts",
        CR,
        "I'm\nthinking<|END_THINKING|><|START_TEXT|>" + HELLO + "<|END_TEXT|>",
        HELLO,
        THINKING,
        started=True,
    ),
    Case(
        "cohere2moe-empty-thoughts",
        CR,
        "<|END_THINKING|><|START_TEXT|>" + HELLO + "<|END_TEXT|>",
        HELLO,
        "",
        started=True,
    ),
    Case(
        "cohere2moe-json-answer",
        CR,
        "I need to output the invoice details in JSON<|END_THINKING|><|START_TEXT|>"
        + INVOICE
        + "<|END_TEXT|>",
        INVOICE,
        "I need to output the invoice details in JSON",
        started=True,
    ),
    Case(
        "cohere2moe-thoughts-call",
        CR,
        "I'm\nthinking<|END_THINKING|>" + _CCALL,
        reasoning=THINKING,
        calls=(("special_function", ARG1),),
        started=True,
    ),
    Case(
        "cohere2moe-empty-thoughts-call",
        CR,
        "<|END_THINKING|>" + _CCALL,
        reasoning="",
        calls=(("special_function", ARG1),),
        started=True,
    ),
    Case(
        "cohere2moe-array-argument",
        CR,
        "<|END_THINKING|>" + _action(_ccall(0, "todo_list", '{"todos": ["buy milk", "walk dog"]}')),
        reasoning="",
        calls=(("todo_list", {"todos": ["buy milk", "walk dog"]}),),
        started=True,
    ),
    Case(
        "cohere2moe-parallel",
        CR,
        "I'm\nthinking<|END_THINKING|>"
        + _action(
            _ccall(0, "special_function", '{"arg1": 1}'),
            _ccall(1, "python", '{"code": "print(\'hey\')"}'),
        ),
        reasoning=THINKING,
        calls=(("special_function", ARG1), ("python", {"code": "print('hey')"})),
        started=True,
    ),
    Case(
        "cohere2moe-cut-off-call",
        CR,
        "I'm\nthinking<|END_THINKING|>" + _CPARTIAL,
        _CPARTIAL.rstrip(),
        THINKING,
        started=True,
        flags=MALFORMED,
    ),
    Case("ours-command-r7b-call", CR, _CCALL, calls=(("special_function", ARG1),)),
    Case(
        "ours-command-r7b-later-turn-numbers",
        CR,
        _action(_ccall(2, "get_time", '{"city": "Paris"}'), _ccall(3, "get_weather", "{}")),
        calls=(("get_time", {"city": "Paris"}), ("get_weather", {})),
    ),
    Case(
        "ours-command-r7b-parameters-as-string",
        CR,
        _action(_ccall(0, "get_time", '"{\\"city\\": \\"Paris\\"}"')),
        calls=(("get_time", {"city": "Paris"}),),
    ),
    Case(
        "ours-command-r7b-name-and-arguments-keys",
        CR,
        '<|START_ACTION|>[{"name": "special_function", "arguments": {"arg1": 1}}]<|END_ACTION|>',
        calls=(("special_function", ARG1),),
    ),
    Case(
        "ours-command-r7b-single-object",
        CR,
        "<|START_ACTION|>" + _ccall(0, "special_function", '{"arg1": 1}') + "<|END_ACTION|>",
        calls=(("special_function", ARG1),),
    ),
    Case(
        "ours-command-r7b-no-parameters",
        CR,
        '<|START_ACTION|>[{"tool_call_id": "0", "tool_name": "empty_args"}]<|END_ACTION|>',
        calls=(("empty_args", {}),),
    ),
    Case(
        "ours-command-r7b-unclosed-at-end",
        CR,
        _CCALL.removesuffix("<|END_ACTION|>"),
        calls=(("special_function", ARG1),),
    ),
    Case(
        "ours-command-r7b-marker-in-string",
        CR,
        _action(_ccall(0, "python", '{"code": "print(\\"]<|END_ACTION|>\\")"}')),
        calls=(("python", {"code": 'print("]<|END_ACTION|>")'}),),
    ),
    Case(
        "ours-command-r7b-unicode",
        CR,
        _action(_ccall(0, "get_time", '{"city": "São Paulo \\u2013 東京"}')),
        calls=(("get_time", {"city": "São Paulo – 東京"}),),
    ),
    Case(
        "ours-command-r7b-call-then-text",
        CR,
        _CCALL + "\nDone.",
        "Done.",
        calls=(("special_function", ARG1),),
    ),
    Case(
        "ours-command-r7b-broken-json",
        CR,
        '<|START_ACTION|>[{"tool_call_id": "0", "tool_name": "special_function", "parameters": {"arg1": 1]}]<|END_ACTION|>',
        '<|START_ACTION|>[{"tool_call_id": "0", "tool_name": "special_function", "parameters": {"arg1": 1]}]<|END_ACTION|>',
        flags=MALFORMED,
    ),
    Case(
        "ours-command-r7b-not-json",
        CR,
        "<|START_ACTION|>special_function(arg1=1)<|END_ACTION|>",
        "<|START_ACTION|>special_function(arg1=1)<|END_ACTION|>",
        flags=MALFORMED,
    ),
    Case(
        "ours-command-r7b-empty-list",
        CR,
        "<|START_ACTION|>[]<|END_ACTION|>",
        "<|START_ACTION|>[]<|END_ACTION|>",
        flags=MALFORMED,
    ),
    Case(
        "ours-command-r7b-entry-without-name",
        CR,
        '<|START_ACTION|>[{"tool_call_id": "0", "parameters": {}}]<|END_ACTION|>',
        '<|START_ACTION|>[{"tool_call_id": "0", "parameters": {}}]<|END_ACTION|>',
        flags=MALFORMED,
    ),
    Case(
        "ours-command-r7b-call-in-reasoning-stays",
        CR,
        "<|START_THINKING|>maybe "
        + _CCALL
        + "<|END_THINKING|><|START_RESPONSE|>"
        + HELLO
        + "<|END_RESPONSE|>",
        HELLO,
        "maybe " + _CCALL,
    ),
    # Cohere2 MoE may go from its reasoning to the action with no <|END_THINKING|>
    # (llama.cpp ends the block at either): the call is kept.
    Case(
        "ours-cohere2moe-action-without-end-thinking",
        CR,
        "I'll call it." + _CCALL,
        reasoning="I'll call it.",
        calls=(("special_function", ARG1),),
        started=True,
        flags=RECOVERED,
    ),
    Case(
        "ours-command-r7b-unclosed-thinking",
        CR,
        "<|START_THINKING|>still going",
        reasoning="still going",
        flags=UNCLOSED,
    ),
    Case(
        "ours-command-r7b-lookalike",
        CR,
        "Use <|START_ACTIONS|>, START_ACTION or <think>x</think>, a < b.",
        "Use <|START_ACTIONS|>, START_ACTION or <think>x</think>, a < b.",
    ),
    Case(
        "ours-command-r7b-unknown-tool",
        CR,
        _action(_ccall(0, "other", "{}")),
        calls=(("other", {}),),
        known=frozenset({"special_function"}),
        unknown=("other",),
    ),
]


# --- Apertus: <|tools_prefix|>[{"NAME": {args}}, ...]<|tools_suffix|>, <|inner_prefix|> -

AP = Family.APERTUS


def _apertus(*calls: str) -> str:
    """Calls as Apertus's template writes them: each keyed by its name, ', ' between."""
    return "<|tools_prefix|>[" + ", ".join(calls) + "]<|tools_suffix|>"


_APCALL = _apertus('{"special_function": {"arg1": 1}}')
_AP_THOUGHTS = "<|inner_prefix|>I'm\nthinking<|inner_suffix|>"

APERTUS = [
    # llama.cpp's Apertus-8B-Instruct cases.
    Case("apertus-call", AP, _APCALL, calls=(("special_function", ARG1),)),
    # Its continuation: the prefilled "Hello, " is not in the output.
    Case("apertus-continue-content", AP, "world!\nWhat's up?", "world!\nWhat's up?"),
    Case("ours-apertus-content", AP, HELLO, HELLO),
    Case("ours-apertus-deliberation", AP, _AP_THOUGHTS + HELLO, HELLO, THINKING),
    Case(
        "ours-apertus-deliberation-then-call",
        AP,
        _AP_THOUGHTS + _APCALL,
        reasoning=THINKING,
        calls=(("special_function", ARG1),),
    ),
    Case(
        "ours-apertus-content-then-call",
        AP,
        "Let me check." + _apertus('{"get_time": {"city": "Paris"}}'),
        "Let me check.",
        calls=(("get_time", {"city": "Paris"}),),
    ),
    Case(
        "ours-apertus-parallel",
        AP,
        _apertus('{"get_time": {"city": "Paris"}}', '{"get_weather": {"city": "Tokyo"}}'),
        calls=(("get_time", {"city": "Paris"}), ("get_weather", {"city": "Tokyo"})),
    ),
    Case(
        "ours-apertus-arguments-as-string",
        AP,
        _apertus('{"get_time": "{\\"city\\": \\"Paris\\"}"}'),
        calls=(("get_time", {"city": "Paris"}),),
    ),
    Case(
        "ours-apertus-empty-arguments",
        AP,
        _apertus('{"empty_args": {}}'),
        calls=(("empty_args", {}),),
    ),
    Case(
        "ours-apertus-single-object",
        AP,
        '<|tools_prefix|>{"special_function": {"arg1": 1}}<|tools_suffix|>',
        calls=(("special_function", ARG1),),
    ),
    Case(
        "ours-apertus-name-and-arguments-form",
        AP,
        _apertus('{"name": "special_function", "arguments": {"arg1": 1}}'),
        calls=(("special_function", ARG1),),
    ),
    Case(
        "ours-apertus-nested",
        AP,
        _apertus('{"set_config": {"config": {"a": [1, {"b": null}], "c": true}}}'),
        calls=(("set_config", {"config": {"a": [1, {"b": None}], "c": True}}),),
    ),
    Case(
        "ours-apertus-marker-in-string",
        AP,
        _apertus('{"python": {"code": "print(\\"]<|tools_suffix|>\\")"}}'),
        calls=(("python", {"code": 'print("]<|tools_suffix|>")'}),),
    ),
    Case(
        "ours-apertus-unicode",
        AP,
        _apertus('{"get_time": {"city": "São Paulo \\u2013 東京"}}'),
        calls=(("get_time", {"city": "São Paulo – 東京"}),),
    ),
    Case(
        "ours-apertus-unclosed-at-end",
        AP,
        _APCALL.removesuffix("<|tools_suffix|>"),
        calls=(("special_function", ARG1),),
    ),
    Case(
        "ours-apertus-call-then-text",
        AP,
        _APCALL + "\nDone.",
        "Done.",
        calls=(("special_function", ARG1),),
    ),
    Case(
        "ours-apertus-broken-json",
        AP,
        '<|tools_prefix|>[{"special_function": {"arg1": 1]}]<|tools_suffix|>',
        '<|tools_prefix|>[{"special_function": {"arg1": 1]}]<|tools_suffix|>',
        flags=MALFORMED,
    ),
    Case(
        "ours-apertus-not-json",
        AP,
        "<|tools_prefix|>special_function(arg1=1)<|tools_suffix|>",
        "<|tools_prefix|>special_function(arg1=1)<|tools_suffix|>",
        flags=MALFORMED,
    ),
    Case(
        "ours-apertus-empty-list",
        AP,
        "<|tools_prefix|>[]<|tools_suffix|>",
        "<|tools_prefix|>[]<|tools_suffix|>",
        flags=MALFORMED,
    ),
    Case(
        "ours-apertus-two-names-in-one-call",
        AP,
        _apertus('{"get_time": {}, "get_weather": {}}'),
        _apertus('{"get_time": {}, "get_weather": {}}'),
        flags=MALFORMED,
    ),
    Case(
        "ours-apertus-arguments-not-object",
        AP,
        _apertus('{"get_time": [1]}'),
        _apertus('{"get_time": [1]}'),
        flags=MALFORMED,
    ),
    Case(
        "ours-apertus-cut-off",
        AP,
        '<|tools_prefix|>[{"special_function": {"ar',
        '<|tools_prefix|>[{"special_function": {"ar',
        flags=MALFORMED,
    ),
    Case(
        "ours-apertus-call-in-deliberation-stays",
        AP,
        "<|inner_prefix|>maybe " + _APCALL + "<|inner_suffix|>" + HELLO,
        HELLO,
        "maybe " + _APCALL,
    ),
    Case(
        "ours-apertus-unclosed-deliberation-call",
        AP,
        "<|inner_prefix|>I'll call it." + _APCALL,
        reasoning="I'll call it.",
        calls=(("special_function", ARG1),),
        flags=RECOVERED,
    ),
    Case(
        "ours-apertus-unclosed-deliberation",
        AP,
        "<|inner_prefix|>still going",
        reasoning="still going",
        flags=UNCLOSED,
    ),
    Case(
        "ours-apertus-lookalike",
        AP,
        "Use <|tools_prefix or <think>x</think>, a < b.",
        "Use <|tools_prefix or <think>x</think>, a < b.",
    ),
    Case(
        "ours-apertus-unknown-tool",
        AP,
        _apertus('{"other": {}}'),
        calls=(("other", {}),),
        known=frozenset({"special_function"}),
        unknown=("other",),
    ),
]


# --- MiniCPM5: <function name="NAME"><param name="KEY">VALUE</param></function>, <think> -

MC = Family.MINICPM5


def _fn(name: str, *params: tuple[str, str]) -> str:
    """A call as MiniCPM5's template writes it: each value right between its tags."""
    body = "".join(f'<param name="{k}">{v}</param>' for k, v in params)
    return f'<function name="{name}">{body}</function>'


_MCALL = _fn("special_function", ("arg1", "1"))

MINICPM5 = [
    # llama.cpp's openbmb-MiniCPM5-1B cases.
    Case("minicpm5-content", MC, HELLO, HELLO),
    Case(
        "minicpm5-call",
        MC,
        _fn("python", ("code", "print('Hello, World!')")),
        calls=(("python", {"code": "print('Hello, World!')"}),),
    ),
    Case(
        "minicpm5-empty-args",
        MC,
        '<function name="empty_args"></function>',
        calls=(("empty_args", {}),),
    ),
    Case(
        "minicpm5-parallel-one",
        MC,
        _fn("python", ("code", "print('x')")),
        calls=(("python", {"code": "print('x')"}),),
    ),
    Case(
        "minicpm5-cdata",
        MC,
        _fn("html", ("markup", '<![CDATA[<a href="/x">hi</a> </param>]]>')),
        calls=(("html", {"markup": '<a href="/x">hi</a> </param>'}),),
    ),
    Case(
        "minicpm5-thinking-call",
        MC,
        "I'm thinking</think>" + _fn("python", ("code", "print('hey')")),
        reasoning="I'm thinking",
        calls=(("python", {"code": "print('hey')"}),),
        started=True,
    ),
    Case(
        "minicpm5-parallel-two",
        MC,
        _fn("python", ("code", "print('x')")) + "\n" + _fn("python", ("code", "print('y')")),
        calls=(("python", {"code": "print('x')"}), ("python", {"code": "print('y')"})),
    ),
    # Its continuation: the prefilled "I'm" is not in the output.
    Case(
        "minicpm5-continue-reasoning",
        MC,
        " thinking</think>" + HELLO,
        HELLO,
        "thinking",
        started=True,
    ),
    Case("ours-minicpm5-call", MC, _MCALL, calls=(("special_function", ARG1),)),
    Case(
        "ours-minicpm5-think-then-call",
        MC,
        "<think>\nI'm\nthinking\n</think>\n\n" + _MCALL,
        reasoning=THINKING,
        calls=(("special_function", ARG1),),
    ),
    Case(
        "ours-minicpm5-content-then-call",
        MC,
        "Let me check.\n" + _fn("get_time", ("city", "Paris")),
        "Let me check.",
        calls=(("get_time", {"city": "Paris"}),),
    ),
    Case(
        "ours-minicpm5-typed-values",
        MC,
        _fn("magic_int", ("ref", "-14"), ("name", "123")),
        calls=(("magic_int", {"ref": -14, "name": "123"}),),
    ),
    # The template prints a value that is not a string as Jinja does: Python's spelling.
    Case(
        "ours-minicpm5-python-boolean",
        MC,
        _fn("toggle", ("enabled", "True")),
        calls=(("toggle", {"enabled": True}),),
    ),
    Case(
        "ours-minicpm5-json-boolean",
        MC,
        _fn("toggle", ("enabled", "false")),
        calls=(("toggle", {"enabled": False}),),
    ),
    Case(
        "ours-minicpm5-python-none",
        MC,
        _fn("set_nullable_int", ("count", "None")),
        calls=(("set_nullable_int", {"count": None}),),
    ),
    Case(
        "ours-minicpm5-python-list",
        MC,
        _fn("todo_list", ("todos", "['buy milk', {'done': False}]")),
        calls=(("todo_list", {"todos": ["buy milk", {"done": False}]}),),
    ),
    Case(
        "ours-minicpm5-json-object",
        MC,
        _fn("set_config", ("config", '{"theme": "dark", "size": 3}')),
        calls=(("set_config", {"config": {"theme": "dark", "size": 3}}),),
    ),
    Case(
        "ours-minicpm5-multiline-cdata",
        MC,
        _fn("python", ("code", "<![CDATA[" + PY_HELLO + "]]>")),
        calls=(("python", {"code": PY_HELLO}),),
    ),
    Case(
        "ours-minicpm5-closing-tags-in-cdata",
        MC,
        _fn("python", ("code", '<![CDATA[s = "</function>\n<function name=\\"x\\">"]]>')),
        calls=(("python", {"code": 's = "</function>\n<function name=\\"x\\">"'}),),
    ),
    Case(
        "ours-minicpm5-params-on-lines",
        MC,
        '<function name="special_function_with_opt">\n<param name="arg1">1</param>\n'
        '<param name="arg2">2</param>\n</function>',
        calls=(("special_function_with_opt", {"arg1": 1, "arg2": 2}),),
    ),
    Case(
        "ours-minicpm5-call-then-text",
        MC,
        _MCALL + "\nDone.",
        "Done.",
        calls=(("special_function", ARG1),),
    ),
    Case(
        "ours-minicpm5-unclosed-function",
        MC,
        '<function name="special_function"><param name="arg1">1</param>',
        '<function name="special_function"><param name="arg1">1</param>',
        flags=MALFORMED,
    ),
    Case(
        "ours-minicpm5-unclosed-param",
        MC,
        '<function name="special_function"><param name="arg1">1</function>',
        '<function name="special_function"><param name="arg1">1</function>',
        flags=MALFORMED,
    ),
    Case(
        "ours-minicpm5-unclosed-cdata",
        MC,
        _fn("python", ("code", "<![CDATA[x")),
        _fn("python", ("code", "<![CDATA[x")),
        flags=MALFORMED,
    ),
    Case(
        "ours-minicpm5-text-between-params",
        MC,
        '<function name="special_function">so <param name="arg1">1</param></function>',
        '<function name="special_function">so <param name="arg1">1</param></function>',
        flags=MALFORMED,
    ),
    Case(
        "ours-minicpm5-broken-then-next",
        MC,
        '<function name="get_time"><param name="city">Paris' + _MCALL,
        '<function name="get_time"><param name="city">Paris',
        calls=(("special_function", ARG1),),
        flags=MALFORMED,
    ),
    Case(
        "ours-minicpm5-call-in-reasoning-stays",
        MC,
        "maybe " + _MCALL + "\n</think>\n\nNo call needed.",
        "No call needed.",
        reasoning="maybe " + _MCALL,
        started=True,
    ),
    Case(
        "ours-minicpm5-unclosed-think-call",
        MC,
        "I'll call it.\n" + _MCALL,
        reasoning="I'll call it.",
        calls=(("special_function", ARG1),),
        started=True,
        flags=RECOVERED,
    ),
    Case(
        "ours-minicpm5-lookalike",
        MC,
        'Use <function=x>, <function name=x> or <param name="k">, a < b.',
        'Use <function=x>, <function name=x> or <param name="k">, a < b.',
    ),
    Case(
        "ours-minicpm5-unknown-tool",
        MC,
        _fn("other"),
        calls=(("other", {}),),
        known=frozenset({"special_function"}),
        unknown=("other",),
    ),
]


ALL: list[Case] = (
    HERMES
    + QWEN3_CODER
    + GLM
    + SEED_OSS
    + MINIMAX_M2
    + DEEPSEEK_DSML
    + KIMI_K2
    + GEMMA4
    + LFM2
    + NEMOTRON_V2
    + GRANITE3
    + COMMAND_R7B
    + APERTUS
    + MINICPM5
    + LLAMA3
    + MISTRAL
    + DEEPSEEK
    + HARMONY
    + GENERIC
)
