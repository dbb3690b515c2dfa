"""GLM's tool calls through the daemon and the official `openai` client, on tiny models
with GLM 4.6's and GLM 4.7's own templates (4.7's prompt opens the reasoning block)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from appliance.tiny_model import TinyModelSpec, write_tiny_gguf
from tests.daemon import Daemon, start_daemon

TEMPLATES = Path(__file__).resolve().parents[1] / "fixtures" / "chat_templates"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "maxLength": 12},
                "days": {"type": "integer", "minimum": 1, "maximum": 9},
            },
            "required": ["city", "days"],
        },
    },
}
ASK = [{"role": "user", "content": "The weather in Paris?"}]


@pytest.fixture(scope="module")
def glm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    home = tmp_path_factory.mktemp("glm")
    entries = []
    for name, file in (("glm46", "GLM-4.6.jinja"), ("glm47", "GLM-4.7-Flash.jinja")):
        spec = TinyModelSpec(chat_template=(TEMPLATES / file).read_text(encoding="utf-8"))
        model = write_tiny_gguf(home / f"{name}.gguf", spec)
        entries.append(f'[models.{name}]\nsource = "{model}"\ncontext = 2048\n')
    catalog = home / "catalog.toml"
    catalog.write_text("\n".join(entries))
    d = start_daemon(home, catalog, env={"APPLIANCE_WEIGHT_REPACK": "false"})
    yield d
    d.stop()


def client(d: Daemon) -> openai.OpenAI:
    return openai.OpenAI(base_url=d.v1, api_key="x", max_retries=0, timeout=60)


def check(call: Any) -> None:
    assert call.function.name == "get_weather"
    args = json.loads(call.function.arguments)
    assert isinstance(args["city"], str) and len(args["city"]) <= 12
    assert isinstance(args["days"], int) and 1 <= args["days"] <= 9


@pytest.mark.parametrize("model", ["glm46", "glm47"])
def test_a_required_call_comes_back_as_a_tool_call(glm: Daemon, model: str) -> None:
    kw: dict[str, Any] = {"model": model, "messages": ASK, "tools": [WEATHER], "seed": 1}
    kw |= {"tool_choice": "required", "max_tokens": 600, "temperature": 0.7}
    r = client(glm).chat.completions.create(**kw)
    assert r.choices[0].finish_reason == "tool_calls"
    [call] = r.choices[0].message.tool_calls or []
    check(call)
    # Streamed: the same call, in deltas.
    name, arguments = "", ""
    for chunk in client(glm).chat.completions.create(**kw, stream=True):
        for delta in chunk.choices[0].delta.tool_calls or [] if chunk.choices else []:
            name += delta.function.name or "" if delta.function else ""
            arguments += delta.function.arguments or "" if delta.function else ""
    assert name == "get_weather"
    assert json.loads(arguments) == json.loads(call.function.arguments)


def test_a_model_that_ends_inside_its_reasoning_still_makes_the_required_call(
    glm: Daemon,
) -> None:
    # GLM 4.7's prompt opens <think>; the model is pushed to end at once, inside it.
    eos = next(m for m in glm.get("/v1/models").json()["data"] if m["id"] == "glm47")
    bias = {str(eos["meta"]["eos_token_id"]): 100}
    r = client(glm).chat.completions.create(
        model="glm47",
        messages=ASK,
        tools=[WEATHER],
        tool_choice="required",
        max_tokens=600,
        logit_bias=bias,
    )
    assert r.choices[0].finish_reason == "tool_calls"
    [call] = r.choices[0].message.tool_calls or []
    check(call)
    assert not r.choices[0].message.content
