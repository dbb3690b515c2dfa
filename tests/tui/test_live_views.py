"""The pages as the daemon's figures change, against a daemon in memory.

Columns that grow, "-" for models without a worker, evictions and health problems
explained where one looks, failed pulls that stay, and the `?` key.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from textual.widgets import DataTable, HelpPanel, Input, ProgressBar, Static

from tests.tui.conftest import cell, select_row, wait_until
from tests.tui.fakes import FakeDaemon, model
from tui.screens.chat import ChatScreen
from tui.screens.models import ModelsScreen
from tui.widgets.pull_progress import PullProgress

pytestmark = pytest.mark.anyio

CHECKSUM = "checksum mismatch for tiny.gguf: expected " + "0" * 64 + ", got " + "ab" * 32


def toasts(app: Any) -> list[str]:
    return [str(n.message) for n in app._notifications]


async def test_columns_grow_to_fit_new_contents() -> None:
    fake = FakeDaemon()
    app = fake.app()
    async with app.run_test(size=(100, 24)) as pilot:
        table = app.screen.query_one("#dash-models", DataTable)
        await wait_until(lambda: cell(app, "#dash-models", "m", "state") == "ready", what="row")
        await pilot.pause()  # drawn once, with "n/a" and "ready"
        fake.models[0]["state"] = "restarting"
        fake.push({"kind": "sample", "models": {"m": {"tokens_per_s": 95.25, "ttft_s": 12.3}}})
        await wait_until(lambda: cell(app, "#dash-models", "m", "TTFT") == "12.3 s", what="TTFT")
        app.poll_now()
        await wait_until(
            lambda: cell(app, "#dash-models", "m", "state") == "restarting", what="restarting"
        )
        await pilot.pause()
        for column, text in (("TTFT", "12.3 s"), ("state", "restarting")):
            assert table.columns[column].content_width >= len(text), column  # type: ignore[index]


async def test_models_without_a_worker_show_dashes() -> None:
    fake = FakeDaemon()
    fake.models = [
        model("m", "hot", queue_depth=1, slots=2, slots_busy=1),
        model("other", "cold", queue_depth=0),
        model("far", "remote", queue_depth=0),
    ]
    app = fake.app()
    async with app.run_test(size=(100, 24)):
        fake.push(
            {
                "kind": "sample",
                "models": {
                    "m": {"tokens_per_s": 10.0, "queue_depth": 1, "slots": 2, "slots_busy": 1},
                    "other": {"tokens_per_s": 0.0, "queue_depth": 0},
                    "far": {"tokens_per_s": 0.0, "queue_depth": 0},
                },
            }
        )
        await wait_until(lambda: cell(app, "#dash-models", "m", "tok/s") == "10.0", what="rates")
        for name in ("other", "far"):
            assert cell(app, "#dash-models", name, "tok/s") == "-"
            assert cell(app, "#dash-models", name, "queue") == "-"
            assert cell(app, "#dash-models", name, "slots") == "-"
        assert cell(app, "#dash-models", "m", "queue") == "1"
        assert cell(app, "#dash-models", "m", "slots") == "1/2"


async def test_health_reasons_show_on_the_dashboard_and_as_a_toast() -> None:
    fake = FakeDaemon()
    app = fake.app()
    async with app.run_test(size=(80, 24)) as pilot:
        line = app.screen.query_one("#dash-health", Static)
        await wait_until(lambda: app.state.connected, what="connected")
        assert not line.display
        reason = "model 'broken' failed: not a GGUF file (bad magic)"
        fake.health = {"status": "degraded", "backend": "cpu", "reasons": [reason]}
        app.poll_now()
        await wait_until(lambda: line.display, what="the health line")
        assert reason in str(line.render())
        await wait_until(lambda: reason in toasts(app), what="the toast")
        await pilot.pause()
        assert toasts(app).count(reason) == 1  # told once, not at every poll
        fake.health = {"status": "ready", "backend": "cpu", "reasons": []}
        app.poll_now()
        await wait_until(lambda: not line.display, what="the line gone")


async def test_an_eviction_says_why_on_the_models_page() -> None:
    fake = FakeDaemon()
    app = fake.app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2")
        assert isinstance(app.screen, ModelsScreen)
        await select_row(app, "#models-table", "m")
        reason = "evicted to make room for other: needs 1.0 GiB"
        fake.models = [model("m", "cold"), model("other", "hot")]
        fake.push(
            {
                "time": time.time(),
                "model": "m",
                "kind": "move",
                "message": f"hot → cold: {reason} (0.01 s)",
                "data": {"src": "hot", "dst": "cold", "reason": reason},
            }
        )
        await wait_until(lambda: cell(app, "#models-table", "m", "tier") == "cold", what="cold")
        detail = app.screen.query_one("#model-detail", Static)
        await wait_until(lambda: reason in str(detail.render()), what="the reason")
        assert any(reason in t for t in toasts(app))
        # An operator's own move is no news: no toast for it.
        fake.push(
            {
                "time": time.time(),
                "model": "other",
                "kind": "move",
                "message": "hot → warm: operator request (0.01 s)",
                "data": {"src": "hot", "dst": "warm", "reason": "operator request"},
            }
        )
        await wait_until(lambda: len(app.state.events) == 2, what="the second move")
        await pilot.pause()
        assert not any("operator request" in t for t in toasts(app))


async def test_a_failed_pull_stays_whole_until_dismissed() -> None:
    fake = FakeDaemon()
    fake.pull_error = CHECKSUM
    app = fake.app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2")
        screen = app.screen
        assert isinstance(screen, ModelsScreen)
        await wait_until(lambda: app.state.connected, what="connected")
        widget = screen.start_pull("other")
        assert screen.start_pull("other") is widget  # `p` twice: one transfer, one bar
        await pilot.pause()
        assert len(screen.query(PullProgress)) == 1
        await wait_until(lambda: widget.outcome == "error", what="the failure")
        await pilot.pause()
        assert CHECKSUM in str(widget.label.render())
        assert widget.label.size.height >= 2  # wrapped, not cut at the edge
        assert not widget.query_one(ProgressBar).display  # no bar still "working"
        assert any(CHECKSUM in t for t in toasts(app))
        # Tried again: the new try replaces the failure.
        fake.pull_error = None
        again = screen.start_pull("other")
        await wait_until(lambda: again.outcome == "success", what="the retry")
        assert list(screen.query(PullProgress)) == [again]
        # A failure stays until esc.
        fake.pull_error = CHECKSUM
        await again.remove()
        failed = screen.start_pull("other")
        await wait_until(lambda: failed.outcome == "error", what="the second failure")
        await pilot.pause(0.5)
        assert list(screen.query(PullProgress)) == [failed]  # no timer takes it away
        await pilot.press("escape")
        await wait_until(lambda: not screen.query(PullProgress), what="dismissed")


def bars(screen: Any) -> list[PullProgress]:
    return list(screen.query(PullProgress))


async def test_the_models_page_shows_every_pull_and_stops_any() -> None:
    """The Models page showed only the pulls it started: a pull running before it opened
    (from GET /admin/pulls) and one started elsewhere after (from the live events) get the
    same bar, move with their events, end as their events say, and `s` stops either."""
    fake = FakeDaemon()
    fake.pulls = [
        {
            "model": "other",
            "ref": "hf://org/other/x.gguf@main",
            "status": "downloading",
            "downloaded": 1 << 18,
            "total": 1 << 20,
            "message": "",
            "started": 1.0,
        }
    ]
    app = fake.app()
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("2")
        screen = app.screen
        assert isinstance(screen, ModelsScreen)
        [bar] = await wait_until(lambda: bars(screen), what="the listed pull's bar")
        assert not bar.owned and bar.key == "other"
        await wait_until(lambda: "256 KiB / 1.0 MiB" in str(bar.label.render()), what="size")
        assert screen.check_action("cancel_pull", ())  # `s` means something now
        fake.push_pull("other", "downloading", 1 << 19)
        await wait_until(lambda: "512 KiB / 1.0 MiB" in str(bar.label.render()), what="moved")
        fake.push_pull("far", "resolving", started=5.0)  # a request's first use, say
        await wait_until(lambda: len(bars(screen)) == 2, what="the new pull's bar")
        far = next(b for b in bars(screen) if b.key == "far")
        await select_row(app, "#models-table", "other")
        await pilot.press("s")
        await wait_until(lambda: fake.cancelled == ["other"], what="the stop asked for")
        fake.push_pull("other", "cancelled", 1 << 19)
        await wait_until(lambda: bar.outcome == "cancelled", what="stopped")
        assert "partial download is kept" in str(bar.label.render())
        fake.push_pull("far", "error", note="the hub has no org/far", started=5.0)
        await wait_until(lambda: far.outcome == "error", what="failed")
        assert "the hub has no org/far" in str(far.label.render())
        assert any("the hub has no org/far" in t for t in toasts(app))
        # The same model pulled again: a new bar replaces the failure's.
        fake.push_pull("far", "downloading", 10, started=9.0)
        await wait_until(
            lambda: [b.run for b in bars(screen) if b.key == "far"] == [9.0], what="again"
        )
        assert far not in bars(screen)


async def test_a_pull_a_restart_breaks_off_says_it_comes_back() -> None:
    """A pull the daemon's stop broke off is not a failure: its bar says the daemon resumes
    it, and the resumed pull (a new start) takes its place."""
    fake = FakeDaemon()
    app = fake.app()
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("2")
        screen = app.screen
        assert isinstance(screen, ModelsScreen)
        await wait_until(lambda: app.state.connected, what="connected")
        fake.push_pull("other", "downloading", 1 << 18)
        [bar] = await wait_until(lambda: bars(screen), what="the bar")
        fake.push_pull("other", "interrupted", 1 << 18)
        await wait_until(lambda: bar.outcome == "interrupted", what="interrupted")
        assert "resumes the pull when it starts again" in str(bar.label.render())
        assert not any("failed" in t for t in toasts(app))
        fake.push_pull("other", "downloading", 1 << 19, started=7.0)  # resumed
        await wait_until(lambda: [b.run for b in bars(screen)] == [7.0], what="resumed")


async def test_a_pull_this_page_started_has_one_bar() -> None:
    """The events of a pull this page started (its own stream feeds its bar) add no second
    bar, even when they came first and it was asked for by another spelling of its name."""
    fake = FakeDaemon()
    fake.pulls = None  # an older daemon without GET /admin/pulls: the events still show
    fake.pull_label = "other"
    app = fake.app()
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("2")
        screen = app.screen
        assert isinstance(screen, ModelsScreen)
        await wait_until(lambda: app.state.connected, what="connected")
        fake.push_pull("other", "resolving")
        await wait_until(lambda: bars(screen), what="the event's bar")
        own = screen.start_pull("Other")
        await wait_until(lambda: own.outcome == "success", what="pulled")
        fake.push_pull("other", "downloading", 1 << 19)
        fake.push_pull("other", "done", 1 << 20)
        await wait_until(lambda: app.state.pulls["other"]["outcome"] == "success", what="done")
        await pilot.pause(0.2)
        assert bars(screen) == [own] and own.key == "other"
        # Started here again, its events coming too: one bar still.
        fake.pull_started = 2.0
        again = screen.start_pull("other")
        fake.push_pull("other", "resolving", started=2.0)
        fake.push_pull("other", "downloading", 1 << 19, started=2.0)
        await wait_until(lambda: again.outcome == "success", what="pulled again")
        fake.push_pull("other", "done", 1 << 20, started=2.0)
        await wait_until(lambda: app.state.pulls["other"]["started"] == 2.0, what="events")
        await pilot.pause(0.2)
        assert bars(screen) == [again] and again.run == 2.0


async def test_question_mark_toggles_the_keys_panel() -> None:
    fake = FakeDaemon()
    app = fake.app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("question_mark")
        await wait_until(lambda: app.screen.query(HelpPanel), what="the keys panel")
        await pilot.press("question_mark")
        await wait_until(lambda: not app.screen.query(HelpPanel), what="panel hidden")
        # In the chat's input, `?` is a character.
        await pilot.press("4")
        assert isinstance(app.screen, ChatScreen)
        await pilot.press(*"why?")
        assert app.screen.query_one("#chat-input", Input).value == "why?"
        assert not app.screen.query(HelpPanel)
