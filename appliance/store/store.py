"""The local model store: pull from the hub, import local files, list, remove.

Guarantees:
- a partial or unverified file never sits under its final name: downloads land in
  `tmp/<sha256>.partial`, are checked (sha256 against the hub's LFS metadata, then
  GGUF validity) and only then published with `os.replace`;
- a killed download loses nothing: the next pull resumes the partial with a Range request;
- free disk is checked before any transfer (size + a safety margin);
- a file pulled twice at once (threads or processes) is transferred once: a
  per-sha256 thread lock plus an fcntl lock in `locks/`; the waiter then finds the
  published blob and returns without downloading;
- manifests are written beside and published with `os.replace`.
"""

from __future__ import annotations

import errno
import fcntl
import fnmatch
import hashlib
import logging
import os
import re
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

from appliance.store.engine_arch import check_architecture
from appliance.store.errors import (
    AmbiguousFileError,
    DiskFullError,
    DownloadInterruptedError,
    GGUFError,
    HubError,
    HubUnavailableError,
    IntegrityError,
    InvalidNameError,
    NotFoundError,
    StoreError,
)
from appliance.store.folders import (
    default_folder_name,
    fetch_folder,
    import_folder,
    remove_unused_tree,
    tree_ok,
)
from appliance.store.gguf_meta import GGUFInfo
from appliance.store.integrity import ModelCheck, drop_record, record_published, verify_model
from appliance.store.layout import (
    FolderFile,
    Manifest,
    StoreLayout,
    default_model_name,
    fsync_dir,
    safe_model_name,
)
from appliance.store.model_folder import read_folder_info
from appliance.store.verify import CHUNK_SIZE, validate_gguf

if TYPE_CHECKING:
    from appliance.store.gc import GcReport
    from appliance.store.hub import HubClient, HubRef, RemoteFile

__all__ = [  # the error family is re-exported so callers need one import
    "AmbiguousFileError",
    "DiskFullError",
    "DiskUsage",
    "DownloadInterruptedError",
    "GGUFError",
    "HubError",
    "HubUnavailableError",
    "IntegrityError",
    "InvalidNameError",
    "NotFoundError",
    "ProgressEvent",
    "Store",
    "StoreError",
    "StoredModel",
]

log = logging.getLogger(__name__)

DEFAULT_DISK_MARGIN = 256 << 20
WAITING_MESSAGE = "waiting for another pull of the same file"
PROGRESS_INTERVAL_S = 0.1

ProgressStatus = Literal["resolving", "downloading", "verifying", "done", "error"]


@dataclass(frozen=True)
class StoredModel:
    """A model in the store: its manifest and the path of its verified blob."""

    name: str
    path: Path
    sha256: str
    size: int
    source: str
    repo: str | None
    revision: str | None
    filename: str
    created: float
    format: str = "gguf"  # or a folder model (`path` is then its folder): "onnx", "onnx-encoder"
    files: tuple[FolderFile, ...] = ()


@dataclass(frozen=True)
class ProgressEvent:
    name: str
    filename: str
    downloaded: int
    total: int
    status: ProgressStatus
    message: str = ""
    sha256: str = ""  # the file's, once the hub named it ("" for a folder, which has many)


ProgressCallback = Callable[[ProgressEvent], None]


class DiskUsage(Protocol):
    @property
    def free(self) -> int: ...


DiskUsageFn = Callable[[Path], DiskUsage]

# One lock per blob per process, shared by every Store on the same root.
_THREAD_LOCKS: dict[str, threading.Lock] = {}
_THREAD_LOCKS_GUARD = threading.Lock()


def _thread_lock(key: str) -> threading.Lock:
    with _THREAD_LOCKS_GUARD:
        lock = _THREAD_LOCKS.get(key)
        if lock is None:
            lock = _THREAD_LOCKS[key] = threading.Lock()
        return lock


def human_bytes(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover


class Store:
    """A content-addressed store of models under `root`: GGUF files and model folders."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        endpoint: str | None = None,
        token: str | None = None,
        *,
        disk_usage: DiskUsageFn = shutil.disk_usage,
        disk_margin: int = DEFAULT_DISK_MARGIN,
        retries: int = 3,
        retry_wait: float = 1.0,
        timeout: float = 10.0,
    ) -> None:
        self.layout = StoreLayout(root)
        self.layout.ensure()
        self.endpoint = endpoint
        self.token = token
        self._disk_usage = disk_usage
        self.disk_margin = disk_margin
        self._retries = retries
        self._retry_wait = retry_wait
        self._timeout = timeout
        self._hub_client: HubClient | None = None

    @property
    def root(self) -> Path:
        return self.layout.root

    @property
    def inbox_dir(self) -> Path:
        """`<store>/inbox`: a folder the daemon always imports from (a file copied there
        can be imported with the daemon running)."""
        return self.root / "inbox"

    def _hub(self) -> HubClient:
        if self._hub_client is None:
            from appliance.store.hub import HubClient  # huggingface_hub only when pulling

            self._hub_client = HubClient(
                self.endpoint,
                self.token,
                timeout=self._timeout,
                retries=self._retries,
                retry_wait=self._retry_wait,
            )
        return self._hub_client

    # -- reading -----------------------------------------------------------------------------

    def _model(self, m: Manifest) -> StoredModel:
        folder = m.format != "gguf"
        return StoredModel(
            name=m.name,
            path=self.layout.tree_path(m.sha256) if folder else self.layout.blob_path(m.sha256),
            sha256=m.sha256,
            size=m.size,
            source=m.source,
            repo=m.repo,
            revision=m.revision,
            filename=m.filename,
            created=m.created,
            format=m.format,
            files=m.files,
        )

    def get(self, name: str) -> StoredModel | None:
        m = self.layout.read_manifest(safe_model_name(name))
        return self._model(m) if m is not None else None

    def list(self) -> list[StoredModel]:
        out: list[StoredModel] = []
        for name in self.layout.manifest_names():
            try:
                m = self.layout.read_manifest(name)
            except StoreError as e:
                log.warning("skipping %s", e)
                continue
            if m is not None:
                out.append(self._model(m))
        return out

    def resolve_path(self, name: str) -> Path:
        model = self.get(name)
        if model is None:
            raise NotFoundError(f"model {name!r} is not in the store")
        present = (
            tree_ok(self.layout, model.sha256, model.files) if model.files else model.path.is_file()
        )
        if not present:
            raise NotFoundError(
                f"the file of model {name!r} is missing from the store ({model.path}); "
                "pull or import it again"
            )
        return model.path

    def info(self, name: str) -> GGUFInfo:
        path = self.resolve_path(name)
        return read_folder_info(path) if path.is_dir() else validate_gguf(path)

    def partial_bytes(self) -> int:
        """Bytes of the downloads and imports in flight or broken off (`tmp/*.partial`):
        disk the store uses beyond its models, counted in the cold tier's use."""
        total = 0
        try:
            entries = list(os.scandir(self.layout.tmp_dir))
        except OSError:
            return 0
        for entry in entries:
            if entry.name.endswith(".partial"):
                with suppress(OSError):
                    if entry.is_file(follow_symlinks=False):
                        total += entry.stat(follow_symlinks=False).st_size
        return total

    # -- integrity ---------------------------------------------------------------------------

    def verify(
        self,
        name: str,
        *,
        force: bool = True,
        on_hash: Callable[[str, int], None] | None = None,
    ) -> ModelCheck:
        """Hold a stored model's files against their digests; corrupt ones go to
        `quarantine/`. `force` hashes every file; without it a file whose record shows
        it unchanged since it was last hashed is trusted (the check before a load)."""
        model = self.get(name)
        if model is None:
            return ModelCheck(safe_model_name(name), (), "", unknown=True)
        return verify_model(self, model, force=force, on_hash=on_hash)

    def gc(self, older_than_s: float, *, dry_run: bool = False) -> GcReport:
        """Remove what no model needs: partials older than `older_than_s`, unreferenced
        blobs and trees, idle lock files, stale records (see `store.gc`)."""
        from appliance.store.gc import collect

        return collect(self, older_than_s, dry_run=dry_run)

    # -- removing ----------------------------------------------------------------------------

    def remove(self, name: str) -> None:
        """Remove a model's manifest; its blob goes too once no manifest refers to it."""
        m = self.layout.read_manifest(safe_model_name(name))
        if m is None:
            raise NotFoundError(f"model {name!r} is not in the store")
        with self._blob_lock(m.sha256):
            self.layout.manifest_path(name).unlink(missing_ok=True)
            fsync_dir(self.layout.manifests_dir)
            if not any(other.sha256 == m.sha256 for other in self.list()):
                if m.files:
                    remove_unused_tree(self.layout, m.sha256)
                else:
                    self.layout.blob_path(m.sha256).unlink(missing_ok=True)
                    drop_record(self.layout, m.sha256)
        if m.files:
            self._collect_replaced(name, "")

    # -- importing ---------------------------------------------------------------------------

    def import_file(self, path: str | os.PathLike[str], name: str | None = None) -> StoredModel:
        """Copy a local GGUF file, or a model folder (ONNX), into the store (validated,
        hashed, published atomically)."""
        src = Path(path).expanduser()
        if src.is_dir():
            return import_folder(self, src, name)
        model_name = safe_model_name(name) if name is not None else default_model_name(src.name)
        self.layout.check_name_free(model_name)  # before copying: the manifest would refuse
        info = validate_gguf(src)  # refuse garbage before copying anything
        check_architecture(info.architecture)  # and what llama.cpp cannot load
        size = src.stat().st_size
        self._check_disk(size, src.name)
        tmp = self.layout.tmp_dir / f"import-{uuid.uuid4().hex}.partial"
        try:
            sha256 = _copy_hashing(src, tmp)
            copied = tmp.stat().st_size
            if copied != size:
                raise IntegrityError(
                    f"{src} changed while it was imported ({size} -> {copied} bytes)"
                )
            validate_gguf(tmp)  # what we publish is the copy: check the copy
            with self._blob_lock(sha256):
                blob = self.layout.blob_path(sha256)
                if _blob_ok(blob, size):
                    tmp.unlink()
                else:
                    _publish(self.layout, tmp, sha256)
                manifest = Manifest(
                    name=model_name,
                    source=src.absolute().as_uri(),
                    repo=None,
                    revision=None,
                    filename=src.name,
                    sha256=sha256,
                    size=size,
                    created=time.time(),
                )
                self.layout.write_manifest(manifest)
                self._collect_replaced(model_name, sha256)
        finally:
            tmp.unlink(missing_ok=True)
        return self._model(manifest)

    # -- pulling -----------------------------------------------------------------------------

    def pull(
        self,
        ref: str,
        name: str | None = None,
        progress: ProgressCallback | None = None,
    ) -> StoredModel:
        """Pull `hf://org/repo/file.gguf[@revision]` (file part may be a glob) into the store.

        A model already in the store under this reference returns at once, without
        the network, unless the reference names a branch or tag to re-resolve.
        A callback that raises aborts the pull (the partial is kept for resuming).
        """
        from appliance.store.hub import RemoteFolder, parse_ref

        hub_ref = parse_ref(ref)
        if name is not None:
            safe_model_name(name)
        emit = _Emitter(progress, name or hub_ref.pattern, hub_ref.pattern)
        try:
            local = self._find_local(hub_ref, name)
            if local is not None:
                emit.update(
                    local.name, local.filename, local.size, "" if local.files else local.sha256
                )
                emit("done", local.size, "already in the store")
                return local
            emit("resolving", message=f"resolving {hub_ref}")
            found = self._hub().resolve_any(hub_ref)
            if isinstance(found, RemoteFolder):
                model_name = name or default_folder_name(found)
                self.layout.check_name_free(model_name)  # before the download
                emit.update(model_name, found.path, found.size)
                model = fetch_folder(self, found, model_name, emit)
                emit("done", model.size)
                return model
            remote = found
            model_name = name or default_model_name(remote.filename)
            self.layout.check_name_free(model_name)  # before the download
            emit.update(model_name, remote.filename, remote.size, remote.sha256)
            model = self._fetch(remote, model_name, emit)
            emit("done", model.size)
            return model
        except Exception as e:
            with suppress(Exception):  # a failing callback must not mask the real error
                emit("error", message=str(e) or type(e).__name__)
            raise

    def _find_local(self, ref: HubRef, name: str | None) -> StoredModel | None:
        """A manifest that already satisfies `ref` (and `name`), with its blob present."""
        rev = ref.revision
        pinned_prefix = rev is not None and re.fullmatch(r"[0-9a-f]{7,40}", rev) is not None
        if rev is not None and not pinned_prefix:
            return None  # a branch or tag: it may have moved, ask the hub
        matches: list[Manifest] = []
        for model in self.list():
            if model.repo != ref.repo or model.revision is None:
                continue
            if model.files:  # a folder: its path in the repo, "." for the root
                root = ref.pattern == "*.gguf" and model.filename == "."
                ok = root or model.filename == ref.pattern.rstrip("/")
            elif ref.is_glob:
                ok = fnmatch.fnmatchcase(model.filename.lower(), ref.pattern.lower())
            else:
                ok = model.filename == ref.pattern
            rev_ok = rev is None or model.revision.startswith(rev)
            present = (
                tree_ok(self.layout, model.sha256, model.files)
                if model.files
                else _blob_ok(model.path, model.size)
            )
            if ok and rev_ok and present:
                matches.append(_manifest_of(model))
        if not matches:
            return None
        if len({m.sha256 for m in matches}) > 1 and name is None:
            return None  # several files match: let the hub decide (and complain)
        if name is None:
            best = next(
                (m for m in matches if m.name == default_model_name(m.filename)), matches[0]
            )
            return self._model(best)
        same = next((m for m in matches if m.name == name), None)
        if same is not None:
            return self._model(same)
        # Same file, new name: one more manifest, no transfer.
        src = matches[0]
        with self._blob_lock(src.sha256):
            new = Manifest(
                name=name,
                source=src.source,
                repo=src.repo,
                revision=src.revision,
                filename=src.filename,
                sha256=src.sha256,
                size=src.size,
                created=time.time(),
                format=src.format,
                files=src.files,
            )
            self.layout.write_manifest(new)
            self._collect_replaced(name, src.sha256)
        return self._model(new)

    def _fetch(
        self,
        remote: RemoteFile,
        name: str,
        emit: _Emitter,
    ) -> StoredModel:
        def waiting() -> None:
            emit("downloading", 0, WAITING_MESSAGE)

        with self._blob_lock(remote.sha256, on_wait=waiting):
            blob = self.layout.blob_path(remote.sha256)
            if not _blob_ok(blob, remote.size):
                self._download_locked(remote, blob, emit)
            manifest = Manifest(
                name=name,
                source=remote.source,
                repo=remote.repo,
                revision=remote.revision,
                filename=remote.filename,
                sha256=remote.sha256,
                size=remote.size,
                created=time.time(),
            )
            self.layout.write_manifest(manifest)
            self._collect_replaced(name, remote.sha256)
        return self._model(manifest)

    def _download_locked(self, remote: RemoteFile, blob: Path, emit: _Emitter) -> None:
        partial = self.layout.partial_path(remote.sha256)
        have = partial.stat().st_size if partial.exists() else 0
        self._check_disk(max(remote.size - have, 0), remote.filename)
        if have:
            emit("downloading", have, f"resuming at byte {have}")

        last = [0.0]

        def on_progress(done: int, total: int) -> None:
            now = time.monotonic()
            if done >= total or now - last[0] >= PROGRESS_INTERVAL_S:
                last[0] = now
                emit("downloading", done)

        digest = self._hub().download(remote, partial, on_progress)
        emit("verifying", remote.size, "checking sha256 and GGUF header")
        size = partial.stat().st_size
        if digest != remote.sha256 or size != remote.size:
            partial.unlink(missing_ok=True)
            raise IntegrityError(
                f"sha256 mismatch for {remote.filename} from {remote.repo}@{remote.revision[:12]}: "
                f"expected {remote.sha256} ({remote.size} bytes), got {digest} ({size} bytes); "
                "the download was deleted"
            )
        try:
            validate_gguf(partial)
        except GGUFError as e:
            partial.unlink(missing_ok=True)
            raise GGUFError(
                f"{remote.filename} from {remote.repo} is not a usable GGUF: {e}"
            ) from None
        _publish(self.layout, partial, remote.sha256)

    # -- helpers -----------------------------------------------------------------------------

    def _check_disk(self, nbytes: int, what: str) -> None:
        free = int(self._disk_usage(self.layout.root).free)
        need = nbytes + self.disk_margin
        if free < need:
            raise DiskFullError(
                f"not enough disk space for {what} in {self.layout.root}: need {need} bytes "
                f"({human_bytes(need)}, including a {human_bytes(self.disk_margin)} margin) "
                f"but only {free} bytes ({human_bytes(free)}) are free"
            )

    def _collect_replaced(self, name: str, keep_sha256: str) -> None:
        """After `name` was re-pointed, drop blobs no manifest refers to any more (best effort)."""
        referenced = self._referenced()
        for tree in self.layout.trees_dir.iterdir():
            if tree.name == keep_sha256 or tree.name in referenced:
                continue
            if re.fullmatch(r"[0-9a-f]{64}", tree.name) is not None:
                with self._blob_lock(tree.name):
                    if tree.name not in self._referenced():
                        shutil.rmtree(tree, ignore_errors=True)
        for blob in self.layout.blobs_dir.iterdir():
            if blob.name == keep_sha256 or blob.name in referenced:
                continue
            if re.fullmatch(r"[0-9a-f]{64}", blob.name) is None:
                continue
            # Only blobs that nothing refers to; taking their lock keeps a concurrent pull safe.
            with self._try_lock(blob.name) as locked:
                if locked and blob.name not in self._referenced():
                    blob.unlink(missing_ok=True)
                    drop_record(self.layout, blob.name)

    def _referenced(self) -> set[str]:
        """Every digest a manifest refers to: GGUF blobs, folder trees and their files."""
        out = set()
        for m in self.list():
            out.add(m.sha256)
            out.update(f.sha256 for f in m.files)
        return out

    @contextmanager
    def _blob_lock(self, sha256: str, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
        """Exclusive use of one blob: a thread lock, then an fcntl lock for other processes."""
        path = self.layout.lock_path(sha256)
        tlock = _thread_lock(str(path))
        if not tlock.acquire(blocking=False):
            if on_wait is not None:
                on_wait()
                on_wait = None
            tlock.acquire()
        try:
            fd = _flock(path, on_wait, blocking=True)
            assert fd is not None
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)
        finally:
            tlock.release()

    @contextmanager
    def _try_lock(self, sha256: str) -> Iterator[bool]:
        """The blob's lock if nobody holds it now (True), else nothing (False), never waiting."""
        path = self.layout.lock_path(sha256)
        tlock = _thread_lock(str(path))
        if not tlock.acquire(blocking=False):
            yield False
            return
        try:
            fd = _flock(path, None, blocking=False)
            if fd is None:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)
        finally:
            tlock.release()


def _flock(path: Path, on_wait: Callable[[], None] | None, *, blocking: bool) -> int | None:
    """An fd holding the exclusive flock of the lock file now at `path`, or None (busy and
    not `blocking`). `appliance gc` deletes idle lock files: a lock taken on a file that
    was unlinked meanwhile excludes no one, so it is dropped and taken again."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if not blocking:
                    os.close(fd)
                    return None
                if on_wait is not None:
                    on_wait()
                    on_wait = None
                fcntl.flock(fd, fcntl.LOCK_EX)
            held = os.fstat(fd)
            try:
                now = os.stat(path)
                if (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino):
                    return fd
            except FileNotFoundError:
                pass
            fcntl.flock(fd, fcntl.LOCK_UN)
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)


class _Emitter:
    """Builds ProgressEvents for one pull and hands them to the caller's callback."""

    def __init__(self, callback: ProgressCallback | None, name: str, filename: str) -> None:
        self.callback = callback
        self.name = name
        self.filename = filename
        self.total = 0
        self.sha256 = ""

    def update(self, name: str, filename: str, total: int, sha256: str = "") -> None:
        self.name, self.filename, self.total, self.sha256 = name, filename, total, sha256

    def __call__(self, status: ProgressStatus, downloaded: int = 0, message: str = "") -> None:
        if self.callback is not None:
            self.callback(
                ProgressEvent(
                    self.name, self.filename, downloaded, self.total, status, message, self.sha256
                )
            )


def _manifest_of(model: StoredModel) -> Manifest:
    return Manifest(
        name=model.name,
        source=model.source,
        repo=model.repo,
        revision=model.revision,
        filename=model.filename,
        sha256=model.sha256,
        size=model.size,
        created=model.created,
        format=model.format,
        files=model.files,
    )


def _blob_ok(blob: Path, size: int) -> bool:
    try:
        return blob.is_file() and blob.stat().st_size == size
    except OSError:
        return False


def _publish(layout: StoreLayout, src: Path, sha256: str) -> None:
    """Make a verified file read-only, move it under its final name and record that its
    bytes were hashed (a load then need not hash them again)."""
    blob = layout.blob_path(sha256)
    os.chmod(src, 0o444)
    blob.parent.mkdir(parents=True, exist_ok=True)
    os.replace(src, blob)
    fsync_dir(blob.parent)
    record_published(layout, sha256, blob)


def _copy_hashing(src: Path, dst: Path) -> str:
    h = hashlib.sha256()
    try:
        with open(src, "rb") as fin, open(dst, "wb") as fout:
            while chunk := fin.read(CHUNK_SIZE):
                h.update(chunk)
                fout.write(chunk)
            fout.flush()
            os.fsync(fout.fileno())
    except OSError as e:
        if e.errno == errno.ENOSPC:
            with suppress(OSError):
                dst.unlink()
            raise DiskFullError(f"disk full while importing {src.name} into {dst.parent}") from None
        raise
    return h.hexdigest()
