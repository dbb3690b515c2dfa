from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from appliance.store.errors import GGUFError, IntegrityError
from appliance.store.verify import sha256_file, validate_gguf, verify_file


def test_sha256_file_streams(tmp_path: Path) -> None:
    data = b"abc" * (1 << 19)  # 1.5 MiB: more than one chunk
    p = tmp_path / "f"
    p.write_bytes(data)
    seen: list[int] = []
    assert sha256_file(p, seen.append) == hashlib.sha256(data).hexdigest()
    assert seen == [1 << 20, len(data)]
    h = hashlib.sha256(b"prefix")
    assert sha256_file(p, hasher=h) == hashlib.sha256(b"prefix" + data).hexdigest()


def test_verify_file(tmp_path: Path) -> None:
    p = tmp_path / "f"
    p.write_bytes(b"hello")
    digest = hashlib.sha256(b"hello").hexdigest()
    verify_file(p, digest, 5)
    with pytest.raises(IntegrityError, match="size mismatch for f: expected 6 bytes, got 5"):
        verify_file(p, digest, 6)
    with pytest.raises(IntegrityError, match=f"expected {'0' * 64}, got {digest}"):
        verify_file(p, "0" * 64)


def test_validate_gguf(tiny_gguf: Path, tmp_path: Path) -> None:
    assert validate_gguf(tiny_gguf).architecture == "llama"
    junk = tmp_path / "junk"
    junk.write_text("hello")
    with pytest.raises(GGUFError, match="bad magic"):
        validate_gguf(junk)
