"""Model names: requests match them ignoring case, so two names that differ only in case
cannot both exist (the store refuses the second; the daemon refuses a catalog name's
variant), and an exact name always wins over one that matches ignoring case. Before,
importing `SMOL2` beside the catalog's `smol2` made `rm SMOL2` delete `smol2`."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from appliance.catalog import load_catalog
from appliance.store.errors import InvalidNameError
from appliance.tiers.errors import BadModelRequest, ModelNotFound
from appliance.tiers.manager import ModelManager
from tests.conftest import write_catalog
from tests.daemon import start_daemon
from tests.tiers.managers import make_manager


def test_the_store_refuses_a_name_another_model_has_ignoring_case(
    tmp_path: Path, tiny_gguf: Path
) -> None:
    manager = make_manager(tmp_path)
    manager.store.import_file(tiny_gguf, "smol")
    with pytest.raises(InvalidNameError, match="'smol' is already in the store"):
        manager.store.import_file(tiny_gguf, "SMOL")
    manager.store.import_file(tiny_gguf, "smol")  # the same name replaces it
    assert [m.name for m in manager.store.list()] == ["smol"]


def _with_catalog(manager: ModelManager, catalog_path: Path) -> None:
    manager.catalog = load_catalog(catalog_path)


def test_an_exact_name_wins_and_two_case_matches_are_ambiguous(
    tmp_path: Path, tiny_gguf: Path, models_dir: Path
) -> None:
    manager = make_manager(tmp_path)
    _with_catalog(manager, write_catalog(tmp_path / "catalog.toml", models_dir))
    manager.store.import_file(tiny_gguf, "mine")
    assert manager.canonical("tiny") == "tiny"
    assert manager.canonical("TINY") == "tiny"  # the catalog's, ignoring case
    assert manager.canonical("MINE") == "mine"  # the store's, ignoring case
    # A store written before names were checked may hold case variants of each other:
    # the exact name still wins, and a name matching both ignoring case is ambiguous.
    folded = manager.store.layout.manifest_path("mine").read_text()
    manager.store.layout.manifest_path("MINE").write_text(folded.replace('"mine"', '"MINE"'))
    assert manager.canonical("mine") == "mine" and manager.canonical("MINE") == "MINE"
    with pytest.raises(BadModelRequest, match="matches MINE and mine ignoring case"):
        manager.canonical("Mine")
    with pytest.raises(ModelNotFound):
        manager.canonical("nope")
    # ...and it is that model everywhere after: a stored TINY beside the catalog's tiny is
    # served from its own file with its own settings, not the catalog's.
    folded_tiny = manager.store.layout.manifest_path("mine").read_text()
    manager.store.layout.manifest_path("TINY").write_text(folded_tiny.replace('"mine"', '"TINY"'))
    assert manager.canonical("TINY") == "TINY"
    assert manager.slot("TINY").entry is None
    assert manager.local_file("TINY") == manager.store.get("TINY").path  # type: ignore[union-attr]
    assert manager.local_file("tiny") == models_dir / "tiny.gguf"
    asyncio.run(manager.shutdown())


def test_the_daemon_refuses_a_catalog_names_case_variant(tmp_path: Path, models_dir: Path) -> None:
    d = start_daemon(tmp_path / "home", write_catalog(tmp_path / "catalog.toml", models_dir))
    try:
        body = {"path": str(models_dir / "tiny.gguf"), "name": "TINY"}
        r = httpx.post(d.url + "/admin/import", json=body, timeout=60)
        assert r.status_code == 400, r.text
        err = r.json()["error"]
        assert err["code"] == "invalid_name" and "'tiny'" in err["message"], err
        r = httpx.post(d.url + "/admin/import", json={**body, "name": "tiny-copy"}, timeout=60)
        assert r.status_code == 200, r.text
        r = httpx.post(d.url + "/admin/import", json={**body, "name": "TINY-COPY"}, timeout=60)
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_name", r.text
        # A catalog alias is taken too: requests for it reach the catalog's model.
        r = httpx.post(d.url + "/admin/import", json={**body, "name": "tiny-alias"}, timeout=60)
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_name", r.text
        # So is the exact name of a catalog model served from its own path: the stored
        # copy was a 200 and never served (the catalog's path wins).
        r = httpx.post(d.url + "/admin/import", json={**body, "name": "tiny"}, timeout=60)
        assert r.status_code == 400 and "never be served" in r.text, r.text
    finally:
        d.stop()


def test_an_hf_co_name_means_the_store_name_its_pull_gives_and_nothing_else(
    tmp_path: Path, tiny_gguf: Path
) -> None:
    from appliance.store.hf_names import hf_name

    manager = make_manager(tmp_path)
    typed = "hf.co/Org/Tiny-GGUF:Q4_K_M"
    with pytest.raises(ModelNotFound, match=r"Pull it first: `ollama pull hf\.co/Org/Tiny-GGUF"):
        manager.canonical(typed)
    stored = hf_name(typed)
    assert stored is not None
    manager.store.import_file(tiny_gguf, stored.store_name)
    for name in (typed, typed.upper(), "huggingface.co/org/tiny-gguf:q4_k_m"):
        assert manager.canonical(name) == "org-tiny-gguf-q4_k_m"
    with pytest.raises(ModelNotFound, match="Pull it first"):
        manager.canonical("hf.co/Org/Tiny-GGUF")  # another name: Ollama's default tag
    asyncio.run(manager.shutdown())
