"""Saved sequence states below the KV memory: a byte-capped host-RAM tier and a disk tier.

When the scheduler drops a prompt-cache entry from the KV, or the worker stops
(unload, demotion), the sequence's state (its KV cells, as the engine serialises
them) is kept here with the exact tokens it holds. A later prompt sharing a long
prefix restores it instead of reading the prompt again, also after the model went
warm or cold and came back. A state is only ever offered under the key it was saved
with (the model file's digest and the context settings), and only for the tokens it
holds; disk files carry a sha256 of their bytes and are dropped when it does not match.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import struct
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from appliance.engines.prefix_cache import common_prefix

MAGIC = b"APPLIANCE-SEQ-STATE-1\n"
_LEN = struct.Struct(">I")


@dataclass
class SavedState:
    tokens: list[int]
    size: int
    last_used: float
    data: bytes | None = None  # in RAM; None when only on disk
    path: Path | None = None  # on disk


def key_dir_name(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:24]


DISK_PAUSE_S = 60.0  # after a failed write, how long states stay out of the disk tier


class StateStore:
    def __init__(
        self, key: str, ram_bytes: int, disk_dir: Path | None = None, disk_bytes: int = 0
    ) -> None:
        self.key = key
        self.ram_cap = max(0, ram_bytes)
        self.disk_cap = max(0, disk_bytes) if disk_dir is not None else 0
        self.disk_dir = disk_dir / key_dir_name(key) if disk_dir is not None else None
        self.states: list[SavedState] = []
        # True for a recurrent model (set by its KV streams): a state cannot be cut back,
        # so it serves only prompts that extend it whole, and a longer one does not stand
        # in for a shorter one.
        self.whole = False
        self.disk_paused_until = 0.0  # after a failed write (a full disk): RAM only till then
        if self.disk_dir is not None and self.disk_cap > 0:
            self._index_disk()

    # -- accounting -------------------------------------------------------------------------

    @property
    def ram_used(self) -> int:
        return sum(s.size for s in self.states if s.data is not None)

    @property
    def disk_used(self) -> int:
        return sum(s.size for s in self.states if s.path is not None)

    def stats(self) -> dict[str, int]:
        return {
            "ram_bytes": self.ram_used,
            "ram_budget": self.ram_cap,
            "disk_bytes": self.disk_used,
            "disk_budget": self.disk_cap,
            "states": len(self.states),
        }

    # -- lookups ----------------------------------------------------------------------------

    def best(self, tokens: Sequence[int]) -> tuple[SavedState | None, int]:
        """As `PrefixIndex.best`: the longest shared prefix, or (`whole`) only a state that
        is all a prefix of `tokens`, shorter than them."""
        best: SavedState | None = None
        best_n = 0
        for state in self.states:
            n = common_prefix(state.tokens, tokens)
            if self.whole and not len(state.tokens) == n < len(tokens):
                continue
            if n > best_n:
                best, best_n = state, n
        return best, best_n

    def holds(self, tokens: Sequence[int]) -> bool:
        """Whether a state of exactly `tokens` is saved."""
        return any(len(s.tokens) == len(tokens) and s.tokens == list(tokens) for s in self.states)

    def shared_prefix(self, tokens: Sequence[int]) -> int:
        """The most tokens `tokens` shares with a saved state, whole or not."""
        return max((common_prefix(s.tokens, tokens) for s in self.states), default=0)

    def load(self, state: SavedState) -> bytes | None:
        """The state's bytes, or None (and the state forgotten) when its file is bad."""
        state.last_used = time.monotonic()
        if state.data is not None:
            return state.data
        if state.path is None:
            return None
        try:
            tokens, data = self._read(state.path)
        except (OSError, ValueError):
            self._forget(state)
            return None
        if tokens != state.tokens:
            self._forget(state)
            return None
        return data

    # -- adding -----------------------------------------------------------------------------

    def put(self, tokens: Sequence[int], data: bytes) -> None:
        """Keep a state in RAM; older ones spill to disk (or go) past the RAM cap. One larger
        than the whole RAM cap (a cap of 0: no RAM for states) goes straight to disk."""
        if not data or len(data) > max(self.ram_cap, self.disk_cap):
            return
        tokens = list(tokens)
        for old in list(self.states):
            if self.whole:
                if old.tokens == tokens:
                    self._forget(old)
                continue
            # A state whose tokens the new one extends is worth nothing more.
            if len(old.tokens) <= len(tokens) and tokens[: len(old.tokens)] == old.tokens:
                self._forget(old)
            elif common_prefix(old.tokens, tokens) == len(tokens):
                return  # already held by a longer state
        state = SavedState(tokens, len(data), time.monotonic(), data=data)
        self.states.append(state)
        if state.size > self.ram_cap:
            self._spill(state)
            return
        self._fit_ram()

    def _fit_ram(self) -> None:
        in_ram = sorted((s for s in self.states if s.data is not None), key=lambda s: s.last_used)
        used = sum(s.size for s in in_ram)
        for state in in_ram:
            if used <= self.ram_cap:
                break
            self._spill(state)
            used -= state.size

    def _spill(self, state: SavedState) -> None:
        """Move one state from RAM to disk (or drop it when there is no disk tier)."""
        data, state.data = state.data, None
        fits = self.disk_dir is not None and state.size <= self.disk_cap
        if data is not None and state.path is None and fits and self._disk_writable():
            self._fit_disk(state.size)
            try:
                state.path = self._write(state.tokens, data)
            except OSError as exc:
                # A full disk: stop writing states for a while rather than try (and fail)
                # at every spill; what cannot be written is dropped, as with no disk tier.
                self.disk_paused_until = time.monotonic() + DISK_PAUSE_S
                print(
                    f"prompt states: cannot write to {self.disk_dir}: "
                    f"{exc.strerror or type(exc).__name__}; states past the RAM cap are "
                    f"dropped for {DISK_PAUSE_S:.0f} s",
                    file=sys.stderr,
                    flush=True,
                )
        if state.path is None:
            self._forget(state)

    def _disk_writable(self) -> bool:
        return time.monotonic() >= self.disk_paused_until

    def flush(self) -> None:
        """Write every RAM state to disk (the worker is about to stop)."""
        for state in sorted(self.states, key=lambda s: -s.last_used):
            if state.data is not None and state.path is None:
                self._spill(state)

    # -- disk -------------------------------------------------------------------------------

    def _fit_disk(self, incoming: int) -> None:
        on_disk = sorted((s for s in self.states if s.path is not None), key=lambda s: s.last_used)
        used = sum(s.size for s in on_disk)
        for state in on_disk:
            if used + incoming <= self.disk_cap:
                break
            used -= state.size
            self._forget(state)

    def _write(self, tokens: list[int], data: bytes) -> Path:
        assert self.disk_dir is not None
        self.disk_dir.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256(data).hexdigest()
        header = json.dumps(
            {"key": self.key, "tokens": tokens, "size": len(data), "sha256": digest}
        ).encode()
        name = hashlib.sha256(json.dumps(tokens).encode()).hexdigest()[:32] + ".state"
        path = self.disk_dir / name
        tmp = path.with_suffix(".partial")
        try:
            with open(tmp, "wb") as f:
                f.write(MAGIC + _LEN.pack(len(header)) + header)
                f.write(data)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):  # a partial file kept the disk full
                tmp.unlink()
            raise
        return path

    def _read_header(self, f: object) -> dict[str, object]:
        read = f.read  # type: ignore[attr-defined]
        if read(len(MAGIC)) != MAGIC:
            raise ValueError("not a saved sequence state")
        (n,) = _LEN.unpack(read(_LEN.size))
        if n > 64 << 20:
            raise ValueError("header too large")
        header = json.loads(read(n))
        if not isinstance(header, dict) or header.get("key") != self.key:
            raise ValueError("saved for another model or other settings")
        return header

    def _read(self, path: Path) -> tuple[list[int], bytes]:
        with open(path, "rb") as f:
            header = self._read_header(f)
            data = f.read()
        if len(data) != header.get("size") or hashlib.sha256(data).hexdigest() != header.get(
            "sha256"
        ):
            raise ValueError("saved state is damaged")
        tokens = header.get("tokens")
        if not isinstance(tokens, list):
            raise ValueError("saved state has no tokens")
        return [int(t) for t in tokens], data

    def _index_disk(self) -> None:
        assert self.disk_dir is not None
        if not self.disk_dir.is_dir():
            return
        for path in self.disk_dir.glob("*.partial"):
            with contextlib.suppress(OSError):
                path.unlink()
        for path in self.disk_dir.glob("*.state"):
            try:
                with open(path, "rb") as f:
                    header = self._read_header(f)
                tokens = [int(t) for t in header["tokens"]]  # type: ignore[attr-defined]
                size = int(header["size"])  # type: ignore[call-overload]
                mtime = path.stat().st_mtime
            except (OSError, ValueError, KeyError, TypeError):
                with contextlib.suppress(OSError):
                    path.unlink()
                continue
            age = max(time.time() - mtime, 0.0)
            self.states.append(SavedState(tokens, size, time.monotonic() - age, path=path))

    def _forget(self, state: SavedState) -> None:
        with contextlib.suppress(ValueError):
            self.states.remove(state)
        if state.path is not None:
            with contextlib.suppress(OSError):
                state.path.unlink()
        state.data = None
