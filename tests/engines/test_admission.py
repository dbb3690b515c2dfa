"""A request with n choices is admitted whole or not at all: its first choice holds the
room of the others (they reach the worker one at a time)."""

from __future__ import annotations

import asyncio

import pytest

from appliance.engines.supervisor import QueueFull, WorkerProcess, WorkerSpec


def worker(slots: int, max_queue: int) -> WorkerProcess:
    w = WorkerProcess(WorkerSpec("m", "/nonexistent.gguf", 512, slots=slots, max_queue=max_queue))
    w.info["slots"] = slots
    return w


def run(w: WorkerProcess, group: dict[str, object] | None = None) -> None:
    """Admit one sequence, and count it in flight as the request would."""
    w._admit(group)
    w._streams[f"r{len(w._streams)}"] = asyncio.Queue()


def test_the_choices_of_concurrent_requests_are_admitted_whole() -> None:
    """Three requests of n=8 on 4 slots + 16 queued (20 places): their choices came one
    at a time, interleaved, and two of the three were refused after some had run. Now
    two are admitted whole and the third is refused before any of its choices runs."""
    w = worker(4, 16)
    groups = [{"id": f"g{i}", "size": 8} for i in range(3)]
    refused: set[str] = set()
    for _ in range(8):  # the three requests' choices, interleaved
        for g in groups:
            if g["id"] in refused:
                continue
            try:
                run(w, g)
            except QueueFull:
                refused.add(str(g["id"]))
    assert refused == {"g2"}
    assert w.in_flight == 16
    run(w)  # a plain request fits beside them (16 + 1 <= 20)
    with pytest.raises(QueueFull, match="sequences running"):
        run(w, {"id": "g3", "size": 4})  # 17 + 4 > 20: refused whole


def test_held_room_lapses() -> None:
    w = worker(1, 2)
    run(w, {"id": "g", "size": 3})  # holds 2 more
    with pytest.raises(QueueFull):
        run(w)
    w._held = {g: (left, since - 60) for g, (left, since) in w._held.items()}
    run(w)  # the request that held them never sent the rest: the room came back
