"""Disk full during a pull: the partial is deleted and the error says so; a broken-off
transfer keeps its partial for a resume; partials count as used disk."""

from __future__ import annotations

import builtins
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from appliance.store import DiskFullError, DownloadInterruptedError
from appliance.store import hub as hub_module
from appliance.store.hub import HubClient, parse_ref
from tests.hubstub import HubStub
from tests.store.test_store import make_store

REPO = "org/tiny-GGUF"
FILE = "Tiny-Chat-F32.gguf"
REF = f"hf://{REPO}/{FILE}"


def disk_is_full(monkeypatch: pytest.MonkeyPatch) -> None:
    """Writes of the hub client go to /dev/full: the kernel answers ENOSPC, as a full disk
    does. Only the OS boundary (which file `open` gives) is replaced; reads are real."""
    real_open = builtins.open

    def full_open(file: Any, mode: str = "r", *args: Any, **kw: Any) -> Any:
        if any(c in mode for c in "wa"):
            return real_open("/dev/full", "wb")
        return real_open(file, mode, *args, **kw)

    monkeypatch.setattr(hub_module, "open", full_open, raising=False)


def test_enospc_deletes_the_partial_and_says_so(
    tmp_path: Path, hub: HubStub, tiny_bytes: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    f = hub.add_file(REPO, FILE, tiny_bytes)
    f.cut_after = 100_000
    store = make_store(tmp_path / "s", hub)
    with pytest.raises(DownloadInterruptedError, match="pull again to resume"):
        store.pull(REF)
    partial = store.layout.partial_path(f.sha256)
    assert partial.stat().st_size == 100_000  # a broken-off transfer keeps its bytes
    assert store.partial_bytes() == 100_000

    disk_is_full(monkeypatch)
    with pytest.raises(DiskFullError) as ei:
        store.pull(REF)
    msg = str(ei.value)
    assert msg.startswith(f"disk full while downloading {FILE} to {store.root / 'tmp'}")
    assert "after 100000 of" in msg and "the partial download was deleted" in msg
    assert not partial.exists() and store.partial_bytes() == 0
    assert store.list() == []

    monkeypatch.undo()  # space again: the next pull starts over and completes
    assert store.pull(REF).path.read_bytes() == tiny_bytes


def test_real_enospc_from_the_kernel(tmp_path: Path, hub: HubStub, tiny_bytes: bytes) -> None:
    """The partial is a link to /dev/full: every write fails with ENOSPC."""
    hub.add_file(REPO, FILE, tiny_bytes)
    client = HubClient(hub.endpoint, retries=0)
    remote = client.resolve(parse_ref(REF))
    dest = tmp_path / "x.partial"
    dest.symlink_to("/dev/full")
    with pytest.raises(DiskFullError, match="the partial download was deleted"):
        client.download(remote, dest)
    assert not dest.exists() and not dest.is_symlink()


def test_free_space_is_checked_before_any_transfer(
    tmp_path: Path, hub: HubStub, tiny_bytes: bytes
) -> None:
    f = hub.add_file(REPO, FILE, tiny_bytes)

    def nearly_full(_path: Path) -> SimpleNamespace:
        return SimpleNamespace(free=1000)

    store = make_store(tmp_path / "s", hub, disk_usage=nearly_full, disk_margin=10)
    with pytest.raises(DiskFullError, match=rf"need {len(tiny_bytes) + 10} bytes .* only 1000"):
        store.pull(REF)
    assert f.gets == 0 and list((store.root / "tmp").iterdir()) == []


def test_partial_bytes_counts_only_partials(tmp_path: Path) -> None:
    store = make_store(tmp_path / "s")
    (store.root / "tmp" / ("a" * 64 + ".partial")).write_bytes(b"x" * 1000)
    (store.root / "tmp" / "import-1234.partial").write_bytes(b"x" * 24)
    staging = store.root / "tmp" / "tree-5678"
    staging.mkdir()
    (staging / "model.onnx").write_bytes(b"x" * 5000)  # links of blobs: counted with them
    os.symlink("/dev/zero", store.root / "tmp" / ("b" * 64 + ".partial"))
    assert store.partial_bytes() == 1024
