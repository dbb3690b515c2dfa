"""`appliance gc`: old partials, unreferenced blobs and trees, idle lock files; nothing a
pull in progress or a model still needs."""

from __future__ import annotations

import fcntl
import os
import threading
import time
from pathlib import Path

import pytest

from appliance.cli import main
from appliance.store import Store
from appliance.store.store import _flock
from tests.onnx_builder import write_genai_folder
from tests.store.test_integrity import home_store
from tests.store.test_store import make_store

HOUR = 3600.0


def aged(path: Path, hours: float) -> Path:
    t = time.time() - hours * HOUR
    os.utime(path, (t, t))
    return path


def partial(store: Store, name: str, size: int, hours: float) -> Path:
    p = store.root / "tmp" / name
    p.write_bytes(b"x" * size)
    return aged(p, hours)


def test_old_partials_go_fresh_and_busy_ones_stay(tmp_path: Path) -> None:
    store = make_store(tmp_path / "s")
    old = partial(store, "a" * 64 + ".partial", 1000, 30)
    fresh = partial(store, "b" * 64 + ".partial", 2000, 1)
    busy = partial(store, "c" * 64 + ".partial", 4000, 30)
    old_import = partial(store, "import-1234.partial", 10, 25)
    staging = store.root / "tmp" / "tree-99"
    staging.mkdir()
    (staging / "x.onnx").write_bytes(b"y" * 50)
    aged(staging, 48)

    with store._blob_lock("c" * 64):  # a pull is writing it
        report = store.gc(24 * HOUR)
    assert sorted(r.path.name for r in report.removed if r.kind != "lock") == sorted(
        [old.name, old_import.name, "tree-99"]
    )
    assert report.freed_bytes == 1000 + 10 + 50
    assert fresh.exists() and busy.exists() and not old.exists() and not staging.exists()
    assert (busy, "a pull is writing it") in report.kept
    assert store.partial_bytes() == 6000


def orphan(store: Store, tiny_gguf: Path, name: str) -> Path:
    """A blob whose manifest vanished (a process killed between the two)."""
    model = store.import_file(tiny_gguf, name)
    store.layout.manifest_path(name).unlink()
    return model.path


def test_unreferenced_blobs_and_trees(tmp_path: Path, tiny_gguf: Path) -> None:
    store = make_store(tmp_path / "s")
    kept = store.import_file(tiny_gguf, "kept")
    store.import_file(tiny_gguf, "other-name")  # the same blob as "kept": still referenced
    folder = store.import_file(write_genai_folder(tmp_path / "src"), "folder")
    store.layout.manifest_path("folder").unlink()  # killed before the manifest was written

    report = store.gc(24 * HOUR)  # a fresh orphan may belong to a folder pull: kept an hour
    assert [r for r in report.removed if r.kind in ("blob", "tree")] == []
    assert any("unreferenced for less than 3600 s" in why for _p, why in report.kept)

    dry = store.gc(0, dry_run=True)
    assert folder.path.is_dir()
    report = store.gc(0)
    assert {r.kind for r in report.removed} >= {"tree", "blob", "record"}
    assert [r.path for r in report.removed if r.kind == "tree"] == [folder.path]
    blobs = {r.path.name for r in report.removed if r.kind == "blob"}
    assert blobs == {f.sha256 for f in folder.files}
    assert sum(r.bytes for r in report.removed if r.kind == "blob") == folder.size
    assert report.freed_bytes == dry.freed_bytes  # the dry run counts the same
    assert not folder.path.exists()
    assert kept.path.exists() and store.verify("kept").ok and store.verify("other-name").ok
    assert sorted(p.name for p in store.layout.blobs_dir.iterdir()) == [kept.sha256]
    assert sorted(p.name for p in store.layout.verified_dir.iterdir()) == [kept.sha256 + ".json"]


def test_an_unreadable_manifest_keeps_every_blob(tmp_path: Path, tiny_gguf: Path) -> None:
    store = make_store(tmp_path / "s")
    blob = orphan(store, tiny_gguf, "gone")
    (store.layout.manifests_dir / "broken.json").write_text("{not json")
    report = store.gc(0)
    assert blob.exists() and not [r for r in report.removed if r.kind == "blob"]
    assert any("manifest unreadable" in why for _p, why in report.kept)


def test_idle_lock_files_go_held_ones_stay(tmp_path: Path, tiny_gguf: Path) -> None:
    store = make_store(tmp_path / "s")
    model = store.import_file(tiny_gguf, "tiny")
    idle = store.layout.lock_path(model.sha256)
    assert idle.exists()
    held = store.layout.lock_path("d" * 64)
    with store._blob_lock("d" * 64):
        report = store.gc(24 * HOUR)
    assert [r.path for r in report.removed if r.kind == "lock"] == [idle]
    assert held.exists() and not idle.exists()
    with store._blob_lock(model.sha256):  # taken again on a fresh file
        assert idle.exists()


def test_a_lock_taken_on_a_deleted_lock_file_is_taken_again(tmp_path: Path) -> None:
    """gc deletes a lock file between another process's open and flock: that process must
    not hold a lock on the deleted file (which would exclude no one)."""
    path = tmp_path / "x.lock"
    first = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(first, fcntl.LOCK_EX)
    got: list[int] = []
    waiter = threading.Thread(target=lambda: got.append(_flock(path, None, blocking=True) or -1))
    waiter.start()
    time.sleep(0.2)  # the waiter has opened the file and waits in flock
    path.unlink()  # what gc does, holding the lock
    fcntl.flock(first, fcntl.LOCK_UN)
    os.close(first)
    waiter.join(5)
    fd = got[0]
    try:
        assert os.fstat(fd).st_ino == path.stat().st_ino  # the file now at the path
    finally:
        os.close(fd)


def test_gc_command(tmp_path: Path, tiny_gguf: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "home"
    store = home_store(home)
    store.import_file(tiny_gguf, "tiny")
    old = partial(store, "e" * 64 + ".partial", 3 << 20, 30)
    recent = partial(store, "f" * 64 + ".partial", 1 << 20, 2)

    assert main(["gc", "--home", str(home), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"would remove partial tmp/{old.name}  3.0 MiB  (30.0 h old)" in out
    assert old.exists()

    assert main(["gc", "--home", str(home)]) == 0
    out = capsys.readouterr().out
    assert f"removed partial tmp/{old.name}  3.0 MiB" in out
    assert out.splitlines()[-1].startswith(
        "freed 3.0 MiB: 1 partial download(s), 0 blob(s), 0 tree(s), "
    )
    assert not old.exists() and recent.exists()

    assert main(["gc", "--home", str(home), "--older-than", "1"]) == 0
    assert "removed partial tmp/" + recent.name in capsys.readouterr().out
    assert main(["gc", "--home", str(home), "--older-than", "-1"]) == 1
    assert "--older-than takes hours >= 0" in capsys.readouterr().err
    assert store.verify("tiny").ok
