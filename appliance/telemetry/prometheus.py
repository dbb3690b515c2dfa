"""Prometheus metrics for `GET /metrics`, in a registry of the app's own.

Counters and histograms are fed as requests end and tier moves happen; gauges
are read from the telemetry's latest sample when scraped. Each app has its own
`CollectorRegistry` (never the process-global one), so several apps in one
process do not clash. A reading the sample does not have (an unknown GPU
utilization, a budget that could not be computed) is left out, never exported as 0.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

__all__ = ["CONTENT_TYPE", "Metrics", "gauges_from_sample"]

CONTENT_TYPE = CONTENT_TYPE_LATEST

DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
ITL_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)

Sample = dict[str, Any]


class _SampleGauges:
    """A collector of the gauges, read from the latest sample at scrape time."""

    def __init__(self, latest: Callable[[], Sample | None]) -> None:
        self.latest = latest

    def collect(self) -> Iterable[Metric]:
        sample = self.latest()
        return gauges_from_sample(sample) if sample is not None else []


def _gauge(name: str, doc: str, labels: list[str] | None = None) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=labels)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def gauges_from_sample(sample: Sample) -> Iterator[Metric]:
    """The gauge families of one telemetry sample; unknown readings are left out."""
    queue = _gauge("appliance_queue_depth", "Requests waiting in the model's worker.", ["model"])
    active = _gauge("appliance_active_requests", "Requests the model is serving now.", ["model"])
    slots = _gauge("appliance_slots", "Sequences the model decodes together.", ["model"])
    busy = _gauge("appliance_slots_busy", "Slots serving a request now.", ["model"])
    steps = CounterMetricFamily(
        "appliance_engine_steps", "Batched engine steps run.", labels=["model"]
    )
    step_seqs = CounterMetricFamily(
        "appliance_engine_step_sequences",
        "Sequences carried by the engine's steps, summed (/ steps = mean batch size).",
        labels=["model"],
    )
    step_tokens = CounterMetricFamily(
        "appliance_engine_step_tokens", "Tokens carried by the engine's steps.", labels=["model"]
    )
    hit_ratio = _gauge(
        "appliance_prompt_cache_hit_ratio",
        "Prompt tokens served from the prompt cache / prompt tokens, since the model loaded.",
        ["model"],
    )
    cache_entries = _gauge(
        "appliance_prompt_cache_entries", "Finished sequences kept in the KV cache.", ["model"]
    )
    kv_tokens = _gauge(
        "appliance_prompt_cache_kv_tokens",
        "Tokens the cache entries hold in the KV cache.",
        ["model"],
    )
    cache_bytes = _gauge(
        "appliance_prompt_cache_bytes", "Saved prompt states, bytes per tier.", ["model", "tier"]
    )
    loaded = 0
    for name, model in (sample.get("models") or {}).items():
        queue.add_metric([name], float(model.get("queue_depth") or 0))
        active.add_metric([name], float(model.get("active_requests") or 0))
        loaded += model.get("tier") == "hot"
        if not model.get("slots"):
            continue
        slots.add_metric([name], float(model["slots"]))
        busy.add_metric([name], float(model.get("slots_busy") or 0))
        stats = model.get("scheduler") or {}
        families: tuple[tuple[GaugeMetricFamily | CounterMetricFamily, str], ...] = (
            (steps, "steps"),
            (step_seqs, "step_sequences"),
            (step_tokens, "step_tokens"),
            (cache_entries, "cache_entries"),
        )
        for family, key in families:
            value = _number(stats.get(key))
            if value is not None:
                family.add_metric([name], value)
        prompt, cached = _number(stats.get("prompt_tokens")), _number(stats.get("cached_tokens"))
        if prompt and cached is not None:
            hit_ratio.add_metric([name], cached / prompt)
        kv = _number(stats.get("cache_tokens"))
        if kv is not None:
            kv_tokens.add_metric([name], kv)
        states = stats.get("states") or {}
        for tier in ("ram", "disk"):
            value = _number(states.get(f"{tier}_bytes"))
            if value is not None:
                cache_bytes.add_metric([name, tier], value)
    yield queue
    yield active
    yield slots
    yield busy
    yield steps
    yield step_seqs
    yield step_tokens
    yield cache_entries
    yield kv_tokens
    yield hit_ratio
    yield cache_bytes
    yield GaugeMetricFamily(
        "appliance_models_loaded", "Models hot (an engine worker holds them).", value=loaded
    )

    used = _gauge("appliance_tier_bytes", "Bytes a tier holds, per device.", ["tier", "device"])
    budget = _gauge(
        "appliance_tier_budget_bytes", "A tier's budget in bytes, per device.", ["tier", "device"]
    )
    tiers = sample.get("tiers") or {}
    rows: list[tuple[str, str, Any]] = [
        ("hot", device, view) for device, view in (tiers.get("hot") or {}).items()
    ]
    rows += [(tier, dev, tiers.get(tier)) for tier, dev in (("warm", "ram"), ("cold", "disk"))]
    for tier, device, view in (r for r in rows if isinstance(r[2], dict)):
        for family, key in ((used, "used"), (budget, "budget")):
            value = _number(view.get(key))
            if value is not None:
                family.add_metric([tier, device], value)
    yield used
    yield budget

    gpu_families = {
        "used_bytes": _gauge(
            "appliance_gpu_memory_used_bytes", "GPU memory in use, bytes.", ["gpu"]
        ),
        "total_bytes": _gauge("appliance_gpu_memory_total_bytes", "GPU memory, bytes.", ["gpu"]),
        "utilization_pct": _gauge(
            "appliance_gpu_utilization_percent", "GPU utilization, percent.", ["gpu"]
        ),
        "temperature_c": _gauge(
            "appliance_gpu_temperature_celsius", "GPU temperature, °C.", ["gpu"]
        ),
        "power_w": _gauge("appliance_gpu_power_watts", "GPU power draw, watts.", ["gpu"]),
    }
    for gpu in sample.get("gpus") or []:
        for key, family in gpu_families.items():
            value = _number(gpu.get(key))
            if value is not None:
                family.add_metric([str(gpu.get("device"))], value)
    yield from gpu_families.values()

    host = sample.get("host") or {}
    for name, key, doc in (
        ("appliance_host_cpu_percent", "cpu_pct", "Host CPU use, percent of all cores."),
        ("appliance_host_memory_used_bytes", "ram_used", "Host RAM in use (total - available)."),
        ("appliance_host_memory_total_bytes", "ram_total", "Host RAM, bytes."),
        ("appliance_host_disk_free_bytes", "disk_free", "Free bytes on the store's disk."),
        ("appliance_host_load1", "load1", "Host 1-minute load average."),
    ):
        value = _number(host.get(key))
        if value is not None:
            yield GaugeMetricFamily(name, doc, value=value)


class Metrics:
    """The app's Prometheus metrics; `render` gives the text exposition."""

    def __init__(self, latest: Callable[[], Sample | None]) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.request_duration = Histogram(
            "appliance_request_duration_seconds",
            "Time from a request's arrival to the end of its response.",
            ["model", "endpoint", "status"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            "appliance_ttft_seconds",
            "Time from a request's arrival to its first generated token.",
            ["model"],
            buckets=TTFT_BUCKETS,
            registry=r,
        )
        self.itl = Histogram(
            "appliance_inter_token_latency_seconds",
            "Mean time between generated tokens, one observation per request.",
            ["model"],
            buckets=ITL_BUCKETS,
            registry=r,
        )
        self.requests = Counter(
            "appliance_requests",
            "Inference requests served, by HTTP status.",
            ["model", "endpoint", "status"],
            registry=r,
        )
        self.errors = Counter(
            "appliance_errors", "Failed requests by error code.", ["model", "code"], registry=r
        )
        self.tokens = Counter(
            "appliance_tokens", "Tokens processed, by kind.", ["model", "kind"], registry=r
        )
        self.cache_tokens = Counter(
            "appliance_prompt_cache_tokens",
            "Prompt tokens served from the prompt cache.",
            ["model"],
            registry=r,
        )
        self.tier_moves = Counter(
            "appliance_tier_moves", "Moves between tiers.", ["model", "src", "dst"], registry=r
        )
        self.evictions = Counter(
            "appliance_evictions",
            "Moves down a tier to make room for another model.",
            ["model", "reason"],
            registry=r,
        )
        r.register(_SampleGauges(latest))

    def observe_request(self, model: str, endpoint: str, status: int, duration_s: float) -> None:
        labels = (model, endpoint, str(status))
        self.requests.labels(*labels).inc()
        self.request_duration.labels(*labels).observe(duration_s)

    def observe_tokens(
        self, model: str, prompt: int, completion: int, cached: int, itl_s: float | None
    ) -> None:
        self.tokens.labels(model, "prompt").inc(prompt)
        self.tokens.labels(model, "completion").inc(completion)
        self.cache_tokens.labels(model).inc(cached)
        if itl_s is not None:
            self.itl.labels(model).observe(itl_s)

    def observe_error(self, model: str, code: str) -> None:
        self.errors.labels(model, code).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
