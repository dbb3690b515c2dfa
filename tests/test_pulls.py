"""`Pulls` in the daemon's process, against the stand-in hub: the listing of pulls in flight."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from appliance.events import EventLog
from appliance.pulls import Pulls
from appliance.store.errors import PullCancelled
from appliance.store.store import Store, StoreError
from tests.hubstub import HubStub

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
