"""What the tool-call tests of each model family share: a daemon serving tiny models
with a family's chat template, a weather tool, and reading a call back (whole and
streamed) through the official `openai` client."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import openai

from appliance.tiny_model import TinyModelSpec, write_tiny_gguf
from tests.daemon import Daemon, start_daemon

ASK: Any = [{"role": "user", "content": "The weather in Paris?"}]
BASE = {
    "city": {"type": "string", "maxLength": 12},
    "days": {"type": "integer", "minimum": 1, "maximum": 9},
}


def weather(
    extra: dict[str, Any] | None = None,
    required: tuple[str, ...] = (),
    description: str | None = None,
) -> Any:
    """A get_weather tool: a short city and a day count, plus `extra` properties."""
    function: dict[str, Any] = {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {**BASE, **(extra or {})},
            "required": ["city", "days", *required],
        },
    }
    if description is not None:
        function["description"] = description
    return {"type": "function", "function": function}


def start_template_daemon(home: Path, templates: dict[str, str]) -> Daemon:
    """A daemon with one tiny model per (name, chat template source)."""
    entries = []
    for name, source in templates.items():
        model = write_tiny_gguf(home / f"{name}.gguf", TinyModelSpec(chat_template=source))
        entries.append(f'[models.{name}]\nsource = "{model}"\ncontext = 2048\n')
    catalog = home / "catalog.toml"
    catalog.write_text("\n".join(entries))
    return start_daemon(home, catalog, env={"APPLIANCE_WEIGHT_REPACK": "false"})


def client(d: Daemon) -> openai.OpenAI:
    return openai.OpenAI(base_url=d.v1, api_key="x", max_retries=0, timeout=60)


def check(call: Any, tool: dict[str, Any]) -> dict[str, Any]:
    """A call of `tool` whose arguments follow its schema; returns them."""
    assert call.function.name == "get_weather"
    args: dict[str, Any] = json.loads(call.function.arguments)
    props = tool["function"]["parameters"]["properties"]
    assert isinstance(args["city"], str) and len(args["city"]) <= 12
    assert isinstance(args["days"], int) and 1 <= args["days"] <= 9
    for key, value in args.items():
        kind = props[key]["type"]
        if kind == "boolean":
            assert isinstance(value, bool), key
        elif kind == "array":
            assert isinstance(value, list) and all(isinstance(v, int) for v in value), key
    return args


def one_call_whole_and_streamed(d: Daemon, tool: dict[str, Any], **kw: Any) -> Any:
    """The request's one call, checked, and the same call streamed in deltas."""
    kw = {"messages": ASK, "tools": [tool], "temperature": 0.7, **kw}
    r = client(d).chat.completions.create(**kw)
    assert r.choices[0].finish_reason == "tool_calls"
    [call] = r.choices[0].message.tool_calls or []
    check(call, tool)
    assert not r.choices[0].message.content
    name, arguments = "", ""
    for chunk in client(d).chat.completions.create(**kw, stream=True):
        for delta in chunk.choices[0].delta.tool_calls or [] if chunk.choices else []:
            name += delta.function.name or "" if delta.function else ""
            arguments += delta.function.arguments or "" if delta.function else ""
    assert name == "get_weather"
    assert json.loads(arguments) == json.loads(call.function.arguments)
    return call


def named_call_then_next_turn(d: Daemon, model: str, tool: Any, **kw: Any) -> tuple[Any, Any]:
    """A named call of `tool`, then the call and its result sent back through the
    template (arguments as the client sends them: a JSON string), whose answer is text.
    Returns the first response and its call."""
    first = client(d).chat.completions.create(
        model=model,
        messages=ASK,
        tools=[tool],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        **kw,
    )
    [call] = first.choices[0].message.tool_calls or []
    assert call.type == "function"
    check(call, tool)
    history = [
        *ASK,
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": call.function.arguments},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call.id, "content": '{"sky": "sunny"}'},
    ]
    r = client(d).chat.completions.create(
        model=model, messages=history, tools=[tool], tool_choice="none", max_tokens=8
    )
    assert r.choices[0].finish_reason in ("stop", "length")
    assert not r.choices[0].message.tool_calls
    return first, call


def required_call_ending_at_once(d: Daemon, model: str, tool: Any, **extra: Any) -> Any:
    """A required call from a model pushed to end at once (its end-of-sequence token
    biased +100): where the prompt opened a reasoning block, it ends inside it, and the
    call must still come. ``extra``: more of the request, over the defaults (template
    variables in ``extra_body``). Returns the response, whose one call is checked."""
    info = next(m for m in d.get("/v1/models").json()["data"] if m["id"] == model)
    bias = {str(info["meta"]["eos_token_id"]): 100}
    kw: dict[str, Any] = {"model": model, "messages": ASK, "tools": [tool]}
    kw |= {"tool_choice": "required", "max_tokens": 600, "logit_bias": bias, "seed": 1}
    kw |= extra
    r = client(d).chat.completions.create(**kw)
    assert r.choices[0].finish_reason == "tool_calls"
    [call] = r.choices[0].message.tool_calls or []
    check(call, tool)
    return r
