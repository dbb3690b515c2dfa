"""Continuous batching through the real daemon and the official `openai` client:
concurrent streams, admission (429), cancellation, grammar per sequence, the prefix
cache across users and across a demotion, and deterministic requests."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from appliance.store.gguf_meta import read_gguf_info
from appliance.tiers.estimate import kv_cache_bytes
from appliance.tiny_model import TinyModelSpec, write_tiny_gguf
from tests.conftest import write_catalog
from tests.daemon import Daemon, start_daemon, wait_for

DOC = " ".join(f"line {i} of the shared document says the same thing again." for i in range(10))


@pytest.fixture(scope="module")
def batch_daemon(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> Iterator[Daemon]:
    home = tmp_path_factory.mktemp("batching")
    twin = write_tiny_gguf(home / "twin.gguf", TinyModelSpec(seed=7))
    extra = f'''
[models.batch]
source = "{models_dir / "tiny.gguf"}"
context = 1024
parallel = 4
keep_alive = "forever"

[models.unified]
source = "{models_dir / "tiny.gguf"}"
context = 1024
parallel = 4
kv_unified = true

[models.twin]
source = "{twin}"
context = 1024
parallel = 4

[models.always-alone]
source = "{models_dir / "tiny.gguf"}"
context = 1024
parallel = 4
deterministic = true

[models.one]
source = "{models_dir / "slow.gguf"}"
context = 4096
parallel = 1
max_queue = 1
'''
    catalog = write_catalog(home / "catalog.toml", models_dir, extra)
    # The tiny models read prompts faster than any state is saved: keep every state anyway.
    d = start_daemon(home, catalog, env={"APPLIANCE_PROMPT_CACHE_MIN_SAVE": "0"})
    yield d
    d.stop()


def client(d: Daemon) -> openai.OpenAI:
    return openai.OpenAI(base_url=d.v1, api_key="x", max_retries=0, timeout=120)


def ask(d: Daemon, model: str, content: str, **kw: Any) -> Any:
    kw.setdefault("max_tokens", 8)
    kw.setdefault("temperature", 0)
    return client(d).chat.completions.create(
        model=model, messages=[{"role": "user", "content": content}], **kw
    )


def test_concurrent_streams_all_complete_with_usage(batch_daemon: Daemon) -> None:
    def one(i: int) -> tuple[int, int, str | None, int]:
        stream = client(batch_daemon).chat.completions.create(
            model="batch",
            messages=[{"role": "user", "content": f"stream number {i}"}],
            max_tokens=24,
            stream=True,
            stream_options={"include_usage": True},
            extra_body={"ignore_eos": True},
        )
        pieces = 0
        finish = None
        usage = None
        for chunk in stream:
            if chunk.choices:
                if chunk.choices[0].delta.content:
                    pieces += 1
                finish = chunk.choices[0].finish_reason or finish
            if chunk.usage is not None:
                usage = chunk.usage
        assert usage is not None
        return usage.completion_tokens, usage.prompt_tokens, finish, pieces

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(8)))
    for completion, prompt, finish, pieces in results:
        assert completion == 24 and finish == "length"
        assert prompt > 0 and pieces > 0
    info = batch_daemon.model("batch")
    assert info["slots"] == 4
    wait_for(lambda: batch_daemon.model("batch")["prompt_cache"].get("steps", 0) > 0)
    stats = batch_daemon.model("batch")["prompt_cache"]
    # Sequences shared steps: more sequences than steps were decoded.
    assert stats["step_sequences"] > stats["steps"]
    wait_for(
        lambda: 'appliance_engine_steps_total{model="batch"}' in batch_daemon.get("/metrics").text
    )
    metrics = batch_daemon.get("/metrics").text
    assert 'appliance_slots{model="batch"} 4.0' in metrics
    assert 'appliance_prompt_cache_entries{model="batch"}' in metrics


def test_inspect_shows_how_the_model_is_served(batch_daemon: Daemon) -> None:
    data = batch_daemon.get("/admin/models/one/inspect").json()
    assert data["serving"] == {
        "context": 4096,
        "slots": 1,
        "max_queue": 1,
        "flash_attn": "auto",
        "kv_unified": False,
        "deterministic": False,
    }
    est = batch_daemon.get("/admin/models/batch/inspect").json()["estimate"]
    one_slot = kv_cache_bytes(read_gguf_info(Path(batch_daemon.model("batch")["source"])), 1024)
    assert (est["context"], est["slots"]) == (1024, 4)
    assert est["kv_cache_bytes"] == 4 * one_slot  # every slot holds a whole context
    # What `ps` counts beside the estimate: the saved prompt states' cap (prompt_cache_ram,
    # or twice the slots' KV for a model as small as this one).
    assert est["prompt_states_bytes"] == min(512 << 20, 2 * est["kv_cache_bytes"])
    assert est["prompt_states_bytes"] < 512 << 20


def test_logit_bias_and_seed_are_each_requests_own_in_a_shared_step(batch_daemon: Daemon) -> None:
    """Each sequence samples with its own chain: a bias forcing one token, another forcing a
    different one, and two requests with the same seed, all in flight at once."""
    kinds: dict[str, dict[str, Any]] = {
        "bias-a": {"logit_bias": {"300": 100}, "temperature": 0.7},
        "bias-b": {"logit_bias": {"301": 100}, "temperature": 0.7},
        "seed-1": {"seed": 11, "temperature": 1.5},
        "seed-2": {"seed": 11, "temperature": 1.5},
    }

    def one(kind: str) -> str:
        r = ask(batch_daemon, "batch", "the same question", max_tokens=16, **kinds[kind])
        return str(r.choices[0].message.content)

    alone = {kind: one(kind) for kind in ("bias-a", "bias-b", "seed-1")}
    assert alone["bias-a"] != alone["bias-b"]
    with ThreadPoolExecutor(4) as pool:
        together = dict(zip(kinds, pool.map(one, kinds), strict=True))
    assert together["bias-a"] == alone["bias-a"] and together["bias-b"] == alone["bias-b"]
    # Sampled at 1.5 in the same steps, the same seed gives the same text: each has its RNG.
    assert together["seed-1"] == together["seed-2"] == alone["seed-1"]


def test_grammar_holds_per_sequence_beside_free_text(batch_daemon: Daemon) -> None:
    schema = {
        "type": "object",
        "properties": {"n": {"type": "integer"}},
        "required": ["n"],
        "additionalProperties": False,
    }

    def constrained(i: int) -> str:
        r = ask(
            batch_daemon,
            "batch",
            f"json please {i}",
            max_tokens=60,
            temperature=0.8,
            seed=i,
            response_format={"type": "json_schema", "json_schema": {"name": "n", "schema": schema}},
        )
        return str(r.choices[0].message.content)

    def free(i: int) -> str:
        r = ask(batch_daemon, "batch", f"anything {i}", max_tokens=40, temperature=1.0, seed=i)
        return str(r.choices[0].message.content)

    with ThreadPoolExecutor(6) as pool:
        json_futures = [pool.submit(constrained, i) for i in range(3)]
        free_futures = [pool.submit(free, i) for i in range(3)]
        texts = [f.result() for f in json_futures]
        for f in free_futures:
            f.result()
    for text in texts:
        value = json.loads(text)
        assert set(value) == {"n"} and isinstance(value["n"], int)


def test_requests_past_the_queue_get_429_at_once(batch_daemon: Daemon) -> None:
    ask(batch_daemon, "one", "load", max_tokens=1)  # loaded: 1 slot, 1 queued at most
    body = {
        "model": "one",
        "messages": [{"role": "user", "content": "long"}],
        "max_tokens": 100000,
        "stream": True,
        "ignore_eos": True,
    }
    streams = []
    try:
        for _ in range(2):  # one running, one waiting
            cm = httpx.stream("POST", batch_daemon.v1 + "/chat/completions", json=body, timeout=60)
            r = cm.__enter__()
            assert r.status_code == 200
            streams.append(cm)
        started = time.monotonic()
        r3 = httpx.post(batch_daemon.v1 + "/chat/completions", json=body, timeout=30)
        assert time.monotonic() - started < 5
        assert r3.status_code == 429
        # About until a running request ends: this model's requests so far took < 1 s.
        assert r3.headers["Retry-After"] == "1"
        error = r3.json()["error"]
        assert error["code"] == "model_busy" and "busy" in error["message"]
        with pytest.raises(openai.RateLimitError):
            ask(batch_daemon, "one", "again", max_tokens=1)
        # The one waiting is visible: in the model's view (ps, the TUI) and the metrics.
        model = batch_daemon.model("one")
        assert (model["queue_depth"], model["slots_busy"], model["slots"]) == (1, 1, 1)

        def queued_in_metrics() -> str | None:  # sampled every few seconds
            text = batch_daemon.get("/metrics").text
            return text if 'appliance_queue_depth{model="one"} 1.0' in text else None

        assert 'appliance_slots_busy{model="one"} 1.0' in wait_for(queued_in_metrics, 15)
    finally:
        for cm in streams:
            cm.__exit__(None, None, None)
    wait_for(lambda: batch_daemon.model("one")["active_requests"] == 0, timeout=10)
    assert ask(batch_daemon, "one", "after", max_tokens=2).choices


# A freed slot serves the next request at once; the margin is for a loaded CI box.
FAST_S = 3.0


def _next_request_starts_fast(d: Daemon) -> float:
    wait_for(lambda: d.model("one")["active_requests"] == 0, timeout=10)
    started = time.monotonic()
    stream = client(d).chat.completions.create(
        model="one", messages=[{"role": "user", "content": "next"}], max_tokens=2, stream=True
    )
    next(iter(stream))
    ttft = time.monotonic() - started
    for _ in stream:
        pass
    return ttft


def test_disconnect_during_decode_frees_the_slot(batch_daemon: Daemon) -> None:
    ask(batch_daemon, "one", "load", max_tokens=1)
    body = {
        "model": "one",
        "messages": [{"role": "user", "content": "hello"}],
        "max_tokens": 100000,
        "stream": True,
        "ignore_eos": True,
    }
    with httpx.stream("POST", batch_daemon.v1 + "/chat/completions", json=body, timeout=60) as r:
        lines = r.iter_lines()
        for _ in range(5):
            next(lines)
    assert _next_request_starts_fast(batch_daemon) < FAST_S


def test_disconnect_of_a_non_streaming_request_frees_the_slot(batch_daemon: Daemon) -> None:
    ask(batch_daemon, "one", "load", max_tokens=1)
    body = {
        "model": "one",
        "messages": [{"role": "user", "content": "hello"}],
        "max_tokens": 100000,
        "ignore_eos": True,
    }
    try:
        r = httpx.post(batch_daemon.v1 + "/chat/completions", json=body, timeout=0.5)
    except httpx.ReadTimeout:
        pass  # the client gave up while its answer was being generated
    else:
        pytest.skip(f"the whole context was generated within 0.5 s here ({r.status_code})")
    assert _next_request_starts_fast(batch_daemon) < FAST_S


def test_disconnect_during_prefill_frees_the_slot(batch_daemon: Daemon) -> None:
    ask(batch_daemon, "one", "load", max_tokens=1)
    long_prompt = "the of and to in " * 550  # about 3850 tokens
    body = {
        "model": "one",
        "messages": [{"role": "user", "content": long_prompt}],
        "max_tokens": 100000,
        "stream": True,
        "ignore_eos": True,
    }
    with httpx.stream("POST", batch_daemon.v1 + "/chat/completions", json=body, timeout=60) as r:
        assert r.status_code == 200
        lines = r.iter_lines()
        first = next(lines)  # the role chunk: headers are out, the prompt is being read
        assert first.startswith("data:")
    ttft = _next_request_starts_fast(batch_daemon)
    assert ttft < FAST_S
    # The cancelled request's partial prompt is counted as read, not answered.
    assert batch_daemon.model("one")["active_requests"] == 0


@pytest.mark.parametrize("model", ["batch", "unified"])  # a KV stream per slot; one pool
def test_prefix_cache_hits_across_users(batch_daemon: Daemon, model: str) -> None:
    first = ask(batch_daemon, model, DOC + " question one?")
    assert first.usage.prompt_tokens_details.cached_tokens < first.usage.prompt_tokens // 2

    def other(i: int) -> None:
        ask(batch_daemon, model, f"another user, another topic {i} " * 5)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(other, range(4)))
    again = ask(batch_daemon, model, DOC + " question two?")
    cached = again.usage.prompt_tokens_details.cached_tokens
    # All but the new question and the template's end.
    assert cached >= again.usage.prompt_tokens - 24
    ratio = re.compile(rf'appliance_prompt_cache_hit_ratio\{{model="{model}"\}} ([0-9.e-]+)')
    found = wait_for(lambda: ratio.search(batch_daemon.get("/metrics").text))
    assert 0 < float(found.group(1)) < 1
    # The cache's size: tokens its entries hold in the KV (not mixed with bytes).
    kv = re.search(
        rf'appliance_prompt_cache_kv_tokens\{{model="{model}"\}} ([0-9.e+]+)',
        batch_daemon.get("/metrics").text,
    )
    assert kv is not None and float(kv.group(1)) > 0
    assert f'appliance_prompt_cache_bytes{{model="{model}",tier="kv_tokens"}}' not in (
        batch_daemon.get("/metrics").text
    )


def test_prefix_cache_survives_a_demote_promote_round_trip(batch_daemon: Daemon) -> None:
    doc = DOC.replace("says", "tells")
    ask(batch_daemon, "batch", doc + " before?")
    pid = batch_daemon.model("batch")["pid"]
    r = batch_daemon.post("/admin/models/batch/tier", json={"tier": "cold"})
    assert r.status_code == 200, r.text
    assert batch_daemon.model("batch")["tier"] == "cold"
    after = ask(batch_daemon, "batch", doc + " after?")
    assert batch_daemon.model("batch")["pid"] != pid
    assert after.usage.prompt_tokens_details.cached_tokens >= after.usage.prompt_tokens - 24
    # Another file never gets that state, even with the very same tokens.
    twin = ask(batch_daemon, "twin", doc + " after?")
    assert twin.usage.prompt_tokens_details.cached_tokens == 0


def test_a_model_set_deterministic_computes_every_request_as_if_alone(
    batch_daemon: Daemon,
) -> None:
    prompt = DOC + " always alone?"
    kw: dict[str, Any] = {"max_tokens": 24, "temperature": 0}

    def one(_: int) -> Any:
        return ask(batch_daemon, "always-alone", prompt, **kw)

    first = one(0)
    with ThreadPoolExecutor(3) as pool:  # sent together, they still run one at a time
        answers = list(pool.map(one, range(3)))
    for r in [first, *answers]:
        assert r.choices[0].message.content == first.choices[0].message.content
        details = r.usage.prompt_tokens_details
        assert details is None or not details.cached_tokens  # never read from the cache

    def counted() -> dict[str, Any] | None:  # the worker's counters come with its heartbeat
        stats = batch_daemon.model("always-alone")["prompt_cache"] or {}
        return stats if stats.get("step_sequences", 0) >= 4 * 23 else None

    stats = wait_for(counted, 10)
    assert stats["step_sequences"] == stats["steps"]  # no step held two requests


def test_deterministic_requests_repeat_alone_under_load_and_after_cache_hits(
    batch_daemon: Daemon,
) -> None:
    prompt = DOC + " deterministic?"
    kw: dict[str, Any] = {"max_tokens": 40, "temperature": 0, "extra_body": {"deterministic": True}}
    alone = ask(batch_daemon, "batch", prompt, **kw).choices[0].message.content
    ask(batch_daemon, "batch", prompt, max_tokens=4)  # now the prompt is cached
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            ask(batch_daemon, "batch", DOC + " noise", max_tokens=16, temperature=1.0)

    with ThreadPoolExecutor(3) as pool:
        noise = [pool.submit(load) for _ in range(2)]
        try:
            under_load = [
                ask(batch_daemon, "batch", prompt, **kw).choices[0].message.content
                for _ in range(3)
            ]
        finally:
            stop.set()
        for f in noise:
            f.result()
    assert under_load == [alone] * 3
    r = ask(batch_daemon, "batch", prompt, **kw)
    assert r.usage.prompt_tokens_details.cached_tokens == 0


def test_request_past_its_deadline_ends_with_a_clear_error(
    tmp_path: Path, models_dir: Path
) -> None:
    extra = f'[models.slow]\nsource = "{models_dir / "slow.gguf"}"\ncontext = 4096\n'
    catalog = write_catalog(tmp_path / "catalog.toml", models_dir, extra)
    d = start_daemon(tmp_path / "home", catalog, env={"APPLIANCE_REQUEST_TIMEOUT": "1s"})
    try:
        body = {
            "model": "slow",
            "messages": [{"role": "user", "content": "go on"}],
            "max_tokens": 100000,
            "ignore_eos": True,
        }
        d.post("/admin/models/slow/load").raise_for_status()
        # About 4 s of answer before the context ends it: the deadline comes first.
        started = time.monotonic()
        r = httpx.post(d.v1 + "/chat/completions", json=body, timeout=60)
        assert r.status_code == 504, r.text
        assert r.json()["error"]["code"] == "request_timeout"
        assert time.monotonic() - started < 10
        with httpx.stream(
            "POST", d.v1 + "/chat/completions", json={**body, "stream": True}, timeout=60
        ) as s:
            assert s.status_code == 200
            events = [line for line in s.iter_lines() if line.startswith("data:")]
        assert "request_timeout" in events[-1]
        wait_for(lambda: d.model("slow")["active_requests"] == 0, timeout=10)
    finally:
        d.stop()
