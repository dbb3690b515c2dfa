"""A CPU that dies of SIGILL in llama.cpp's repacked kernels: the manager turns repacking
off for every model and remembers it for this CPU and llama.cpp, so the next start does not
crash a worker once more to learn it (an operator saw one such crash at every start)."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

from appliance.tiers.cpu_faults import cpu_identity, remember_repack_bad, repack_known_bad
from tests.daemon import wait_for
from tests.tiers.managers import make_manager


def test_the_verdict_holds_for_the_cpu_and_llama_cpp_it_was_seen_with(tmp_path: Path) -> None:
    path = tmp_path / "cpu_faults.json"
    here = cpu_identity("0.3.36")
    assert not repack_known_bad(path, here)  # nothing seen yet
    remember_repack_bad(path, here)
    assert repack_known_bad(path, here)
    assert not repack_known_bad(path, cpu_identity("0.3.99"))  # a newer llama.cpp tries again
    path.write_text("{not json")
    assert not repack_known_bad(path, here)


def test_a_sigill_turns_repacking_off_now_and_at_the_next_start(
    tmp_path: Path, tiny_gguf: Path
) -> None:
    manager = make_manager(tmp_path)
    manager.store.import_file(tiny_gguf, "tiny")

    async def crash() -> None:
        try:
            worker = await manager.load("tiny")
            assert worker.spec.weight_repack and worker.pid is not None
            os.kill(worker.pid, signal.SIGILL)  # as the repacked kernels die
            await asyncio.to_thread(wait_for, lambda: not manager.repack_ok, 20)
            again = await manager.load("tiny")
            assert not again.spec.weight_repack
        finally:
            await manager.shutdown()

    asyncio.run(crash())
    restarted = make_manager(tmp_path)
    assert not restarted.repack_ok
    [event] = [e for e in restarted.events if e.kind == "engine"]
    assert "weight repacking is off" in event.message and "cpu_faults.json" in event.message
