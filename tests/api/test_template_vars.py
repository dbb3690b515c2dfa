"""A request's chat-template variables: `chat_template_kwargs` (llama-server's and vLLM's
field), `reasoning_effort`, and the forms Ollama (`think`), Anthropic (`thinking`) and
the Responses API (`reasoning.effort`) give them. On Qwen3's template,
`enable_thinking: false` closes the reasoning block in the prompt: the model answers at
once instead of thinking first."""

from __future__ import annotations

from typing import Any

import anthropic
import httpx
import ollama
import openai

from tests.api.test_tools_e2e import qwen3_daemon  # noqa: F401  (the fixture)
from tests.daemon import Daemon

USER = [{"role": "user", "content": "hello"}]
CLOSED = "<|im_start|>assistant\n<think>\n\n</think>\n\n"


def _template(d: Daemon, **body: Any) -> httpx.Response:
    return d.post("/apply-template", json={"model": "qwen3", "messages": USER, **body})


def test_the_template_gets_the_requests_variables(qwen3_daemon: Daemon) -> None:  # noqa: F811
    plain = _template(qwen3_daemon).json()["prompt"]
    assert plain.endswith("<|im_start|>assistant\n") and "<think>" not in plain
    off = _template(qwen3_daemon, chat_template_kwargs={"enable_thinking": False})
    assert off.json()["prompt"].endswith(CLOSED)
    assert _template(qwen3_daemon, reasoning_effort="none").json()["prompt"].endswith(CLOSED)
    assert _template(qwen3_daemon, enable_thinking=False).json()["prompt"].endswith(CLOSED)
    assert _template(qwen3_daemon, reasoning_effort="high").json()["prompt"] == plain


def test_variables_that_would_change_the_prompts_parts_are_refused(
    qwen3_daemon: Daemon,  # noqa: F811
) -> None:
    for body, param in (
        ({"chat_template_kwargs": {"messages": []}}, "chat_template_kwargs.messages"),
        ({"chat_template_kwargs": {"not a name": 1}}, "chat_template_kwargs.not a name"),
        ({"chat_template_kwargs": ["enable_thinking"]}, "chat_template_kwargs"),
        ({"reasoning_effort": "max"}, "reasoning_effort"),
        ({"enable_thinking": "no"}, "enable_thinking"),
    ):
        r = qwen3_daemon.post(
            "/v1/chat/completions", json={"model": "qwen3", "messages": USER, **body}
        )
        assert r.status_code == 400 and r.json()["error"]["param"] == param, r.text


def test_each_api_turns_thinking_off_its_own_way(qwen3_daemon: Daemon) -> None:  # noqa: F811
    """The closed block is in the prompt: 4 more tokens read, whichever API asked."""
    d = qwen3_daemon
    chat = openai.OpenAI(base_url=d.v1, api_key="x", max_retries=0)

    def chat_prompt(**extra: Any) -> int:
        r = chat.chat.completions.create(
            model="qwen3", messages=USER, max_tokens=1, extra_body=extra or None
        )  # type: ignore[call-overload]
        assert r.usage is not None
        return int(r.usage.prompt_tokens)

    thinking = chat_prompt()
    closed = chat_prompt(chat_template_kwargs={"enable_thinking": False})
    assert closed > thinking
    assert chat_prompt(reasoning_effort="none") == closed

    client = ollama.Client(host=d.url)
    on = client.chat(model="qwen3", messages=USER, think=True, options={"num_predict": 1})
    off = client.chat(model="qwen3", messages=USER, think=False, options={"num_predict": 1})
    assert (on.prompt_eval_count, off.prompt_eval_count) == (thinking, closed)

    messages = anthropic.Anthropic(base_url=d.url, api_key="x", max_retries=0).messages
    disabled = messages.create(
        model="qwen3", max_tokens=1, messages=USER, thinking={"type": "disabled"}
    )  # type: ignore[arg-type]
    usage = disabled.usage  # Anthropic counts the prompt-cache hit apart
    assert usage.input_tokens + (usage.cache_read_input_tokens or 0) == closed

    response = chat.responses.create(
        model="qwen3", input="hello", reasoning={"effort": "none"}, max_output_tokens=16
    )
    assert response.usage is not None and response.usage.input_tokens == closed
