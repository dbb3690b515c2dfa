"""The dashboard against a real daemon: the models, their tiers, and a change after a request."""

from __future__ import annotations

import httpx
import pytest
from textual.widgets import DataTable

from tests.daemon import Daemon
from tests.tui.conftest import cell, wait_until
from tui.app import make_app
from tui.screens.dashboard import DashboardScreen, GaugeRow
from tui.widgets.meter import Meter

pytestmark = pytest.mark.anyio


async def test_dashboard_shows_models_and_updates_after_a_request(tui_daemon: Daemon) -> None:
    app = make_app(tui_daemon.url)
    async with app.run_test(size=(80, 24)) as pilot:
        assert isinstance(app.screen, DashboardScreen)
        table = app.screen.query_one("#dash-models", DataTable)
        await wait_until(lambda: table.row_count == 5, what="five models listed")
        assert cell(app, "#dash-models", "tiny", "tier") == "cold"
        assert cell(app, "#dash-models", "tiny", "reqs") == "0"
        async with httpx.AsyncClient(timeout=60) as http:
            r = await http.post(
                tui_daemon.url + "/v1/chat/completions",
                json={
                    "model": "tiny",
                    "max_tokens": 8,
                    "messages": [{"role": "user", "content": "hi"}],
                },
            )
            assert r.status_code == 200
        await wait_until(
            lambda: (
                cell(app, "#dash-models", "tiny", "tier") == "hot"
                and cell(app, "#dash-models", "tiny", "reqs") == "1"
            ),
            what="tiny hot with one request",
        )
        assert cell(app, "#dash-models", "tiny", "state") == "ready"
        # Budgets come from the daemon: the hot CPU budget now holds tiny.
        meters = {m.label: m for m in app.screen.query("#budget-rows Meter").results(Meter)}
        assert set(meters) >= {"hot cpu", "warm", "cold"}
        await wait_until(lambda: meters["hot cpu"].value.endswith("/1.0G"), what="hot budget")
        await wait_until(lambda: (meters["hot cpu"].fraction or 0) > 0, what="hot cpu in use")
        assert "ready" in str(app.screen.query_one("StatusLine").render())
        await pilot.pause()


async def test_dashboard_host_gauges_from_telemetry(tui_daemon: Daemon) -> None:
    """With the daemon's telemetry stream, CPU and RAM show numbers and sparklines fill."""
    app = make_app(tui_daemon.url)
    async with app.run_test(size=(80, 24)):
        cpu = app.screen.query_one("#gauge-cpu", GaugeRow)
        if app.state.telemetry is False:  # pragma: no cover - a daemon without telemetry
            pytest.skip("this daemon has no /admin/telemetry/stream")
        await wait_until(lambda: cpu.query_one(Meter).fraction is not None, what="CPU gauge")
        await wait_until(lambda: len(app.state.series.get("cpu", [])) >= 2, what="CPU series")
        assert cpu.query_one(Meter).value.endswith("%")
        ram = app.screen.query_one("#gauge-ram", GaugeRow).query_one(Meter)
        assert "/" in ram.value
