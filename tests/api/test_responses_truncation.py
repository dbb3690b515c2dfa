"""The Responses API's `truncation: "auto"`: a conversation over the context loses its
oldest turns, whole, until it fits with room for the answer; without it, or when the
last turn alone is too long, the answer is the context error."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from appliance.api.truncation import turn_starts, without_oldest
from tests.api.test_tools_e2e import tools_daemon  # noqa: F401  (the fixture)
from tests.daemon import Daemon

WORDS = "the quick brown fox jumps over the lazy dog near a quiet river bank " * 3


def _conversation(turns: int) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for i in range(turns):
        items.append({"role": "user", "content": f"question {i}: {WORDS}"})
        items.append({"role": "assistant", "content": f"answer {i}: {WORDS}"})
    items.append({"role": "user", "content": "and the last question?"})
    return items


def test_turns_start_at_user_messages_and_drop_whole() -> None:
    messages = [
        {"role": "system", "content": "rules"},
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "", "tool_calls": [{"id": "1"}]},
        {"role": "tool", "content": "r", "tool_call_id": "1"},
        {"role": "assistant", "content": "b"},
        {"role": "user", "content": "c"},
        {"role": "assistant", "content": "d"},
        {"role": "user", "content": "e"},
    ]
    assert turn_starts(messages) == [1, 5, 7]
    assert without_oldest(messages, 0) == messages
    # The call and its result go with their turn; the system message stays.
    assert [m["content"] for m in without_oldest(messages, 1)] == ["rules", "c", "d", "e"]
    assert [m["content"] for m in without_oldest(messages, 2)] == ["rules", "e"]
    assert [m["content"] for m in without_oldest(messages, 9)] == ["rules", "e"]  # the last


def test_truncation_auto_drops_the_oldest_turns_until_it_fits(
    tools_daemon: Daemon,  # noqa: F811
) -> None:
    c = openai.OpenAI(base_url=tools_daemon.v1, api_key="x", max_retries=0)
    items = _conversation(12)
    with pytest.raises(openai.BadRequestError) as refused:
        c.responses.create(model="qwen-tools", input=items, max_output_tokens=8)  # type: ignore[arg-type]
    assert refused.value.code == "context_length_exceeded"
    r = c.responses.create(
        model="qwen-tools",
        instructions="Answer briefly.",
        input=items,  # type: ignore[arg-type]
        max_output_tokens=8,
        truncation="auto",
    )
    assert r.status in ("completed", "incomplete") and r.truncation == "auto"
    assert r.usage is not None
    # It fits with room for the 8 tokens asked, and no more than needed was dropped: one
    # more turn (two messages, about this many tokens with the template's) would not fit.
    pair = [items[0]["content"], items[1]["content"]]
    turn = sum(
        len(
            tools_daemon.post("/tokenize", json={"content": t, "model": "qwen-tools"}).json()[
                "tokens"
            ]
        )
        for t in pair
    )
    assert 2048 - 8 - turn < r.usage.input_tokens <= 2048 - 8


def test_a_last_turn_over_the_context_is_still_refused(tools_daemon: Daemon) -> None:  # noqa: F811
    c = openai.OpenAI(base_url=tools_daemon.v1, api_key="x", max_retries=0)
    items = [{"role": "user", "content": "hi"}, {"role": "user", "content": WORDS * 32}]
    with pytest.raises(openai.BadRequestError) as refused:
        c.responses.create(model="qwen-tools", input=items, truncation="auto")  # type: ignore[arg-type]
    assert refused.value.code == "context_length_exceeded"
