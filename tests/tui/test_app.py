"""The app's connection: reconnecting after a daemon restart, a hung daemon, older daemons."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
from textual.widgets import DataTable

from tests.conftest import write_catalog
from tests.tui.conftest import cell, start_tui_daemon, wait_until
from tui.app import make_app
from tui.client import TuiClient
from tui.screens.dashboard import DashboardScreen
from tui.screens.events import EventsScreen
from tui.screens.modals import PullScreen
from tui.screens.models import ModelsScreen
from tui.widgets.statusbar import StatusLine

pytestmark = pytest.mark.anyio


def is_on(app: Any, screen_type: type) -> bool:
    return isinstance(app.screen, screen_type)


def status(app: Any) -> str:
    return str(app.screen.query_one(StatusLine).render())


async def test_reconnects_after_the_daemon_restarts(tmp_path: Path, models_dir: Path) -> None:
    catalog = write_catalog(tmp_path / "catalog.toml", models_dir)
    first = start_tui_daemon(tmp_path / "home", catalog)
    daemons = [first]
    try:
        app = make_app(first.url)
        async with app.run_test(size=(80, 24)):
            await wait_until(lambda: "ready" in status(app), what="connected")
            # Killed, as by a crash or the OOM killer. (A SIGTERM with the TUI's event stream
            # open takes the daemon's 10 s graceful-shutdown timeout: uvicorn waits on it.)
            first.proc.kill()
            first.proc.wait()
            await wait_until(lambda: "daemon unreachable, retrying" in status(app), what="down")
            assert app.screen.query_one("#dash-models", DataTable).row_count == 5  # kept
            await asyncio.sleep(2)  # long enough for the back-off to grow
            second = start_tui_daemon(tmp_path / "home", catalog, port=first.port)
            daemons.append(second)
            second.post("/admin/models/tiny/load")
            t0 = time.monotonic()
            await wait_until(lambda: "ready" in status(app), timeout=15, what="reconnected")
            assert time.monotonic() - t0 < 6.5  # the back-off tops out at 5 s
            await wait_until(
                lambda: cell(app, "#dash-models", "tiny", "tier") == "hot",
                what="fresh data from the new daemon",
            )
            # The event stream came back too: the new daemon's move shows up.
            await wait_until(
                lambda: any("cold → hot" in e["message"] for e in app.state.events),
                what="events after the restart",
            )
    finally:
        for d in daemons:
            d.stop()


async def test_a_hung_daemon_never_freezes_the_ui() -> None:
    """A daemon that accepts connections and never answers: the keys still work at once."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        url = f"http://127.0.0.1:{server.getsockname()[1]}"
        app = make_app(url)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause(0.3)  # the poll and the stream are now waiting on the socket
            for key, screen_type in (
                ("2", ModelsScreen),
                ("3", EventsScreen),
                ("1", DashboardScreen),
            ):
                t0 = time.monotonic()
                await pilot.press(key)
                await wait_until(
                    partial(is_on, app, screen_type),
                    timeout=2,
                    what=f"screen after {key}",
                )
                assert time.monotonic() - t0 < 1.0
            assert "connecting" in status(app)
            # The mouse works too: the page names on top are links.
            await pilot.click("NavBar", offset=(14, 0))
            await wait_until(partial(is_on, app, ModelsScreen), timeout=2, what="click")


def fake_daemon(events: list[dict[str, Any]]) -> httpx.MockTransport:
    """A daemon from before telemetry: /admin/telemetry* 404, events on /admin/events/stream."""
    model: dict[str, Any] = {
        "name": "m",
        "tier": "hot",
        "state": "ready",
        "pin": None,
        "kind": "chat",
        "aliases": [],
        "size_bytes": 1 << 20,
        "queue_depth": 2,
        "requests_total": 3,
    }
    budgets = {
        "hot": {"cpu": {"budget": 1 << 30, "used": 1 << 29, "free": 1 << 29}},
        "warm": {"budget": None, "used": None, "free": None},
        "cold": {"budget": 1 << 31, "used": 0, "free": 1 << 31},
    }

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/health":
            return httpx.Response(200, json={"status": "ready", "backend": "cpu"})
        if path == "/admin/models":
            return httpx.Response(200, json={"models": [model]})
        if path == "/admin/budgets":
            return httpx.Response(200, json=budgets)
        if path == "/admin/events":
            return httpx.Response(200, json={"events": events[:1]})
        if path == "/admin/events/stream":
            body = "".join(f"data: {json.dumps(e)}\n\n" for e in [{"kind": "hello"}, *events])
            return httpx.Response(
                200, content=body.encode(), headers={"content-type": "text/event-stream"}
            )
        return httpx.Response(404, json={"error": {"message": "Not Found"}})

    return httpx.MockTransport(handler)


async def test_falls_back_to_polling_and_events_without_telemetry() -> None:
    events = [
        {"time": 1.0, "model": "m", "kind": "move", "message": "cold → hot: first request"},
        {"time": 2.0, "model": "m", "kind": "crash", "message": "worker died; restarting"},
    ]
    app = make_app("http://daemon.invalid")
    app.client = TuiClient(app.base_url, transport=fake_daemon(events))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(lambda: app.state.telemetry is False, what="telemetry found missing")
        await wait_until(lambda: len(app.state.events) == 2, what="events from the stream")
        assert cell(app, "#dash-models", "m", "queue") == "2"  # from /admin/models
        assert cell(app, "#dash-models", "m", "tok/s") == "n/a"  # unknown without telemetry
        assert "GPU  n/a" in str(app.screen.query_one(".no-gpu").render())
        await pilot.press("3")
        screen = app.screen
        assert isinstance(screen, EventsScreen)
        await pilot.pause(1.5)  # the stream ended and came back: no event shown twice
        assert [line.split(" ", 1)[1] for line in screen.lines] == [
            "move    m: cold → hot: first request",
            "crash   m: worker died; restarting",
        ]


async def test_api_key(tmp_path: Path, models_dir: Path) -> None:
    """With keys set on the daemon, the TUI sends its key; without one it says why it fails."""
    catalog = write_catalog(tmp_path / "catalog.toml", models_dir)
    d = start_tui_daemon(tmp_path / "home", catalog, env={"APPLIANCE_API_KEY": "s3cret"})
    try:
        app = make_app(d.url, api_key="s3cret")
        async with app.run_test(size=(80, 24)):
            await wait_until(lambda: "ready" in status(app), what="connected with the key")
            await wait_until(lambda: app.state.telemetry is True, what="the stream, with the key")
        keyless = make_app(d.url)
        async with keyless.run_test(size=(80, 24)):
            await wait_until(lambda: "daemon error" in status(keyless), what="refused")
            assert "key" in status(keyless).lower()
    finally:
        d.stop()


async def test_palette_pull_from_any_page(tui_daemon: Any) -> None:
    app = make_app(tui_daemon.url)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(lambda: app.state.connected, what="connected")
        pull = next(c for c in app.get_system_commands(app.screen) if c.title.startswith("Pull"))
        pull.callback()
        await wait_until(lambda: isinstance(app.screen, PullScreen), what="the pull dialog")
        await pilot.press("escape")
        await wait_until(lambda: isinstance(app.screen, ModelsScreen), what="models page")
