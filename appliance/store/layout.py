"""Where things live under the store root, and the checks that keep them there.

```
<root>/
  blobs/sha256/<hex>        content-addressed model files, read-only once published
  manifests/<name>.json     one per model name: what it is, where it came from
  trees/<sha256>/           a folder model (ONNX): hard links to its files' blobs under
                            their names; the digest is over the sorted (path, sha256, size)
  tmp/<sha256>.partial      downloads in flight (resumable); imports in flight
  locks/<sha256>.lock       fcntl locks: one transfer per file across processes
  verified/<sha256>.json    when a blob's bytes were last hashed, and its size, mtime and
                            inode then: a load re-hashes only a file that changed
  quarantine/<sha256>.<ns>  a blob (or a folder's file) whose bytes no longer match its
                            digest, moved aside with a `.json` note beside it
```

A file sits under `blobs/` only once it is complete and verified; manifests are
written beside and published with `os.replace`, so a reader sees the old one or
the new one, never half of either. Every path handed out is checked to resolve
inside the root.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from appliance.store.errors import DiskFullError, InvalidNameError, StoreError

MAX_NAME_LENGTH = 128
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+:-]*")
_HEX64_RE = re.compile(r"[0-9a-f]{64}")


def safe_model_name(name: str) -> str:
    """Return `name` if it is a safe model name, else raise `InvalidNameError` saying why."""
    if not isinstance(name, str) or not name:
        raise InvalidNameError("model name is empty")
    shown = repr(name) if len(name) <= 80 else repr(name[:80] + "...")
    if "\x00" in name:
        raise InvalidNameError(f"model name {shown} contains a NUL byte")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        raise InvalidNameError(f"model name {shown} contains control characters")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidNameError(
            f"model name {shown} is {len(name)} characters long (at most {MAX_NAME_LENGTH})"
        )
    if name.startswith("/") or os.path.isabs(name):
        raise InvalidNameError(f"model name {shown} is an absolute path")
    if "/" in name or "\\" in name:
        raise InvalidNameError(f"model name {shown} contains a path separator")
    if ".." in name:
        raise InvalidNameError(f"model name {shown} contains '..'")
    if name.startswith("."):
        raise InvalidNameError(f"model name {shown} starts with a dot")
    if not _NAME_RE.fullmatch(name):
        raise InvalidNameError(
            f"model name {shown} may only contain letters, digits and . _ - + : "
            "and must start with a letter or digit"
        )
    return name


def default_model_name(filename: str) -> str:
    """The name a file gets when none is given: its lowercased stem, without `.gguf`.

    Characters a name may not hold become "-", so any file name gives a usable name.
    """
    base = filename.replace("\\", "/").rsplit("/", 1)[-1]
    stem = base[: -len(".gguf")] if base.lower().endswith(".gguf") else base
    stem = stem.lower()
    stem = re.sub(r"[^a-z0-9._+:-]+", "-", stem)
    stem = re.sub(r"\.{2,}", ".", stem).strip(".-_+:")[:MAX_NAME_LENGTH].rstrip(".-_+:")
    return safe_model_name(stem or "model")


def check_sha256(sha256: str) -> str:
    if not isinstance(sha256, str) or not _HEX64_RE.fullmatch(sha256):
        raise StoreError(f"not a sha256 hex digest: {sha256!r}")
    return sha256


@dataclass(frozen=True)
class FolderFile:
    """One file of a folder model: where it sits in the folder, and its blob."""

    path: str  # relative, "/"-separated, checked by `safe_relative_path`
    sha256: str
    size: int


def safe_relative_path(path: str) -> str:
    """Return `path` if it is a plain relative path inside a folder, else raise."""
    parts = path.split("/")
    if (
        not path
        or path.startswith("/")
        or "\\" in path
        or any(p in ("", ".", "..") for p in parts)
        or any(ord(c) < 0x20 or ord(c) == 0x7F for c in path)
        or len(path) > 512
    ):
        raise InvalidNameError(f"file path {path!r} is not a plain path inside the model folder")
    return path


def tree_digest(files: list[FolderFile] | tuple[FolderFile, ...]) -> str:
    """The content address of a folder model: sha256 over its sorted file list."""
    listing = "".join(f"{f.path}\0{f.sha256}\0{f.size}\n" for f in sorted(files, key=_by_path))
    return hashlib.sha256(listing.encode("utf-8")).hexdigest()


def _by_path(f: FolderFile) -> str:
    return f.path


@dataclass(frozen=True)
class Manifest:
    """The JSON record behind a model name."""

    name: str
    source: str  # "hf://org/repo/file.gguf@<commit>" or "file:///abs/path.gguf"
    repo: str | None
    revision: str | None  # commit sha for hub models
    filename: str
    sha256: str
    size: int
    created: float
    format: str = "gguf"  # "gguf", or a folder model: "onnx" | "onnx-encoder"
    files: tuple[FolderFile, ...] = ()  # a folder model's files; sha256 is their tree digest

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, data: Any, where: str) -> Manifest:
        if not isinstance(data, dict):
            raise StoreError(f"corrupt manifest {where}: not a JSON object")
        try:
            m = cls(
                name=_typed(data, "name", str),
                source=_typed(data, "source", str),
                repo=_typed_opt(data, "repo", str),
                revision=_typed_opt(data, "revision", str),
                filename=_typed(data, "filename", str),
                sha256=_typed(data, "sha256", str),
                size=_typed(data, "size", int),
                created=float(_typed(data, "created", (int, float))),
                format=_typed_opt(data, "format", str) or "gguf",
                files=tuple(_folder_file(f) for f in data.get("files") or ()),
            )
        except (KeyError, TypeError) as e:
            raise StoreError(f"corrupt manifest {where}: {e}") from None
        safe_model_name(m.name)
        check_sha256(m.sha256)
        return m


def _folder_file(data: Any) -> FolderFile:
    if not isinstance(data, dict):
        raise TypeError("'files' holds a non-object")
    f = FolderFile(
        path=safe_relative_path(_typed(data, "path", str)),
        sha256=check_sha256(_typed(data, "sha256", str)),
        size=_typed(data, "size", int),
    )
    return f


def _typed(data: dict[str, Any], key: str, typ: type | tuple[type, ...]) -> Any:
    if key not in data:
        raise KeyError(f"missing {key!r}")
    value = data[key]
    if not isinstance(value, typ) or isinstance(value, bool):
        raise TypeError(f"{key!r} has the wrong type")
    return value


def _typed_opt(data: dict[str, Any], key: str, typ: type) -> Any:
    value = data.get(key)
    return None if value is None else _typed(data, key, typ)


class StoreLayout:
    """Paths under one store root; every one of them checked to stay inside it."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser().absolute()

    @property
    def blobs_dir(self) -> Path:
        return self.root / "blobs" / "sha256"

    @property
    def manifests_dir(self) -> Path:
        return self.root / "manifests"

    @property
    def trees_dir(self) -> Path:
        return self.root / "trees"

    def tree_path(self, digest: str) -> Path:
        return self.inside(self.trees_dir / check_sha256(digest))

    @property
    def tmp_dir(self) -> Path:
        return self.root / "tmp"

    @property
    def locks_dir(self) -> Path:
        return self.root / "locks"

    @property
    def verified_dir(self) -> Path:
        return self.root / "verified"

    @property
    def quarantine_dir(self) -> Path:
        return self.root / "quarantine"

    def record_path(self, sha256: str) -> Path:
        return self.inside(self.verified_dir / f"{check_sha256(sha256)}.json")

    def ensure(self) -> None:
        for d in (self.blobs_dir, self.trees_dir, self.manifests_dir, self.tmp_dir, self.locks_dir):
            d.mkdir(parents=True, exist_ok=True)
            self.inside(d)

    def inside(self, path: Path) -> Path:
        """Return `path` if it resolves under the root (symlinks followed), else raise."""
        root = self.root.resolve()
        resolved = path.resolve()
        if not resolved.is_relative_to(root):
            raise InvalidNameError(f"path {path} leaves the store at {root}")
        return path

    def blob_path(self, sha256: str) -> Path:
        return self.inside(self.blobs_dir / check_sha256(sha256))

    def partial_path(self, sha256: str) -> Path:
        return self.inside(self.tmp_dir / f"{check_sha256(sha256)}.partial")

    def lock_path(self, sha256: str) -> Path:
        return self.inside(self.locks_dir / f"{check_sha256(sha256)}.lock")

    def manifest_path(self, name: str) -> Path:
        return self.inside(self.manifests_dir / f"{safe_model_name(name)}.json")

    def read_manifest(self, name: str) -> Manifest | None:
        path = self.manifest_path(name)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise StoreError(f"corrupt manifest {path}: {e}") from None
        m = Manifest.from_dict(data, str(path))
        if m.name != name:
            raise StoreError(f"corrupt manifest {path}: it names {m.name!r}")
        return m

    def write_manifest(self, manifest: Manifest) -> Path:
        """Write beside, fsync, publish with os.replace: readers never see half a manifest."""
        self.check_name_free(manifest.name)
        path = self.manifest_path(manifest.name)
        write_atomic(path, manifest.to_json(), f"the manifest of {manifest.name}")
        return path

    def check_name_free(self, name: str) -> None:
        """InvalidNameError when another model's name is `name` ignoring case: requests
        match names ignoring case, so `SMOL` beside `smol` made `Smol` name neither and
        `rm SMOL` could remove `smol` (and on a case-insensitive disk the two are one file).
        The same name is free: it replaces that model."""
        folded = name.casefold()
        for other in self.manifest_names():
            if other != name and other.casefold() == folded:
                raise InvalidNameError(
                    f"a model named {other!r} is already in the store, and names are "
                    f"matched ignoring case: choose another name than {name!r}"
                )

    def manifest_names(self) -> list[str]:
        try:
            entries = list(self.manifests_dir.iterdir())
        except FileNotFoundError:
            return []
        names = []
        for p in entries:
            if p.suffix != ".json" or p.name.startswith("."):
                continue
            try:
                names.append(safe_model_name(p.stem))
            except InvalidNameError:
                continue
        return sorted(names)


def write_atomic(path: Path, text: str, what: str) -> None:
    """Write beside, fsync, publish with os.replace: readers see the old file or the new one.

    A full disk is reported as `DiskFullError` naming `what`, with nothing left behind.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=path.suffix, dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFullError(f"disk full while writing {what} in {path.parent}") from None
        raise
    fsync_dir(path.parent)


def fsync_dir(path: Path) -> None:
    """Make a rename in `path` durable (best effort where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
