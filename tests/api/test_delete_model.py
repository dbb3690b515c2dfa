"""Deleting a model from the store: nothing moves unless the delete goes ahead, and
nothing of an import is left to show after it."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import write_catalog
from tests.daemon import Daemon, start_daemon

HI = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}


def chat(d: Daemon, model: str) -> None:
    r = d.post("/v1/chat/completions", json={"model": model, **HI})
    assert r.status_code == 200, r.text


def tier(d: Daemon, name: str) -> str:
    return str(d.model(name)["tier"])


def test_delete_moves_nothing_it_cannot_delete_and_leaves_no_ghost(
    tmp_path: Path, models_dir: Path
) -> None:
    d = start_daemon(tmp_path / "home", write_catalog(tmp_path / "catalog.toml", models_dir))
    try:
        # A catalog model named by its path has no file in the store: a 404, and it stays
        # hot (it was unloaded first, then refused).
        chat(d, "tiny")
        r = d.delete("/admin/models/tiny")
        assert r.status_code == 404 and "no file in the store" in r.text, r.text
        assert tier(d, "tiny") == "hot"

        for name, unload in (("copy-hot", False), ("copy-warm", True)):
            r = d.post("/admin/import", json={"path": str(models_dir / "tiny.gguf"), "name": name})
            assert r.status_code == 200, r.text
            chat(d, name)
            if unload:
                assert d.post(f"/admin/models/{name}/unload").status_code == 200
                assert tier(d, name) == "warm"
            r = d.delete(f"/admin/models/{name}")
            assert r.status_code == 200, r.text
            # Gone everywhere: it stayed "warm" in the lists (pages of a deleted file),
            # and /health kept it for ever.
            assert d.get(f"/admin/models/{name}").status_code == 404
            assert name not in d.get("/health").json()["models"]
            listed = [m["name"] for m in d.get("/admin/models").json()["models"]]
            assert name not in listed
        assert d.get("/health").json()["status"] == "ready"
    finally:
        d.stop()
