"""The sampler with plain data: ring buffers, rolling rates, request tracks, events, gauges."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from appliance.api.telemetry_routes import columns
from appliance.events import EventLog
from appliance.telemetry.gpu import GPUInfo
from appliance.telemetry.host import HostSample
from appliance.telemetry.prometheus import gauges_from_sample
from appliance.telemetry.sampler import (
    LatencyWindow,
    RateWindow,
    Telemetry,
    eviction_reason,
)
from appliance.tiers.slot import Slot

HOST = HostSample(12.5, 16 * 2**30, 4 * 2**30, 12 * 2**30, 100 * 2**30, 40 * 2**30, 60 * 2**30, 0.5)
GPU = GPUInfo(0, "Test GPU", "nvidia", 8 * 2**30, 2 * 2**30, 6 * 2**30, None, 55.0, None, "nvml")
BUDGETS: dict[str, Any] = {
    "hot": {"cpu": {"budget": 8 * 2**30, "used": 2**30, "free": 7 * 2**30}},
    "warm": {"budget": 4 * 2**30, "used": 0, "free": 4 * 2**30},
    "cold": {"budget": None, "used": 2**30, "free": None},
}


class FakeManager:
    """The parts of the model manager telemetry reads."""

    def __init__(self) -> None:
        self.slots: dict[str, Slot] = {
            "a": Slot(name="a", entry=None, state="ready", active=2),
            "b": Slot(name="b", entry=None),
        }
        self.tiers = {"a": "hot", "b": "cold"}
        self.event_log = EventLog()

    def tier_of(self, slot: Slot) -> str:
        return self.tiers[slot.name]

    def budgets_view(self) -> dict[str, Any]:
        return BUDGETS


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make(
    clock: Clock | None = None, gpus: list[GPUInfo] | None = None, **kw: Any
) -> tuple[Telemetry, FakeManager]:
    manager = FakeManager()
    tel = Telemetry(
        manager,
        "/",
        host_reader=lambda _p: HOST,
        gpu_reader=lambda: list(gpus if gpus is not None else [GPU]),
        clock=clock or time.monotonic,
        **kw,
    )
    return tel, manager


def metric_values(tel: Telemetry) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = tel.metrics.render().decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


# --- windows --------------------------------------------------------------------------------


def test_rate_window_counts_the_last_seconds_and_forgets_older() -> None:
    w = RateWindow(span_s=60)
    w.add(100, 1000.2)
    w.add(50, 1000.9)  # same second bucket
    w.add(30, 1004.5)
    assert w.total(1005.0, 10) == 180
    assert w.rate(1005.0, 10) == pytest.approx(18.0)
    assert w.total(1005.0, 2) == 30  # only the bucket of second 1004 is recent
    assert w.rate(1020.0, 10) == 0.0
    w.add(1, 1100.0)  # older buckets beyond the span are dropped
    assert w.total(1100.0, 1000) == 1


def test_latency_window_mean_over_recent() -> None:
    w = LatencyWindow(maxlen=3)
    assert w.mean(0.0, 60) is None and w.last is None
    for t, v in ((0.0, 9.0), (50.0, 1.0), (55.0, 2.0), (56.0, 3.0)):
        w.add(v, t)  # maxlen 3: the first is gone
    assert w.mean(60.0, 60) == pytest.approx(2.0)
    assert w.mean(60.0, 7) == pytest.approx(2.5)
    assert w.last == 3.0


def test_eviction_reason_label_drops_the_numbers() -> None:
    reason = "evicted from warm to make room for big: needs 2.0 GiB of host RAM, 1.0 GiB free"
    assert eviction_reason(reason) == "evicted from warm to make room for big"


# --- samples --------------------------------------------------------------------------------


def test_tick_composes_a_sample_and_the_ring_buffer_is_bounded() -> None:
    tel, manager = make(history=5)

    async def run() -> list[dict[str, Any]]:
        return [await tel.tick() for _ in range(8)]

    samples = asyncio.run(run())
    assert len(tel.samples) == 5
    assert list(tel.samples) == samples[-5:]
    s = samples[-1]
    assert s["kind"] == "sample"
    assert s["host"]["cpu_pct"] == 12.5 and s["host"]["ram_used"] == 4 * 2**30
    assert s["gpus"] == [
        {
            "device": "cuda:0",
            "index": 0,
            "name": "Test GPU",
            "vendor": "nvidia",
            "total_bytes": 8 * 2**30,
            "used_bytes": 2 * 2**30,
            "free_bytes": 6 * 2**30,
            "utilization_pct": None,  # unknown stays unknown
            "temperature_c": 55.0,
            "power_w": None,
            "source": "nvml",
        }
    ]
    assert s["models"]["a"]["tier"] == "hot" and s["models"]["a"]["active_requests"] == 2
    assert s["models"]["b"]["state"] == "unloaded"
    manager.tiers["b"] = "remote"
    assert asyncio.run(tel.tick())["models"]["b"]["state"] == "remote"
    assert s["tiers"] == BUDGETS
    assert s["sampler"]["cpu_ms"] >= 0.0 and s["sampler"]["cpu_pct"] >= 0.0


def test_history_seconds_and_columns_align() -> None:
    wall = Clock(2000.0)
    tel, manager = make(wall=wall)

    async def run() -> None:
        for i in range(6):
            wall.now = 2000.0 + i
            if i == 3:
                del manager.slots["b"]  # b gone from the later samples
            await tel.tick()

    asyncio.run(run())
    assert len(tel.history()) == 6
    recent = tel.history(2.5)
    assert [s["time"] for s in recent] == [2003.0, 2004.0, 2005.0]
    cols = columns(tel.history())
    assert cols["time"] == [2000.0 + i for i in range(6)]
    assert cols["host"]["cpu_pct"] == [12.5] * 6
    assert cols["models"]["b"]["queue_depth"] == [0, 0, 0, None, None, None]
    assert cols["models"]["a"]["active_requests"] == [2] * 6
    assert cols["gpus"]["cuda:0"]["utilization_pct"] == [None] * 6
    assert cols["gpus"]["cuda:0"]["used_bytes"] == [2 * 2**30] * 6
    assert cols["tiers"]["hot:cpu"]["used"] == [2**30] * 6
    assert cols["tiers"]["cold"]["budget"] == [None] * 6


def test_a_slow_gpu_reading_never_holds_up_the_sample() -> None:
    release = threading.Event()
    calls: list[float] = []

    def slow_gpus() -> list[GPUInfo]:
        calls.append(time.monotonic())
        if len(calls) == 1:
            return [GPU]
        release.wait(5)
        return []

    tel = Telemetry(
        FakeManager(), "/", interval_s=0.1, host_reader=lambda _p: HOST, gpu_reader=slow_gpus
    )

    async def run() -> tuple[list[dict[str, Any]], float]:
        first = await tel.tick()
        started = time.monotonic()
        stuck = [await tel.tick() for _ in range(3)]
        took = time.monotonic() - started
        release.set()
        await asyncio.sleep(0.05)
        return [first, *stuck, await tel.tick()], took

    samples, took = asyncio.run(run())
    assert took < 0.5  # three ticks of at most 0.08 s each, not the GPU's seconds
    assert len(calls) == 2  # one reading at a time: the stuck one was not asked again
    assert [len(s["gpus"]) for s in samples] == [1, 1, 1, 1, 0]


# --- request stats --------------------------------------------------------------------------


def test_request_track_feeds_stats_and_metrics() -> None:
    clock = Clock(1000.0)
    tel, _ = make(clock)
    track = tel.track("/v1/chat/completions")
    track.model = "a"
    track.frame({"type": "started", "prompt_tokens": 20})
    clock.now += 0.25
    for _ in range(3):
        track.frame({"type": "token", "text": "x"})
        clock.now += 0.01
    # 5 tokens in all: two were held back by a stop-string check and come only in "done"
    track.frame(
        {
            "type": "done",
            "prompt_tokens": 20,
            "completion_tokens": 5,
            "cached_tokens": 12,
            "decode_s": 0.08,
        }
    )
    track.finish(200)
    track.finish(200)  # a second end is ignored

    stats = tel.stats["a"]
    assert (stats.requests_total, stats.prompt_tokens_total) == (1, 20)
    assert (stats.completion_tokens_total, stats.cached_tokens_total) == (5, 12)
    view = stats.view(clock.now)
    assert view["ttft_s"] == pytest.approx(0.25)
    assert view["itl_s"] == pytest.approx(0.02)  # 0.08 s over 4 decode steps
    assert view["tokens_per_s"] == pytest.approx(0.5)  # 5 tokens over the 10 s window
    assert view["errors_total"] == 0

    m = metric_values(tel)
    labels = frozenset({("model", "a"), ("endpoint", "/v1/chat/completions"), ("status", "200")})
    assert m[("appliance_requests_total", labels)] == 1
    assert m[("appliance_request_duration_seconds_count", labels)] == 1
    assert m[("appliance_request_duration_seconds_sum", labels)] == pytest.approx(0.28)
    assert m[("appliance_ttft_seconds_count", frozenset({("model", "a")}))] == 1
    assert m[("appliance_inter_token_latency_seconds_sum", frozenset({("model", "a")}))] == (
        pytest.approx(0.02)
    )
    tokens = {("model", "a"), ("kind", "completion")}
    assert m[("appliance_tokens_total", frozenset(tokens))] == 5
    assert m[("appliance_prompt_cache_tokens_total", frozenset({("model", "a")}))] == 12


def test_errors_before_and_during_a_stream() -> None:
    tel, _ = make(Clock())
    refused = tel.track("/v1/chat/completions")  # 404 before the model was known
    refused.finish(404, "model_not_found")
    broken = tel.track("/v1/completions")
    broken.model = "a"
    broken.frame({"type": "started", "prompt_tokens": 3})
    broken.frame({"type": "token", "text": "x"})
    broken.frame({"type": "error", "code": "engine_error", "status": 500})
    broken.finish(200)  # the stream had begun: HTTP 200, the error counted by code
    left = tel.track("/v1/completions")
    left.model = "a"
    left.frame({"type": "started", "prompt_tokens": 4})
    left.frame({"type": "token", "text": "y"})
    left.frame({"type": "token", "text": "z"})
    left.finish(200)  # the client went away: what it got is still counted

    assert tel.stats[""].errors == {"model_not_found": 1}
    assert tel.stats["a"].errors == {"engine_error": 1}
    assert tel.stats["a"].completion_tokens_total == 3
    assert tel.stats["a"].prompt_tokens_total == 7
    m = metric_values(tel)
    assert m[("appliance_errors_total", frozenset({("model", ""), ("code", "model_not_found")}))]
    key = frozenset({("model", ""), ("endpoint", "/v1/chat/completions"), ("status", "404")})
    assert m[("appliance_requests_total", key)] == 1


def test_rolling_tokens_per_second() -> None:
    clock = Clock(1000.0)
    tel, _ = make(clock)
    for _ in range(10):
        tel.observe_tokens("a", 10, 40, 1.0)
        clock.now += 1.0
    assert tel.stats["a"].view(clock.now)["tokens_per_s"] == pytest.approx(40.0)
    assert tel.stats["a"].view(clock.now)["prompt_tokens_per_s"] == pytest.approx(10.0)
    clock.now += 30
    assert tel.stats["a"].view(clock.now)["tokens_per_s"] == 0.0
    assert tel.stats["a"].completion_tokens_total == 400


# --- events and subscribers -----------------------------------------------------------------


def test_moves_and_evictions_are_counted_and_forwarded() -> None:
    tel, manager = make()

    async def run() -> list[dict[str, Any]]:
        await tel.start()
        try:
            with tel.subscribe() as queue:
                manager.event_log.emit("a", "move", "cold → hot", src="cold", dst="hot", reason="x")
                manager.event_log.emit(
                    "b",
                    "move",
                    "hot → warm",
                    src="hot",
                    dst="warm",
                    reason="evicted to make room for a: needs 1 GiB on cpu, 0 B free",
                )
                manager.event_log.emit("b", "crash", "engine worker killed")
                got: list[dict[str, Any]] = []
                while len([g for g in got if g["kind"] != "sample"]) < 3:
                    got.append(await asyncio.wait_for(queue.get(), 3))
                if not any(g["kind"] == "sample" for g in got):
                    got.append(await asyncio.wait_for(queue.get(), 3))
                return got
        finally:
            await tel.stop()

    got = asyncio.run(run())
    events = [g for g in got if g["kind"] != "sample"]
    assert [e["kind"] for e in events] == ["move", "move", "crash"]
    assert events[0]["data"] == {"src": "cold", "dst": "hot", "reason": "x"}
    assert any(g["kind"] == "sample" for g in got)
    assert tel.moves == {("a", "cold", "hot"): 1, ("b", "hot", "warm"): 1}
    assert tel.evictions == {("b", "evicted to make room for a"): 1}
    m = metric_values(tel)
    moved = frozenset({("model", "b"), ("src", "hot"), ("dst", "warm")})
    assert m[("appliance_tier_moves_total", moved)] == 1
    evicted = frozenset({("model", "b"), ("reason", "evicted to make room for a")})
    assert m[("appliance_evictions_total", evicted)] == 1
    assert not manager.event_log._subscribers  # stop unsubscribed


# --- gauges ---------------------------------------------------------------------------------


def test_gauges_leave_unknown_readings_out() -> None:
    tel, _ = make(gpus=[GPU])
    asyncio.run(tel.tick())
    m = metric_values(tel)
    assert m[("appliance_queue_depth", frozenset({("model", "a")}))] == 0
    assert m[("appliance_models_loaded", frozenset())] == 1
    assert m[("appliance_host_cpu_percent", frozenset())] == 12.5
    assert m[("appliance_host_memory_used_bytes", frozenset())] == 4 * 2**30
    assert m[("appliance_gpu_memory_used_bytes", frozenset({("gpu", "cuda:0")}))] == 2 * 2**30
    names = {name for name, _ in m}
    assert "appliance_gpu_utilization_percent" not in names  # unknown: not exported as 0
    assert "appliance_gpu_power_watts" not in names
    hot = frozenset({("tier", "hot"), ("device", "cpu")})
    assert m[("appliance_tier_bytes", hot)] == 2**30
    assert m[("appliance_tier_budget_bytes", hot)] == 8 * 2**30
    cold = frozenset({("tier", "cold"), ("device", "disk")})
    assert m[("appliance_tier_bytes", cold)] == 2**30
    assert ("appliance_tier_budget_bytes", cold) not in m  # unknown budget


def test_gauges_of_an_empty_sample() -> None:
    samples = [(s.name, s.value) for f in gauges_from_sample({}) for s in f.samples]
    assert samples == [("appliance_models_loaded", 0)]


def test_registries_are_per_app() -> None:
    one, _ = make(Clock())
    two, _ = make(Clock())
    one.observe_request("a", "/v1/completions", 200, 0.1)
    assert b'appliance_requests_total{endpoint="/v1/completions"' in one.metrics.render()
    assert b"appliance_requests_total{" not in two.metrics.render()
