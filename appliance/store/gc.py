"""`appliance gc`: give back the disk that no model needs.

Removed: partial downloads and imports in `tmp/` older than a threshold (a pull that
still writes one holds its lock, and is left alone), staging folders left by a killed
import, blobs and trees no manifest refers to, lock files nobody holds, records of
blobs that are gone. Blobs and trees are only taken under their lock and after a
grace period (at most an hour), so a folder pull in progress, whose first files are
published before its manifest, keeps them. The quarantine is left for the operator.
If a manifest cannot be read, nothing it might refer to is removed.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from appliance.store.errors import StoreError

if TYPE_CHECKING:
    from appliance.store.store import Store

BLOB_GRACE_S = 3600.0  # unreferenced blobs and trees younger than this may belong to a pull
_HEX64 = re.compile(r"[0-9a-f]{64}")

Kind = Literal["partial", "staging", "tree", "blob", "lock", "record", "temp"]


@dataclass(frozen=True)
class Removed:
    kind: Kind
    path: Path
    bytes: int  # disk given back (a hard link whose data another link keeps frees 0)
    age_s: float


@dataclass
class GcReport:
    dry_run: bool
    removed: list[Removed] = field(default_factory=list)
    kept: list[tuple[Path, str]] = field(default_factory=list)  # (path, why it stays)
    quarantine_files: int = 0
    quarantine_bytes: int = 0

    @property
    def freed_bytes(self) -> int:
        return sum(r.bytes for r in self.removed)

    def count(self, kind: Kind) -> int:
        return sum(1 for r in self.removed if r.kind == kind)


def collect(store: Store, older_than_s: float, *, dry_run: bool = False) -> GcReport:
    """Remove (or with `dry_run` only list) what `appliance gc` frees; see the module doc."""
    if older_than_s < 0:
        raise StoreError(f"--older-than must not be negative (got {older_than_s / 3600:g} h)")
    report = GcReport(dry_run=dry_run)
    now = time.time()
    grace = min(older_than_s, BLOB_GRACE_S)
    links_removed: Counter[tuple[int, int]] = Counter()

    def remove(kind: Kind, path: Path, nbytes: int, age: float) -> None:
        if not dry_run:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
        report.removed.append(Removed(kind, path, nbytes, age))

    def tree_bytes(root: Path) -> int:
        """Bytes removing `root` frees: files with no other link; note the links it drops."""
        total = 0
        for dirpath, _dirs, files in os.walk(root):
            for name in files:
                try:
                    st = os.lstat(os.path.join(dirpath, name))
                except OSError:
                    continue
                if st.st_nlink <= 1:
                    total += st.st_size
                else:
                    links_removed[(st.st_dev, st.st_ino)] += 1
        return total

    layout = store.layout
    # 1. tmp/: partial downloads and imports, staging folders.
    for entry in _entries(layout.tmp_dir):
        st = _lstat(entry)
        if st is None:
            continue
        age = now - st.st_mtime
        if age < older_than_s:
            continue
        stem = entry.name.removesuffix(".partial")
        if entry.is_dir() and not entry.is_symlink():
            remove("staging", entry, tree_bytes(entry), age)
        elif entry.name.endswith(".partial") and _HEX64.fullmatch(stem):
            with store._try_lock(stem) as locked:
                if locked:
                    remove("partial", entry, st.st_size, age)
                else:
                    report.kept.append((entry, "a pull is writing it"))
        else:
            remove("partial", entry, st.st_size, age)

    # 2. What the manifests refer to; if one cannot be read, blobs and trees all stay.
    referenced, unreadable = _referenced(store)
    for name in unreadable:
        report.kept.append((layout.manifest_path(name), "manifest unreadable: no blob removed"))

    if not unreadable:
        # 3. Trees, then blobs (a tree's files are links of blobs: the blob frees the bytes).
        for kind, folder in (("tree", layout.trees_dir), ("blob", layout.blobs_dir)):
            for entry in _entries(folder):
                if not _HEX64.fullmatch(entry.name) or entry.name in referenced:
                    continue
                st = _lstat(entry)
                if st is None:
                    continue
                age = now - st.st_ctime
                # ctime, not mtime: linking a blob into a tree (or unlinking the tree's
                # link just above) touches it. With no grace asked, none is given.
                if grace > 0 and age < grace:
                    report.kept.append((entry, f"unreferenced for less than {grace:.0f} s"))
                    continue
                with store._try_lock(entry.name) as locked:
                    if not locked:
                        report.kept.append((entry, "in use"))
                        continue
                    if entry.name in _referenced(store)[0]:
                        continue  # a pull published a manifest for it meanwhile
                    if kind == "tree":
                        remove("tree", entry, tree_bytes(entry), age)
                    else:
                        extra = links_removed[(st.st_dev, st.st_ino)]
                        freed = st.st_size if st.st_nlink - extra <= 1 else 0
                        remove("blob", entry, freed, age)  # its record goes in step 4

    # 4. Records of blobs that are gone (and not a folder file's either).
    for entry in _entries(layout.verified_dir):
        stem = entry.name.removesuffix(".json")
        st = _lstat(entry)
        if st is None:
            continue
        if _HEX64.fullmatch(stem):
            gone = not layout.blob_path(stem).exists() and stem not in referenced
            if gone or (dry_run and any(r.path.name == stem for r in report.removed)):
                remove("record", entry, st.st_size, now - st.st_mtime)
        elif entry.name.startswith(".tmp-") and now - st.st_mtime >= older_than_s:
            remove("temp", entry, st.st_size, now - st.st_mtime)

    # 5. Manifests half-written by a killed process.
    for entry in _entries(layout.manifests_dir):
        st = _lstat(entry)
        if entry.name.startswith(".tmp-") and st is not None and now - st.st_mtime >= older_than_s:
            remove("temp", entry, st.st_size, now - st.st_mtime)

    # 6. Lock files nobody holds (a process that opens one meanwhile takes a fresh one).
    for entry in _entries(layout.locks_dir):
        stem = entry.name.removesuffix(".lock")
        if not entry.name.endswith(".lock") or not _HEX64.fullmatch(stem):
            continue
        with store._try_lock(stem) as locked:
            if locked:
                st = _lstat(entry)
                remove("lock", entry, 0, now - st.st_mtime if st is not None else 0.0)

    for entry in _entries(layout.quarantine_dir):
        st = _lstat(entry)
        if st is not None and not entry.name.endswith(".json"):
            report.quarantine_files += 1
            report.quarantine_bytes += st.st_size
    return report


def _entries(folder: Path) -> list[Path]:
    try:
        return sorted(folder.iterdir())
    except OSError:
        return []


def _lstat(path: Path) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except OSError:
        return None


def _referenced(store: Store) -> tuple[set[str], list[str]]:
    """Every digest a manifest names, and the names of manifests that cannot be read."""
    out: set[str] = set()
    unreadable: list[str] = []
    for name in store.layout.manifest_names():
        try:
            m = store.layout.read_manifest(name)
        except StoreError:
            unreadable.append(name)
            continue
        if m is not None:
            out.add(m.sha256)
            out.update(f.sha256 for f in m.files)
    return out, unreadable
