"""The warm tier: a model file's pages held in host RAM by the daemon, with no engine.

A warm file is read into the kernel's page cache (and, where the limits allow,
locked there with mlock), so the next engine load reads RAM instead of disk.
Nothing is copied into Python memory: the file is mapped read-only through libc
(ctypes) and the kernel does the reading. Residency is always measured with
mincore(2), never assumed.

How `WarmHold.warm` brings the pages in was measured on the dev box (2 vCPU,
ext4 on virtio, a 2 GiB file made cold with fadvise DONTNEED before each run,
15 interleaved runs each, after posix_fadvise WILLNEED; the box is shared, so
the spread is wide; "stall" is the longest gap seen by a 1 ms ticker thread,
i.e. how long the daemon's event loop could not run):

    strategy                               MB/s median (p25-p75)  thread CPU/2 GiB  stall med/max
    read(2) into one 8 MiB buffer          2299 (1558-3020)       0.37 s            19 / 35 ms
    touch 1 byte per page of the map (py)  3579 (1801-3932)       0.08 s            17 / 95 ms
    madvise(MADV_POPULATE_READ), 64 MiB    3528 (2522-4095)       0.03 s             8 / 34 ms

(An earlier round touching pages with numpy in 64 MiB windows: ~2700-4100 MB/s,
but it holds the GIL through each window's page faults: stalls up to 271 ms.)

Touching the mapping beats reading (no copy into user space), and
MADV_POPULATE_READ is that touch done by the kernel: as fast as touching, the
least CPU, called through ctypes so the GIL is released (the event loop keeps
running), and a page past a shrunk file's end gives EFAULT instead of SIGBUS.
It needs Linux 5.14; on older kernels `warm` falls back to reading in chunks.

Linux only: elsewhere `residency` and `WarmHold` raise `WarmUnsupported`.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import os
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "Progress",
    "Residency",
    "WarmHold",
    "WarmUnsupported",
    "drop_page_cache",
    "memlock_limit",
    "residency",
]

Progress = Callable[[int, int], None]
"""Called as progress(done_bytes, total_bytes) while a file is being warmed."""

WINDOW_BYTES = 64 * 1024 * 1024
"""Warm this much per step: the unit of progress reports and of cancellation by release()."""

READ_CHUNK_BYTES = 8 * 1024 * 1024
"""Buffer size of the read(2) fallback for kernels without MADV_POPULATE_READ."""


class WarmUnsupported(OSError):
    """The platform lacks mmap/mincore/posix_fadvise (only Linux is supported)."""


@dataclass(frozen=True)
class Residency:
    """How much of a file is in the page cache, in bytes (measured by mincore)."""

    resident_bytes: int
    total_bytes: int

    @property
    def fraction(self) -> float:
        """Resident share in [0, 1]; an empty file counts as fully resident."""
        if self.total_bytes == 0:
            return 1.0
        return self.resident_bytes / self.total_bytes


# --- libc -----------------------------------------------------------------------------------

_PROT_READ = 0x1
_MAP_SHARED = 0x01
_MAP_FAILED = ctypes.c_void_p(-1).value
_MADV_POPULATE_READ = 22  # Linux 5.14+
# Odd mincore bytes are resident pages (bit 0); the other bits are reserved.
_LOW_BIT = bytes(b & 1 for b in range(256))


class _Libc:
    def __init__(self) -> None:
        name = ctypes.util.find_library("c") or "libc.so.6"
        lib = ctypes.CDLL(name, use_errno=True)
        self.mmap = lib.mmap
        self.mmap.restype = ctypes.c_void_p
        self.mmap.argtypes = [
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_int,
            ctypes.c_int,
            ctypes.c_int,
            ctypes.c_int64,
        ]
        self.munmap = lib.munmap
        self.munmap.restype = ctypes.c_int
        self.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        self.mincore = lib.mincore
        self.mincore.restype = ctypes.c_int
        self.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
        self.mlock = lib.mlock
        self.mlock.restype = ctypes.c_int
        self.mlock.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        self.munlock = lib.munlock
        self.munlock.restype = ctypes.c_int
        self.munlock.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        self.madvise = lib.madvise
        self.madvise.restype = ctypes.c_int
        self.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]


_libc: _Libc | None = None
_libc_lock = threading.Lock()


def _get_libc() -> _Libc:
    global _libc
    if not sys.platform.startswith("linux") or not hasattr(os, "posix_fadvise"):
        raise WarmUnsupported(
            errno.ENOSYS,
            f"the warm tier needs Linux (mincore, posix_fadvise); this is {sys.platform}",
        )
    with _libc_lock:
        if _libc is None:
            _libc = _Libc()
        return _libc


def _oserror(what: str, path: Path) -> OSError:
    err = ctypes.get_errno()
    return OSError(err, f"{what}: {os.strerror(err)}", str(path))


def _page_size() -> int:
    return int(os.sysconf("SC_PAGE_SIZE"))


class _Mapping:
    """A read-only shared mapping of a whole file, made and unmade through libc."""

    def __init__(self, libc: _Libc, fd: int, length: int, path: Path) -> None:
        self.libc = libc
        self.length = length
        self.addr = 0
        if length:
            addr = libc.mmap(None, length, _PROT_READ, _MAP_SHARED, fd, 0)
            if addr is None or addr == _MAP_FAILED:
                raise _oserror("mmap failed", path)
            self.addr = int(addr)

    def resident_pages(self, path: Path) -> int:
        if not self.length:
            return 0
        page = _page_size()
        vec = ctypes.create_string_buffer((self.length + page - 1) // page)
        if self.libc.mincore(self.addr, self.length, vec) != 0:
            raise _oserror("mincore failed", path)
        return vec.raw.translate(_LOW_BIT).count(1)

    def close(self) -> None:
        if self.addr:
            self.libc.munmap(self.addr, self.length)
            self.addr = 0


def _measure(mapping: _Mapping, path: Path) -> Residency:
    pages = mapping.resident_pages(path)
    # The last page of a file is usually partial: never report more than the file holds.
    return Residency(min(pages * _page_size(), mapping.length), mapping.length)


# --- public functions -----------------------------------------------------------------------


def residency(path: str | os.PathLike[str]) -> Residency:
    """Measure how much of `path` is in the page cache (mincore over a read-only mapping).

    Raises FileNotFoundError for a missing file and WarmUnsupported off Linux.
    """
    p = Path(path)
    libc = _get_libc()
    fd = os.open(p, os.O_RDONLY | os.O_CLOEXEC)
    try:
        mapping = _Mapping(libc, fd, os.fstat(fd).st_size, p)
        try:
            return _measure(mapping, p)
        finally:
            mapping.close()
    finally:
        os.close(fd)


def drop_page_cache(path: str | os.PathLike[str]) -> None:
    """Ask the kernel to evict `path` from the page cache (posix_fadvise DONTNEED).

    Clean pages that no process maps or locks leave the cache; dirty pages are
    written first only if the caller fsyncs. Some filesystems (tmpfs) ignore it.
    """
    _get_libc()
    fd = os.open(Path(path), os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def memlock_limit() -> int | None:
    """The soft RLIMIT_MEMLOCK in bytes; None when unlimited."""
    try:
        import resource  # POSIX only: keep this module importable elsewhere
    except ImportError as e:
        raise WarmUnsupported(errno.ENOSYS, "RLIMIT_MEMLOCK exists on POSIX only") from e
    soft, _hard = resource.getrlimit(resource.RLIMIT_MEMLOCK)
    return None if soft == resource.RLIM_INFINITY else int(soft)


# --- the hold -------------------------------------------------------------------------------


class WarmHold:
    """Keep one file's pages in host RAM: warm it, optionally mlock it, release it.

    Every method may be called from any thread (e.g. through asyncio.to_thread).
    warm, lock and release serialise on an internal lock; `residency` and
    `total_bytes` never wait on it, so progress can be watched during a warm.
    `release` interrupts a `warm` running in another thread at its next window
    (WINDOW_BYTES), which then returns early.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._cancel = threading.Event()
        self._fd: int | None = None
        self._mapping: _Mapping | None = None
        self._locked = False
        self.lock_error: str | None = None
        """Why the last lock() failed, in words; None when it did not fail."""

    # internal: the caller holds self._lock
    def _open(self) -> _Mapping:
        if self._mapping is None:
            libc = _get_libc()
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                mapping = _Mapping(libc, fd, os.fstat(fd).st_size, self.path)
            except BaseException:
                os.close(fd)
                raise
            self._fd, self._mapping = fd, mapping
        return self._mapping

    @property
    def total_bytes(self) -> int:
        """The file's size (as mapped, once the hold has mapped it)."""
        mapping = self._mapping
        return mapping.length if mapping is not None else os.stat(self.path).st_size

    def warm(self, progress: Progress | None = None) -> None:
        """Bring every page of the file into the page cache; blocks until done.

        posix_fadvise(WILLNEED) starts the kernel's readahead, then each
        WINDOW_BYTES of the mapping is faulted in with MADV_POPULATE_READ (or,
        on kernels before 5.14, read in chunks); see the module docstring for
        the measurements. `progress(done, total)` is called before the first
        window and after each. A `release` from another thread stops it at the
        next window, and it returns early.
        """
        self._cancel.clear()
        with self._lock:
            mapping = self._open()
            fd = self._fd
            assert fd is not None
            total = mapping.length
            if progress is not None:
                progress(0, total)
            if not total:
                return
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_WILLNEED)
            populate = True
            done = 0
            while done < total:
                if self._cancel.is_set():
                    return
                n = min(WINDOW_BYTES, total - done)
                if populate:
                    rc = mapping.libc.madvise(mapping.addr + done, n, _MADV_POPULATE_READ)
                    if rc != 0:
                        err = ctypes.get_errno()
                        if err != errno.EINVAL:  # EFAULT: the file shrank; EIO; ENOMEM
                            raise OSError(
                                err, f"warming failed: {os.strerror(err)}", str(self.path)
                            )
                        populate = False  # a kernel before 5.14: read instead
                if not populate:
                    self._read_window(fd, done, n)
                done += n
                if progress is not None:
                    progress(done, total)

    def _read_window(self, fd: int, offset: int, length: int) -> None:
        buf = bytearray(min(READ_CHUNK_BYTES, length))
        view = memoryview(buf)
        end = offset + length
        while offset < end:
            got = os.preadv(fd, [view[: min(len(buf), end - offset)]], offset)
            if got <= 0:  # the file shrank under us: nothing more to read
                return
            offset += got

    def lock(self) -> bool:
        """mlock the whole mapping, so its pages cannot be evicted. Never raises for limits.

        Returns False, with the reason in `lock_error`, when RLIMIT_MEMLOCK or
        permissions forbid it (or the file is empty); True when locked.
        """
        with self._lock:
            if self._locked:
                return True
            try:
                mapping = self._open()
            except OSError as e:
                self.lock_error = f"cannot map {self.path}: {e.strerror or e}"
                return False
            if not mapping.length:
                self.lock_error = "the file is empty: nothing to lock"
                return False
            if mapping.libc.mlock(mapping.addr, mapping.length) != 0:
                err = ctypes.get_errno()
                limit = memlock_limit()
                shown = "unlimited" if limit is None else f"{limit} bytes"
                if err in (errno.ENOMEM, errno.EPERM, errno.EAGAIN):
                    why = (
                        f"mlock of {mapping.length} bytes refused ({errno.errorcode.get(err, err)}:"
                        f" {os.strerror(err)}); RLIMIT_MEMLOCK is {shown}: raise it "
                        "(systemd LimitMEMLOCK=, ulimit -l) or grant CAP_IPC_LOCK"
                    )
                else:
                    why = f"mlock failed: {os.strerror(err)}"
                self.lock_error = why
                return False
            self._locked = True
            self.lock_error = None
            return True

    @property
    def locked(self) -> bool:
        return self._locked

    def residency(self) -> Residency:
        """Measure this file's residency; never waits for a `warm` running in another thread.

        Uses the held mapping when the hold is idle, else a short-lived mapping of its own.
        """
        if self._lock.acquire(blocking=False):
            try:
                if self._mapping is not None:
                    return _measure(self._mapping, self.path)
            finally:
                self._lock.release()
        return residency(self.path)

    def release(self, drop_cache: bool) -> None:
        """munlock and unmap; with drop_cache, also evict the file from the page cache (cold)."""
        self._cancel.set()
        with self._lock:
            mapping, fd = self._mapping, self._fd
            self._mapping, self._fd = None, None
            if mapping is not None:
                if self._locked:
                    mapping.libc.munlock(mapping.addr, mapping.length)
                mapping.close()
            self._locked = False
            if fd is not None:
                try:
                    if drop_cache:
                        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                finally:
                    os.close(fd)
            elif drop_cache:
                with contextlib.suppress(FileNotFoundError):
                    drop_page_cache(self.path)

    def __enter__(self) -> WarmHold:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release(drop_cache=False)

    def __del__(self) -> None:
        # A forgotten hold must not leak a mapping or a descriptor.
        mapping, fd = getattr(self, "_mapping", None), getattr(self, "_fd", None)
        if mapping is not None:
            mapping.close()
        if fd is not None:
            os.close(fd)
