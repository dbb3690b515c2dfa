"""Folder models (ONNX) in the store: imported or pulled file by file, published as one.

Each file is a content-addressed blob like a GGUF (verified: sha256 from the hub's LFS
metadata, or the git blob sha1 for the small files the hub keeps in git). The folder
is then a tree of hard links to those blobs under `trees/<digest>/`, built beside
and renamed into place, and one manifest names it: a reader sees the whole folder
or none of it, and a killed pull resumes its partial files.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from appliance.store.errors import IntegrityError
from appliance.store.layout import (
    FolderFile,
    Manifest,
    StoreLayout,
    default_model_name,
    fsync_dir,
    safe_model_name,
    safe_relative_path,
    tree_digest,
)
from appliance.store.model_folder import (
    ModelFolderError,
    folder_files,
    folder_format,
    read_folder_info,
)

if TYPE_CHECKING:
    from appliance.store.hub import RemoteFile, RemoteFolder
    from appliance.store.store import Store, StoredModel, _Emitter


def tree_ok(layout: StoreLayout, digest: str, files: tuple[FolderFile, ...]) -> bool:
    tree = layout.tree_path(digest)
    try:
        return all((tree / f.path).stat().st_size == f.size for f in files)
    except OSError:
        return False


def materialize(layout: StoreLayout, files: tuple[FolderFile, ...], digest: str) -> Path:
    """The folder of hard links to `files`' blobs, published with one rename."""
    tree = layout.tree_path(digest)
    if tree_ok(layout, digest, files):
        return tree
    staging = layout.tmp_dir / f"tree-{uuid.uuid4().hex}"
    try:
        for f in files:
            target = layout.inside(staging / safe_relative_path(f.path))
            target.parent.mkdir(parents=True, exist_ok=True)
            os.link(layout.blob_path(f.sha256), target)
        if tree.exists():  # a damaged earlier tree: replace it
            shutil.rmtree(tree)
        os.replace(staging, tree)
        fsync_dir(tree.parent)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return tree


def remove_unused_tree(layout: StoreLayout, digest: str) -> None:
    shutil.rmtree(layout.tree_path(digest), ignore_errors=True)


def _publish_blob(store: Store, tmp: Path, sha256: str, size: int) -> None:
    from appliance.store.store import _blob_ok, _publish

    with store._blob_lock(sha256):
        blob = store.layout.blob_path(sha256)
        if _blob_ok(blob, size):
            tmp.unlink(missing_ok=True)
        else:
            _publish(store.layout, tmp, sha256)


def _write_manifest(store: Store, manifest: Manifest) -> StoredModel:
    """Build the tree, check it is a model we serve, then publish the manifest."""
    tree = materialize(store.layout, manifest.files, manifest.sha256)
    read_folder_info(tree)  # what we publish is the tree: check the tree
    with store._blob_lock(manifest.sha256):
        store.layout.write_manifest(manifest)
        store._collect_replaced(manifest.name, manifest.sha256)
    return store._model(manifest)


# -- import -----------------------------------------------------------------------------------


def import_folder(store: Store, src: Path, name: str | None) -> StoredModel:
    """Copy a local model folder into the store (validated, hashed, published atomically)."""
    from appliance.store.store import _copy_hashing

    kind = folder_format(src)
    read_folder_info(src)  # refuse a broken folder before copying anything
    names = folder_files(".", [p.relative_to(src).as_posix() for p in _regular_files(src)])
    total = sum((src / n).stat().st_size for n in names)
    store._check_disk(total, src.name)
    model_name = safe_model_name(name) if name is not None else default_model_name(src.name)
    store.layout.check_name_free(model_name)
    files = []
    for rel in names:
        safe_relative_path(rel)
        tmp = store.layout.tmp_dir / f"import-{uuid.uuid4().hex}.partial"
        try:
            sha256 = _copy_hashing(src / rel, tmp)
            _publish_blob(store, tmp, sha256, tmp.stat().st_size)
        finally:
            tmp.unlink(missing_ok=True)
        files.append(FolderFile(rel, sha256, store.layout.blob_path(sha256).stat().st_size))
    manifest = Manifest(
        name=model_name,
        source=src.absolute().as_uri(),
        repo=None,
        revision=None,
        filename=src.name,
        sha256=tree_digest(files),
        size=sum(f.size for f in files),
        created=time.time(),
        format=kind,
        files=tuple(sorted(files, key=lambda f: f.path)),
    )
    return _write_manifest(store, manifest)


def _regular_files(src: Path) -> list[Path]:
    """Files under `src` (symlinks followed: a hub cache snapshot is all links), no dot-files."""
    out = []
    for dirpath, dirnames, filenames in os.walk(src, followlinks=True):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for f in filenames:
            p = Path(dirpath) / f
            if not f.startswith(".") and p.is_file():
                out.append(p)
    return out


# -- pull -------------------------------------------------------------------------------------


def default_folder_name(remote: RemoteFolder) -> str:
    repo_name = remote.repo.split("/", 1)[1]
    last = remote.path.rsplit("/", 1)[-1]
    return default_model_name(repo_name if remote.path == "." else f"{repo_name}-{last}")


def fetch_folder(store: Store, remote: RemoteFolder, name: str, emit: _Emitter) -> StoredModel:
    """Download every file of `remote` (resuming partials), verify each, publish the folder."""
    kind = _remote_kind(remote)
    have = 0
    files: list[FolderFile] = []
    store._check_disk(remote.size, remote.path)
    for f in remote.files:
        rel = safe_relative_path(remote.relative(f))
        base = have

        def progress(done: int, _total: int, base: int = base) -> None:
            emit("downloading", base + done)

        sha256 = _fetch_file(store, f, progress)
        files.append(FolderFile(rel, sha256, f.size))
        have += f.size
    emit("verifying", remote.size, "checking the folder is a model")
    manifest = Manifest(
        name=name,
        source=remote.source,
        repo=remote.repo,
        revision=remote.revision,
        filename=remote.path,
        sha256=tree_digest(files),
        size=remote.size,
        created=time.time(),
        format=kind,
        files=tuple(sorted(files, key=lambda f: f.path)),
    )
    return _write_manifest(store, manifest)


def _remote_kind(remote: RemoteFolder) -> str:
    rels = {remote.relative(f) for f in remote.files}
    if "genai_config.json" in rels:
        return "onnx"
    if "modules.json" in rels:
        return "onnx-encoder"
    raise ModelFolderError(
        f"{remote.source} holds neither genai_config.json (an onnxruntime-genai LLM) "
        "nor modules.json (a sentence-transformers encoder)"
    )


def _fetch_file(store: Store, f: RemoteFile, progress: Callable[[int, int], None]) -> str:
    """One file of a folder into its blob; returns its sha256."""
    layout = store.layout
    if f.sha256:
        with store._blob_lock(f.sha256):
            blob = layout.blob_path(f.sha256)
            from appliance.store.store import _blob_ok

            if _blob_ok(blob, f.size):
                progress(f.size, f.size)
                return f.sha256
            partial = layout.partial_path(f.sha256)
            digest = store._hub().download(f, partial, progress)
            _check(partial, f, digest == f.sha256)
        _publish_blob(store, partial, f.sha256, f.size)
        return f.sha256
    # A small file kept in git: verified by its git blob sha1, stored by its sha256.
    assert f.git_sha1 is not None
    partial = layout.inside(layout.tmp_dir / f"git-{f.git_sha1}.partial")
    partial.unlink(missing_ok=True)
    sha256 = store._hub().download(f, partial, progress)
    data = partial.read_bytes()
    git = hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()
    _check(partial, f, git == f.git_sha1)
    _publish_blob(store, partial, sha256, f.size)
    return sha256


def _check(partial: Path, f: RemoteFile, ok: bool) -> None:
    size = partial.stat().st_size
    if ok and size == f.size:
        return
    partial.unlink(missing_ok=True)
    expected = f.sha256 or f"git {f.git_sha1}"
    raise IntegrityError(
        f"digest mismatch for {f.filename} from {f.repo}@{f.revision[:12]}: expected "
        f"{expected} ({f.size} bytes); the download was deleted"
    )
