"""Latency / throughput benchmark for any OpenAI-compatible server.

Works against this appliance's daemon, llama.cpp's ``llama-server``, Ollama, vLLM... Every
request streams (SSE) at temperature 0 with EOS banned (``ignore_eos`` plus, when the EOS
token id is known, ``logit_bias {eos: -100}``) so that each one generates exactly
``max_tokens`` tokens. Concurrency levels run one after another; per level we report TTFT and
inter-token-latency percentiles, the median per-stream decode rate and the aggregate rate.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as _dt
import json
import os
import secrets
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, cast

import httpx

Endpoint = Literal["chat", "completions"]
ENDPOINTS: tuple[Endpoint, ...] = ("completions", "chat")
DEFAULT_BASE_URL = "http://127.0.0.1:8750/v1"
DEFAULT_PROMPT = (
    "Write a long, detailed essay about the history of the printing press: its precursors in "
    "China and Korea, Gutenberg's workshop in Mainz, how movable type spread across Europe, and "
    "its effects on science, religion, literacy and politics over the following centuries."
)


class BenchError(Exception):
    """The benchmark could not run at all (server unreachable, bad configuration)."""


# --------------------------------------------------------------------------- SSE helpers


@dataclass
class SSEEvent:
    event: str
    data: str
    t: float  # clock value when the event's first line arrived


class SSEParser:
    """Incremental server-sent-events parser fed one line at a time (line ending stripped)."""

    def __init__(self) -> None:
        self._event = ""
        self._data: list[str] = []
        self._t = 0.0

    def feed(self, line: str, now: float = 0.0) -> list[SSEEvent]:
        line = line.rstrip("\r\n")
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return []
        name, sep, value = line.partition(":")
        if not sep:
            name, value = line, ""
        elif value.startswith(" "):
            value = value[1:]
        if name == "data":
            if not self._data:
                self._t = now
            self._data.append(value)
        elif name == "event":
            self._event = value
        return []

    def flush(self) -> list[SSEEvent]:
        return self._dispatch()

    def _dispatch(self) -> list[SSEEvent]:
        if not self._data:
            self._event = ""
            return []
        event, data, t = self._event, self._data, self._t
        self._event, self._data = "", []
        joined = "\n".join(data)
        if len(data) > 1 and not _is_json(joined):
            # Non-conforming server that omitted blank lines between events.
            return [SSEEvent(event, d, t) for d in data]
        return [SSEEvent(event, joined, t)]


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def error_message(payload: Any) -> str | None:
    """The message of an OpenAI-style error object (or similar shapes), else None."""
    if not isinstance(payload, dict):
        return None
    err = payload.get("error")
    if isinstance(err, dict):
        msg = err.get("message")
        return str(msg) if msg is not None else json.dumps(err)
    if isinstance(err, str):
        return err
    for key in ("detail", "message"):
        if isinstance(payload.get(key), str) and "choices" not in payload:
            return str(payload[key])
    return None


def describe_http_error(status: int, body: bytes) -> str:
    """One-line description of a non-2xx response."""
    text = body.decode("utf-8", "replace").strip()
    try:
        msg = error_message(json.loads(text))
    except ValueError:
        msg = None
    if msg is None:
        msg = text[:200] or "(empty body)"
    return one_line(f"HTTP {status}: {msg}")


def one_line(text: str) -> str:
    return " ".join(text.split())


# --------------------------------------------------------------------------- configuration


@dataclass
class BenchConfig:
    base_url: str
    model: str
    concurrency: tuple[int, ...] = (1,)
    requests_per_level: int | None = None
    max_tokens: int = 128
    # Each request asks for max_tokens plus 0..spread more (fixed by its number in the run,
    # so every server gets the same set), so that answers end at different steps.
    max_tokens_spread: int = 0
    prompt: str = DEFAULT_PROMPT
    api_key: str | None = None
    eos_token_id: int | None = None
    endpoint: Endpoint = "completions"
    timeout_s: float = 600
    warmup: int = 1
    # Prefix each prompt with a request-unique tag so server prompt caches cannot turn
    # TTFT into a cache hit. Same treatment for every server, so comparisons stay fair.
    vary_prompt: bool = True

    def __post_init__(self) -> None:
        self.concurrency = tuple(self.concurrency)
        if not self.concurrency or any(c < 1 for c in self.concurrency):
            raise ValueError("concurrency levels must be positive integers")
        if self.requests_per_level is not None and self.requests_per_level < 1:
            raise ValueError("requests per level must be >= 1")
        if self.max_tokens < 1:
            raise ValueError("max_tokens must be >= 1")
        if self.max_tokens_spread < 0:
            raise ValueError("max_tokens_spread must be >= 0")
        if self.endpoint not in ENDPOINTS:
            raise ValueError(f"endpoint must be one of {', '.join(ENDPOINTS)}")
        if self.timeout_s <= 0:
            raise ValueError("timeout_s must be > 0")
        if self.warmup < 0:
            raise ValueError("warmup must be >= 0")
        if not self.model:
            raise ValueError("model is required")

    def requests_for(self, level: int) -> int:
        if self.requests_per_level is not None:
            return self.requests_per_level
        return max(2 * level, 3)


# --------------------------------------------------------------------------- results


@dataclass
class RequestResult:
    ok: bool = False
    error: str | None = None
    connect_failed: bool = False
    ttft_s: float | None = None
    itl_s: list[float] = field(default_factory=list)
    total_s: float = 0.0
    text_chunks: int = 0
    usage_tokens: int | None = None
    first_token_s: float | None = None
    last_token_s: float | None = None
    finish_reason: str | None = None

    @property
    def completion_tokens(self) -> int:
        return self.usage_tokens if self.usage_tokens is not None else self.text_chunks

    @property
    def decode_tok_s(self) -> float | None:
        first, last, n = self.first_token_s, self.last_token_s, self.completion_tokens
        if first is None or last is None or n < 2 or last <= first:
            return None
        return (n - 1) / (last - first)


@dataclass
class Percentiles:
    p50: float | None = None
    p90: float | None = None
    p99: float | None = None

    @classmethod
    def of(cls, values: Sequence[float], scale: float = 1.0) -> Percentiles:
        xs = sorted(v * scale for v in values)
        if not xs:
            return cls()
        return cls(percentile(xs, 50), percentile(xs, 90), percentile(xs, 99))


def percentile(sorted_values: Sequence[float], pct: float) -> float:
    """Linear-interpolated percentile (numpy's default) of an ascending sequence."""
    if not sorted_values:
        raise ValueError("percentile of an empty sequence")
    k = (len(sorted_values) - 1) * pct / 100.0
    lo = int(k)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (k - lo)


@dataclass
class LevelStats:
    concurrency: int
    requests: int
    errors: int
    completion_tokens: int
    wall_s: float
    ttft_ms: Percentiles
    itl_ms: Percentiles
    e2e_ms: Percentiles
    stream_tok_s: float | None
    aggregate_tok_s: float
    short_requests: int = 0  # successful requests that stopped before max_tokens
    error_samples: list[str] = field(default_factory=list)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> LevelStats:
        return cls(
            concurrency=int(d["concurrency"]),
            requests=int(d["requests"]),
            errors=int(d["errors"]),
            completion_tokens=int(d["completion_tokens"]),
            wall_s=float(d["wall_s"]),
            ttft_ms=Percentiles(**d["ttft_ms"]),
            itl_ms=Percentiles(**d["itl_ms"]),
            e2e_ms=Percentiles(**d["e2e_ms"]),
            stream_tok_s=d["stream_tok_s"],
            aggregate_tok_s=float(d["aggregate_tok_s"]),
            short_requests=int(d.get("short_requests", 0)),
            error_samples=list(d.get("error_samples", [])),
        )


@dataclass
class BenchReport:
    base_url: str
    model: str
    endpoint: Endpoint
    max_tokens: int
    prompt_chars: int
    eos_token_id: int | None
    eos_source: str  # "config" | "discovered" | "unknown"
    started_at: str
    levels: list[LevelStats] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def total_requests(self) -> int:
        return sum(lv.requests for lv in self.levels)

    @property
    def total_errors(self) -> int:
        return sum(lv.errors for lv in self.levels)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> BenchReport:
        return cls(
            base_url=str(d["base_url"]),
            model=str(d["model"]),
            endpoint=cast(Endpoint, d["endpoint"]),
            max_tokens=int(d["max_tokens"]),
            prompt_chars=int(d["prompt_chars"]),
            eos_token_id=d.get("eos_token_id"),
            eos_source=str(d["eos_source"]),
            started_at=str(d["started_at"]),
            levels=[LevelStats.from_json(lv) for lv in d.get("levels", [])],
            notes=[str(n) for n in d.get("notes", [])],
        )


def level_stats(
    concurrency: int, results: Sequence[RequestResult], wall_s: float, max_tokens: int
) -> LevelStats:
    ok = [r for r in results if r.ok]
    errors = [r for r in results if not r.ok]
    tokens = sum(r.completion_tokens for r in ok)
    rates = [x for x in (r.decode_tok_s for r in ok) if x is not None]
    samples: list[str] = []
    for r in errors:
        if r.error and r.error not in samples and len(samples) < 3:
            samples.append(r.error)
    return LevelStats(
        concurrency=concurrency,
        requests=len(results),
        errors=len(errors),
        completion_tokens=tokens,
        wall_s=wall_s,
        ttft_ms=Percentiles.of([r.ttft_s for r in ok if r.ttft_s is not None], 1000.0),
        itl_ms=Percentiles.of([x for r in ok for x in r.itl_s], 1000.0),
        e2e_ms=Percentiles.of([r.total_s for r in ok], 1000.0),
        stream_tok_s=statistics.median(rates) if rates else None,
        aggregate_tok_s=tokens / wall_s if wall_s > 0 else 0.0,
        short_requests=sum(1 for r in ok if r.completion_tokens < max_tokens),
        error_samples=samples,
    )


# --------------------------------------------------------------------------- running


def _headers(api_key: str | None) -> dict[str, str]:
    headers = {"Accept": "text/event-stream"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    return headers


def request_max_tokens(cfg: BenchConfig, number: int) -> int:
    """max_tokens for the run's request `number` (spread over the run, the same on every server)."""
    return cfg.max_tokens + (number * 7919) % (cfg.max_tokens_spread + 1)


def build_body(
    cfg: BenchConfig, eos_token_id: int | None, prompt: str, max_tokens: int | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": cfg.model,
        "max_tokens": cfg.max_tokens if max_tokens is None else max_tokens,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
        "ignore_eos": True,
    }
    if eos_token_id is not None:
        body["logit_bias"] = {str(eos_token_id): -100}
    if cfg.endpoint == "chat":
        body["messages"] = [{"role": "user", "content": prompt}]
    else:
        body["prompt"] = prompt
    return body


def _chunk_text(choice: Any) -> str:
    if not isinstance(choice, dict):
        return ""
    text = choice.get("text")
    out = text if isinstance(text, str) else ""
    delta = choice.get("delta")
    if isinstance(delta, dict):
        for key in ("content", "reasoning_content"):
            value = delta.get(key)
            if isinstance(value, str):
                out += value
    return out


def _handle_event(ev: SSEEvent, res: RequestResult, t0: float) -> bool:
    """Fold one SSE event into ``res``; True when the stream is finished."""
    data = ev.data.strip()
    if data == "[DONE]":
        return True
    try:
        obj = json.loads(data) if data else None
    except ValueError:
        obj = None
    if ev.event == "error":
        res.error = one_line(error_message(obj) or data or "error event")
        return True
    if not isinstance(obj, dict):
        return False
    msg = error_message(obj)
    if msg is not None:
        res.error = one_line(f"stream error: {msg}")
        return True
    usage = obj.get("usage")
    if isinstance(usage, dict):
        n = usage.get("completion_tokens")
        if isinstance(n, int) and not isinstance(n, bool):
            res.usage_tokens = n
    choices = obj.get("choices")
    if isinstance(choices, list):
        text = "".join(_chunk_text(c) for c in choices)
        if text:
            t = ev.t - t0
            if res.last_token_s is None:
                res.ttft_s = res.first_token_s = t
            else:
                res.itl_s.append(t - res.last_token_s)
            res.last_token_s = t
            res.text_chunks += 1
        for c in choices:
            if isinstance(c, dict) and isinstance(c.get("finish_reason"), str):
                res.finish_reason = c["finish_reason"]
    return False


async def one_request(
    client: httpx.AsyncClient, url: str, body: dict[str, Any], timeout_s: float
) -> RequestResult:
    """Send one streaming request and time it."""
    res = RequestResult()
    t0 = time.perf_counter()
    try:
        async with asyncio.timeout(timeout_s):
            async with client.stream("POST", url, json=body) as resp:
                if resp.status_code >= 400:
                    res.error = describe_http_error(resp.status_code, await resp.aread())
                    return res
                ctype = resp.headers.get("content-type", "")
                if "text/event-stream" not in ctype:
                    raw = await resp.aread()
                    try:
                        msg = error_message(json.loads(raw))
                    except ValueError:
                        msg = None
                    res.error = one_line(msg or f"response was not streamed ({ctype or '?'})")
                    return res
                parser = SSEParser()
                done = False
                async for line in resp.aiter_lines():
                    for ev in parser.feed(line, time.perf_counter()):
                        done = done or _handle_event(ev, res, t0)
                    if done:
                        break
                if not done:
                    for ev in parser.flush():
                        _handle_event(ev, res, t0)
    except TimeoutError:
        res.error = f"timed out after {timeout_s:g}s"
    except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
        res.connect_failed = True
        res.error = one_line(f"{type(exc).__name__}: {exc}")
    except httpx.HTTPError as exc:
        res.error = one_line(f"{type(exc).__name__}: {exc}")
    finally:
        res.total_s = time.perf_counter() - t0
    if res.error is None and res.completion_tokens == 0:
        res.error = "stream ended without any tokens"
    res.ok = res.error is None
    return res


async def discover_eos(
    client: httpx.AsyncClient, base_url: str, model: str
) -> tuple[int | None, list[str]]:
    """Read ``meta.eos_token_id`` for ``model`` from ``GET {base}/models``."""
    notes: list[str] = []
    try:
        resp = await client.get(f"{base_url}/models", headers={"Accept": "application/json"})
    except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
        raise BenchError(one_line(f"cannot reach {base_url}: {exc}")) from exc
    except httpx.HTTPError as exc:
        notes.append(one_line(f"GET /models failed ({type(exc).__name__}: {exc})"))
        return None, notes
    if resp.status_code >= 400:
        notes.append(f"GET /models: {describe_http_error(resp.status_code, resp.content)}")
        return None, notes
    try:
        data = resp.json().get("data")
    except (ValueError, AttributeError):
        data = None
    entries = [e for e in data if isinstance(e, dict)] if isinstance(data, list) else []
    entry = next((e for e in entries if e.get("id") == model), None)
    if entry is None:
        entry = next(
            (
                e
                for e in entries
                if isinstance(e.get("meta"), dict) and model in (e["meta"].get("aliases") or [])
            ),
            None,
        )
    if entry is None:
        notes.append(f"model {model!r} is not listed by GET /models")
        return None, notes
    meta = entry.get("meta")
    eos = meta.get("eos_token_id") if isinstance(meta, dict) else None
    if isinstance(eos, int) and not isinstance(eos, bool):
        return eos, notes
    return None, notes


async def run_level(
    client: httpx.AsyncClient,
    url: str,
    cfg: BenchConfig,
    level: int,
    make_body: Callable[[], dict[str, Any]],
) -> LevelStats:
    n = cfg.requests_for(level)
    results: list[RequestResult] = []
    indices: Iterator[int] = iter(range(n))

    async def worker() -> None:
        for _ in indices:
            results.append(await one_request(client, url, make_body(), cfg.timeout_s))

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(min(level, n))))
    wall = time.perf_counter() - t0
    return level_stats(level, results, wall, cfg.max_tokens)


async def run_bench(cfg: BenchConfig) -> BenchReport:
    base = cfg.base_url.rstrip("/")
    path = "/chat/completions" if cfg.endpoint == "chat" else "/completions"
    url = base + path
    started = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    timeout = httpx.Timeout(cfg.timeout_s, connect=min(10.0, cfg.timeout_s))
    top = max(cfg.concurrency)
    limits = httpx.Limits(max_connections=top + 4, max_keepalive_connections=top + 4)
    notes: list[str] = []
    async with httpx.AsyncClient(
        headers=_headers(cfg.api_key), timeout=timeout, limits=limits, trust_env=False
    ) as client:
        eos, source = cfg.eos_token_id, "config"
        if eos is None:
            eos, discovery_notes = await discover_eos(client, base, cfg.model)
            notes.extend(discovery_notes)
            source = "discovered" if eos is not None else "unknown"
            if eos is None:
                notes.append(
                    "eos_token_id unknown (no meta.eos_token_id in GET /models): "
                    "relying on ignore_eos only"
                )

        counter = 0
        # A nonce per run: servers that keep earlier prompts' KV in RAM (llama-server's
        # prompt cache) must not turn a later run's "fresh" prompts into cache hits.
        run_id = secrets.token_hex(4)

        def make_body() -> dict[str, Any]:
            nonlocal counter
            counter += 1
            prompt = (
                f"[run {run_id} request {counter}] {cfg.prompt}" if cfg.vary_prompt else cfg.prompt
            )
            return build_body(cfg, eos, prompt, request_max_tokens(cfg, counter))

        for i in range(cfg.warmup):
            res = await one_request(client, url, make_body(), cfg.timeout_s)
            if res.connect_failed:
                raise BenchError(f"cannot reach {base}: {res.error}")
            if not res.ok:
                notes.append(f"warmup request {i + 1} failed: {res.error}")

        levels: list[LevelStats] = []
        for level in cfg.concurrency:
            stats = await run_level(client, url, cfg, level, make_body)
            levels.append(stats)
            if stats.short_requests:
                notes.append(
                    f"concurrency {level}: {stats.short_requests} request(s) stopped before "
                    f"max_tokens={cfg.max_tokens} (server ignored the EOS ban?)"
                )

    return BenchReport(
        base_url=base,
        model=cfg.model,
        endpoint=cfg.endpoint,
        max_tokens=cfg.max_tokens,
        prompt_chars=len(cfg.prompt),
        eos_token_id=eos,
        eos_source=source,
        started_at=started,
        levels=levels,
        notes=notes,
    )


def run_bench_sync(cfg: BenchConfig) -> BenchReport:
    return asyncio.run(run_bench(cfg))


# --------------------------------------------------------------------------- output


_COLUMNS = (
    "conc",
    "reqs",
    "err",
    "ttft_p50",
    "ttft_p90",
    "ttft_p99",
    "itl_p50",
    "itl_p90",
    "itl_p99",
    "stream_tok/s",
    "agg_tok/s",
)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def format_table(report: BenchReport) -> str:
    """Plain aligned text table, one row per concurrency level (times in ms)."""
    rows = [list(_COLUMNS)]
    for lv in report.levels:
        rows.append(
            [
                str(lv.concurrency),
                str(lv.requests),
                str(lv.errors),
                _fmt(lv.ttft_ms.p50),
                _fmt(lv.ttft_ms.p90),
                _fmt(lv.ttft_ms.p99),
                _fmt(lv.itl_ms.p50),
                _fmt(lv.itl_ms.p90),
                _fmt(lv.itl_ms.p99),
                _fmt(lv.stream_tok_s),
                _fmt(lv.aggregate_tok_s),
            ]
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(_COLUMNS))]
    lines = [
        f"{report.model} @ {report.base_url} ({report.endpoint}, max_tokens={report.max_tokens}"
        f", eos={report.eos_token_id if report.eos_token_id is not None else '?'}"
        "; times in ms)"
    ]
    for row in rows:
        lines.append("  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)))
    for lv in report.levels:
        for sample in lv.error_samples:
            lines.append(f"error (concurrency {lv.concurrency}): {sample}")
    lines.extend(f"note: {n}" for n in report.notes)
    return "\n".join(lines)


# --------------------------------------------------------------------------- CLI glue


def parse_concurrency(text: str) -> tuple[int, ...]:
    try:
        levels = tuple(int(p) for p in text.replace(" ", "").split(",") if p)
    except ValueError:
        levels = ()
    if not levels or any(c < 1 for c in levels):
        raise argparse.ArgumentTypeError(
            f"expected comma-separated positive integers, got {text!r}"
        )
    return levels


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--base-url",
        default=DEFAULT_BASE_URL,
        help="OpenAI-compatible base URL, including /v1 (default: under `appliance bench` "
        f"the daemon's, from --port, APPLIANCE_PORT or settings.toml; else {DEFAULT_BASE_URL})",
    )
    parser.add_argument("--model", required=True, help="model name sent in each request")
    parser.add_argument(
        "--concurrency",
        type=parse_concurrency,
        default=(1,),
        help='comma-separated concurrency levels, e.g. "1,2,4" (default 1)',
    )
    parser.add_argument(
        "--requests",
        type=int,
        default=None,
        help="requests per level (default: 2 x concurrency, at least 3)",
    )
    parser.add_argument("--max-tokens", type=int, default=128, help="tokens per request")
    parser.add_argument(
        "--max-tokens-spread",
        type=int,
        default=0,
        help="each request asks for 0..N tokens more than --max-tokens (answers end apart)",
    )
    parser.add_argument("--prompt", default=DEFAULT_PROMPT, help="prompt text")
    parser.add_argument(
        "--api-key",
        default=os.environ.get("APPLIANCE_API_KEY") or os.environ.get("OPENAI_API_KEY"),
        help="bearer token (default $APPLIANCE_API_KEY or $OPENAI_API_KEY; under "
        "`appliance bench` also the daemon's first api_keys entry)",
    )
    parser.add_argument(
        "--eos-token-id",
        type=int,
        default=None,
        help="EOS token id to ban via logit_bias (default: from GET /models meta)",
    )
    parser.add_argument(
        "--endpoint", choices=ENDPOINTS, default="completions", help="API to exercise"
    )
    parser.add_argument("--warmup", type=int, default=1, help="unmeasured warmup requests")
    parser.add_argument(
        "--timeout", type=float, default=600.0, help="per-request time limit in seconds"
    )
    parser.add_argument(
        "--same-prompt",
        action="store_true",
        help="send the identical prompt every time (lets server prompt caches hit)",
    )
    parser.add_argument("--json", metavar="PATH", default=None, help="write the JSON report")


def run_from_args(args: argparse.Namespace) -> int:
    try:
        cfg = BenchConfig(
            base_url=args.base_url,
            model=args.model,
            concurrency=tuple(args.concurrency),
            requests_per_level=args.requests,
            max_tokens=args.max_tokens,
            max_tokens_spread=getattr(args, "max_tokens_spread", 0),
            prompt=args.prompt,
            api_key=args.api_key,
            eos_token_id=args.eos_token_id,
            endpoint=args.endpoint,
            timeout_s=getattr(args, "timeout", 600.0),
            warmup=getattr(args, "warmup", 1),
            vary_prompt=not getattr(args, "same_prompt", False),
        )
        report = run_bench_sync(cfg)
    except (ValueError, BenchError) as exc:
        print(f"error: {one_line(str(exc))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    if args.json:
        try:
            with open(args.json, "w", encoding="utf-8") as fh:
                json.dump(report.to_json(), fh, indent=2)
                fh.write("\n")
        except OSError as exc:
            print(f"error: cannot write {args.json}: {exc}", file=sys.stderr)
            return 1
    total = report.total_requests
    if total and report.total_errors == total:
        first = next((s for lv in report.levels for s in lv.error_samples), "unknown error")
        print(f"error: all {total} requests failed: {first}", file=sys.stderr)
        return 1
    print(format_table(report))
    return 0
