from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from appliance.store.errors import InvalidNameError, StoreError
from appliance.store.layout import Manifest, StoreLayout, default_model_name, safe_model_name

SHA = "a" * 64


@pytest.mark.parametrize(
    "name",
    ["qwen2.5-0.5b-instruct", "llama3:8b", "Phi-3_mini+q4", "a", "x" * 128, "m1.gguf"],
)
def test_safe_names_pass(name: str) -> None:
    assert safe_model_name(name) == name


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("", "empty"),
        ("..", r"'\.\.'"),
        ("../etc/passwd", "path separator|'..'"),
        ("a/b", "path separator"),
        ("a\\b", "path separator"),
        ("/abs", "absolute path"),
        ("a\x00b", "NUL"),
        ("a\nb", "control characters"),
        ("x" * 129, "129 characters long"),
        (".hidden", "starts with a dot"),
        ("a..b", r"'\.\.'"),
        ("with space", "may only contain"),
        ("-dash-first", "must start with a letter or digit"),
    ],
)
def test_unsafe_names_refused(name: str, why: str) -> None:
    with pytest.raises(InvalidNameError, match=why):
        safe_model_name(name)


@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        ("Qwen2.5-0.5B-Instruct-Q4_K_M.gguf", "qwen2.5-0.5b-instruct-q4_k_m"),
        ("sub/dir/Model.GGUF", "model"),
        ("weird name (1).gguf", "weird-name-1"),
        ("..gguf", "model"),
        ("...x.gguf", "x"),
    ],
)
def test_default_model_name(filename: str, expected: str) -> None:
    assert default_model_name(filename) == expected


def test_paths_stay_under_root(tmp_path: Path) -> None:
    layout = StoreLayout(tmp_path / "store")
    layout.ensure()
    assert layout.blob_path(SHA) == layout.root / "blobs" / "sha256" / SHA
    assert layout.partial_path(SHA).parent == layout.root / "tmp"
    assert layout.manifest_path("m") == layout.root / "manifests" / "m.json"
    with pytest.raises(StoreError, match="not a sha256"):
        layout.blob_path("../../etc/passwd")
    with pytest.raises(InvalidNameError):
        layout.manifest_path("../escape")


def test_symlink_escaping_the_root_is_refused(tmp_path: Path) -> None:
    layout = StoreLayout(tmp_path / "store")
    layout.ensure()
    outside = tmp_path / "outside.json"
    outside.write_text("{}")
    os.symlink(outside, layout.manifests_dir / "evil.json")
    with pytest.raises(InvalidNameError, match="leaves the store"):
        layout.manifest_path("evil")


def test_manifest_roundtrip_and_atomic_write(tmp_path: Path) -> None:
    layout = StoreLayout(tmp_path)
    layout.ensure()
    m = Manifest("m", "hf://o/r/f.gguf@" + "1" * 40, "o/r", "1" * 40, "f.gguf", SHA, 10, 1.5)
    layout.write_manifest(m)
    assert layout.read_manifest("m") == m
    assert layout.manifest_names() == ["m"]
    assert [p.name for p in layout.manifests_dir.iterdir()] == ["m.json"]  # no temp left
    assert layout.read_manifest("absent") is None


def test_corrupt_manifests(tmp_path: Path) -> None:
    layout = StoreLayout(tmp_path)
    layout.ensure()
    (layout.manifests_dir / "bad.json").write_text("{not json")
    with pytest.raises(StoreError, match="corrupt manifest"):
        layout.read_manifest("bad")
    data = {"name": "other", "source": "x", "filename": "f", "sha256": SHA, "size": 1, "created": 0}
    (layout.manifests_dir / "liar.json").write_text(json.dumps(data))
    with pytest.raises(StoreError, match="it names 'other'"):
        layout.read_manifest("liar")
    data = {"name": "short", "source": "x", "filename": "f", "sha256": SHA, "created": 0}
    (layout.manifests_dir / "short.json").write_text(json.dumps(data))
    with pytest.raises(StoreError, match="missing 'size'"):
        layout.read_manifest("short")
