from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from appliance.store import (
    DiskFullError,
    DownloadInterruptedError,
    GGUFError,
    HubUnavailableError,
    IntegrityError,
    InvalidNameError,
    NotFoundError,
    ProgressEvent,
    Store,
)
from appliance.store.store import WAITING_MESSAGE
from tests.hubstub import HubStub, unused_endpoint

REPO_ROOT = Path(__file__).resolve().parents[2]
REPO = "org/tiny-GGUF"
FILE = "Tiny-Chat-F32.gguf"
REF = f"hf://{REPO}/{FILE}"


def make_store(root: Path, hub: HubStub | None = None, **kw: object) -> Store:
    kw.setdefault("retries", 0)
    kw.setdefault("retry_wait", 0.01)
    kw.setdefault("disk_margin", 0)
    return Store(root, endpoint=hub.endpoint if hub else unused_endpoint(), **kw)  # type: ignore[arg-type]


def store_files(store: Store) -> dict[str, list[str]]:
    return {
        d: sorted(p.name for p in (store.root / d).rglob("*") if p.is_file())
        for d in ("blobs", "tmp", "manifests")
    }


def test_pull_verifies_and_publishes(tmp_path: Path, hub: HubStub, tiny_bytes: bytes) -> None:
    f = hub.add_file(REPO, FILE, tiny_bytes)
    store = make_store(tmp_path / "s", hub)
    events: list[ProgressEvent] = []
    model = store.pull(REF, progress=events.append)

    assert model.name == "tiny-chat-f32"
    assert model.sha256 == hashlib.sha256(tiny_bytes).hexdigest() == f.sha256
    assert model.size == len(tiny_bytes)
    assert model.repo == REPO and model.filename == FILE
    assert model.revision == f.revision_sha
    assert model.source == f"hf://{REPO}/{FILE}@{f.revision_sha}"
    assert model.path == store.root / "blobs" / "sha256" / model.sha256
    assert model.path.read_bytes() == tiny_bytes
    assert not model.path.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
    assert store_files(store) == {
        "blobs": [model.sha256],
        "tmp": [],
        "manifests": [f"{model.name}.json"],
    }
    assert store.get(model.name) == model
    assert store.list() == [model]
    assert store.resolve_path(model.name) == model.path
    assert store.info(model.name).architecture == "llama"
    assert f.gets == 1 and f.ranges == [None]

    statuses = [e.status for e in events]
    assert statuses[0] == "resolving" and statuses[-1] == "done"
    assert "downloading" in statuses and "verifying" in statuses
    last = events[-1]
    assert (last.name, last.filename, last.downloaded, last.total) == (
        model.name,
        FILE,
        len(tiny_bytes),
        len(tiny_bytes),
    )
    # Once the hub named the file, each event carries its digest (Ollama's pull shows it).
    assert events[0].sha256 == ""
    assert {e.sha256 for e in events if e.status != "resolving"} == {model.sha256}


def test_pull_again_returns_at_once(tmp_path: Path, hub: HubStub, tiny_bytes: bytes) -> None:
    f = hub.add_file(REPO, FILE, tiny_bytes)
    store = make_store(tmp_path, hub)
    first = store.pull(REF)
    n_requests = len(hub.requests)

    events: list[ProgressEvent] = []
    assert store.pull(REF, progress=events.append) == first
    assert store.pull(f"hf://{REPO}/*.gguf") == first
    assert store.pull(f"{REF}@{f.revision_sha[:10]}") == first
    assert len(hub.requests) == n_requests  # no network at all
    assert [e.status for e in events] == ["done"]

    # Same file under a new name: a second manifest, the same blob, still no network.
    alias = store.pull(REF, name="alias")
    assert alias.sha256 == first.sha256 and alias.name == "alias"
    assert len(hub.requests) == n_requests

    # A branch name asks the hub again, but the blob is not fetched twice.
    assert store.pull(f"{REF}@main").sha256 == first.sha256
    assert f.gets == 1


def test_pull_glob_with_name_and_pinned_revision(
    tmp_path: Path, hub: HubStub, tiny_bytes: bytes, other_bytes: bytes
) -> None:
    old = hub.add_file(REPO, "m-Q8_0.gguf", other_bytes, revision_sha="1" * 40)
    new = hub.add_file(REPO, "m-Q8_0.gguf", tiny_bytes, revision_sha="2" * 40)
    hub.add_file(REPO, "m-F16.gguf", tiny_bytes)
    store = make_store(tmp_path, hub)

    latest = store.pull(f"hf://{REPO}/*q8_0*", name="m")
    assert latest.revision == "2" * 40 and latest.sha256 == new.sha256
    pinned = store.pull(f"hf://{REPO}/m-Q8_0.gguf@{'1' * 40}", name="m-old")
    assert pinned.revision == "1" * 40 and pinned.sha256 == old.sha256
    assert [m.name for m in store.list()] == ["m", "m-old"]


def test_sha256_mismatch_publishes_nothing(tmp_path: Path, hub: HubStub, tiny_bytes: bytes) -> None:
    f = hub.add_file(REPO, FILE, tiny_bytes)
    f.served_sha256 = "0" * 64
    store = make_store(tmp_path, hub)
    events: list[ProgressEvent] = []
    with pytest.raises(IntegrityError) as ei:
        store.pull(REF, progress=events.append)
    msg = str(ei.value)
    assert f"expected {'0' * 64}" in msg and f"got {hashlib.sha256(tiny_bytes).hexdigest()}" in msg
    assert store_files(store) == {"blobs": [], "tmp": [], "manifests": []}
    assert events[-1].status == "error" and events[-1].message == msg


def test_interrupted_transfer_resumes(tmp_path: Path, hub: HubStub, tiny_bytes: bytes) -> None:
    f = hub.add_file(REPO, FILE, tiny_bytes)
    f.cut_after = 100_000
    store = make_store(tmp_path, hub)
    with pytest.raises(DownloadInterruptedError, match=r"after 100000 of \d+ bytes.*pull again"):
        store.pull(REF)
    assert store_files(store) == {"blobs": [], "tmp": [f"{f.sha256}.partial"], "manifests": []}
    assert store.get("tiny-chat-f32") is None

    events: list[ProgressEvent] = []
    model = store.pull(REF, progress=events.append)
    assert f.ranges == [None, "bytes=100000-"]
    assert model.path.read_bytes() == tiny_bytes
    assert any(e.message == "resuming at byte 100000" for e in events)
    assert store_files(store)["tmp"] == []


def test_transient_cut_is_retried_within_one_pull(
    tmp_path: Path, hub: HubStub, tiny_bytes: bytes
) -> None:
    f = hub.add_file(REPO, FILE, tiny_bytes)
    f.cut_after, f.cut_times = 50_000, 2
    store = make_store(tmp_path, hub, retries=1)
    assert store.pull(REF).sha256 == f.sha256
    assert f.ranges == [None, "bytes=50000-", "bytes=100000-"]


def test_not_a_gguf_on_the_hub(tmp_path: Path, hub: HubStub) -> None:
    hub.add_file(REPO, "fake.gguf", b"<html>not a model</html>" * 50)
    store = make_store(tmp_path, hub)
    with pytest.raises(
        GGUFError,
        match=r"fake\.gguf from org/tiny-GGUF is not a usable GGUF: not a GGUF file: bad magic",
    ):
        store.pull(f"hf://{REPO}/fake.gguf")
    assert store_files(store) == {"blobs": [], "tmp": [], "manifests": []}


def test_concurrent_pulls_in_threads_share_one_transfer(
    tmp_path: Path, hub: HubStub, tiny_bytes: bytes
) -> None:
    f = hub.add_file(REPO, FILE, tiny_bytes)
    f.gate = threading.Event()
    root = tmp_path / "s"
    results: dict[str, object] = {}
    second_waiting = threading.Event()

    def run(key: str, name: str, waiting: threading.Event | None) -> None:
        def cb(ev: ProgressEvent) -> None:
            if waiting is not None and ev.message == WAITING_MESSAGE:
                waiting.set()

        try:
            results[key] = make_store(root, hub).pull(REF, name=name, progress=cb)
        except Exception as e:  # pragma: no cover - reported by the asserts below
            results[key] = e

    t1 = threading.Thread(target=run, args=("a", "first", None))
    t1.start()
    _wait_for(lambda: f.gets == 1)
    t2 = threading.Thread(target=run, args=("b", "second", second_waiting))
    t2.start()
    assert second_waiting.wait(10), "second pull never waited for the first"
    f.gate.set()
    t1.join(20)
    t2.join(20)

    a, b = results["a"], results["b"]
    assert not isinstance(a, Exception) and not isinstance(b, Exception), results
    assert a.sha256 == b.sha256 == f.sha256  # type: ignore[attr-defined]
    assert f.gets == 1
    assert sorted(m.name for m in Store(root).list()) == ["first", "second"]


CHILD = """
import json, sys
from appliance.store import Store
store = Store(sys.argv[1], endpoint=sys.argv[2], retries=0, disk_margin=0)
def cb(ev):
    print(json.dumps({"status": ev.status, "message": ev.message}), flush=True)
model = store.pull(sys.argv[3], name=sys.argv[4], progress=cb)
print(json.dumps({"sha256": model.sha256}), flush=True)
"""


def test_concurrent_pulls_in_processes_share_one_transfer(
    tmp_path: Path, hub: HubStub, tiny_bytes: bytes
) -> None:
    f = hub.add_file(REPO, FILE, tiny_bytes)
    f.gate = threading.Event()
    root = tmp_path / "s"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}

    def spawn(name: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-c", CHILD, str(root), hub.endpoint, REF, name],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            cwd=REPO_ROOT,
        )

    p1 = spawn("first")
    try:
        _wait_for(lambda: f.gets == 1, timeout=20)
        p2 = spawn("second")
        try:
            assert p2.stdout is not None
            for line in p2.stdout:
                if json.loads(line).get("message") == WAITING_MESSAGE:
                    break
            else:
                pytest.fail("second process never waited for the first")
            f.gate.set()
            out1, _ = p1.communicate(timeout=20)
            out2, _ = p2.communicate(timeout=20)
        finally:
            p2.kill()
    finally:
        f.gate.set()
        p1.kill()
    assert p1.returncode == 0 and p2.returncode == 0
    assert json.loads(out1.splitlines()[-1])["sha256"] == f.sha256
    assert json.loads(out2.splitlines()[-1])["sha256"] == f.sha256
    assert f.gets == 1
    assert sorted(m.name for m in Store(root).list()) == ["first", "second"]


def test_disk_full_is_checked_before_downloading(
    tmp_path: Path, hub: HubStub, tiny_bytes: bytes, tiny_gguf: Path
) -> None:
    f = hub.add_file(REPO, FILE, tiny_bytes)
    asked: list[Path] = []

    def tiny_disk(path: Path) -> SimpleNamespace:
        asked.append(path)
        return SimpleNamespace(free=1000)

    store = make_store(tmp_path, hub, disk_usage=tiny_disk, disk_margin=4096)
    with pytest.raises(DiskFullError) as ei:
        store.pull(REF)
    need = len(tiny_bytes) + 4096
    assert f"need {need} bytes" in str(ei.value) and "only 1000 bytes" in str(ei.value)
    assert f.gets == 0 and asked == [store.root]
    with pytest.raises(DiskFullError):
        store.import_file(tiny_gguf)
    assert store_files(store) == {"blobs": [], "tmp": [], "manifests": []}


def test_offline_hub(tmp_path: Path, tiny_gguf: Path) -> None:
    store = make_store(tmp_path)  # nothing listens at its endpoint
    events: list[ProgressEvent] = []
    with pytest.raises(HubUnavailableError) as ei:
        store.pull(REF, progress=events.append)
    assert "cannot be reached" in str(ei.value) and "appliance import PATH" in str(ei.value)
    assert events[-1].status == "error"

    # An imported or previously pulled model is still served from the store.
    imported = store.import_file(tiny_gguf)
    assert store.resolve_path(imported.name) == imported.path


def test_import_file(tmp_path: Path, tiny_gguf: Path, tiny_bytes: bytes) -> None:
    store = make_store(tmp_path / "s")
    model = store.import_file(tiny_gguf)
    assert model.name == "tiny-chat-f32"
    assert model.sha256 == hashlib.sha256(tiny_bytes).hexdigest()
    assert model.source == tiny_gguf.absolute().as_uri()
    assert model.repo is None and model.revision is None and model.filename == tiny_gguf.name
    assert model.path.read_bytes() == tiny_bytes
    assert store_files(store)["tmp"] == []

    again = store.import_file(tiny_gguf, name="copy")
    assert again.path == model.path
    assert [m.name for m in store.list()] == ["copy", "tiny-chat-f32"]


def test_import_refuses_garbage(tmp_path: Path) -> None:
    store = make_store(tmp_path / "s")
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"\x7fELF" + b"\0" * 1000)
    with pytest.raises(GGUFError, match="not a GGUF file: bad magic"):
        store.import_file(junk)
    with pytest.raises(GGUFError, match="no such file"):
        store.import_file(tmp_path / "missing.gguf")
    assert store_files(store) == {"blobs": [], "tmp": [], "manifests": []}


def test_import_refuses_an_architecture_llama_cpp_cannot_load(
    tmp_path: Path, tiny_bytes: bytes
) -> None:
    """A sound GGUF of an architecture this llama.cpp does not know was imported and
    failed at its first load: it is refused before it is copied, by name."""
    import importlib.metadata

    from appliance.store.engine_arch import llama_cpp_knows
    from tests.store.test_gguf_lies import set_architecture

    assert llama_cpp_knows("llama") and llama_cpp_knows("mamba")
    assert llama_cpp_knows("fooba") is False
    store = make_store(tmp_path / "s")
    alien = tmp_path / "alien.gguf"
    alien.write_bytes(set_architecture(tiny_bytes, "fooba"))
    version = importlib.metadata.version("llama-cpp-python")
    with pytest.raises(
        GGUFError,
        match=rf"general\.architecture 'fooba' is not an architecture llama\.cpp "
        rf"\(llama-cpp-python {re.escape(version)}\) can load",
    ):
        store.import_file(alien)
    assert store_files(store) == {"blobs": [], "tmp": [], "manifests": []}


def test_remove_and_blob_refcount(tmp_path: Path, tiny_gguf: Path) -> None:
    store = make_store(tmp_path)
    a = store.import_file(tiny_gguf, name="a")
    store.import_file(tiny_gguf, name="b")
    store.remove("a")
    assert store.get("a") is None and a.path.exists()
    store.remove("b")
    assert not a.path.exists()
    assert store.list() == []
    with pytest.raises(NotFoundError, match="'b' is not in the store"):
        store.remove("b")
    with pytest.raises(NotFoundError):
        store.resolve_path("b")


def test_renaming_a_name_drops_the_unreferenced_blob(
    tmp_path: Path, tiny_gguf: Path, other_bytes: bytes
) -> None:
    store = make_store(tmp_path)
    first = store.import_file(tiny_gguf, name="m")
    other = tmp_path / "other.gguf"
    other.write_bytes(other_bytes)
    second = store.import_file(other, name="m")
    assert second.sha256 != first.sha256
    assert not first.path.exists() and second.path.exists()
    assert [m.sha256 for m in store.list()] == [second.sha256]


def test_missing_blob_is_reported(tmp_path: Path, tiny_gguf: Path) -> None:
    store = make_store(tmp_path)
    model = store.import_file(tiny_gguf)
    model.path.unlink()
    with pytest.raises(NotFoundError, match="missing from the store"):
        store.resolve_path(model.name)


@pytest.mark.parametrize("bad", ["../x", "/etc/passwd", "a/b", ".hidden", "x\x00y", ".."])
def test_names_escaping_the_store_are_refused(tmp_path: Path, tiny_gguf: Path, bad: str) -> None:
    store = make_store(tmp_path / "s")
    with pytest.raises(InvalidNameError):
        store.import_file(tiny_gguf, name=bad)
    with pytest.raises(InvalidNameError):
        store.pull(REF, name=bad)
    with pytest.raises(InvalidNameError):
        store.get(bad)
    with pytest.raises(InvalidNameError):
        store.remove(bad)
    assert store_files(store) == {"blobs": [], "tmp": [], "manifests": []}
    assert list(tmp_path.iterdir()) == [tmp_path / "s"]


def _wait_for(cond: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail("timed out waiting")
        time.sleep(0.01)
