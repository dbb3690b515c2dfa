"""The host reading: real psutil numbers, None (never 0) where a reading fails."""

from __future__ import annotations

import time
from collections import namedtuple
from pathlib import Path

import psutil
import pytest

from appliance.telemetry import host
from appliance.telemetry.host import HostReader, HostSample


def test_reads_the_real_host(tmp_path: Path) -> None:
    reader = HostReader()
    first = reader.read(tmp_path)
    assert first.cpu_pct is None  # no baseline yet: unknown, not 0.0
    # Some CPU between the readings, for longer than the kernel's 10 ms ticks: 200k
    # squares once took under one, and the two readings were the same (unknown, None).
    until = time.monotonic() + 0.1
    while time.monotonic() < until:
        sum(i * i for i in range(10_000))
    second = reader.read(tmp_path)
    assert second.cpu_pct is not None and 0.0 <= second.cpu_pct <= 100.0
    assert second.ram_total == psutil.virtual_memory().total
    assert second.ram_used is not None and second.ram_available is not None
    assert second.ram_used + second.ram_available == second.ram_total
    disk = psutil.disk_usage(str(tmp_path))
    assert second.disk_total == disk.total
    assert second.disk_free is not None and second.disk_used is not None
    assert abs(second.disk_free - disk.free) < 64 * 2**20
    assert second.load1 is None or second.load1 >= 0.0


def test_a_store_not_created_yet_measures_its_parent_disk(tmp_path: Path) -> None:
    missing = tmp_path / "store" / "not" / "yet"
    sample = HostReader().read(missing)
    assert sample.disk_total == psutil.disk_usage(str(tmp_path)).total


def test_failing_readings_are_none(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def boom(*_a: object, **_k: object) -> None:
        raise OSError("no /proc here")

    monkeypatch.setattr(host.psutil, "virtual_memory", boom)
    monkeypatch.setattr(host.psutil, "disk_usage", boom)
    monkeypatch.setattr(host.psutil, "cpu_times", boom)
    monkeypatch.setattr(host.os, "getloadavg", boom)
    sample = HostReader().read(tmp_path)
    assert sample == HostSample(None, None, None, None, None, None, None, None)
    assert set(sample.to_dict()) == {
        "cpu_pct",
        "ram_total",
        "ram_used",
        "ram_available",
        "disk_total",
        "disk_used",
        "disk_free",
        "load1",
    }


def test_cpu_percent_from_time_deltas(monkeypatch: pytest.MonkeyPatch) -> None:
    Times = namedtuple("Times", "user nice system idle iowait guest guest_nice")
    readings = iter(
        [
            Times(100.0, 0.0, 50.0, 800.0, 50.0, 0.0, 0.0),
            # +30 busy (user 20 of which 10 guest, system 10), +60 idle, +10 iowait
            Times(120.0, 0.0, 60.0, 860.0, 60.0, 10.0, 0.0),
        ]
    )
    monkeypatch.setattr(host.psutil, "cpu_times", lambda: next(readings))
    reader = HostReader()
    assert reader.read().cpu_pct is None
    # total grew by 20 + 10 + 60 + 10 (guest is inside user) = 100; busy by 30
    assert reader.read().cpu_pct == pytest.approx(30.0)
