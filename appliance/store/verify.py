"""Checks a file must pass before it is published in the store: its sha256, and GGUF validity."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

from appliance.store.errors import IntegrityError
from appliance.store.gguf_meta import GGUFInfo, read_gguf_info

CHUNK_SIZE = 1 << 20


def sha256_file(
    path: str | os.PathLike[str],
    progress: Callable[[int], None] | None = None,
    hasher: hashlib._Hash | None = None,
) -> str:
    """Streaming sha256 of a file (hex). `progress` gets the bytes hashed so far.

    Pass `hasher` to continue an existing hash (the result is then its hexdigest).
    """
    h = hasher if hasher is not None else hashlib.sha256()
    done = 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK_SIZE):
            h.update(chunk)
            done += len(chunk)
            if progress is not None:
                progress(done)
    return h.hexdigest()


def verify_file(
    path: str | os.PathLike[str], expected_sha256: str, expected_size: int | None = None
) -> None:
    """Raise `IntegrityError` unless the file has the expected size and sha256."""
    p = Path(path)
    if expected_size is not None:
        size = p.stat().st_size
        if size != expected_size:
            raise IntegrityError(
                f"size mismatch for {p.name}: expected {expected_size} bytes, got {size}"
            )
    got = sha256_file(p)
    if got != expected_sha256:
        raise IntegrityError(f"sha256 mismatch for {p.name}: expected {expected_sha256}, got {got}")


def validate_gguf(path: str | os.PathLike[str]) -> GGUFInfo:
    """Parse and validate a GGUF file's header; raises `GGUFError` with a one-line reason."""
    return read_gguf_info(path)
