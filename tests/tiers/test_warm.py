"""The warm tier against real files and the real page cache (Linux only)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

if not sys.platform.startswith("linux"):
    pytest.skip("the warm tier uses Linux mincore/posix_fadvise", allow_module_level=True)

from appliance.tiers import warm
from appliance.tiers.warm import (
    Residency,
    WarmHold,
    drop_page_cache,
    memlock_limit,
    residency,
)

MiB = 1024 * 1024
SIZE = 64 * MiB
# Filesystems whose page cache is the file itself: fadvise(DONTNEED) cannot evict.
MEMORY_FS = {"tmpfs", "ramfs", "devtmpfs", "hugetlbfs"}
# Filesystems known to honour fadvise(DONTNEED) for clean, unmapped pages.
EVICTING_FS = {"ext2", "ext3", "ext4", "xfs", "btrfs", "f2fs", "bcachefs", "jfs", "reiserfs"}


def fs_type(path: Path) -> str:
    """The filesystem type holding `path`, from the longest matching /proc/mounts entry."""
    best, kind = "", "unknown"
    target = str(path.resolve())
    with open("/proc/mounts", encoding="utf-8") as mounts:
        for line in mounts:
            fields = line.split()
            if len(fields) < 3:
                continue
            point = fields[1].replace("\\040", " ")
            inside = target == point or target.startswith(point.rstrip("/") + "/")
            if inside and len(point) >= len(best):
                best, kind = point, fields[2]
    return kind


def write_file(path: Path, size: int) -> Path:
    """Write `size` random bytes, flushed to disk so its cached pages are clean."""
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 8 * MiB)
            f.write(os.urandom(n))
            left -= n
        f.flush()
        os.fsync(f.fileno())
    return path


@pytest.fixture
def disk_dir(tmp_path: Path) -> Iterator[Path]:
    """A folder on a disk-backed filesystem: tmp_path, else /var/tmp, else skip."""
    if fs_type(tmp_path) not in MEMORY_FS:
        yield tmp_path
        return
    for parent in ("/var/tmp", str(Path.home())):
        if Path(parent).is_dir() and fs_type(Path(parent)) not in MEMORY_FS:
            with tempfile.TemporaryDirectory(dir=parent, prefix="appliance-warm-") as d:
                yield Path(d)
            return
    pytest.skip(f"no disk-backed folder: {tmp_path} is {fs_type(tmp_path)} and so is /var/tmp")


@pytest.fixture
def cold_file(disk_dir: Path) -> Path:
    """A 64 MiB file on disk, evicted from the page cache where the filesystem allows."""
    path = write_file(disk_dir / "model.gguf", SIZE)
    drop_page_cache(path)
    return path


def require_eviction(path: Path) -> None:
    """Skip when this filesystem keeps the file cached despite fadvise(DONTNEED)."""
    kind = fs_type(path)
    if residency(path).fraction > 0.5:
        if kind in EVICTING_FS:
            pytest.fail(f"fadvise(DONTNEED) left {path} cached on {kind}")
        pytest.skip(f"{kind} does not evict on fadvise(DONTNEED); cold state not observable")


def test_residency_of_a_cold_then_warmed_file(cold_file: Path) -> None:
    require_eviction(cold_file)
    before = residency(cold_file)
    assert before.total_bytes == SIZE
    assert before.resident_bytes < SIZE // 10

    hold = WarmHold(cold_file)
    try:
        hold.warm()
        after = hold.residency()
        assert after.total_bytes == SIZE
        assert after.fraction > 0.99
        assert residency(cold_file).fraction > 0.99  # seen from a fresh mapping too
    finally:
        hold.release(drop_cache=True)
    dropped = residency(cold_file)
    assert dropped.resident_bytes < SIZE // 10, dropped


def test_release_without_drop_keeps_pages_cached(cold_file: Path) -> None:
    hold = WarmHold(cold_file)
    hold.warm()
    hold.release(drop_cache=False)
    assert residency(cold_file).fraction > 0.99


def test_warm_reports_progress_up_to_the_total(
    cold_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(warm, "WINDOW_BYTES", 8 * MiB)
    seen: list[tuple[int, int]] = []
    with WarmHold(cold_file) as hold:
        hold.warm(lambda done, total: seen.append((done, total)))
    assert seen[0] == (0, SIZE)
    assert seen[-1] == (SIZE, SIZE)
    assert len(seen) == SIZE // (8 * MiB) + 1
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_read_fallback_when_the_kernel_refuses_populate(
    cold_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An advice value no kernel knows: madvise answers EINVAL, as a pre-5.14 kernel
    # does for MADV_POPULATE_READ, and warm() falls back to reading.
    monkeypatch.setattr(warm, "_MADV_POPULATE_READ", 9999)
    require_eviction(cold_file)
    hold = WarmHold(cold_file)
    try:
        hold.warm()
        assert hold.residency().fraction > 0.99
    finally:
        hold.release(drop_cache=True)


def test_size_not_a_multiple_of_the_page(disk_dir: Path) -> None:
    size = 3 * MiB + 123
    path = write_file(disk_dir / "odd.bin", size)
    with WarmHold(path) as hold:
        hold.warm()
        assert hold.residency() == Residency(size, size)
        assert hold.total_bytes == size


def test_lock_returns_a_bool_and_never_raises(cold_file: Path) -> None:
    hold = WarmHold(cold_file)
    try:
        hold.warm()
        ok = hold.lock()
        assert isinstance(ok, bool)
        assert hold.locked is ok
        if ok:
            assert hold.lock_error is None
            assert hold.residency().fraction > 0.99
            assert hold.lock() is True  # idempotent
        else:
            assert hold.lock_error
    finally:
        hold.release(drop_cache=True)
    assert hold.locked is False


def test_lock_refused_by_rlimit_memlock(cold_file: Path) -> None:
    """In a child with a 64 KiB RLIMIT_MEMLOCK and no CAP_IPC_LOCK, lock() says why."""
    script = textwrap.dedent(
        """
        import os, resource, sys
        from appliance.tiers.warm import WarmHold
        hold = WarmHold(sys.argv[1])
        hold.warm()  # maps the file while still allowed to read it
        _, hard = resource.getrlimit(resource.RLIMIT_MEMLOCK)
        soft = 64 * 1024 if hard == resource.RLIM_INFINITY else min(64 * 1024, hard)
        resource.setrlimit(resource.RLIMIT_MEMLOCK, (soft, hard))
        if os.geteuid() == 0:
            try:
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)  # drops CAP_IPC_LOCK, which ignores the limit
            except OSError as e:
                print("cannot drop root:", e)
                sys.exit(3)
        ok = hold.lock()
        print(ok, hold.locked)
        print(hold.lock_error)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(cold_file)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode == 3:
        pytest.skip(f"running as root and {done.stdout.strip()}")
    assert done.returncode == 0, done.stderr
    first, why = done.stdout.splitlines()[:2]
    if first == "True True":
        pytest.skip("this process keeps CAP_IPC_LOCK, so RLIMIT_MEMLOCK does not apply")
    assert first == "False False"
    assert "RLIMIT_MEMLOCK" in why


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.gguf"
    path.write_bytes(b"")
    assert residency(path) == Residency(0, 0)
    assert residency(path).fraction == 1.0
    seen: list[tuple[int, int]] = []
    hold = WarmHold(path)
    hold.warm(lambda done, total: seen.append((done, total)))
    assert seen == [(0, 0)]
    assert hold.residency() == Residency(0, 0)
    assert hold.lock() is False
    assert hold.lock_error is not None and "empty" in hold.lock_error
    hold.release(drop_cache=True)


def test_missing_file_raises_file_not_found(tmp_path: Path) -> None:
    missing = tmp_path / "nope.gguf"
    with pytest.raises(FileNotFoundError):
        residency(missing)
    with pytest.raises(FileNotFoundError):
        WarmHold(missing).warm()
    with pytest.raises(FileNotFoundError):
        drop_page_cache(missing)
    hold = WarmHold(missing)
    assert hold.lock() is False
    assert hold.lock_error is not None
    hold.release(drop_cache=True)  # nothing held, nothing to drop: no error


def test_release_interrupts_a_warm_in_another_thread(
    cold_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(warm, "WINDOW_BYTES", 1 * MiB)
    hold = WarmHold(cold_file)
    releaser: list[threading.Thread] = []
    seen: list[int] = []

    def progress(done: int, total: int) -> None:
        seen.append(done)
        if done == 2 * MiB:
            t = threading.Thread(target=hold.release, args=(True,))
            t.start()
            releaser.append(t)
            # Wait until release() has asked to stop (it then blocks on the hold).
            for _ in range(500):
                if hold._cancel.is_set():
                    break
                threading.Event().wait(0.01)

    hold.warm(progress)
    releaser[0].join(timeout=30)
    assert max(seen) < SIZE
    assert hold.locked is False


def test_usable_from_asyncio_threads(cold_file: Path) -> None:
    async def main() -> tuple[None, Residency]:
        hold = WarmHold(cold_file)
        try:
            return await asyncio.gather(
                asyncio.to_thread(hold.warm),
                asyncio.to_thread(hold.residency),
            )
        finally:
            await asyncio.to_thread(hold.release, False)

    _, seen = asyncio.run(main())
    assert seen.total_bytes == SIZE
    assert residency(cold_file).fraction > 0.99


def test_memlock_limit_matches_getrlimit() -> None:
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_MEMLOCK)
    expected = None if soft == resource.RLIM_INFINITY else soft
    assert memlock_limit() == expected
