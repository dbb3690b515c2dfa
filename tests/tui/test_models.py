"""The models page against a real daemon: load, unload, tiers, pin, inspect, delete, pull."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from textual.widgets import DataTable

from tests.daemon import Daemon
from tests.hubstub import HubStub
from tests.tui.conftest import cell, select_row, start_tui_daemon, wait_until
from tui.app import make_app
from tui.screens.modals import ConfirmScreen, InspectScreen, PullScreen
from tui.screens.models import ModelsScreen
from tui.widgets.pull_progress import PullProgress

pytestmark = pytest.mark.anyio

REPO = "org/tiny-GGUF"
COMMIT = "b" * 40


async def test_load_unload_pin_and_inspect(tui_daemon: Daemon) -> None:
    app = make_app(tui_daemon.url)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2")
        assert isinstance(app.screen, ModelsScreen)
        await select_row(app, "#models-table", "tiny")
        assert cell(app, "#models-table", "tiny", "aliases") == "tiny-alias"
        assert cell(app, "#models-table", "tiny", "size") == "579 KiB"
        # Format and quantization come from the file's metadata, read once.
        await wait_until(lambda: cell(app, "#models-table", "tiny", "quant") == "F32", what="q")
        assert cell(app, "#models-table", "tiny", "format") == "gguf"

        await pilot.press("l")
        await wait_until(lambda: cell(app, "#models-table", "tiny", "tier") == "hot", what="hot")
        assert tui_daemon.model("tiny")["tier"] == "hot"

        await pilot.press("w")
        await wait_until(lambda: cell(app, "#models-table", "tiny", "tier") == "warm", what="warm")
        await pilot.press("l")
        await wait_until(lambda: cell(app, "#models-table", "tiny", "tier") == "hot", what="hot")

        await pilot.press("u")
        await wait_until(
            lambda: cell(app, "#models-table", "tiny", "tier") != "hot", what="unloaded"
        )
        assert tui_daemon.model("tiny")["pid"] is None

        # Unloading keeps the weights in RAM: warm. Pinning pins it where it is.
        await wait_until(
            lambda: cell(app, "#models-table", "tiny", "tier") == "warm", what="warm after unload"
        )
        await pilot.press("n")
        await wait_until(lambda: cell(app, "#models-table", "tiny", "pin") == "warm", what="pin")
        assert tui_daemon.model("tiny")["pin"] == "warm"
        await pilot.press("n")  # and unpin
        await wait_until(lambda: cell(app, "#models-table", "tiny", "pin") == "-", what="unpin")
        assert tui_daemon.model("tiny")["pin"] is None

        await pilot.press("i")
        await wait_until(lambda: isinstance(app.screen, InspectScreen), what="inspect modal")
        rows = dict(
            (str(r[0]), str(r[1]))
            for r in (
                app.screen.query_one(DataTable).get_row_at(i)
                for i in range(app.screen.query_one(DataTable).row_count)
            )
        )
        assert rows["architecture"] == "llama"
        assert rows["quantization"] == "F32"
        assert rows["chat template"] == "yes"
        assert rows["format"] == "gguf" and rows["runs on"] == "cpu"
        await pilot.press("escape")
        await wait_until(lambda: isinstance(app.screen, ModelsScreen), what="modal closed")


async def test_delete_an_imported_copy_asks_first(tui_daemon: Daemon, models_dir: Path) -> None:
    r = tui_daemon.post(
        "/admin/import", json={"path": str(models_dir / "tiny.gguf"), "name": "tiny-copy"}
    )
    assert r.status_code == 200, r.text
    app = make_app(tui_daemon.url)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2")
        await select_row(app, "#models-table", "tiny-copy")

        await pilot.press("x")
        await wait_until(lambda: isinstance(app.screen, ConfirmScreen), what="confirmation")
        await pilot.press("n")  # declined: nothing happens
        await wait_until(lambda: isinstance(app.screen, ModelsScreen), what="back")
        await pilot.pause(0.3)
        assert tui_daemon.get("/admin/models/tiny-copy").status_code == 200

        await pilot.press("x")
        await wait_until(lambda: isinstance(app.screen, ConfirmScreen), what="confirmation")
        await pilot.press("y")
        await wait_until(
            lambda: cell(app, "#models-table", "tiny-copy", "name") is None, what="row gone"
        )
        assert tui_daemon.get("/admin/models/tiny-copy").status_code == 404
        assert [m["name"] for m in tui_daemon.get("/admin/store").json()["models"]] == []


async def test_palette_commands_act_on_the_selected_model(tui_daemon: Daemon) -> None:
    app = make_app(tui_daemon.url)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2")
        await select_row(app, "#models-table", "think")
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert {"Load think (hot)", "Unpin think", "Delete think…", "Inspect think"} <= set(titles)
        load = next(c for c in app.get_system_commands(app.screen) if c.title == "Load think (hot)")
        load.callback()
        await wait_until(lambda: cell(app, "#models-table", "think", "tier") == "hot", what="hot")
        # And through the palette itself, by typing.
        await pilot.press("ctrl+p")
        await pilot.press(*"Move think to cold")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await wait_until(lambda: cell(app, "#models-table", "think", "tier") == "cold", what="cold")


@pytest.fixture
def hub(models_dir: Path) -> Iterator[HubStub]:
    with HubStub() as stub:
        f = stub.add_file(
            REPO, "tiny-q4_k_m.gguf", (models_dir / "tiny.gguf").read_bytes(), revision_sha=COMMIT
        )
        f.chunk_size = 32 << 10
        f.delay = 0.06  # about 1.1 s for the 579 KiB: several progress events
        yield stub


@pytest.fixture
def hub_daemon(tmp_path: Path, hub: HubStub) -> Iterator[Daemon]:
    catalog = tmp_path / "models.toml"
    catalog.write_text(
        f'[models.remote-tiny]\nsource = "hf://{REPO}/*q4_k_m.gguf"\nrevision = "{COMMIT}"\n'
    )
    d = start_tui_daemon(tmp_path / "home", catalog, env={"HF_ENDPOINT": hub.endpoint})
    yield d
    d.stop()


async def test_pull_shows_live_progress(hub_daemon: Daemon, hub: HubStub) -> None:
    app = make_app(hub_daemon.url)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2")
        await select_row(app, "#models-table", "remote-tiny")
        assert cell(app, "#models-table", "remote-tiny", "tier") == "remote"
        assert cell(app, "#models-table", "remote-tiny", "quant") == "Q4_K_M"  # from its name
        await pilot.press("p")
        await wait_until(lambda: isinstance(app.screen, PullScreen), what="pull dialog")
        await pilot.press("enter")  # the selected remote model is filled in
        screen = app.screen
        assert isinstance(screen, ModelsScreen)
        progress = await wait_until(
            lambda: screen.query(PullProgress).first() if screen.query(PullProgress) else None,
            what="bar",
        )
        await wait_until(lambda: progress.outcome is not None, timeout=30, what="pull done")
        assert progress.outcome == "success", progress.label.render()
        size = len(hub.file(REPO, "tiny-q4_k_m.gguf").data)
        downloaded = [d for d, _ in progress.seen]
        assert len(set(downloaded)) >= 2, progress.seen  # it moved while we watched
        assert downloaded == sorted(downloaded) and downloaded[-1] == size
        assert all(t in (0, size) for _, t in progress.seen), progress.seen  # 0: not known yet
        assert "pulled remote-tiny" in str(progress.label.render())
        await wait_until(
            lambda: cell(app, "#models-table", "remote-tiny", "tier") == "cold",
            what="pulled model cold",
        )
        # A second pull of a reference the hub does not have says why.
        failed = screen.start_pull("hf://org/missing/x.gguf")
        await wait_until(lambda: failed.outcome is not None, what="failed pull")
        assert failed.outcome == "error" and "not found" in str(failed.label.render()).lower()
        async with httpx.AsyncClient() as http:
            stored = (await http.get(hub_daemon.url + "/admin/store")).json()["models"]
        assert [m["name"] for m in stored] == ["remote-tiny"]


async def test_a_pull_can_be_stopped_and_resumed(hub_daemon: Daemon, hub: HubStub) -> None:
    """There was no way to stop a pull; 's' stops it (the partial download is kept) and
    'p' resumes it from there."""
    app = make_app(hub_daemon.url)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("2")
        await select_row(app, "#models-table", "remote-tiny")
        screen = app.screen
        assert isinstance(screen, ModelsScreen)
        assert not screen.check_action("cancel_pull", ())  # nothing to stop yet
        progress = screen.start_pull("remote-tiny")
        await wait_until(lambda: len(progress.seen) >= 2, timeout=30, what="downloading")
        await pilot.press("s")
        await wait_until(lambda: progress.outcome is not None, timeout=30, what="stopped")
        assert progress.outcome == "cancelled", progress.label.render()
        assert "partial download is kept" in str(progress.label.render())
        assert cell(app, "#models-table", "remote-tiny", "tier") == "remote"
        again = screen.start_pull("remote-tiny")
        await wait_until(lambda: again.outcome is not None, timeout=30, what="resumed pull")
        assert again.outcome == "success", again.label.render()
        ranges = hub.file(REPO, "tiny-q4_k_m.gguf").ranges
        assert ranges[-1] is not None and ranges[-1].startswith("bytes="), ranges


async def test_a_pull_started_elsewhere_shows_and_can_be_stopped(
    hub_daemon: Daemon, hub: HubStub
) -> None:
    """A pull the page did not start (here the API's, running before the TUI opened) showed
    nowhere: it gets the same bar, moves with the daemon's events, and `s` stops it."""
    import threading

    hub.file(REPO, "tiny-q4_k_m.gguf").delay = 0.4  # about 7 s for the file
    ended: list[str] = []

    def pull() -> None:
        with httpx.stream(
            "POST", hub_daemon.url + "/admin/pull", json={"model": "remote-tiny"}, timeout=60
        ) as r:
            ended.extend(r.iter_lines())

    caller = threading.Thread(target=pull, daemon=True)
    caller.start()
    deadline = time.monotonic() + 30
    while not hub_daemon.get("/admin/pulls").json()["pulls"]:
        assert time.monotonic() < deadline, "the pull never started"
        time.sleep(0.05)
    app = make_app(hub_daemon.url)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("2")
        screen = app.screen
        assert isinstance(screen, ModelsScreen)
        bar = await wait_until(
            lambda: screen.query(PullProgress).first() if screen.query(PullProgress) else None,
            what="the pull's bar",
        )
        assert not bar.owned and bar.key == "remote-tiny"
        await wait_until(lambda: len({d for d, _ in bar.seen}) >= 2, what="live progress")
        await select_row(app, "#models-table", "remote-tiny")
        await pilot.press("s")
        await wait_until(lambda: bar.outcome is not None, timeout=30, what="stopped")
        assert bar.outcome == "cancelled", bar.label.render()
        assert len(screen.query(PullProgress)) == 1
    caller.join(30)
    assert any("pull_cancelled" in line for line in ended), ended  # its caller was told
    assert hub_daemon.get("/admin/pulls").json() == {"pulls": []}
