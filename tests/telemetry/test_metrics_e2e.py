"""The real daemon serves known requests; /metrics and the telemetry stream match them."""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import write_catalog
from tests.daemon import Daemon, start_daemon, wait_for

KEY = "telemetry-test-key"
USER = [{"role": "user", "content": "tell me about the weather"}]
NO_EOS = {"ignore_eos": True}
Labels = frozenset[tuple[str, str]]


class StreamReader(threading.Thread):
    """Reads /admin/telemetry/stream in the background, keeping each event and its time."""

    def __init__(self, daemon: Daemon) -> None:
        super().__init__(daemon=True)
        self.url = daemon.url + "/admin/telemetry/stream"
        self.headers = daemon.headers()
        self.items: list[tuple[float, dict[str, Any]]] = []
        self.opened = time.monotonic()
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            timeout = httpx.Timeout(10, read=30)
            with httpx.stream("GET", self.url, headers=self.headers, timeout=timeout) as r:
                r.raise_for_status()
                for line in r.iter_lines():
                    if line.startswith("data: "):
                        self.items.append((time.monotonic(), json.loads(line[6:])))
                    if self.stop.is_set():
                        return
        except BaseException as exc:
            self.error = exc

    def of_kind(self, kind: str) -> list[tuple[float, dict[str, Any]]]:
        return [(t, item) for t, item in list(self.items) if item.get("kind") == kind]


@dataclass
class Served:
    daemon: Daemon
    stream: StreamReader
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    generated: int = 0
    by_endpoint: dict[str, int] = field(default_factory=dict)

    def count(self, endpoint: str, usage: Any) -> None:
        assert usage is not None
        self.by_endpoint[endpoint] = self.by_endpoint.get(endpoint, 0) + 1
        self.generated += 1
        self.prompt_tokens += usage.prompt_tokens
        self.completion_tokens += usage.completion_tokens
        details = usage.prompt_tokens_details
        self.cached_tokens += details.cached_tokens if details is not None else 0


def metrics(daemon: Daemon) -> dict[tuple[str, Labels], float]:
    r = daemon.get("/metrics")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


def total(values: dict[tuple[str, Labels], float], name: str, **labels: str) -> float:
    want = set(labels.items())
    return sum(v for (n, ls), v in values.items() if n == name and want <= ls)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> Iterator[Served]:
    home = tmp_path_factory.mktemp("telemetry-home")
    daemon = start_daemon(home, write_catalog(home / "catalog.toml", models_dir), api_key=KEY)
    stream = StreamReader(daemon)
    stream.start()
    try:
        wait_for(lambda: stream.of_kind("sample") or stream.error, timeout=10)
        run = Served(daemon, stream)
        client = openai.OpenAI(base_url=daemon.v1, api_key=KEY, max_retries=0, timeout=60)
        chat = "/v1/chat/completions"
        for max_tokens in (6, 4):
            r = client.chat.completions.create(
                model="tiny", messages=USER, max_tokens=max_tokens, extra_body=NO_EOS
            )
            run.count(chat, r.usage)
        for _ in range(2):  # the second one finds its prompt in the cache
            chunks = list(
                client.chat.completions.create(
                    model="tiny-alias",
                    messages=USER,
                    max_tokens=5,
                    stream=True,
                    stream_options={"include_usage": True},
                    extra_body=NO_EOS,
                )
            )
            run.count(chat, chunks[-1].usage)
        completion = client.completions.create(
            model="tiny", prompt="Once upon a time", max_tokens=7, extra_body=NO_EOS
        )
        run.count("/v1/completions", completion.usage)
        parts = list(
            client.completions.create(
                model="tiny",
                prompt="Once upon a time",
                max_tokens=3,
                stream=True,
                stream_options={"include_usage": True},
                extra_body=NO_EOS,
            )
        )
        run.count("/v1/completions", parts[-1].usage)
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.create(model="no-such-model", messages=USER, max_tokens=2)
        yield run
    finally:
        stream.stop.set()
        daemon.stop()


def test_metrics_count_what_was_served(served: Served) -> None:
    daemon = served.daemon
    # A stream's end is recorded as its response closes, a moment after the client's last read.
    requests = served.generated + 1
    m = wait_for(
        lambda: (
            (v := metrics(daemon))
            and total(v, "appliance_requests_total") == requests
            and total(v, "appliance_models_loaded") == 1
            and v
        ),
        timeout=5,
    )
    for endpoint, n in served.by_endpoint.items():
        assert total(m, "appliance_requests_total", model="tiny", endpoint=endpoint) == n
        assert total(m, "appliance_requests_total", endpoint=endpoint, status="200") == n
    refused = {"model": "", "endpoint": "/v1/chat/completions", "status": "404"}
    assert total(m, "appliance_requests_total", **refused) == 1
    assert total(m, "appliance_errors_total", model="", code="model_not_found") == 1
    assert total(m, "appliance_request_duration_seconds_count") == requests

    assert total(m, "appliance_tokens_total", model="tiny", kind="completion") == (
        served.completion_tokens
    )
    assert total(m, "appliance_tokens_total", model="tiny", kind="prompt") == served.prompt_tokens
    assert served.cached_tokens > 0
    assert total(m, "appliance_prompt_cache_tokens_total", model="tiny") == served.cached_tokens
    assert total(m, "appliance_ttft_seconds_count", model="tiny") == served.generated
    assert total(m, "appliance_inter_token_latency_seconds_count", model="tiny") == (
        served.generated
    )
    ttft_sum = total(m, "appliance_ttft_seconds_sum", model="tiny")
    duration_sum = total(m, "appliance_request_duration_seconds_sum", model="tiny")
    assert 0 < ttft_sum < duration_sum

    assert total(m, "appliance_tier_moves_total", model="tiny", src="cold", dst="hot") == 1
    assert total(m, "appliance_queue_depth", model="tiny") == 0
    assert total(m, "appliance_host_memory_used_bytes") > 0
    assert total(m, "appliance_tier_budget_bytes", tier="hot", device="cpu") > 0
    assert total(m, "appliance_tier_bytes", tier="hot", device="cpu") > 0


def test_metrics_need_the_key_when_keys_are_set(served: Served) -> None:
    assert httpx.get(served.daemon.url + "/metrics", timeout=10).status_code == 401
    assert httpx.get(served.daemon.url + "/health", timeout=10).status_code == 200


def test_stream_sends_samples_and_the_load_move(served: Served) -> None:
    stream = served.stream
    assert stream.error is None, stream.error
    hello = stream.items[0][1]
    assert hello["kind"] == "hello" and hello["interval_s"] == 1.0
    first_sample_at = stream.of_kind("sample")[0][0]
    assert first_sample_at - stream.opened < 3.0
    moves = [item for _t, item in stream.of_kind("move") if item["model"] == "tiny"]
    assert moves and moves[0]["data"]["dst"] == "hot" and moves[0]["data"]["src"] == "cold"
    assert moves[0]["data"]["reason"] == "first request"
    # Samples keep coming about once a second, and they carry what was served.
    want = served.completion_tokens

    def served_sample() -> dict[str, Any] | None:
        for _t, item in reversed(stream.of_kind("sample")):
            if item["models"]["tiny"]["completion_tokens_total"] == want:
                return item
        return None

    sample = wait_for(served_sample, timeout=5)
    tiny = sample["models"]["tiny"]
    assert tiny["tier"] == "hot" and tiny["state"] == "ready"
    assert tiny["requests_total"] == served.generated
    assert tiny["ttft_s"] > 0 and tiny["itl_s"] > 0
    assert sample["host"]["ram_total"] > 0
    assert sample["tiers"]["hot"]["cpu"]["used"] > 0
    times = [t for t, _ in stream.of_kind("sample")]
    assert len(times) >= 2
    gaps = [b - a for a, b in itertools.pairwise(times[1:])]  # the first came at once
    assert all(0.5 < g < 2.0 for g in gaps), gaps


def test_admin_telemetry_gives_latest_and_history(served: Served) -> None:
    r = served.daemon.get("/admin/telemetry", params={"seconds": 60})
    assert r.status_code == 200
    body = r.json()
    assert body["interval_s"] == 1.0
    latest = body["latest"]
    assert latest["kind"] == "sample"
    assert latest["sampler"]["cpu_pct"] < 10
    history = body["history"]
    n = len(history["time"])
    assert n >= 2 and history["time"][-1] == latest["time"]
    assert len(history["host"]["ram_used"]) == n
    assert len(history["models"]["tiny"]["tokens_per_s"]) == n
    assert max(history["models"]["tiny"]["tokens_per_s"]) > 0
    assert served.daemon.get("/admin/telemetry", params={"seconds": "x"}).status_code == 400
