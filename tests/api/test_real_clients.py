"""The clients people point at a local server, on their default paths: LiteLLM
(`openai/` models: chat, streaming, a tool call round trip, embeddings), Simon
Willison's `llm` (an extra OpenAI model: prompt, stream, a tool chain), LangChain's
`OpenAIEmbeddings()` with its defaults (it sends cl100k token ids, which are not the
model's own: a 400 naming the setting that turns that off), pydantic-ai's typed output
and the OpenAI Agents SDK (Responses API, a function tool). The tiny models write
gibberish, so the tools' arguments are enums where a test needs a short call."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

import pytest

from tests.api.test_tools_e2e import (  # noqa: F401  (the fixture)
    WEATHER,
    tools_daemon,
)
from tests.daemon import Daemon

# LiteLLM fetches a model price list from the network at import unless told not to.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

PARIS = [{"role": "user", "content": "What is the weather in Paris?"}]


def litellm_module() -> Any:
    return pytest.importorskip("litellm", reason="LiteLLM (dev extra)")


def test_litellm_chat_stream_tools_and_embeddings(tools_daemon: Daemon) -> None:  # noqa: F811
    litellm = litellm_module()
    base = {"api_base": tools_daemon.v1, "api_key": "x", "num_retries": 0}
    r = litellm.completion(
        model="openai/tiny", messages=PARIS, max_tokens=6, extra_body={"ignore_eos": True}, **base
    )
    assert r.choices[0].finish_reason == "length" and r.usage.completion_tokens == 6
    text = "".join(
        chunk.choices[0].delta.content or ""
        for chunk in litellm.completion(
            model="openai/tiny",
            messages=PARIS,
            max_tokens=6,
            temperature=0,
            stream=True,
            **base,
        )
    )
    whole = litellm.completion(
        model="openai/tiny", messages=PARIS, max_tokens=6, temperature=0, **base
    )
    assert text == whole.choices[0].message.content
    called = litellm.completion(
        model="openai/qwen-tools",
        messages=PARIS,
        tools=[WEATHER],
        tool_choice="required",
        parallel_tool_calls=False,  # one call: a random tiny model could chain them
        temperature=0,
        max_tokens=200,
        **base,
    )
    call = called.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather"
    args = json.loads(call.function.arguments)
    assert set(args) == set(WEATHER["function"]["parameters"]["required"])
    history = [
        *PARIS,
        called.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "18 C"},
    ]
    final = litellm.completion(
        model="openai/qwen-tools", messages=history, tools=[WEATHER], max_tokens=8, **base
    )
    assert final.choices[0].message.role == "assistant"
    emb = litellm.embedding(model="openai/tiny-embed", input=["hello", "world"], **base)
    assert len(emb.data) == 2 and len(emb.data[0]["embedding"]) > 8


def write_llm_models(user_dir: Path, d: Daemon) -> None:
    (user_dir / "extra-openai-models.yaml").write_text(
        f"- model_id: appliance-tiny\n"
        f"  model_name: tiny\n"
        f"  api_base: {d.v1}\n"
        f"- model_id: appliance-qwen\n"
        f"  model_name: qwen-tools\n"
        f"  api_base: {d.v1}\n"
        f"  supports_tools: true\n"
    )


def test_llm_prompt_stream_and_tool_chain(
    tools_daemon: Daemon,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    llm = pytest.importorskip("llm", reason="Simon Willison's llm (dev extra)")
    monkeypatch.setenv("LLM_USER_PATH", str(tmp_path))
    monkeypatch.setenv("OPENAI_API_KEY", "x")
    write_llm_models(tmp_path, tools_daemon)
    model = llm.get_model("appliance-tiny")
    response = model.prompt("hello", max_tokens=5, temperature=0, stream=False)
    text = response.text()
    usage = response.usage()
    assert usage.output is not None and 1 <= usage.output <= 5  # EOS may come first
    streamed = "".join(model.prompt("hello", max_tokens=5, temperature=0))
    assert streamed == text

    def get_weather(city: str, unit: str) -> str:
        """Current weather for a city."""
        return "18 C"

    # llm offers the tool as an OpenAI function (tool_choice auto); the tiny model is
    # free to answer or call it, and llm runs the chain to its end without an error.
    chain = llm.get_model("appliance-qwen").chain(
        "What is the weather in Paris?", tools=[get_weather], options={"max_tokens": 60}
    )
    assert isinstance(chain.text(), str)
    responses = list(chain.responses())
    assert responses and all(r.usage().input for r in responses)


def test_langchain_embeddings_defaults_send_foreign_token_ids_and_are_told_so(
    tools_daemon: Daemon,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """OpenAIEmbeddings() tokenizes with tiktoken's cl100k_base and sends the ids. Offline,
    tiktoken's file comes from LiteLLM's wheel, which ships it."""
    langchain_openai = pytest.importorskip("langchain_openai", reason="langchain-openai")
    litellm = litellm_module()
    tokenizers = Path(litellm.__file__).parent / "litellm_core_utils" / "tokenizers"
    if not (tokenizers / "9b5ad71b2ce5302211f9c61530b329a4922fc6a4").exists():
        pytest.skip("this LiteLLM build does not ship tiktoken's cl100k_base file")
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tokenizers))
    import openai

    defaults = langchain_openai.OpenAIEmbeddings(
        base_url=tools_daemon.v1, api_key="x", model="tiny-embed", max_retries=0
    )
    with pytest.raises(openai.BadRequestError, match="check_embedding_ctx_length=False"):
        defaults.embed_documents(["the water is warm today"])
    fixed = langchain_openai.OpenAIEmbeddings(
        base_url=tools_daemon.v1,
        api_key="x",
        model="tiny-embed",
        max_retries=0,
        check_embedding_ctx_length=False,
    )
    vectors = fixed.embed_documents(["the water is warm today", "hello"])
    assert len(vectors) == 2 and len(vectors[0]) > 8
    assert len(fixed.embed_query("hello")) == len(vectors[0])


def test_pydantic_ai_structured_output_through_its_output_tool(
    tools_daemon: Daemon,  # noqa: F811
) -> None:
    """pydantic-ai's default for a typed output: a `final_result` tool it requires the
    model to call; the arguments are constrained to the schema, so they validate."""
    pytest.importorskip("pydantic_ai", reason="pydantic-ai-slim[openai] (dev extra)")
    from pydantic import BaseModel
    from pydantic_ai import Agent
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    class Weather(BaseModel):
        city: Literal["Paris", "Rome"]
        celsius: int

    model = OpenAIChatModel(
        "qwen-tools", provider=OpenAIProvider(base_url=tools_daemon.v1, api_key="x")
    )
    result = Agent(model, output_type=Weather).run_sync(
        "What is the weather in Paris?",
        model_settings={"temperature": 0, "parallel_tool_calls": False},  # one call, greedy
    )
    assert isinstance(result.output, Weather)
    assert result.output.city in ("Paris", "Rome")


def weather_tool(agents: Any, asked: list[str]) -> Any:
    """The OpenAI Agents SDK's function tool the agent tests call (cities it was asked)."""

    @agents.function_tool
    def get_weather(city: Literal["Paris", "Rome"]) -> str:
        """Current weather for a city."""
        asked.append(city)
        return "18 C"

    return get_weather


def responses_model(agents: Any, daemon: Daemon) -> Any:
    """The SDK's default model kind, the Responses API, on the daemon's qwen-tools."""
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=daemon.v1, api_key="x", max_retries=0)
    return agents.OpenAIResponsesModel(model="qwen-tools", openai_client=client)


def test_openai_agents_sdk_runs_a_tool_over_the_responses_api(
    tools_daemon: Daemon,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The OpenAI Agents SDK's default model is the Responses API."""
    monkeypatch.setenv("OPENAI_AGENTS_DISABLE_TRACING", "1")  # it would export traces
    agents = pytest.importorskip("agents", reason="openai-agents (dev extra)")

    agents.set_tracing_disabled(True)
    asked: list[str] = []
    agent = agents.Agent(
        name="weather",
        instructions="Answer briefly.",
        tools=[weather_tool(agents, asked)],
        model=responses_model(agents, tools_daemon),
        # One call, greedy: a random tiny model could otherwise chain calls to max_tokens.
        model_settings=agents.ModelSettings(
            tool_choice="required", parallel_tool_calls=False, temperature=0, max_tokens=400
        ),
        tool_use_behavior="stop_on_first_tool",
    )
    result = agents.Runner.run_sync(agent, "What is the weather in Paris?", max_turns=3)
    assert asked and asked[0] in ("Paris", "Rome")
    assert result.final_output == "18 C"


def test_openai_agents_sdk_agent_with_tools_and_a_typed_output(
    tools_daemon: Daemon,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An Agent with tools and an output_type sends both (tools and text.format): it was
    refused with a 400 on its first turn. Now the answer is a call or the typed output."""
    monkeypatch.setenv("OPENAI_AGENTS_DISABLE_TRACING", "1")
    agents = pytest.importorskip("agents", reason="openai-agents (dev extra)")
    from pydantic import BaseModel

    agents.set_tracing_disabled(True)

    class Report(BaseModel):
        sky: Literal["sunny", "rain"]  # (a random model's free text would be gibberish)

    agent = agents.Agent(
        name="weather",
        instructions="Answer briefly.",
        tools=[weather_tool(agents, [])],
        output_type=Report,
        model=responses_model(agents, tools_daemon),
        model_settings=agents.ModelSettings(temperature=0, max_tokens=400),
    )
    result = agents.Runner.run_sync(agent, "What is the weather in Paris?", max_turns=4)
    assert isinstance(result.final_output, Report)


def test_a_prompt_over_the_context_is_a_context_overflow_to_langchain(daemon: Daemon) -> None:
    """LangChain raises its ContextOverflowError (which its agents' middleware acts on) when
    the error says "prompt is too long", as Anthropic's do; Claude clients compact then."""
    from langchain_core.exceptions import ContextOverflowError
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(base_url=daemon.v1, api_key="x", model="tiny", max_retries=0)  # type: ignore[arg-type]
    with pytest.raises(ContextOverflowError, match="prompt is too long"):
        llm.invoke("hello " * 600)  # the tiny model's context is 512 tokens
