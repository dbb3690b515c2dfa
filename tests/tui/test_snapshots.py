"""Snapshots of each page at 80x24 (and the dashboard larger) against a real daemon.

The apps run with live=False: they look at the daemon once and never refresh, and the
host and GPU figures come from a fixed telemetry sample, so the pictures are the same on
every run. Update them with `pytest tests/tui --snapshot-update` and look at the SVGs.
"""

from __future__ import annotations

from typing import Any

from textual.pilot import Pilot

from tests.daemon import Daemon
from tests.tui.conftest import select_row, wait_until
from tui.app import ApplianceApp, make_app
from tui.screens.modals import ConfirmScreen, InspectScreen
from tui.screens.models import ModelsScreen
from tui.widgets.transcript import TranscriptView

GiB = 1 << 30

FIXED_SAMPLE: dict[str, Any] = {
    "kind": "sample",
    "time": 0.0,
    "host": {"cpu_pct": 37.5, "ram_used": 6 * GiB, "ram_total": 16 * GiB},
    "gpus": [
        {
            "device": "cuda:0",
            "index": 0,
            "name": "Fixed GPU",
            "vendor": "nvidia",
            "utilization_pct": 55.0,
            "used_bytes": 3 * GiB,
            "total_bytes": 8 * GiB,
        },
    ],
    "models": {"tiny": {"tokens_per_s": 42.0, "ttft_s": 0.12, "queue_depth": 0}},
}


def frozen(app: ApplianceApp, telemetry: bool = True) -> ApplianceApp:
    """Give the app a fixed past: a wave for the sparklines and one fixed sample."""
    if telemetry:
        for i in range(60):
            wave = (i % 20) / 19
            app.state.add_sample(
                {
                    **FIXED_SAMPLE,
                    "host": {
                        **FIXED_SAMPLE["host"],
                        "cpu_pct": 100 * wave,
                        "ram_used": (4 + 4 * wave) * GiB,
                    },
                    "gpus": [{**FIXED_SAMPLE["gpus"][0], "utilization_pct": 100 * (1 - wave)}],
                }
            )
        app.state.add_sample(FIXED_SAMPLE)
        app.state.telemetry = True
    return app


async def connected(pilot: Pilot[Any]) -> None:
    app = pilot.app
    assert isinstance(app, ApplianceApp)
    await wait_until(lambda: app.state.connected is True and app.state.models, what="data")
    app.refresh_views()
    await pilot.pause()


async def models_page(pilot: Pilot[Any]) -> None:
    """On the models page, with the format and quantization of every file read."""
    await pilot.press("2")
    await connected(pilot)
    screen = pilot.app.screen
    assert isinstance(screen, ModelsScreen)
    await wait_until(lambda: len(screen.file_info) == 5 and not screen._reading_files)
    await pilot.pause()


def test_dashboard(snap_compare: Any, still_daemon: Daemon) -> None:
    assert snap_compare(frozen(make_app(still_daemon.url, live=False)), run_before=connected)


def test_dashboard_large(snap_compare: Any, still_daemon: Daemon) -> None:
    app = frozen(make_app(still_daemon.url, live=False))
    assert snap_compare(app, run_before=connected, terminal_size=(120, 36))


def test_dashboard_without_telemetry(snap_compare: Any, still_daemon: Daemon) -> None:
    """Unknown host figures read n/a."""
    app = make_app(still_daemon.url, live=False)
    assert snap_compare(app, run_before=connected)


def test_models_page(snap_compare: Any, still_daemon: Daemon) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await models_page(pilot)
        await select_row(pilot.app, "#models-table", "think")

    assert snap_compare(make_app(still_daemon.url, live=False), run_before=run_before)


def test_inspect_modal(snap_compare: Any, still_daemon: Daemon) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await models_page(pilot)
        await select_row(pilot.app, "#models-table", "tiny")
        await pilot.press("i")
        await wait_until(lambda: isinstance(pilot.app.screen, InspectScreen), what="modal")
        await pilot.pause()

    assert snap_compare(make_app(still_daemon.url, live=False), run_before=run_before)


def test_delete_confirmation(snap_compare: Any, still_daemon: Daemon) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await models_page(pilot)
        await select_row(pilot.app, "#models-table", "hostile")
        await pilot.press("x")
        await wait_until(lambda: isinstance(pilot.app.screen, ConfirmScreen), what="modal")
        await pilot.pause()

    assert snap_compare(make_app(still_daemon.url, live=False), run_before=run_before)


def test_pull_dialog(snap_compare: Any, still_daemon: Daemon) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await models_page(pilot)
        await pilot.press("p")
        await pilot.press(*"hf://org/repo/model-q4_k_m.gguf")
        await pilot.pause()

    assert snap_compare(make_app(still_daemon.url, live=False), run_before=run_before)


def test_chat_page(snap_compare: Any, still_daemon: Daemon) -> None:
    """A fixed conversation (the transcript's drawing) and a message being typed."""

    async def run_before(pilot: Pilot[Any]) -> None:
        await pilot.press("4")
        await connected(pilot)
        view = pilot.app.screen.query_one(TranscriptView)
        view.add("user", "› what is a tier?")
        view.add("reasoning", "The operator asks about tiers. Hot, warm, cold, remote.")
        view.add(
            "reply",
            "A tier is where a model's weights are: hot in an engine worker, "
            "warm in RAM, cold on disk, remote not pulled yet.\nEach has a budget.",
            gap=True,
        )
        view.add("error", "error: model 'x' not found", gap=True)
        await pilot.press(*"hello")

    assert snap_compare(make_app(still_daemon.url, live=False), run_before=run_before)


def test_unreachable(snap_compare: Any) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        app = pilot.app
        assert isinstance(app, ApplianceApp)
        await wait_until(lambda: app.state.connected is False, what="refused")
        app.state.status = "daemon unreachable, retrying…"  # without the (random) port
        app.refresh_views()
        await pilot.pause()

    from tests.hubstub import unused_endpoint

    assert snap_compare(make_app(unused_endpoint(), live=False), run_before=run_before)
