"""`Pulls` in the daemon's process, against the stand-in hub: the listing of pulls in flight."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from appliance.catalog import parse_catalog
from appliance.events import EventLog
from appliance.pulls import Pulls
from appliance.store.errors import PullCancelled, PullInterrupted
from appliance.store.store import Store, StoreError
from appliance.tiers.manager import ModelManager
from tests.hubstub import HubStub
from tests.tiers.managers import make_manager as base_manager

pytestmark = pytest.mark.anyio

REPO = "org/slow-GGUF"
COMMIT = "c" * 40
REF = f"hf://{REPO}/slow-q4_k_m.gguf@{COMMIT}"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def until(predicate: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, "not met in time"
        await asyncio.sleep(0.02)
    return value


def slow_hub(hub: HubStub, models_dir: Path, delay: float = 0.05) -> int:
    data = (models_dir / "tiny.gguf").read_bytes()
    f = hub.add_file(REPO, "slow-q4_k_m.gguf", data, revision_sha=COMMIT)
    f.delay = delay  # about 2 s for the whole file, in 16 KiB chunks
    return len(data)


def make_store(root: Path, hub: HubStub) -> Store:
    return Store(root, endpoint=hub.endpoint, retries=0, retry_wait=0.01, disk_margin=0)


async def test_the_listing_shows_each_pull_in_flight(tmp_path: Path, models_dir: Path) -> None:
    """There was no way to see the pulls in flight: each is listed with its label, ref,
    status, bytes, start time and rate until it ends; a cancelled one says so at once."""
    with HubStub() as hub:
        size = slow_hub(hub, models_dir)
        pulls = Pulls(make_store(tmp_path / "store", hub), EventLog())
        assert pulls.listing() == []
        before = time.time()
        task = asyncio.ensure_future(pulls.pull(REF, "slow"))
        [entry] = await until(
            lambda: [
                p
                for p in pulls.listing()
                if p["status"] == "downloading" and p["rate_bytes_per_s"] and p["downloaded"]
            ]
        )
        assert entry["model"] == "slow" and entry["ref"] == REF and entry["name"] == "slow"
        assert entry["total"] == size and 0 < entry["downloaded"] < size
        assert entry["filename"] == "slow-q4_k_m.gguf"
        assert before <= entry["started"] <= entry["updated"] <= time.time()
        assert entry["rate_bytes_per_s"] > 0 and entry["eta_s"] > 0
        assert pulls.cancel("slow")
        assert [p["status"] for p in pulls.listing()] == ["cancelling"]
        with pytest.raises(PullCancelled):
            await task
        assert pulls.listing() == []


async def test_progress_events_name_the_pull_and_how_it_ended(
    tmp_path: Path, models_dir: Path
) -> None:
    """What the TUI follows every pull by: each `pull_progress` event carries the pull's ref
    and start (one pull of a model from the next), and the last one says how it ended:
    "cancelled" for a stopped pull (the store's "error"), "error" for a reference refused
    before any transfer (no progress event at all before), "done" for a success."""
    with HubStub() as hub:
        slow_hub(hub, models_dir)
        events = EventLog()
        pulls = Pulls(make_store(tmp_path / "store", hub), events)
        with events.subscribe() as queue:
            task = asyncio.ensure_future(pulls.pull(REF, "slow"))
            await until(lambda: any(p["downloaded"] for p in pulls.listing()))
            pulls.cancel("slow")
            with pytest.raises(PullCancelled):
                await task
            with pytest.raises(StoreError):
                await pulls.pull("hf://org/slow-GGUF/nothing-here.gguf@" + COMMIT, "none")
            with pytest.raises(StoreError):
                await pulls.pull("hf://org/slow-GGUF/x.gguf", "bad/name")  # refused at once
            hub.file(REPO, "slow-q4_k_m.gguf").delay = 0
            await pulls.pull(REF, "slow")
            seen = []
            while not queue.empty():
                seen.append(queue.get_nowait())
    progress = [e for e in seen if e.kind == "pull_progress"]
    by_label: dict[str, list[Any]] = {}
    for e in progress:
        by_label.setdefault(e.model, []).append(e)
    slow = by_label["slow"]
    runs = sorted({e.data["started"] for e in slow})
    assert len(runs) == 2 and all(e.data["ref"] == REF for e in slow)
    first = [e.data["status"] for e in slow if e.data["started"] == runs[0]]
    second = [e.data["status"] for e in slow if e.data["started"] == runs[1]]
    assert first[-1] == "cancelled" and "error" not in first, first
    assert second[-1] == "done" and second.count("done") == 1, second
    assert by_label["none"][-1].data["status"] == "error"
    assert "nothing-here.gguf" in by_label["none"][-1].data["note"]
    [refused] = by_label["bad/name"]  # the store said nothing: the pull's own last event
    assert refused.data["status"] == "error" and refused.data["note"]


# -- across restarts ---------------------------------------------------------------------------


def journal(data: Path) -> list[dict[str, Any]]:
    path = data / "pulls.json"
    return json.loads(path.read_text())["pulls"] if path.exists() else []


def make_manager(root: Path, hub: HubStub, catalog: str = "") -> ModelManager:
    manager = base_manager(root)
    store = make_store(root / "store", hub)
    return ModelManager(
        manager.settings, parse_catalog(catalog), store, manager.hardware, root / "data"
    )


CATALOG = f'[models.remote-slow]\nsource = "hf://{REPO}/*q4_k_m.gguf"\nrevision = "{COMMIT}"\n'


async def test_each_pull_in_flight_is_written_down_until_it_ends(
    tmp_path: Path, models_dir: Path
) -> None:
    """pulls.json holds the pulls in flight, and nothing else: a pull leaves it when it is
    cancelled (at once, before its transfer notices), fails or is done."""
    with HubStub() as hub:
        slow_hub(hub, models_dir)
        data = tmp_path / "data"
        pulls = Pulls(make_store(tmp_path / "store", hub), EventLog(), data / "pulls.json")
        task = asyncio.ensure_future(pulls.pull(REF, "slow"))
        await until(lambda: any(p["downloaded"] for p in pulls.listing()))
        [entry] = journal(data)
        assert entry["label"] == "slow" and entry["ref"] == REF and entry["name"] == "slow"
        assert entry["catalog"] is False and entry["resumes"] == 0
        assert pulls.cancel("slow")
        assert journal(data) == []  # a stop the transfer has not seen yet is not resumed
        with pytest.raises(PullCancelled):
            await task
        assert Pulls(pulls.store, EventLog(), data / "pulls.json").interrupted() == []
        missing = asyncio.ensure_future(pulls.pull(REF.replace("slow-q4", "none-q4"), "none"))
        await asyncio.sleep(0)
        assert [e["label"] for e in journal(data)] == ["none"]
        with pytest.raises(StoreError):
            await missing
        assert journal(data) == []
        hub.file(REPO, "slow-q4_k_m.gguf").delay = 0
        await pulls.pull(REF, "slow")
        assert journal(data) == [] and not (data / "pulls.json").exists()


async def test_a_pull_broken_off_by_a_restart_resumes_when_the_daemon_starts(
    tmp_path: Path, models_dir: Path
) -> None:
    """A pull broken off by a restart stayed partial until someone pulled again: the stop
    keeps it written down (its transfer stops at its next chunk, not at its end), and the
    next start resumes it in the background from its partial file, saying why."""
    with HubStub() as hub:
        size = slow_hub(hub, models_dir)
        first = make_manager(tmp_path, hub, CATALOG)
        await first.start()
        task = asyncio.ensure_future(first.pull("remote-slow"))
        await until(lambda: any(p["downloaded"] for p in first.pulls.listing()))
        with first.subscribe() as queue:
            await first.shutdown()
            with pytest.raises(PullInterrupted):
                await asyncio.wait_for(task, 10)  # not the whole file's 2 s
            assert any(
                e.kind == "pull_progress" and e.data["status"] == "interrupted"
                for e in drain(queue)
            )
        [entry] = journal(tmp_path / "data")
        assert entry["label"] == "remote-slow" and entry["catalog"] is True
        partials = list((tmp_path / "store").rglob("*.partial"))
        assert len(partials) == 1 and 0 < partials[0].stat().st_size < size

        hub.file(REPO, "slow-q4_k_m.gguf").delay = 0
        second = make_manager(tmp_path, hub, CATALOG)
        with second.subscribe() as queue:
            await second.start()
            await until(lambda: second.store.get("remote-slow") is not None)
            await until(lambda: not second.pulls.listing())
            seen = drain(queue)
        await second.shutdown()
        messages = [e.message for e in seen if e.model == "remote-slow" and e.kind == "pull"]
        assert messages[0] == "resuming the pull of remote-slow, interrupted by a restart"
        assert messages[-1].startswith("pulled slow-q4_k_m.gguf")
        ranges = hub.file(REPO, "slow-q4_k_m.gguf").ranges
        assert ranges[-1] is not None and ranges[-1].startswith("bytes="), ranges
        assert journal(tmp_path / "data") == []


async def test_a_resumed_pull_is_tried_once_per_start_and_dropped_when_it_fails(
    tmp_path: Path, models_dir: Path
) -> None:
    """A pull that fails for good (the file is gone from the hub) is not resumed at every
    start: tried once, dropped on its failure. Nor is one that several starts in a row did
    not end, nor a catalog model's that the catalog no longer has."""
    with HubStub() as hub:
        slow_hub(hub, models_dir)
        data = tmp_path / "data"
        data.mkdir()
        gone = REF.replace("slow-q4", "gone-q4")
        entries = [
            {"label": "gone", "ref": gone, "name": "gone", "catalog": False, "resumes": 0},
            {"label": "loop", "ref": REF, "name": "loop", "catalog": False, "resumes": 3},
            {"label": "old", "ref": REF, "name": "old", "catalog": True, "resumes": 0},
            {"label": "odd", "ref": "/etc/passwd", "name": None, "resumes": 0},  # not a pull
        ]
        (data / "pulls.json").write_text(json.dumps({"pulls": entries}))
        manager = make_manager(tmp_path, hub)
        with manager.subscribe() as queue:
            await manager.start()
            await until(lambda: not manager.pulls.listing())
            seen = drain(queue)
        await manager.shutdown()
        said: dict[tuple[str, str], list[str]] = {}
        for e in seen:
            said.setdefault((e.model, e.kind), []).append(e.message)
        assert said["gone", "pull"][0] == "resuming the pull of gone, interrupted by a restart"
        assert [m[:12] for m in said["gone", "error"]] == ["pull failed:"]
        [loop] = said["loop", "error"]
        assert loop.startswith("not resuming the pull of loop: 4 restarts")
        assert ("loop", "pull") not in said
        [old] = said["old", "pull"]
        assert "no longer a catalog model" in old
        assert journal(data) == []
        gets = hub.file(REPO, "slow-q4_k_m.gguf").gets
        again = make_manager(tmp_path, hub)
        with again.subscribe() as queue:
            await again.start()
            await asyncio.sleep(0.2)
            assert not [e for e in drain(queue) if e.kind == "pull"]
        await again.shutdown()
        assert hub.file(REPO, "slow-q4_k_m.gguf").gets == gets == 0
        (data / "pulls.json").write_text("{not json")  # a torn write, say: nothing to resume
        assert Pulls(again.store, EventLog(), data / "pulls.json").interrupted() == []


def drain(queue: asyncio.Queue[Any]) -> list[Any]:
    seen = []
    while not queue.empty():
        seen.append(queue.get_nowait())
    return seen
