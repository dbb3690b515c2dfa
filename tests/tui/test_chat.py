"""The chat's conversation against a daemon in memory: stops, cut-offs, failures, long talks."""

from __future__ import annotations

from typing import Any

import pytest
from textual.widgets import Select

from tests.tui.conftest import wait_until
from tests.tui.fakes import FakeDaemon
from tui.screens.chat import ChatScreen
from tui.widgets.transcript import TranscriptView

pytestmark = pytest.mark.anyio


async def chat_page(pilot: Any) -> ChatScreen:
    await pilot.press("4")
    screen = pilot.app.screen
    assert isinstance(screen, ChatScreen)
    await wait_until(lambda: screen.model == "m", what="the hot model picked")
    return screen


def stats(screen: ChatScreen) -> str:
    return str(screen.query_one("#chat-stats").render())


async def slow_reply_begun(pilot: Any) -> tuple[ChatScreen, Any]:
    """The chat page with "hi" sent and the first words of a slow reply shown."""
    screen = await chat_page(pilot)
    await pilot.press(*"hi", "enter")
    reply = screen.reply
    assert reply is not None
    await wait_until(lambda: reply.content, what="the first words")
    return screen, reply


async def test_stop_keeps_the_partial_reply_and_says_so() -> None:
    fake = FakeDaemon()
    fake.word_delay = 0.2
    app = fake.app()
    async with app.run_test(size=(80, 24)) as pilot:
        screen, reply = await slow_reply_begun(pilot)
        await pilot.press("escape")
        await wait_until(lambda: screen.last_stats, what="the stats")
        assert "stopped after" in stats(screen) and "TTFT" in stats(screen), stats(screen)
        assert "waiting" not in stats(screen)
        assert screen.messages == [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": reply.content},
        ]
        assert reply.content_block.text.endswith("[stopped]")
        # The next request alternates: user, assistant, user.
        fake.word_delay = 0.0
        await pilot.press(*"more", "enter")
        await wait_until(lambda: screen.last_stats.get("outcome") == "done", what="done")
        assert [m["role"] for m in fake.chats[-1]] == ["user", "assistant", "user"]


async def test_a_message_sent_mid_reply_follows_the_partial_answer() -> None:
    fake = FakeDaemon()
    fake.word_delay = 0.2
    app = fake.app()
    async with app.run_test(size=(80, 24)) as pilot:
        _, first = await slow_reply_begun(pilot)
        fake.word_delay = 0.0
        await pilot.press(*"next", "enter")
        await wait_until(lambda: len(fake.chats) == 2, what="the second request")
        assert [m["role"] for m in fake.chats[1]] == ["user", "assistant", "user"]
        assert fake.chats[1][1]["content"] == first.content
        assert first.outcome == "cut off"


async def test_a_failed_turn_leaves_the_history_and_a_model_switch_shows() -> None:
    fake = FakeDaemon()
    app = fake.app()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await chat_page(pilot)
        await pilot.press(*"hello", "enter")
        await wait_until(lambda: screen.last_stats.get("outcome") == "done", what="answer")
        screen.query_one("#chat-model", Select).value = "other"
        await pilot.pause()
        view = screen.query_one(TranscriptView)
        assert any(b.role == "note" and "now talking to other" in b.text for b in view.blocks)
        fake.chat_error = "model 'other' failed to load"
        screen.last_stats = {}
        await pilot.press(*"again", "enter")
        await wait_until(lambda: screen.last_stats.get("outcome") == "error", what="failure")
        assert [m["content"] for m in screen.messages] == ["hello", "one two three four "]
        assert "(empty)" not in view.plain_lines
        errors = [b for b in view.blocks if b.role == "error"]
        assert len(errors) == 1 and "failed to load" in errors[0].text
        fake.chat_error = None  # a retry sends the question once
        await pilot.press(*"again", "enter")
        await wait_until(lambda: len(fake.chats) == 3, what="the retry")
        assert [m["role"] for m in fake.chats[-1]] == ["user", "assistant", "user"]


async def test_a_conversation_over_the_context_drops_its_oldest_turns() -> None:
    fake = FakeDaemon()
    fake.words = ["x" * 20]
    app = fake.app()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await chat_page(pilot)
        for word in ("alpha", "bravo", "charlie"):
            screen.last_stats = {}
            await pilot.press(*word, "enter")
            await wait_until(lambda: screen.last_stats.get("outcome") == "done", what=word)
        fake.context_chars = 60  # the six earlier messages (79 chars): too long
        screen.last_stats = {}
        await pilot.press(*"delta", "enter")
        await wait_until(lambda: screen.last_stats, what="the reply")
        assert screen.last_stats["outcome"] == "done", stats(screen)
        assert [m["content"] for m in fake.chats[-1]] == ["charlie", "x" * 20, "delta"]
        assert "oldest messages left out" in stats(screen)
        # Still too long with nothing left to drop: it says what to do.
        fake.context_chars = 1
        screen.last_stats = {}
        await pilot.press(*"echo", "enter")
        await wait_until(lambda: screen.last_stats, what="the failure")
        errors = [b.text for b in screen.query_one(TranscriptView).blocks if b.role == "error"]
        assert errors and "ctrl+l" in errors[-1], errors
