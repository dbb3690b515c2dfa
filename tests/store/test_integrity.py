"""Stored files that rot: records of verified bytes, re-hashing what changed, quarantine,
and `appliance verify`."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from appliance.cli import main
from appliance.paths import resolve_paths
from appliance.store import Store
from appliance.store.integrity import read_record
from tests.hubstub import HubStub
from tests.onnx_builder import write_genai_folder
from tests.store.test_store import make_store

REPO = "org/tiny-GGUF"
FILE = "Tiny-Chat-F32.gguf"


def flip_byte(path: Path, at: int = -100, keep_mtime: bool = False) -> None:
    """Corrupt one byte of a (read-only) stored file in place; by default touch it too."""
    st = path.stat()
    os.chmod(path, 0o644)
    with open(path, "r+b") as f:
        f.seek(at, os.SEEK_END if at < 0 else os.SEEK_SET)
        b = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([b[0] ^ 0xFF]))
    os.chmod(path, 0o444)
    if keep_mtime:
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    else:
        os.utime(path)


def test_publishing_records_the_hash(tmp_path: Path, hub: HubStub, tiny_bytes: bytes) -> None:
    hub.add_file(REPO, FILE, tiny_bytes)
    store = make_store(tmp_path / "s", hub)
    pulled = store.pull(f"hf://{REPO}/{FILE}")
    rec = read_record(store.layout, pulled.sha256)
    assert rec is not None
    st = pulled.path.stat()
    assert (rec.size, rec.mtime_ns, rec.inode) == (st.st_size, st.st_mtime_ns, st.st_ino)

    hashed: list[str] = []
    check = store.verify(pulled.name, force=False, on_hash=lambda f, n: hashed.append(f))
    assert check.ok and hashed == []  # the record vouches: nothing read
    check = store.verify(pulled.name, force=True, on_hash=lambda f, n: hashed.append(f))
    assert check.ok and hashed == [FILE] and check.files[0].hashed


def test_a_changed_blob_is_hashed_and_quarantined(tmp_path: Path, tiny_gguf: Path) -> None:
    store = make_store(tmp_path / "s")
    model = store.import_file(tiny_gguf, "tiny")
    blob = model.path
    flip_byte(blob)

    check = store.verify("tiny", force=False)  # the stat changed: it is hashed
    assert check.status == "corrupt" and check.corrupt
    bad = check.bad[0]
    assert bad.file == "Tiny-Chat-F32.gguf" and bad.sha256 == model.sha256
    assert bad.got is not None and bad.got != model.sha256
    assert not blob.exists()
    assert bad.quarantine is not None and bad.quarantine.parent == store.root / "quarantine"
    assert bad.quarantine.name.startswith(model.sha256 + ".")
    note = json.loads(Path(f"{bad.quarantine}.json").read_text())
    assert note["sha256_expected"] == model.sha256 and note["sha256_found"] == bad.got
    assert note["model"] == "tiny"
    assert read_record(store.layout, model.sha256) is None
    msg = check.message
    assert f"its sha256 is {bad.got}, the store expects {model.sha256}" in msg
    assert f"moved to {bad.quarantine}" in msg
    inbox = store.root / "inbox"
    assert msg.endswith(
        f"pull it again: appliance import {inbox / tiny_gguf.name} --name tiny, after copying "
        f"{tiny_gguf} into {inbox} (a running daemon imports only from its import_dirs: by "
        "default that inbox and its user's home)"
    )

    again = store.verify("tiny", force=False)  # the next check still says why it is gone
    assert again.status == "missing" and again.corrupt
    assert "was found corrupt earlier" in again.message

    store.import_file(tiny_gguf, "tiny")  # importing (or pulling) again mends it
    assert store.verify("tiny").ok


def test_a_byte_flipped_with_the_stat_kept_needs_a_full_verify(
    tmp_path: Path, tiny_gguf: Path
) -> None:
    store = make_store(tmp_path / "s")
    model = store.import_file(tiny_gguf, "tiny")
    flip_byte(model.path, keep_mtime=True)  # silent rot: size, mtime and inode unchanged
    assert store.verify("tiny", force=False).ok  # the load-time check trusts its record ...
    assert store.verify("tiny", force=True).status == "corrupt"  # ... `verify` does not


def test_truncated_blob_is_corrupt_without_hashing(tmp_path: Path, tiny_gguf: Path) -> None:
    store = make_store(tmp_path / "s")
    model = store.import_file(tiny_gguf, "tiny")
    os.chmod(model.path, 0o644)
    os.truncate(model.path, 1000)
    check = store.verify("tiny", force=False, on_hash=lambda f, n: pytest.fail("hashed"))
    assert check.status == "corrupt"
    assert f"it has 1000 bytes, the store expects {model.size}" in check.message


def test_folder_model_file_is_quarantined(tmp_path: Path) -> None:
    src = write_genai_folder(tmp_path / "src")
    store = make_store(tmp_path / "s")
    model = store.import_file(src, "tiny-onnx")
    onnx = next(f for f in model.files if f.path == "model.onnx")
    linked = model.path / "model.onnx"
    blob = store.layout.blob_path(onnx.sha256)
    assert os.path.samefile(linked, blob)
    flip_byte(linked, at=10)

    check = store.verify("tiny-onnx", force=False)
    assert check.status == "corrupt"
    assert [f.file for f in check.bad] == ["model.onnx"]
    assert not linked.exists() and not blob.exists()  # the link and its blob: one inode
    moved = check.bad[0].quarantine
    assert moved is not None and moved.name.startswith(onnx.sha256)
    others = [f for f in check.files if f.file != "model.onnx"]
    assert all(f.status == "ok" for f in others)
    assert "model 'tiny-onnx': model.onnx is corrupt" in check.message

    store.import_file(src, "tiny-onnx")
    assert store.verify("tiny-onnx").ok and linked.exists()


def test_missing_and_unknown(tmp_path: Path, tiny_gguf: Path) -> None:
    store = make_store(tmp_path / "s")
    model = store.import_file(tiny_gguf, "tiny")
    model.path.unlink()
    check = store.verify("tiny")
    assert check.status == "missing" and not check.corrupt
    assert "is missing from the store" in check.message
    unknown = store.verify("nope")
    assert unknown.status == "missing" and unknown.message == "model 'nope' is not in the store"


def test_pulled_model_repair_names_the_hub_reference(
    tmp_path: Path, hub: HubStub, tiny_bytes: bytes
) -> None:
    f = hub.add_file(REPO, FILE, tiny_bytes)
    store = make_store(tmp_path / "s", hub)
    model = store.pull(f"hf://{REPO}/{FILE}", "tiny")
    flip_byte(model.path)
    check = store.verify("tiny")
    assert check.message.endswith(
        f"pull it again: appliance pull hf://{REPO}/{FILE}@{f.revision_sha} --name tiny"
    )
    store.pull(check.repair.split()[2], "tiny")  # the command it names works
    assert store.verify("tiny").ok


def test_an_imported_model_s_repair_works_with_the_daemon_running(
    tmp_path: Path, tiny_gguf: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The advice was `appliance import <original path>`, which a running daemon refuses
    (outside its import folders) when the first import was done with it stopped: it now
    says to copy the file into the store's inbox and import it from there."""
    from appliance.api.admin_routes import allowed_import_path, import_dirs
    from appliance.api.errors import APIError
    from appliance.settings import Settings

    outside = tmp_path / "ops" / "models" / "tiny emb.gguf"  # a space: as_uri() writes %20
    outside.parent.mkdir(parents=True)
    outside.write_bytes(tiny_gguf.read_bytes())
    store = make_store(tmp_path / "s")
    store.import_file(outside, "tiny-emb")  # the daemon stopped: any path is read
    flip_byte(store.get("tiny-emb").path)
    check = store.verify("tiny-emb")
    inbox = store.inbox_dir
    copy = inbox / outside.name
    assert check.repair == (
        f"appliance import '{copy}' --name tiny-emb, after copying '{outside}' into {inbox} "
        "(a running daemon imports only from its import_dirs: by default that inbox and its "
        "user's home)"
    )
    monkeypatch.setenv("HOME", str(tmp_path / "daemon-home"))  # ops/ is not in its home
    dirs = import_dirs(Settings(), store)  # the daemon's folders, by default
    with pytest.raises(APIError):
        allowed_import_path(outside, dirs)  # the old advice: refused while it runs

    copy.parent.mkdir(parents=True, exist_ok=True)  # the daemon makes it at its start
    copy.write_bytes(outside.read_bytes())
    store.import_file(allowed_import_path(copy, dirs), "tiny-emb")  # what the daemon does
    assert store.verify("tiny-emb").ok


def test_a_model_imported_from_the_inbox_is_imported_from_there_again(
    tmp_path: Path, tiny_gguf: Path
) -> None:
    store = make_store(tmp_path / "s")
    src = store.root / "inbox" / tiny_gguf.name
    src.parent.mkdir(parents=True)
    src.write_bytes(tiny_gguf.read_bytes())
    model = store.import_file(src, "tiny")
    flip_byte(model.path)
    assert store.verify("tiny").repair == f"appliance import {src} --name tiny"


# -- the command -------------------------------------------------------------------------------


def home_store(home: Path) -> Store:
    paths = resolve_paths(str(home))
    paths.ensure()
    return Store(paths.store_dir)


def test_verify_command(
    tmp_path: Path, tiny_gguf: Path, tiny_embed_gguf: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home"
    store = home_store(home)
    store.import_file(tiny_gguf, "good")
    bad = store.import_file(tiny_embed_gguf, "bad")
    gone = store.import_file(write_genai_folder(tmp_path / "src"), "gone")
    assert main(["verify", "--home", str(home)]) == 0
    out = capsys.readouterr().out
    assert "3 model(s): 3 OK, 0 CORRUPT, 0 MISSING" in out

    flip_byte(bad.path)
    (gone.path / "genai_config.json").unlink()
    assert main(["verify", "--home", str(home)]) == 1
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines[0].split()[:2] == ["bad", "CORRUPT"]
    assert "is corrupt: its sha256 is" in lines[0] and "moved to" in lines[0]
    assert lines[1].split()[:2] == ["gone", "MISSING"]
    assert lines[2].split()[:2] == ["good", "OK"]
    assert lines[-1] == "3 model(s): 1 OK, 1 CORRUPT, 1 MISSING"
    assert "hashing good: Tiny-Chat-F32.gguf" in captured.err

    assert main(["verify", "--home", str(home), "good"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "1 model(s): 1 OK, 0 CORRUPT, 0 MISSING"
    assert main(["verify", "--home", str(home), "good", "nope", "../x"]) == 1
    out = capsys.readouterr().out
    assert "nope  MISSING  model 'nope' is not in the store" in out
    assert "../x  MISSING  model name '../x'" in out
    assert out.splitlines()[-1] == "3 model(s): 1 OK, 0 CORRUPT, 2 MISSING"
