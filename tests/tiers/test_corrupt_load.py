"""A stored model whose bytes rotted is refused on its way to hot: quarantined, an error
event naming the file and digests, and `model_file_corrupt` for the request."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from appliance.api.errors import from_model_error
from appliance.tiers.errors import ModelFailed
from appliance.tiers.manager import ModelManager
from tests.daemon import start_daemon
from tests.onnx_builder import write_genai_folder
from tests.store.test_integrity import flip_byte, home_store
from tests.tiers.managers import make_manager


def load_error(manager: ModelManager, name: str) -> ModelFailed:
    with pytest.raises(ModelFailed) as ei:
        asyncio.run(manager.load(name))
    return ei.value


def test_corrupt_gguf_is_refused_and_quarantined(tmp_path: Path, tiny_gguf: Path) -> None:
    manager = make_manager(tmp_path)
    model = manager.store.import_file(tiny_gguf, "tiny")
    flip_byte(model.path)

    exc = load_error(manager, "tiny")
    assert exc.code == "model_file_corrupt"
    assert exc.message.startswith("model 'tiny': Tiny-Chat-F32.gguf is corrupt: its sha256 is ")
    assert f"the store expects {model.sha256}" in exc.message
    assert "pull it again: appliance import" in exc.message
    api = from_model_error(exc)
    assert (api.status, api.code, api.type) == (500, "model_file_corrupt", "server_error")

    assert not model.path.exists()
    quarantined = [p for p in (manager.store.root / "quarantine").iterdir() if p.suffix != ".json"]
    assert [p.name.split(".")[0] for p in quarantined] == [model.sha256]

    events = [e for e in manager.events if e.model == "tiny"]
    verify = [e for e in events if e.kind == "verify"]
    assert len(verify) == 1 and "hashing 1 file(s)" in verify[0].message
    errors = [e for e in events if e.kind == "error"]
    assert len(errors) == 1
    assert errors[0].data["file"] == "Tiny-Chat-F32.gguf"
    assert errors[0].data["sha256_expected"] == model.sha256
    assert errors[0].data["sha256_found"] not in (None, model.sha256)
    assert errors[0].data["quarantine"] == str(quarantined[0])
    assert manager.slot("tiny").state == "failed"
    assert manager.tier_of(manager.slot("tiny")) == "remote"

    again = load_error(manager, "tiny")  # still the same clear answer, not "no such file"
    assert again.code == "model_file_corrupt" and "found corrupt earlier" in again.message


def test_corrupt_folder_model_is_refused(tmp_path: Path) -> None:
    manager = make_manager(tmp_path)
    model = manager.store.import_file(write_genai_folder(tmp_path / "src"), "tiny-onnx")
    flip_byte(model.path / "model.onnx", at=10)
    exc = load_error(manager, "tiny-onnx")
    assert exc.code == "model_file_corrupt"
    assert exc.message.startswith("model 'tiny-onnx': model.onnx is corrupt: its sha256 is ")
    assert not (model.path / "model.onnx").exists()
    error = next(e for e in manager.events if e.kind == "error")
    assert error.data["file"] == "model.onnx"


def test_unchanged_files_are_not_hashed_again(tmp_path: Path, tiny_gguf: Path) -> None:
    manager = make_manager(tmp_path)
    model = manager.store.import_file(tiny_gguf, "tiny")
    slot = manager.slot("tiny")
    asyncio.run(manager.files.check_stored_bytes(slot, model.path))  # recorded at import
    assert [e for e in manager.events if e.kind == "verify"] == []
    manager.store.layout.record_path(model.sha256).unlink()  # e.g. a store from before records
    asyncio.run(manager.files.check_stored_bytes(slot, model.path))
    asyncio.run(manager.files.check_stored_bytes(slot, model.path))
    assert len([e for e in manager.events if e.kind == "verify"]) == 1  # hashed once


def test_corrupt_model_through_the_api(tmp_path: Path, tiny_gguf: Path) -> None:
    home = tmp_path / "home"
    store = home_store(home)
    model = store.import_file(tiny_gguf, "tiny")
    flip_byte(model.path)
    catalog = home / "models.toml"
    catalog.write_text("")
    d = start_daemon(home, catalog)
    try:
        r = httpx.post(
            d.v1 + "/chat/completions",
            json={"model": "tiny", "messages": [{"role": "user", "content": "hi"}]},
            timeout=60,
        )
        assert r.status_code == 500, r.text
        err = r.json()["error"]
        assert err["code"] == "model_file_corrupt"
        assert "Tiny-Chat-F32.gguf is corrupt" in err["message"]
        assert "pull it again" in err["message"]
        events = d.get("/admin/events").json()["events"]
        assert any(e["kind"] == "error" and e["model"] == "tiny" for e in events)
        assert any((store.root / "quarantine").glob(model.sha256 + ".*"))
    finally:
        d.stop()
