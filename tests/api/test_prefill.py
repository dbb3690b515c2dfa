"""A final assistant message (a prefill) is continued, through chat completions and the
Anthropic Messages API: the model reads a prompt that ends with the prefill's text (no
end-of-turn marker, no new turn), and the answer is only what follows, as Anthropic and
llama-server answer. The tiny models' words are gibberish, so the prompt is checked: its
token count, and the greedy answer a text completion of the expected prompt gives."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from tests.daemon import Daemon

anthropic = pytest.importorskip("anthropic", reason="the anthropic SDK (dev extra)")

MESSAGES: list[Any] = [
    {"role": "user", "content": "Count from 1 to 20 separated by commas."},
    {"role": "assistant", "content": "1, 2, 3, 4, 5, 6,"},
]
# What the tiny models' ChatML template gives, continued: the assistant's turn is left open.
CONTINUED = (
    "<|im_start|>user\nCount from 1 to 20 separated by commas.<|im_end|>\n"
    "<|im_start|>assistant\n1, 2, 3, 4, 5, 6,"
)


def openai_client(d: Daemon) -> openai.OpenAI:
    return openai.OpenAI(base_url=d.v1, api_key="x", max_retries=0, timeout=120)


def completion_of(d: Daemon, model: str) -> Any:
    """The greedy text completion of the continued prompt: what the chat must answer."""
    return openai_client(d).completions.create(
        model=model, prompt=CONTINUED, max_tokens=8, temperature=0
    )


@pytest.mark.parametrize("model", ["tiny", "think"])
def test_chat_completions_continue_a_final_assistant_message(daemon: Daemon, model: str) -> None:
    """`think`'s template opens <think> for an answer: a prefill is the answer's text, so
    the output is content, not reasoning."""
    expected = completion_of(daemon, model)
    r = openai_client(daemon).chat.completions.create(
        model=model, messages=MESSAGES, max_tokens=8, temperature=0
    )
    assert r.usage is not None and expected.usage is not None
    assert r.usage.prompt_tokens == expected.usage.prompt_tokens
    message = r.choices[0].message
    assert message.content == expected.choices[0].text
    assert not getattr(message, "reasoning_content", None)


def test_messages_continue_a_prefill(daemon: Daemon) -> None:
    expected = completion_of(daemon, "tiny")
    assert expected.usage is not None
    c = anthropic.Anthropic(base_url=daemon.url, api_key="x", max_retries=0, timeout=120)
    kw: dict[str, Any] = {
        "model": "tiny",
        "max_tokens": 8,
        "messages": MESSAGES,
        "extra_body": {"temperature": 0},
    }
    m = c.messages.create(**kw)
    assert m.usage.input_tokens + (m.usage.cache_read_input_tokens or 0) == (
        expected.usage.prompt_tokens
    )
    assert [b.type for b in m.content] == ["text"]
    assert m.content[0].text == expected.choices[0].text
    with c.messages.stream(**kw) as stream:
        assert "".join(stream.text_stream) == expected.choices[0].text
    counted = c.messages.count_tokens(model="tiny", messages=MESSAGES)
    assert counted.input_tokens == expected.usage.prompt_tokens
    # Text blocks are the prefill too.
    blocks = [MESSAGES[0], {"role": "assistant", "content": [{"type": "text", "text": "1, 2,"}]}]
    blocks[1]["content"].append({"type": "text", "text": " 3, 4, 5, 6,"})
    assert c.messages.count_tokens(model="tiny", messages=blocks).input_tokens == (
        expected.usage.prompt_tokens
    )
