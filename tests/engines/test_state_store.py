"""Saved sequence states: RAM cap, spill to disk, keys, damaged files."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import pytest

from appliance.engines.state_store import StateStore, key_dir_name


def test_ram_tier_keeps_under_its_cap_and_spills_oldest_to_disk(tmp_path: Path) -> None:
    store = StateStore("k", ram_bytes=250, disk_dir=tmp_path, disk_bytes=10_000)
    store.put([1, 2, 3], b"a" * 100)
    store.put([4, 5, 6], b"b" * 100)
    store.put([7, 8, 9], b"c" * 100)
    assert store.ram_used <= 250
    assert store.disk_used == 100
    state, n = store.best([1, 2, 3, 0])
    assert state is not None and n == 3
    assert state.data is None and state.path is not None
    assert store.load(state) == b"a" * 100


def test_no_disk_tier_drops_what_ram_cannot_hold() -> None:
    store = StateStore("k", ram_bytes=150)
    store.put([1], b"a" * 100)
    store.put([2], b"b" * 100)
    assert [s.tokens for s in store.states] == [[2]]
    store.put([3], b"c" * 1000)  # over the whole cap: not kept
    assert [s.tokens for s in store.states] == [[2]]


def test_a_state_over_the_ram_cap_goes_straight_to_disk(tmp_path: Path) -> None:
    store = StateStore("k", ram_bytes=150, disk_dir=tmp_path, disk_bytes=10_000)
    store.put([1], b"a" * 100)
    store.put([2], b"b" * 1000)  # bigger than all the RAM: to disk, RAM's state stays
    assert (store.ram_used, store.disk_used) == (100, 1000)
    state, n = store.best([2, 9])
    assert state is not None and n == 1 and store.load(state) == b"b" * 1000
    # prompt_cache_ram = 0: no RAM for states, the disk tier still keeps them.
    disk_only = StateStore("k0", ram_bytes=0, disk_dir=tmp_path, disk_bytes=10_000)
    disk_only.put([3], b"c" * 100)
    assert (disk_only.ram_used, disk_only.disk_used) == (0, 100)
    again = StateStore("k0", ram_bytes=0, disk_dir=tmp_path, disk_bytes=10_000)  # a restart
    state, n = again.best([3, 4])
    assert state is not None and n == 1 and again.load(state) == b"c" * 100
    disk_only.put([5], b"d" * 20_000)  # over both caps: not kept
    assert [s.tokens for s in disk_only.states] == [[3]]


def test_a_longer_state_supersedes_its_prefix() -> None:
    store = StateStore("k", ram_bytes=10_000)
    store.put([1, 2], b"x" * 10)
    store.put([1, 2, 3], b"y" * 10)
    assert [s.tokens for s in store.states] == [[1, 2, 3]]
    store.put([1, 2], b"z" * 10)  # held already by the longer one
    assert [s.tokens for s in store.states] == [[1, 2, 3]]


def test_disk_states_survive_a_restart_only_under_their_key(tmp_path: Path) -> None:
    store = StateStore("model-a|ctx=512", 1000, tmp_path, 10_000)
    store.put([1, 2, 3], b"state-a")
    store.flush()
    again = StateStore("model-a|ctx=512", 1000, tmp_path, 10_000)
    state, n = again.best([1, 2, 3])
    assert state is not None and n == 3 and again.load(state) == b"state-a"
    other = StateStore("model-a|ctx=1024", 1000, tmp_path, 10_000)
    assert other.best([1, 2, 3]) == (None, 0)


def test_a_file_copied_under_another_key_is_refused(tmp_path: Path) -> None:
    store = StateStore("model-a", 1000, tmp_path, 10_000)
    store.put([1, 2, 3], b"state-a")
    store.flush()
    (src,) = (tmp_path / key_dir_name("model-a")).glob("*.state")
    dst_dir = tmp_path / key_dir_name("model-b")
    dst_dir.mkdir()
    (dst_dir / src.name).write_bytes(src.read_bytes())
    other = StateStore("model-b", 1000, tmp_path, 10_000)
    assert other.states == []
    assert not list(dst_dir.glob("*.state"))  # removed, not kept around


def test_damaged_state_file_is_dropped_not_restored(tmp_path: Path) -> None:
    store = StateStore("k", 1000, tmp_path, 10_000)
    store.put([1, 2, 3], b"0123456789")
    store.flush()
    (path,) = (tmp_path / key_dir_name("k")).glob("*.state")
    path.write_bytes(path.read_bytes()[:-3] + b"xyz")  # same size, other bytes
    again = StateStore("k", 1000, tmp_path, 10_000)
    state, _ = again.best([1, 2, 3])
    assert state is not None
    assert again.load(state) is None
    assert again.states == [] and not path.exists()


def test_disk_tier_keeps_under_its_cap(tmp_path: Path) -> None:
    store = StateStore("k", ram_bytes=100, disk_dir=tmp_path, disk_bytes=250)
    for i in range(6):
        store.put([i, i, i], bytes([i]) * 100)
    assert store.disk_used <= 250
    assert store.ram_used <= 100


def test_a_full_disk_leaves_no_partial_file_and_pauses_the_disk_tier(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A write that fails (here a real ENOSPC: the partial file's name links to /dev/full)
    left its partial file, which kept the last free space taken; every later spill then
    failed again. The partial file goes, the failure is said once, and states stay in
    RAM only for a while."""
    store = StateStore("k", ram_bytes=0, disk_dir=tmp_path, disk_bytes=10_000)
    assert store.disk_dir is not None
    store.disk_dir.mkdir(parents=True)
    name = hashlib.sha256(json.dumps([1]).encode()).hexdigest()[:32]
    (store.disk_dir / f"{name}.partial").symlink_to("/dev/full")
    store.put([1], b"a" * 100)
    assert store.states == [] and list(store.disk_dir.iterdir()) == []
    assert "No space left on device" in capsys.readouterr().err
    assert store.disk_paused_until > time.monotonic()
    store.put([2], b"b" * 100)  # paused: not even tried
    assert store.states == [] and list(store.disk_dir.iterdir()) == []
    assert capsys.readouterr().err == ""
    store.disk_paused_until = 0.0  # the pause is over
    store.put([3], b"c" * 100)
    assert store.disk_used == 100
