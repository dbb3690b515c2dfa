"""The daemon's telemetry: periodic samples in ring buffers, request stats fed by hooks.

A `Telemetry` is owned by the app (``app.state.telemetry``), started and stopped
in its lifespan. It keeps:

- a ring buffer of samples taken every `interval_s` (600 at 1 Hz: ten minutes),
  each with the host (`host.HostReader`), the GPUs (`gpu.list_gpus`, run in a
  thread so a slow driver never blocks the event loop; None where unknown), every
  model's tier, state, queue and request rates, and each tier's bytes against its
  budget (the JSON shape is in `appliance.api.telemetry_routes`);
- per model request stats fed by the API's hooks (`observe_*`, or a
  `RequestTrack` per request): requests, errors by code, prompt, completion and
  cached prompt tokens, rolling tokens/s, TTFT and inter-token latency;
- tier moves and evictions, counted from the manager's event log.

Counters and histograms also go to a per-app Prometheus registry (`metrics`),
whose gauges read the latest sample. Subscribers (`subscribe`) receive every
sample and every manager event as they happen: the admin SSE stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from appliance.events import Event, EventLog
from appliance.telemetry.gpu import GPUInfo, list_gpus
from appliance.telemetry.host import HostReader, HostSample
from appliance.telemetry.prometheus import Metrics
from appliance.tiers.budgets import gpu_device_name
from appliance.tiers.slot import Slot

log = logging.getLogger("appliance.telemetry")

__all__ = [
    "HISTORY",
    "INTERVAL_S",
    "LatencyWindow",
    "ManagerView",
    "ModelStats",
    "RateWindow",
    "RequestTrack",
    "Telemetry",
    "eviction_reason",
]

INTERVAL_S = 1.0
HISTORY = 600  # samples kept: ten minutes at 1 Hz
RATE_WINDOW_S = 10.0  # tokens/s and requests/s are averaged over this many seconds
LATENCY_WINDOW_S = 60.0  # TTFT and inter-token latency are averaged over this many seconds
UNRESOLVED = ""  # the model label of a request refused before its model was known


class ManagerView(Protocol):
    """What telemetry reads from the model manager (`ModelManager` is one)."""

    @property
    def slots(self) -> Mapping[str, Slot]: ...

    @property
    def event_log(self) -> EventLog: ...

    def tier_of(self, slot: Slot) -> str: ...

    def budgets_view(self) -> dict[str, Any]: ...


# --- rolling windows over plain data --------------------------------------------------------


class RateWindow:
    """Counts in one-second buckets over the last `span_s` seconds."""

    def __init__(self, span_s: float = 60.0) -> None:
        self.span_s = span_s
        self._buckets: deque[list[float]] = deque()  # [second, count], oldest first

    def add(self, count: float, now: float) -> None:
        second = float(math.floor(now))
        if self._buckets and self._buckets[-1][0] == second:
            self._buckets[-1][1] += count
        else:
            self._buckets.append([second, count])
        while self._buckets and self._buckets[0][0] < second - self.span_s:
            self._buckets.popleft()

    def total(self, now: float, window_s: float) -> float:
        """The count of the buckets that started within the last `window_s` seconds."""
        since = now - window_s
        return sum(count for second, count in self._buckets if second >= math.floor(since))

    def rate(self, now: float, window_s: float) -> float:
        """Per second over the last `window_s` seconds."""
        return self.total(now, window_s) / window_s if window_s > 0 else 0.0


class LatencyWindow:
    """The most recent observations of a latency, each with its time."""

    def __init__(self, maxlen: int = 512) -> None:
        self._values: deque[tuple[float, float]] = deque(maxlen=maxlen)

    def add(self, value: float, now: float) -> None:
        self._values.append((now, value))

    def recent(self, now: float, window_s: float) -> list[float]:
        return [v for t, v in self._values if t >= now - window_s]

    def mean(self, now: float, window_s: float) -> float | None:
        values = self.recent(now, window_s)
        return sum(values) / len(values) if values else None

    @property
    def last(self) -> float | None:
        return self._values[-1][1] if self._values else None


@dataclass
class ModelStats:
    """One model's request stats since the daemon started, and its recent rates."""

    requests_total: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    prompt_tokens_total: int = 0
    completion_tokens_total: int = 0
    cached_tokens_total: int = 0
    requests: RateWindow = field(default_factory=RateWindow)
    completion_tokens: RateWindow = field(default_factory=RateWindow)
    prompt_tokens: RateWindow = field(default_factory=RateWindow)
    ttft: LatencyWindow = field(default_factory=LatencyWindow)
    itl: LatencyWindow = field(default_factory=LatencyWindow)

    def view(self, now: float) -> dict[str, Any]:
        return {
            "requests_total": self.requests_total,
            "errors_total": sum(self.errors.values()),
            "errors": dict(self.errors),
            "prompt_tokens_total": self.prompt_tokens_total,
            "completion_tokens_total": self.completion_tokens_total,
            "cached_tokens_total": self.cached_tokens_total,
            "requests_per_s": _round(self.requests.rate(now, RATE_WINDOW_S), 3),
            "tokens_per_s": _round(self.completion_tokens.rate(now, RATE_WINDOW_S), 2),
            "prompt_tokens_per_s": _round(self.prompt_tokens.rate(now, RATE_WINDOW_S), 2),
            "ttft_s": _round(self.ttft.mean(now, LATENCY_WINDOW_S), 4),
            "itl_s": _round(self.itl.mean(now, LATENCY_WINDOW_S), 5),
        }


_NO_STATS = ModelStats()  # the view of a model that has served nothing yet (never changed)


def _round(value: float | None, digits: int) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(value, digits)


def eviction_reason(reason: str) -> str:
    """A bounded label for an eviction's reason: its text before the numbers.

    >>> eviction_reason("evicted to make room for big: needs 2.0 GiB on cpu, 1.0 GiB free")
    'evicted to make room for big'
    """
    return reason.split(":", 1)[0].strip()


# --- one request --------------------------------------------------------------------------


class RequestTrack:
    """Follows one API request: its worker frames, then its end (status and duration).

    `frame` is called with every frame from the worker; `finish` once at the end
    (more calls are ignored). Times run from the request's arrival.
    """

    def __init__(self, telemetry: Telemetry, endpoint: str) -> None:
        self.telemetry = telemetry
        self.endpoint = endpoint
        self.model = UNRESOLVED
        self.started = telemetry.clock()
        self.prompt_tokens = 0
        self.tokens_seen = 0
        self.first_token = False
        self.done = False
        self.error_code: str | None = None
        self.finished = False

    def frame(self, item: Mapping[str, Any]) -> None:
        kind = item.get("type")
        tel = self.telemetry
        if kind == "token":
            if not self.first_token:
                self.first_token = True
                tel.observe_first_token(self.model, tel.clock() - self.started)
            self.tokens_seen += 1
            tel.observe_token_progress(self.model)
        elif kind == "started":
            self.prompt_tokens = int(item.get("prompt_tokens") or 0)
        elif kind == "done":
            self.done = True
            completion = int(item.get("completion_tokens") or 0)
            if completion and not self.first_token:  # every token held back (a stop string)
                self.first_token = True
                tel.observe_first_token(self.model, tel.clock() - self.started)
            decode = item.get("decode_s")
            tel.observe_tokens(
                self.model,
                int(item.get("prompt_tokens") or 0),
                completion,
                float(decode) if decode is not None else None,
                cached_tokens=int(item.get("cached_tokens") or 0),
                counted_live=self.tokens_seen,
            )
        elif kind == "embeddings":
            self.done = True
            tel.observe_tokens(self.model, int(item.get("prompt_tokens") or 0), 0, None)
        elif kind == "error":
            self.error_code = str(item.get("code") or "engine_error")

    def finish(self, status: int, code: str | None = None) -> None:
        if self.finished:
            return
        self.finished = True
        tel = self.telemetry
        if not self.done and self.tokens_seen:  # the client left mid-stream: count what it got
            tel.observe_tokens(
                self.model,
                self.prompt_tokens,
                self.tokens_seen,
                None,
                counted_live=self.tokens_seen,
            )
        tel.observe_request(self.model, self.endpoint, status, tel.clock() - self.started)
        if status >= 400 or self.error_code is not None:
            tel.observe_error(self.model, code or self.error_code or f"http_{status}")


# --- the sampler --------------------------------------------------------------------------


@dataclass
class _Box:
    host: HostSample | None
    gpus: list[GPUInfo]
    cpu_s: float


def _finite(value: float | int | None) -> float | int | None:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return None
    return value


def gpu_view(gpu: GPUInfo) -> dict[str, Any]:
    return {
        "device": gpu_device_name(gpu.vendor, gpu.index),
        "index": gpu.index,
        "name": gpu.name,
        "vendor": gpu.vendor,
        "total_bytes": gpu.total_bytes,
        "used_bytes": gpu.used_bytes,
        "free_bytes": gpu.free_bytes,
        "utilization_pct": _finite(gpu.utilization_pct),
        "temperature_c": _finite(gpu.temperature_c),
        "power_w": _finite(gpu.power_w),
        "source": gpu.source,
    }


class Telemetry:
    def __init__(
        self,
        manager: ManagerView,
        disk_path: str | Path = "/",
        *,
        interval_s: float = INTERVAL_S,
        history: int = HISTORY,
        host_reader: Callable[[str | Path], HostSample] | None = None,
        gpu_reader: Callable[[], list[GPUInfo]] = list_gpus,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.manager = manager
        self.disk_path = disk_path
        self.interval_s = interval_s
        self.samples: deque[dict[str, Any]] = deque(maxlen=history)
        self.stats: dict[str, ModelStats] = {}
        self.moves: dict[tuple[str, str, str], int] = {}
        self.evictions: dict[tuple[str, str], int] = {}
        self.clock = clock
        self.wall = wall
        self._host_reader = host_reader or HostReader().read
        self._gpu_reader = gpu_reader
        self._box: asyncio.Future[_Box] | None = None
        self._last_box = _Box(None, [], 0.0)
        self._costs: deque[float] = deque(maxlen=60)  # CPU seconds of each recent tick
        self._subscribers: set[asyncio.Queue[dict[str, Any]]] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._stack = contextlib.ExitStack()
        self.metrics = Metrics(self.latest)

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Subscribe to the manager's events at once (none is missed), then sample."""
        events = self._stack.enter_context(self.manager.event_log.subscribe(size=10_000))
        self._tasks = [asyncio.create_task(self._event_loop(events), name="telemetry-events")]
        if self.interval_s > 0:  # 0: request counters and events only, no periodic samples
            self._tasks.append(asyncio.create_task(self._sample_loop(), name="telemetry-sampler"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self._box is not None:
            self._box.cancel()  # the thread finishes its reading on its own
            self._box = None
        self._stack.close()

    async def _sample_loop(self) -> None:
        next_at = self.clock()
        while True:
            try:
                await self.tick()
            except Exception:  # one bad reading must not end the sampling
                log.exception("telemetry sample failed")
            next_at += self.interval_s
            delay = next_at - self.clock()
            if delay < 0:  # fell behind (a suspended box): start afresh, no burst
                next_at, delay = self.clock(), 0.0
            await asyncio.sleep(delay)

    async def _event_loop(self, events: asyncio.Queue[Event]) -> None:
        while True:
            event = await events.get()
            try:
                self.observe_event(event)
            except Exception:
                log.exception("telemetry failed on event %s", event.kind)

    # -- subscribers ------------------------------------------------------------------------

    @contextlib.contextmanager
    def subscribe(self, size: int = 256) -> Iterator[asyncio.Queue[dict[str, Any]]]:
        """Every sample (``kind: "sample"``) and every manager event, as dicts."""
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=size)
        self._subscribers.add(queue)
        try:
            yield queue
        finally:
            self._subscribers.discard(queue)

    def _publish(self, item: dict[str, Any]) -> None:
        for queue in list(self._subscribers):
            with contextlib.suppress(asyncio.QueueFull):  # a slow reader loses items, not us
                queue.put_nowait(item)

    # -- sampling ---------------------------------------------------------------------------

    def _read_box(self) -> _Box:
        """Host and GPUs; runs in a worker thread."""
        started = time.thread_time()
        try:
            host: HostSample | None = self._host_reader(self.disk_path)
        except Exception:
            host = None
        try:
            gpus = self._gpu_reader()
        except Exception:
            gpus = []
        return _Box(host, gpus, time.thread_time() - started)

    async def _box_reading(self) -> _Box:
        """The newest host and GPU reading, waiting at most most of an interval for it.

        One reading at a time: a slow GPU tool (rocm-smi can take seconds) leaves
        the previous values in the samples until it answers.
        """
        if self._box is None:
            self._box = asyncio.ensure_future(asyncio.to_thread(self._read_box))
        await asyncio.wait({self._box}, timeout=self.interval_s * 0.8)
        if self._box.done():
            box, self._box = self._box, None
            try:
                self._last_box = box.result()
            except Exception:
                log.exception("host and GPU reading failed")
            return self._last_box
        return _Box(self._last_box.host, self._last_box.gpus, 0.0)

    async def tick(self) -> dict[str, Any]:
        """Take one sample, keep it and send it to the subscribers."""
        box = await self._box_reading()
        started = time.thread_time()
        now = self.clock()
        sample = self._compose(box, now)
        cost = box.cpu_s + (time.thread_time() - started)
        self._costs.append(cost)
        sample["sampler"] = {
            "cpu_ms": round(cost * 1000, 3),
            "cpu_pct": round(100 * sum(self._costs) / (len(self._costs) * self.interval_s), 3),
        }
        self.samples.append(sample)
        self._publish(sample)
        return sample

    def _compose(self, box: _Box, now: float) -> dict[str, Any]:
        host = box.host.to_dict() if box.host is not None else None
        if host is not None and host["cpu_pct"] is not None:
            host["cpu_pct"] = round(host["cpu_pct"], 1)
        if host is not None and host["load1"] is not None:
            host["load1"] = round(host["load1"], 2)
        tiers = self.manager.budgets_view()  # also makes a slot for every known model
        models: dict[str, dict[str, Any]] = {}
        for name, slot in list(self.manager.slots.items()):
            tier = self.manager.tier_of(slot)
            state = "remote" if slot.state == "unloaded" and tier == "remote" else slot.state
            worker = slot.worker
            models[name] = {
                "tier": tier,
                "state": state,
                "queue_depth": worker.queue_depth if worker is not None else 0,
                "active_requests": slot.active,
                "slots": worker.slots if worker is not None else 0,
                "slots_busy": worker.slots_busy if worker is not None else 0,
                "scheduler": worker.cache_stats() if worker is not None else {},
                **self.stats.get(name, _NO_STATS).view(now),
            }
        return {
            "kind": "sample",
            "time": round(self.wall(), 3),
            "host": host,
            "gpus": [gpu_view(g) for g in box.gpus],
            "models": models,
            "tiers": tiers,
        }

    def latest(self) -> dict[str, Any] | None:
        return self.samples[-1] if self.samples else None

    def history(self, seconds: float | None = None) -> list[dict[str, Any]]:
        """The samples of the last `seconds` (all kept when None), oldest first."""
        items = list(self.samples)
        if seconds is None or not items:
            return items
        since = items[-1]["time"] - seconds
        return [s for s in items if s["time"] > since]

    # -- observations (the API's hooks) -----------------------------------------------------

    def _stats(self, model: str) -> ModelStats:
        stats = self.stats.get(model)
        if stats is None:
            stats = self.stats[model] = ModelStats()
        return stats

    def track(self, endpoint: str) -> RequestTrack:
        return RequestTrack(self, endpoint)

    def observe_request(
        self, model: str, endpoint: str, status_code: int, duration_s: float
    ) -> None:
        stats = self._stats(model)
        stats.requests_total += 1
        stats.requests.add(1, self.clock())
        self.metrics.observe_request(model, endpoint, status_code, duration_s)

    def observe_first_token(self, model: str, ttft_s: float) -> None:
        self._stats(model).ttft.add(ttft_s, self.clock())
        self.metrics.ttft.labels(model).observe(ttft_s)

    def observe_token_progress(self, model: str, count: int = 1) -> None:
        """Tokens as they stream, for a live tokens/s (`observe_tokens` reconciles)."""
        self._stats(model).completion_tokens.add(count, self.clock())

    def observe_tokens(
        self,
        model: str,
        prompt_tokens: int,
        completion_tokens: int,
        decode_s: float | None,
        *,
        cached_tokens: int = 0,
        counted_live: int = 0,
    ) -> None:
        """A finished request's tokens. `counted_live` of its completion tokens were
        already counted in the rate by `observe_token_progress`. The inter-token
        latency is decode_s over the completion_tokens - 1 decode steps (the first
        token is sampled from the prompt's logits)."""
        now = self.clock()
        stats = self._stats(model)
        stats.prompt_tokens_total += prompt_tokens
        stats.completion_tokens_total += completion_tokens
        stats.cached_tokens_total += cached_tokens
        if prompt_tokens:
            stats.prompt_tokens.add(prompt_tokens, now)
        rest = completion_tokens - counted_live
        if rest > 0:
            stats.completion_tokens.add(rest, now)
        itl = None
        if decode_s is not None and completion_tokens >= 2:
            itl = decode_s / (completion_tokens - 1)
            stats.itl.add(itl, now)
        self.metrics.observe_tokens(model, prompt_tokens, completion_tokens, cached_tokens, itl)

    def observe_error(self, model: str, code: str) -> None:
        errors = self._stats(model).errors
        errors[code] = errors.get(code, 0) + 1
        self.metrics.observe_error(model, code)

    def observe_event(self, event: Event) -> None:
        """Count tier moves and evictions, and pass the event on to the subscribers."""
        if event.kind == "move":
            src = str(event.data.get("src", ""))
            dst = str(event.data.get("dst", ""))
            reason = str(event.data.get("reason", ""))
            key = (event.model, src, dst)
            self.moves[key] = self.moves.get(key, 0) + 1
            self.metrics.tier_moves.labels(*key).inc()
            if reason.startswith("evicted"):
                ekey = (event.model, eviction_reason(reason))
                self.evictions[ekey] = self.evictions.get(ekey, 0) + 1
                self.metrics.evictions.labels(*ekey).inc()
        self._publish(event.to_dict())
