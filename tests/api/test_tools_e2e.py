"""Tool calling through the real daemon with the official `openai` client and LangChain:
a generated GGUF whose chat template is Qwen2.5's (the Hermes `<tool_call>` format).

The model is random, so what it says is gibberish (strings are bounded by maxLength
so that a call always ends well within max_tokens); what is tested is that the
grammar makes `required` and named choices always give a call that parses and
matches the tool's schema, that a two-step agent loop (call, tool result, answer)
completes, streaming and not, and that bad tool requests are refused clearly."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from appliance.tiny_model import TinyModelSpec, write_tiny_gguf
from tests.conftest import write_catalog
from tests.daemon import Daemon, start_daemon

TEMPLATES = Path(__file__).resolve().parents[1] / "fixtures" / "chat_templates"

WEATHER: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "maxLength": 16},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city", "unit"],
            "additionalProperties": False,
        },
    },
}
ADD: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "add",
        "description": "Add two integers",
        "parameters": {
            "type": "object",
            "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
            "required": ["a", "b"],
            "additionalProperties": False,
        },
    },
}


@pytest.fixture(scope="module")
def tools_daemon(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> Iterator[Daemon]:
    home = tmp_path_factory.mktemp("tools")
    template = (TEMPLATES / "Qwen-Qwen2.5-7B-Instruct.jinja").read_text()
    qwen = write_tiny_gguf(home / "qwen-tools.gguf", TinyModelSpec(chat_template=template))
    extra = f'''
[models.qwen-tools]
source = "{qwen}"
context = 2048

[models.tiny-given-a-template]
source = "{models_dir / "tiny.gguf"}"
chat_template = "{TEMPLATES / "Qwen-Qwen2.5-7B-Instruct.jinja"}"
context = 2048

[models.tiny-2k]
source = "{models_dir / "tiny.gguf"}"
context = 2048

[models.slow-4k]
source = "{models_dir / "slow.gguf"}"
context = 4096

[models.tiny-read-as-hermes]
source = "{models_dir / "tiny.gguf"}"
tool_parser = "hermes"

[models.tiny-template-missing]
source = "{models_dir / "tiny.gguf"}"
chat_template = "no-such-template.jinja"

[models.tiny-deepseek-v31]
source = "{models_dir / "tiny.gguf"}"
chat_template = "{TEMPLATES / "deepseek-ai-DeepSeek-V3.1.jinja"}"
context = 2048
'''
    d = start_daemon(home, write_catalog(home / "catalog.toml", models_dir, extra))
    yield d
    d.stop()


@pytest.fixture(scope="module")
def qwen3_daemon(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> Iterator[Daemon]:
    """The test models plus `qwen3`, with Qwen3's template, which shows an assistant
    turn's `reasoning_content` within the current tool-use loop."""
    home = tmp_path_factory.mktemp("qwen3")
    template = (TEMPLATES / "Qwen-Qwen3-0.6B.jinja").read_text()
    qwen3 = write_tiny_gguf(home / "qwen3.gguf", TinyModelSpec(chat_template=template))
    extra = f'\n[models.qwen3]\nsource = "{qwen3}"\ncontext = 2048\n'
    d = start_daemon(home, write_catalog(home / "catalog.toml", models_dir, extra))
    yield d
    d.stop()


def client(d: Daemon) -> openai.OpenAI:
    return openai.OpenAI(base_url=d.v1, api_key="x", max_retries=0, timeout=120)


def ask(d: Daemon, **kw: Any) -> Any:
    kw.setdefault("model", "qwen-tools")
    kw.setdefault("messages", [{"role": "user", "content": "What is the weather in Paris?"}])
    kw.setdefault("max_tokens", 300)
    return client(d).chat.completions.create(**kw)


def check_call(call: Any, tool: dict[str, Any]) -> dict[str, Any]:
    assert call.type == "function" and call.id
    assert call.function.name == tool["function"]["name"]
    args = json.loads(call.function.arguments)
    params = tool["function"]["parameters"]
    assert set(args) == set(params["required"])
    for key, value in args.items():
        spec = params["properties"][key]
        if spec["type"] == "integer":
            assert isinstance(value, int) and not isinstance(value, bool)
        else:
            assert isinstance(value, str)
        if "enum" in spec:
            assert value in spec["enum"]
    return args


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_required_always_gives_a_valid_call(tools_daemon: Daemon, seed: int) -> None:
    r = ask(
        tools_daemon,
        tools=[WEATHER, ADD],
        tool_choice="required",
        parallel_tool_calls=False,
        temperature=1.0,
        seed=seed,
    )
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls", choice
    assert choice.message.tool_calls and len(choice.message.tool_calls) == 1
    names = {"get_weather": WEATHER, "add": ADD}
    check_call(choice.message.tool_calls[0], names[choice.message.tool_calls[0].function.name])
    assert not (choice.model_extra or {}).get("warnings")
    assert choice.message.content is None


@pytest.mark.parametrize(
    "tool_choice", ["required", {"type": "function", "function": {"name": "get_weather"}}]
)
def test_a_forced_choice_makes_one_call_unless_parallel_is_asked(
    tools_daemon: Daemon, tool_choice: Any
) -> None:
    """As llama-server: `parallel_tool_calls` unset, a forced choice's grammar ends after one
    call (forced into a list, a random model chains calls to max_tokens: seed 1 here)."""
    for seed in (1, 2, 3):
        r = ask(tools_daemon, tools=[WEATHER, ADD], tool_choice=tool_choice, seed=seed)
        choice = r.choices[0]
        assert choice.finish_reason == "tool_calls", (seed, choice)
        assert choice.message.tool_calls and len(choice.message.tool_calls) == 1, seed
        warnings = (choice.model_extra or {}).get("warnings") or []
        assert not [w for w in warnings if not w.startswith("invalid_arguments")], seed


def test_auto_with_a_response_format_gives_a_call_or_an_answer_in_the_format(
    tools_daemon: Daemon,
) -> None:
    """An agent with tools and a typed result (openai-agents' output_type, pydantic-ai) sends
    both: the answer is a valid call or JSON following the format, never loose text."""
    schema = {
        "type": "object",
        "properties": {"summary": {"type": "string", "maxLength": 12}},
        "required": ["summary"],
        "additionalProperties": False,
    }
    fmt = {"type": "json_schema", "json_schema": {"name": "report", "schema": schema}}
    lt = 7 + ord("<")  # the tiny vocabulary's byte token for "<": a nudge toward "<tool_call>"
    kinds = []
    for seed, bias in [(s, {}) for s in range(1, 5)] + [(s, {str(lt): 30}) for s in (1, 2)]:
        r = ask(
            tools_daemon,
            tools=[WEATHER],
            response_format=fmt,
            parallel_tool_calls=False,
            temperature=1.0,
            seed=seed,
            logit_bias=bias,
        )
        choice = r.choices[0]
        if choice.message.tool_calls:
            assert choice.finish_reason == "tool_calls", (seed, choice)
            check_call(choice.message.tool_calls[0], WEATHER)
            kinds.append("call")
        else:
            assert choice.finish_reason == "stop", (seed, choice)
            value = json.loads(choice.message.content or "")
            assert set(value) == {"summary"} and isinstance(value["summary"], str), seed
            kinds.append("answer")
    assert kinds[-2:] == ["call"] * 2  # nudged toward "<tool_call>", it calls


def test_legacy_functions_are_answered_as_a_function_call(tools_daemon: Daemon) -> None:
    """Clients of the `functions` API read `message.function_call` and finish_reason
    "function_call" (they got `tool_calls`, and saw no call)."""
    kw: dict[str, Any] = {
        "functions": [WEATHER["function"]],
        "function_call": {"name": "get_weather"},
        "temperature": 1.0,
        "seed": 3,
    }
    r = ask(tools_daemon, **kw)
    choice = r.choices[0]
    assert choice.finish_reason == "function_call"
    assert choice.message.tool_calls is None
    call = choice.message.function_call
    assert call is not None and call.name == "get_weather"
    args = json.loads(call.arguments)
    assert set(args) == {"city", "unit"} and args["unit"] in ("celsius", "fahrenheit")
    chunks = list(
        client(tools_daemon).chat.completions.create(
            model="qwen-tools",
            messages=[{"role": "user", "content": "What is the weather in Paris?"}],
            max_tokens=300,
            stream=True,
            **kw,
        )
    )
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    assert not any(d.tool_calls for d in deltas)
    parts = [d.function_call for d in deltas if d.function_call]
    assert [p.name for p in parts if p.name] == ["get_weather"]
    assert "".join(p.arguments or "" for p in parts) == call.arguments  # same seed, same call
    assert chunks[-1].choices[0].finish_reason == "function_call"
    # The next turn, as those clients send the result: a "function" message after the call.
    history = [
        {"role": "user", "content": "What is the weather in Paris?"},
        {"role": "assistant", "content": None, "function_call": call.model_dump()},
        {"role": "function", "name": "get_weather", "content": "18 C"},
    ]
    answer = ask(tools_daemon, functions=[WEATHER["function"]], messages=history, max_tokens=8)
    assert answer.choices[0].finish_reason in ("stop", "length", "function_call")


def test_parallel_calls_are_each_valid(tools_daemon: Daemon) -> None:
    """A random model may keep calling until max_tokens: every complete call is valid,
    and an answer cut inside a call says "length" and flags the remainder."""
    for seed in (1, 2, 3):
        r = ask(
            tools_daemon,
            tools=[WEATHER, ADD],
            tool_choice="required",
            parallel_tool_calls=True,
            seed=seed,
        )
        choice = r.choices[0]
        assert choice.message.tool_calls
        names = {"get_weather": WEATHER, "add": ADD}
        for call in choice.message.tool_calls:
            check_call(call, names[call.function.name])
        warnings = (choice.model_extra or {}).get("warnings") or []
        if choice.finish_reason == "length":
            assert all(w.startswith("malformed_tool_call") for w in warnings), warnings
        else:
            assert choice.finish_reason == "tool_calls" and not warnings


def test_named_choice_calls_that_function(tools_daemon: Daemon) -> None:
    r = ask(
        tools_daemon,
        tools=[WEATHER, ADD],
        tool_choice={"type": "function", "function": {"name": "add"}},
        parallel_tool_calls=False,
        temperature=0.8,
        seed=5,
    )
    calls = r.choices[0].message.tool_calls
    assert calls is not None and len(calls) == 1
    check_call(calls[0], ADD)
    assert r.choices[0].message.content is None


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_allowed_tools_limit_the_calls_to_them(tools_daemon: Daemon, seed: int) -> None:
    third = {"type": "function", "function": {**ADD["function"], "name": "subtract"}}
    allowed = {
        "type": "allowed_tools",
        "allowed_tools": {
            "mode": "required",
            "tools": [
                {"type": "function", "function": {"name": "add"}},
                {"type": "function", "function": {"name": "subtract"}},
            ],
        },
    }
    r = ask(tools_daemon, tools=[WEATHER, ADD, third], tool_choice=allowed, seed=seed)
    calls = r.choices[0].message.tool_calls
    assert calls is not None and len(calls) == 1  # required: one call, as a forced choice
    assert calls[0].function.name in ("add", "subtract")
    check_call(calls[0], ADD if calls[0].function.name == "add" else third)
    # The Responses API's form: mode and tools at the top.
    response = client(tools_daemon).responses.create(
        model="qwen-tools",
        input="What is the weather in Paris?",
        tools=[{"type": "function", **t["function"]} for t in (WEATHER, ADD)],
        tool_choice={"type": "allowed_tools", "mode": "required", "tools": [
            {"type": "function", "name": "add"}
        ]},
        max_output_tokens=300,
    )  # fmt: skip
    (call,) = [item for item in response.output if item.type == "function_call"]
    assert call.name == "add"


def test_allowed_tools_are_checked(tools_daemon: Daemon) -> None:
    def refused(choice: Any) -> str:
        r = httpx.post(
            tools_daemon.v1 + "/chat/completions",
            json={
                "model": "qwen-tools",
                "messages": [{"role": "user", "content": "hi"}],
                "tools": [WEATHER, ADD],
                "tool_choice": choice,
            },
            timeout=60,
        )
        assert r.status_code == 400, r.text
        return str(r.json()["error"]["param"])

    def allowed(mode: str, *names: str) -> dict[str, Any]:
        tools = [{"type": "function", "function": {"name": n}} for n in names]
        return {"type": "allowed_tools", "allowed_tools": {"mode": mode, "tools": tools}}

    assert refused(allowed("required", "nope")) == "tool_choice.allowed_tools.tools[0]"
    assert refused(allowed("none", "add")) == "tool_choice.allowed_tools.mode"
    assert refused(allowed("auto")) == "tool_choice.allowed_tools.tools"


def test_streamed_call_arrives_as_openai_deltas(tools_daemon: Daemon) -> None:
    stream = ask(
        tools_daemon,
        tools=[WEATHER],
        tool_choice="required",
        parallel_tool_calls=False,
        stream=True,
        seed=4,
    )
    calls: dict[int, dict[str, str]] = {}
    finish = None
    content = ""
    for chunk in stream:
        for c in chunk.choices:
            content += c.delta.content or ""
            for tc in c.delta.tool_calls or []:
                entry = calls.setdefault(tc.index, {"id": "", "name": "", "arguments": ""})
                entry["id"] += tc.id or ""
                if tc.function is not None:
                    entry["name"] += tc.function.name or ""
                    entry["arguments"] += tc.function.arguments or ""
            finish = c.finish_reason or finish
    assert finish == "tool_calls"
    assert calls and content == ""
    for entry in calls.values():
        assert entry["id"].startswith("call_") and entry["name"] == "get_weather"
        args = json.loads(entry["arguments"])
        assert set(args) == {"city", "unit"}


def test_a_streamed_call_opens_with_a_null_content(tools_daemon: Daemon) -> None:
    """The role's delta before a call says content null, as OpenAI's: a "" there made the
    AI SDK's openai provider open an empty text part in every tool-call step."""
    stream = ask(tools_daemon, tools=[WEATHER], tool_choice="required", stream=True, seed=4)
    deltas = [c.choices[0].delta for c in stream if c.choices]
    assert deltas[0].role == "assistant" and deltas[0].content is None
    assert not deltas[0].tool_calls and deltas[1].tool_calls
    assert all(d.content is None for d in deltas)


@pytest.mark.parametrize("stream", [False, True])
def test_two_step_agent_loop(tools_daemon: Daemon, stream: bool) -> None:
    messages: list[dict[str, Any]] = [{"role": "user", "content": "What is the weather in Paris?"}]
    first = ask(
        tools_daemon,
        messages=messages,
        tools=[WEATHER],
        tool_choice="required",
        parallel_tool_calls=False,
        seed=9,
    )
    call = first.choices[0].message.tool_calls[0]
    messages.append(first.choices[0].message.model_dump(exclude_none=True))
    messages.append({"role": "tool", "tool_call_id": call.id, "content": "18 C and sunny"})
    if stream:
        text, finish = "", None
        for chunk in ask(
            tools_daemon, messages=messages, tools=[WEATHER], max_tokens=16, stream=True
        ):
            for c in chunk.choices:
                text += c.delta.content or ""
                finish = c.finish_reason or finish
        assert finish in ("stop", "length")
    else:
        final = ask(tools_daemon, messages=messages, tools=[WEATHER], max_tokens=16)
        assert final.choices[0].finish_reason in ("stop", "length")
        assert isinstance(final.choices[0].message.content, str)
        assert final.usage.prompt_tokens > first.usage.prompt_tokens  # the result was read


def test_langchain_bind_tools_agent_loop(tools_daemon: Daemon) -> None:
    langchain_openai = pytest.importorskip("langchain_openai", reason="langchain-openai")
    from langchain_core.messages import HumanMessage, ToolMessage

    llm = langchain_openai.ChatOpenAI(
        base_url=tools_daemon.v1, api_key="x", model="qwen-tools", max_tokens=120, max_retries=0
    )
    bound = llm.bind_tools([WEATHER], tool_choice="required", parallel_tool_calls=False)
    history: list[Any] = [HumanMessage("weather in Paris?")]
    ai = bound.invoke(history)
    assert ai.tool_calls and ai.tool_calls[0]["name"] == "get_weather"
    assert set(ai.tool_calls[0]["args"]) == {"city", "unit"}
    history += [ai, ToolMessage("18 C", tool_call_id=ai.tool_calls[0]["id"])]
    final = llm.bind_tools([WEATHER]).invoke(history, max_tokens=12)
    assert isinstance(final.content, str) and not final.tool_calls
    chunks = list(bound.stream([HumanMessage("weather in Rome?")]))
    merged = chunks[0]
    for c in chunks[1:]:
        merged = merged + c
    assert merged.tool_calls and merged.tool_calls[0]["name"] == "get_weather"


def test_a_template_without_tools_gets_them_described_as_plain_json(
    tools_daemon: Daemon,
) -> None:
    """tiny.gguf's ChatML template never reads `tools`: its calls are plain JSON (the
    generic family), so the tools are described in a system message, as llama-server and
    LM Studio do, and a required call is constrained to the schema like any other."""
    r = ask(
        tools_daemon,
        model="tiny-2k",
        tools=[WEATHER],
        tool_choice="required",
        parallel_tool_calls=False,  # one call: a random model could chain them to max_tokens
        temperature=0,
    )
    message = r.choices[0].message
    check_call(message.tool_calls[0], WEATHER)
    assert r.choices[0].finish_reason == "tool_calls"
    history = [
        {"role": "user", "content": "What is the weather in Paris?"},
        message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": message.tool_calls[0].id, "content": "18 C"},
    ]
    after = ask(tools_daemon, model="tiny-2k", messages=history, tools=[WEATHER], max_tokens=4)
    assert after.choices[0].message.role == "assistant"
    # A template that names another call syntax than the one the model is read with
    # cannot be told how to call: refused, naming `tools`.
    with pytest.raises(openai.BadRequestError) as info:
        ask(tools_daemon, model="tiny-read-as-hermes", tools=[WEATHER])
    body = info.value.body
    assert isinstance(body, dict) and body.get("param") == "tools"
    assert "does not support tools" in str(body.get("message"))
    # tool_choice "none": the tools are not offered, the request is served.
    r = ask(tools_daemon, model="tiny", tools=[WEATHER], tool_choice="none", max_tokens=2)
    assert r.choices[0].message.tool_calls is None


def test_a_template_with_its_own_call_syntax_but_no_tool_list_gets_the_tools_described(
    tools_daemon: Daemon,
) -> None:
    """DeepSeek V3.1's template writes calls in DeepSeek's syntax but never lists the
    tools: they are described with an example call the template wrote (as llama-server
    does), and a required call comes back parsed from that syntax."""
    r = ask(
        tools_daemon,
        model="tiny-deepseek-v31",
        tools=[WEATHER],
        tool_choice="required",
        parallel_tool_calls=False,
        temperature=0,
    )
    check_call(r.choices[0].message.tool_calls[0], WEATHER)
    assert r.choices[0].finish_reason == "tool_calls"


def test_a_template_from_models_toml_lets_a_model_take_tools(tools_daemon: Daemon) -> None:
    """tiny.gguf's own ChatML template cannot show tools; models.toml gives it Qwen's."""
    r = ask(tools_daemon, model="tiny-given-a-template", tools=[WEATHER], tool_choice="required")
    check_call(r.choices[0].message.tool_calls[0], WEATHER)
    with pytest.raises(openai.APIStatusError) as info:
        ask(tools_daemon, model="tiny-template-missing", max_tokens=2)
    message = str(info.value.body)
    assert "models.tiny-template-missing.chat_template" in message
    assert "no-such-template.jinja" in message


def test_bad_tool_requests_are_400s(tools_daemon: Daemon) -> None:
    with pytest.raises(openai.BadRequestError, match="not among the given tools"):
        ask(
            tools_daemon,
            tools=[WEATHER],
            tool_choice={"type": "function", "function": {"name": "x"}},
        )
    with pytest.raises(openai.BadRequestError, match="no 'tools' are given"):
        ask(tools_daemon, tool_choice="required")
