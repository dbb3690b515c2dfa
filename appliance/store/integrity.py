"""Stored files that rot: a model's bytes checked against its manifest before they are served.

A blob is hashed when it is published (pull, import); `verified/<sha256>.json` then
records its size, mtime and inode. Before a model is loaded, each of its files is
stat'ed: one whose record is missing or no longer matches (replaced, touched, written
to) is hashed again, at disk speed. A file whose bytes do not match its digest is moved
to `quarantine/` with a note, so it is never served again, and the caller is told
which file, what digest it has and how to get the model back. `appliance verify` runs
the same check on every file (hashing all of them, records or not): the stat check
sees a changed file, only a full hash sees a disk that silently flipped bits.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlparse
from urllib.request import url2pathname

from appliance.store.errors import StoreError
from appliance.store.layout import StoreLayout, write_atomic
from appliance.store.verify import sha256_file

if TYPE_CHECKING:
    from appliance.store.store import Store, StoredModel

Status = Literal["ok", "corrupt", "missing"]
HashNotice = Callable[[str, int], None]  # (file, size): called before a file is hashed


@dataclass(frozen=True)
class VerifiedRecord:
    """What a blob looked like when its bytes last matched its digest."""

    sha256: str
    size: int
    mtime_ns: int
    inode: int
    verified_at: float

    def matches(self, sha256: str, st: os.stat_result) -> bool:
        return (self.sha256, self.size, self.mtime_ns, self.inode) == (
            sha256,
            st.st_size,
            st.st_mtime_ns,
            st.st_ino,
        )


@dataclass(frozen=True)
class FileCheck:
    """One file of a model: whether its bytes are the ones its manifest names."""

    file: str  # as the operator knows it: the GGUF's file name, or the path in the folder
    path: Path
    sha256: str  # expected
    size: int  # expected
    status: Status
    got: str | None = None  # the digest found, when it differs
    detail: str = ""  # why, in words, when not ok
    hashed: bool = False  # whether the bytes were read (False: the record vouched for them)
    quarantine: Path | None = None  # where a corrupt file was moved
    quarantined_before: bool = False  # missing because an earlier check moved it aside


@dataclass(frozen=True)
class ModelCheck:
    """Every file of one model, checked; `status` is the worst of them."""

    name: str
    files: tuple[FileCheck, ...]
    repair: str  # the command that gets the model back (see `repair_command`)
    unknown: bool = False  # no model of that name in the store
    bad: tuple[FileCheck, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "bad", tuple(f for f in self.files if f.status != "ok"))

    @property
    def status(self) -> Status:
        if self.unknown or any(f.status == "missing" for f in self.files):
            return "missing"
        return "corrupt" if self.bad else "ok"

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def corrupt(self) -> bool:
        """Bytes that are not the model's, found now or by an earlier check."""
        return any(f.status == "corrupt" or f.quarantined_before for f in self.bad)

    @property
    def message(self) -> str:
        """One line for the operator: which file, which digest, what to do."""
        if self.unknown:
            return f"model '{self.name}' is not in the store"
        if not self.bad:
            return f"model '{self.name}': {len(self.files)} file(s) match their sha256"
        f = self.bad[0]
        more = f" (and {len(self.bad) - 1} more file(s))" if len(self.bad) > 1 else ""
        if f.status == "corrupt":
            where = f"; moved to {f.quarantine}" if f.quarantine is not None else ""
            what = f"{f.file} is corrupt: {f.detail}{where}"
        elif f.quarantined_before:
            what = f"{f.file} was found corrupt earlier and moved to {f.quarantine}"
        else:
            what = f"{f.file} is missing from the store ({f.path})"
        return f"model '{self.name}': {what}{more}; pull it again: {self.repair}"


def repair_command(model: StoredModel, inbox: Path) -> str:
    """How the operator gets a model's files back: pull (hub) or import (local) again.

    A running daemon imports only from its import folders (by default the store's
    `inbox`, `Store.inbox_dir`, and its user's home): the original path,
    often imported with the daemon stopped, is refused there. So a file or folder from
    elsewhere is copied into the inbox first, and the import from there works with the
    daemon running or stopped.
    """
    name = shlex.quote(model.name)
    if not model.source.startswith("file:"):
        return f"appliance pull {shlex.quote(model.source)} --name {name}"
    path = Path(url2pathname(urlparse(model.source).path))  # as_uri() escaped it: %20...
    if path.resolve().is_relative_to(inbox.resolve()):
        return f"appliance import {shlex.quote(str(path))} --name {name}"
    copy = shlex.quote(str(inbox / path.name))
    return (
        f"appliance import {copy} --name {name}, after copying {shlex.quote(str(path))} "
        f"into {shlex.quote(str(inbox))} (a running daemon imports only from its "
        "import_dirs: by default that inbox and its user's home)"
    )


# -- records ----------------------------------------------------------------------------------


def read_record(layout: StoreLayout, sha256: str) -> VerifiedRecord | None:
    """The record for a blob, or None (absent, or not one we wrote: then it vouches nothing)."""
    try:
        data = json.loads(layout.record_path(sha256).read_text(encoding="utf-8"))
        rec = VerifiedRecord(
            sha256=str(data["sha256"]),
            size=int(data["size"]),
            mtime_ns=int(data["mtime_ns"]),
            inode=int(data["inode"]),
            verified_at=float(data["verified_at"]),
        )
    except (OSError, ValueError, TypeError, KeyError):
        return None
    return rec if rec.sha256 == sha256 else None


def write_record(layout: StoreLayout, sha256: str, st: os.stat_result) -> None:
    """Record that the file with this stat holds exactly `sha256`'s bytes (atomic)."""
    rec = {
        "sha256": sha256,
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "inode": st.st_ino,
        "verified_at": time.time(),
    }
    write_atomic(layout.record_path(sha256), json.dumps(rec) + "\n", f"the record of {sha256}")


def record_published(layout: StoreLayout, sha256: str, path: Path) -> None:
    """A blob just published was hashed on its way in: record it (best effort)."""
    with contextlib.suppress(OSError, StoreError):  # without one, the first load hashes it
        write_record(layout, sha256, os.stat(path))


def drop_record(layout: StoreLayout, sha256: str) -> None:
    layout.record_path(sha256).unlink(missing_ok=True)


def quarantined(layout: StoreLayout, sha256: str) -> Path | None:
    """The newest quarantined copy of a digest's file, if an earlier check moved one aside."""
    try:
        found = [
            p
            for p in layout.quarantine_dir.glob(f"{sha256}.*")
            if p.suffix != ".json" and not p.name.startswith(".")
        ]
    except OSError:
        return None
    return max(found, key=lambda p: p.name) if found else None


# -- checking ---------------------------------------------------------------------------------


def needs_hash(layout: StoreLayout, sha256: str, path: Path) -> bool:
    """Whether a load must read the file: no record, or it changed since the record."""
    try:
        st = os.stat(path)
    except OSError:
        return False  # missing: nothing to read
    rec = read_record(layout, sha256)
    return rec is None or not rec.matches(sha256, st)


def check_file(
    layout: StoreLayout,
    file: str,
    path: Path,
    sha256: str,
    size: int,
    *,
    force: bool = False,
    on_hash: HashNotice | None = None,
) -> FileCheck:
    """Hold one file against its digest: by its record when it is unchanged (unless
    `force`), else by hashing it. Writes a fresh record when the bytes match."""

    def result(status: Status, **kw: object) -> FileCheck:
        return FileCheck(file, path, sha256, size, status, **kw)  # type: ignore[arg-type]

    try:
        st = os.stat(path)
    except FileNotFoundError:
        moved = quarantined(layout, sha256)
        return result("missing", quarantine=moved, quarantined_before=moved is not None)
    except OSError as e:
        return result("corrupt", detail=f"it cannot be read ({e.strerror or e})")
    if not stat.S_ISREG(st.st_mode):
        return result("corrupt", detail="it is not a regular file")
    if st.st_size != size:
        return result("corrupt", detail=f"it has {st.st_size} bytes, the store expects {size}")
    rec = read_record(layout, sha256)
    if not force and rec is not None and rec.matches(sha256, st):
        return result("ok")
    if on_hash is not None:
        on_hash(file, size)
    try:
        got = sha256_file(path)
    except OSError as e:
        return result("corrupt", detail=f"it cannot be read ({e.strerror or e})", hashed=True)
    if got != sha256:
        return result(
            "corrupt",
            got=got,
            detail=f"its sha256 is {got}, the store expects {sha256}",
            hashed=True,
        )
    try:
        after = os.stat(path)
        if (after.st_size, after.st_mtime_ns, after.st_ino) == (
            st.st_size,
            st.st_mtime_ns,
            st.st_ino,
        ):
            write_record(layout, sha256, after)
    except (OSError, StoreError):
        pass  # no record: the next load hashes again
    return result("ok", hashed=True)


def quarantine_file(layout: StoreLayout, check: FileCheck, model: str) -> Path | None:
    """Move a corrupt file aside (with a note saying what it should have been), and the
    blob it is a link of; returns where it went (None if it could only be deleted)."""
    qdir = layout.quarantine_dir
    qdir.mkdir(parents=True, exist_ok=True)
    dest = layout.inside(qdir / f"{check.sha256}.{time.time_ns()}")
    try:
        os.replace(check.path, dest)
    except OSError:
        check.path.unlink(missing_ok=True)  # cannot be kept: it must not be served at least
        dest_or_none: Path | None = None
    else:
        dest_or_none = dest
        note = {
            "model": model,
            "file": check.file,
            "was": str(check.path),
            "sha256_expected": check.sha256,
            "sha256_found": check.got,
            "size_expected": check.size,
            "why": check.detail,
            "quarantined_at": time.time(),
        }
        with contextlib.suppress(OSError, StoreError):
            write_atomic(qdir / f"{dest.name}.json", json.dumps(note, indent=1) + "\n", "a note")
    blob = layout.blob_path(check.sha256)
    if blob != check.path and dest_or_none is not None:
        try:
            if os.path.samefile(blob, dest_or_none):  # a folder's file is a link of its blob
                blob.unlink()
        except OSError:
            pass
    drop_record(layout, check.sha256)
    return dest_or_none


def model_files(store: Store, model: StoredModel) -> list[tuple[str, Path, str, int]]:
    """(shown name, path, sha256, size) of each file a model is served from."""
    if not model.files:
        return [(model.filename, model.path, model.sha256, model.size)]
    return [(f.path, model.path / f.path, f.sha256, f.size) for f in model.files]


def verify_model(
    store: Store,
    model: StoredModel,
    *,
    force: bool = False,
    quarantine: bool = True,
    on_hash: HashNotice | None = None,
) -> ModelCheck:
    """Check every file of `model` (see `check_file`); corrupt files go to quarantine.

    Each file is checked under its blob's lock, so a pull or a removal of the same
    bytes waits instead of racing the move.
    """
    checks = []
    for shown, path, sha256, size in model_files(store, model):
        with store._blob_lock(sha256):
            check = check_file(
                store.layout, shown, path, sha256, size, force=force, on_hash=on_hash
            )
            if quarantine and check.status == "corrupt" and check.path.exists():
                moved = quarantine_file(store.layout, check, model.name)
                check = FileCheck(
                    check.file,
                    check.path,
                    check.sha256,
                    check.size,
                    "corrupt",
                    got=check.got,
                    detail=check.detail,
                    hashed=check.hashed,
                    quarantine=moved,
                )
        checks.append(check)
    return ModelCheck(model.name, tuple(checks), repair_command(model, store.inbox_dir))


def files_to_hash(store: Store, model: StoredModel) -> list[tuple[str, int]]:
    """The files a load would hash now (changed or never verified): (name, size) each."""
    return [
        (shown, size)
        for shown, path, sha256, size in model_files(store, model)
        if needs_hash(store.layout, sha256, path)
    ]
