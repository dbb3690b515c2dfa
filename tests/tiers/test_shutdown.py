"""The daemon stopping: every hot model's worker is stopped at once, so a box with several
hot models still stops within systemd's TimeoutStopSec (90 s) even when each worker takes
its whole grace to write its prompt cache."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

from tests.tiers.managers import make_manager


def test_workers_that_hang_on_stop_are_stopped_together(tmp_path: Path, tiny_gguf: Path) -> None:
    manager = make_manager(tmp_path)
    names = ("one", "two", "three")
    for name in names:
        manager.store.import_file(tiny_gguf, name)
    grace = 2.0

    async def scenario() -> float:
        for name in names:
            await manager.load(name)
        workers = [manager.slot(name).worker for name in names]
        pids = []
        for worker in workers:
            assert worker is not None and worker.pid is not None and worker.alive
            worker.stop_grace_s = grace
            pids.append(worker.pid)
        for pid in pids:  # each now hangs: it never reads its shutdown frame
            os.kill(pid, signal.SIGSTOP)
        started = time.monotonic()
        await manager.shutdown()
        took = time.monotonic() - started
        for worker in workers:
            assert worker is not None and not worker.alive
            assert worker.exit_reason == "unloaded"
        for pid in pids:  # killed and reaped, not left stopped
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                continue
            raise AssertionError(f"worker {pid} outlived the shutdown")
        assert all(manager.slot(name).worker is None for name in names)
        return took

    took = asyncio.run(scenario())
    # One grace for all (and the kills): one after the other would take three, 6 s and more.
    assert grace <= took < 2.5 * grace, took
