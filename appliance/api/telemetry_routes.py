"""Telemetry over HTTP: `/metrics` (Prometheus) and, under /admin, samples as JSON and SSE.

- ``GET /metrics``: the Prometheus text exposition (behind the API key when keys are set).
- ``GET /admin/telemetry?seconds=300``: ``{"interval_s", "latest": SAMPLE | null,
  "history": HISTORY}``, the history covering the last `seconds` (default 300, at most
  what the ring buffer keeps: 600 samples).
- ``GET /admin/telemetry/stream``: server-sent events, each one JSON object on a
  ``data:`` line: first ``{"kind": "hello", "time", "interval_s"}``, then the latest
  SAMPLE, then one SAMPLE per interval (1 s) and every manager event as it happens,
  in the shape of the /admin/events items (``{"time", "model", "kind", "message",
  "data"?}``; ``kind`` "move" has data src, dst, reason, seconds). A ``: keep-alive``
  comment goes out when nothing else has for 15 s. This is what the TUI subscribes to.

A SAMPLE (None/null is unknown, never a guessed zero; bytes are bytes)::

    {"kind": "sample",
     "time": 1731400000.123,                       # unix seconds
     "host": {"cpu_pct": 12.5, "ram_total": int, "ram_used": int, "ram_available": int,
              "disk_total": int, "disk_used": int, "disk_free": int,  # the store's disk
              "load1": 0.42} | null,
     "gpus": [{"device": "cuda:0", "index": 0, "name": str, "vendor": "nvidia" | "amd",
               "total_bytes", "used_bytes", "free_bytes": int | null,
               "utilization_pct", "temperature_c", "power_w": float | null,
               "source": "nvml" | "amdsmi" | "rocm-smi" | "sysfs"}],
     "models": {NAME: {"tier": "hot" | "warm" | "cold" | "remote",
                       "state": "ready" | "loading" | "unloaded" | "remote" | ...,
                       "queue_depth": int, "active_requests": int,
                       "requests_total": int, "errors_total": int, "errors": {CODE: int},
                       "prompt_tokens_total", "completion_tokens_total",
                       "cached_tokens_total": int,          # prompt tokens from the cache
                       "requests_per_s", "tokens_per_s", "prompt_tokens_per_s": float,
                                                            # over the last 10 s
                       "ttft_s", "itl_s": float | null}},   # means over the last 60 s
     "tiers": {"hot": {DEVICE: {"budget", "used", "free": int | null}},
               "warm": {"budget", "used", "free"}, "cold": {"budget", "used", "free"}},
     "sampler": {"cpu_ms": float,        # CPU time this sample cost (loop + thread)
                 "cpu_pct": float}}      # the sampler's CPU, % of one core, last 60 samples

HISTORY is columnar (arrays aligned with ``time``; null where a model or GPU was absent)::

    {"time": [float],
     "host": {"cpu_pct", "ram_used", "ram_available", "disk_used", "load1": [...]},
     "gpus": {DEVICE: {"utilization_pct", "used_bytes", "temperature_c", "power_w": [...]}},
     "models": {NAME: {"tokens_per_s", "prompt_tokens_per_s", "requests_per_s",
                       "queue_depth", "active_requests", "ttft_s", "itl_s": [...]}},
     "tiers": {"hot:DEVICE" | "warm" | "cold": {"used", "budget": [...]}}}
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from appliance.api.errors import APIError, invalid_request
from appliance.api.sse import follow, sse_data
from appliance.telemetry.prometheus import CONTENT_TYPE
from appliance.telemetry.sampler import Telemetry

__all__ = ["columns", "metrics", "routes"]

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
KEEP_ALIVE_S = 15.0
DEFAULT_HISTORY_S = 300.0

HOST_SERIES = ("cpu_pct", "ram_used", "ram_available", "disk_used", "load1")
GPU_SERIES = ("utilization_pct", "used_bytes", "temperature_c", "power_w")
MODEL_SERIES = (
    "tokens_per_s",
    "prompt_tokens_per_s",
    "requests_per_s",
    "queue_depth",
    "active_requests",
    "ttft_s",
    "itl_s",
)


def _telemetry(request: Request) -> Telemetry:
    telemetry: Telemetry | None = getattr(request.app.state, "telemetry", None)
    if telemetry is None:
        raise APIError(503, "telemetry is not running", "server_error", None, "no_telemetry")
    return telemetry


def _tier_rows(sample: dict[str, Any]) -> dict[str, dict[str, Any]]:
    tiers = sample.get("tiers") or {}
    rows = {f"hot:{d}": v for d, v in (tiers.get("hot") or {}).items()}
    rows.update({t: tiers[t] for t in ("warm", "cold") if isinstance(tiers.get(t), dict)})
    return rows


def columns(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """The samples as aligned series (see the module docstring), for plots and sparklines."""
    n = len(samples)
    out: dict[str, Any] = {
        "time": [s["time"] for s in samples],
        "host": {k: [(s.get("host") or {}).get(k) for s in samples] for k in HOST_SERIES},
        "gpus": {},
        "models": {},
        "tiers": {},
    }

    def series(group: dict[str, Any], key: str, names: tuple[str, ...]) -> dict[str, list[Any]]:
        if key not in group:
            group[key] = {name: [None] * n for name in names}
        found: dict[str, list[Any]] = group[key]
        return found

    for i, sample in enumerate(samples):
        for gpu in sample.get("gpus") or []:
            cols = series(out["gpus"], str(gpu.get("device")), GPU_SERIES)
            for name in GPU_SERIES:
                cols[name][i] = gpu.get(name)
        for model, view in (sample.get("models") or {}).items():
            cols = series(out["models"], model, MODEL_SERIES)
            for name in MODEL_SERIES:
                cols[name][i] = view.get(name)
        for row, view in _tier_rows(sample).items():
            cols = series(out["tiers"], row, ("used", "budget"))
            cols["used"][i], cols["budget"][i] = view.get("used"), view.get("budget")
    return out


async def telemetry(request: Request) -> Response:
    tel = _telemetry(request)
    raw = request.query_params.get("seconds")
    seconds = DEFAULT_HISTORY_S
    if raw is not None:
        try:
            seconds = float(raw)
        except ValueError:
            raise invalid_request("seconds must be a number", "seconds") from None
        if not 0 <= seconds < float("inf"):
            raise invalid_request("seconds must be a number of seconds ≥ 0", "seconds")
    return JSONResponse(
        {
            "interval_s": tel.interval_s,
            "latest": tel.latest(),
            "history": columns(tel.history(seconds)),
        },
        headers={"Cache-Control": "no-cache"},
    )


async def telemetry_stream(request: Request) -> Response:
    tel = _telemetry(request)

    async def stream() -> AsyncIterator[bytes]:
        with tel.subscribe() as queue:
            yield sse_data({"kind": "hello", "time": time.time(), "interval_s": tel.interval_s})
            latest = tel.latest()
            if latest is not None:
                yield sse_data(latest)
            async for chunk in follow(
                queue, sse_data, request.app.state.shutting_down, KEEP_ALIVE_S
            ):
                yield chunk

    return StreamingResponse(stream(), media_type="text/event-stream", headers=SSE_HEADERS)


async def metrics(request: Request) -> Response:
    tel = _telemetry(request)
    return Response(tel.metrics.render(), media_type=CONTENT_TYPE)


routes = [
    Route("/telemetry", telemetry, methods=["GET"]),
    Route("/telemetry/stream", telemetry_stream, methods=["GET"]),
]
