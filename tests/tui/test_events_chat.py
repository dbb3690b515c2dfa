"""The events page and the chat pane against a real daemon."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from textual.widgets import RichLog, Select

from tests.conftest import write_catalog
from tests.daemon import Daemon
from tests.tui.conftest import start_tui_daemon, wait_until
from tui.app import make_app
from tui.screens.chat import ChatScreen, Reply
from tui.screens.events import EventsScreen
from tui.widgets.transcript import TranscriptView

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> Iterator[Daemon]:
    home = tmp_path_factory.mktemp("evchat")
    d = start_tui_daemon(home / "home", write_catalog(home / "catalog.toml", models_dir))
    yield d
    d.stop()


async def test_events_page_shows_a_move_after_a_load(daemon: Daemon) -> None:
    app = make_app(daemon.url)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("3")
        screen = app.screen
        assert isinstance(screen, EventsScreen)
        await wait_until(lambda: app.state.connected, what="connected")
        async with httpx.AsyncClient(timeout=60) as http:
            r = await http.post(daemon.url + "/admin/models/tiny-embed/load")
            assert r.status_code == 200, r.text
        line = await wait_until(
            lambda: next((x for x in screen.lines if "tiny-embed: cold → hot" in x), None),
            what="the move event",
        )
        assert "admin request" in line  # the reason
        # Live from the stream, newest last; the history is not shown twice.
        assert screen.lines.index(line) == len(screen.lines) - 1
        assert len(screen.lines) == len(set(screen.lines))
        assert screen.query_one("#event-log", RichLog).lines  # written to the log widget too


async def test_chat_streams_a_reply(daemon: Daemon) -> None:
    app = make_app(daemon.url)
    app.chat_params = {"max_tokens": 24, "temperature": 0}
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("4")
        screen = app.screen
        assert isinstance(screen, ChatScreen)
        await wait_until(lambda: screen.model is not None, what="a model to pick")
        screen.query_one("#chat-model").value = "tiny"  # type: ignore[attr-defined]
        await pilot.press(*"hello there", "enter")
        await wait_until(lambda: screen.last_stats, timeout=30, what="the reply")
        reply = screen.reply
        assert isinstance(reply, Reply)
        assert screen.last_stats["tokens"] == 24 and screen.last_stats["finish"] == "length"
        assert reply.content and not reply.reasoning
        assert screen.messages[-1] == {"role": "assistant", "content": reply.content}
        assert "24 tokens" in str(screen.query_one("#chat-stats").render())
        # The same request without streaming gives the same text (temperature 0).
        async with httpx.AsyncClient(timeout=60) as http:
            r = await http.post(
                daemon.url + "/v1/chat/completions",
                json={
                    "model": "tiny",
                    "max_tokens": 24,
                    "temperature": 0,
                    "messages": [{"role": "user", "content": "hello there"}],
                },
            )
        assert r.json()["choices"][0]["message"]["content"] == reply.content

        # A reasoning model: its reasoning goes to its own, dimmed area.
        screen.last_stats = {}
        screen.query_one("#chat-model").value = "think"  # type: ignore[attr-defined]
        await pilot.press(*"why", "enter")
        await wait_until(lambda: screen.last_stats, timeout=30, what="the second reply")
        second = screen.reply
        assert isinstance(second, Reply) and second is not reply
        assert second.reasoning  # the model never closes its <think>: all of it is reasoning
        view = screen.query_one(TranscriptView)
        assert second.reasoning_block.text == second.reasoning
        assert second.reasoning_block.role == "reasoning"  # drawn dim, in its own block
        assert second.content_block.text == "(no answer outside the reasoning)"
        lines = view.plain_lines
        assert lines[0] == "› hello there" and "› why" in lines


async def test_chat_says_why_a_model_fails(daemon: Daemon) -> None:
    app = make_app(daemon.url)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("4")
        screen = app.screen
        assert isinstance(screen, ChatScreen)
        await wait_until(lambda: screen.model is not None, what="a model to pick")
        screen.query_one("#chat-model", Select).value = "broken"
        await pilot.press(*"hi", "enter")
        await wait_until(lambda: screen.last_stats, timeout=30, what="the failure")
        view = screen.query_one(TranscriptView)
        errors = [b.text for b in view.blocks if b.role == "error"]
        assert len(errors) == 1 and "broken" in errors[0], errors
        assert "(empty)" not in view.plain_lines  # no empty reply above the error
        assert screen.messages == []  # the failed question is not sent again with the next
