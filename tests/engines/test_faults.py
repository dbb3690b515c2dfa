"""Faults: a killed or hung worker, a client that leaves, a killed daemon, idle unload."""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.conftest import write_catalog
from tests.daemon import Daemon, pid_alive, start_daemon, wait_for

USER = [{"role": "user", "content": "hello"}]


@pytest.fixture(scope="module")
def fault_daemon(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> Iterator[Daemon]:
    home = tmp_path_factory.mktemp("faults")
    extra = f'''
[models.brief]
source = "{models_dir / "tiny.gguf"}"
keep_alive = "1s"

[models.always]
source = "{models_dir / "tiny.gguf"}"
keep_alive = "forever"

[models.slow]
source = "{models_dir / "slow.gguf"}"
context = 4096

[models.single]
source = "{models_dir / "slow.gguf"}"
context = 4096
parallel = 1
'''
    catalog = write_catalog(home / "catalog.toml", models_dir, extra)
    d = start_daemon(
        home, catalog, env={"APPLIANCE_HEARTBEAT_TIMEOUT": "3", "APPLIANCE_RESTART_BACKOFF": "1s"}
    )
    yield d
    d.stop()


def client(d: Daemon) -> openai.OpenAI:
    return openai.OpenAI(base_url=d.v1, api_key="x", max_retries=0, timeout=120)


def loaded_pid(d: Daemon, name: str = "slow") -> int:
    client(d).chat.completions.create(model=name, messages=USER, max_tokens=1)
    pid = d.model(name)["pid"]
    assert isinstance(pid, int)
    return pid


def long_stream(d: Daemon) -> openai.Stream:  # type: ignore[type-arg]
    return client(d).chat.completions.create(
        model="slow", messages=USER, max_tokens=100000, stream=True, extra_body={"ignore_eos": True}
    )


def test_killed_worker_fails_its_stream_then_restarts(fault_daemon: Daemon) -> None:
    pid = loaded_pid(fault_daemon)
    stream = long_stream(fault_daemon)
    next(iter(stream))
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(openai.APIError, match="killed by SIGKILL"):
        for _ in stream:
            pass
    wait_for(lambda: fault_daemon.model("slow")["state"] == "failed")
    events = fault_daemon.get("/admin/events").json()["events"]
    assert any(e["kind"] == "crash" and e["model"] == "slow" for e in events)
    # Served again on the next request, by a new worker.
    r = client(fault_daemon).chat.completions.create(model="slow", messages=USER, max_tokens=2)
    assert r.choices
    assert fault_daemon.model("slow")["pid"] not in (None, pid)


def test_requests_queued_in_a_crashed_worker_are_answered_by_its_restart(
    fault_daemon: Daemon,
) -> None:
    """A crash fails the request that was running; the ones waiting behind it had not run,
    so they are sent again to the restarted worker and answered, not failed."""
    d = fault_daemon
    pid = loaded_pid(d, "single")
    running = client(d).chat.completions.create(
        model="single",
        messages=USER,
        max_tokens=100000,
        stream=True,
        extra_body={"ignore_eos": True},
    )
    next(iter(running))
    results: dict[str, object] = {}

    def ask(key: str, stream: bool) -> None:
        try:
            if stream:
                chunks = client(d).chat.completions.create(
                    model="single", messages=USER, max_tokens=4, stream=True
                )
                results[key] = [c.choices[0].finish_reason for c in chunks if c.choices]
            else:
                answer = client(d).chat.completions.create(
                    model="single", messages=USER, max_tokens=4
                )
                results[key] = answer.usage
        except Exception as exc:  # the assertions below say which failed
            results[key] = exc

    waiting = [threading.Thread(target=ask, args=(k, k == "stream")) for k in ("whole", "stream")]
    for t in waiting:
        t.start()
    wait_for(lambda: d.model("single")["active_requests"] == 3)
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(openai.APIError, match="killed by SIGKILL"):
        for _ in running:
            pass
    for t in waiting:
        t.join(120)
    usage = results["whole"]
    assert isinstance(usage, openai.types.CompletionUsage), usage
    assert usage.completion_tokens == 4 and usage.prompt_tokens > 0
    finishes = results["stream"]
    assert isinstance(finishes, list) and finishes[-1] == "length", finishes
    assert d.model("single")["pid"] not in (None, pid)
    assert "sent again" in d.log()


def test_a_model_pinned_hot_comes_back_up_after_its_worker_is_killed(
    fault_daemon: Daemon,
) -> None:
    """A pin keeps the model loaded: after a crash it is started again at once (backing off
    when it keeps failing), not left failed until a request comes."""
    d = fault_daemon
    d.post("/admin/models/always/pin", json={"tier": "hot"}).raise_for_status()
    try:
        pid = loaded_pid(d, "always")
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: d.model("always")["pid"] not in (None, pid), timeout=30)
        assert d.model("always")["state"] == "ready" and d.model("always")["tier"] == "hot"
        events = d.get("/admin/events").json()["events"]
        crash = [e for e in events if e["model"] == "always" and e["kind"] == "crash"][-1]
        assert "restarts as it is pinned hot now" in crash["message"], crash
    finally:
        httpx.delete(d.url + "/admin/models/always/pin", timeout=30).raise_for_status()


def test_other_models_keep_serving_while_one_crashes(fault_daemon: Daemon) -> None:
    loaded_pid(fault_daemon, "think")
    pid = loaded_pid(fault_daemon)
    os.kill(pid, signal.SIGKILL)
    r = client(fault_daemon).chat.completions.create(model="think", messages=USER, max_tokens=2)
    assert r.choices


def test_hung_worker_is_killed_after_heartbeat_timeout(fault_daemon: Daemon) -> None:
    pid = loaded_pid(fault_daemon)
    stream = long_stream(fault_daemon)
    next(iter(stream))
    os.kill(pid, signal.SIGSTOP)
    started = time.monotonic()
    with pytest.raises(openai.APIError, match="stopped answering"):
        for _ in stream:
            pass
    assert time.monotonic() - started < 20
    wait_for(lambda: not pid_alive(pid))
    r = client(fault_daemon).chat.completions.create(model="slow", messages=USER, max_tokens=2)
    assert r.choices


def test_client_disconnect_cancels_generation(fault_daemon: Daemon) -> None:
    loaded_pid(fault_daemon)
    body = {
        "model": "slow",
        "messages": USER,
        "max_tokens": 100000,
        "stream": True,
        "ignore_eos": True,
    }
    with httpx.stream("POST", fault_daemon.v1 + "/chat/completions", json=body, timeout=60) as r:
        lines = r.iter_lines()
        for _ in range(5):
            next(lines)
    # The worker stops generating (the rest of the answer would take it seconds): its one
    # slot is free again and a new request is served at once.
    wait_for(lambda: fault_daemon.model("slow")["active_requests"] == 0, timeout=10)
    started = time.monotonic()
    r2 = client(fault_daemon).chat.completions.create(model="slow", messages=USER, max_tokens=2)
    assert r2.choices and time.monotonic() - started < 1.5


def test_idle_model_unloads_after_keep_alive(fault_daemon: Daemon) -> None:
    pid = loaded_pid(fault_daemon, "brief")
    wait_for(lambda: fault_daemon.model("brief")["state"] == "unloaded", timeout=15)
    wait_for(lambda: not pid_alive(pid), timeout=10)
    assert fault_daemon.model("brief")["tier"] == "warm"  # the worker is gone, the pages stay
    events = fault_daemon.get("/admin/events").json()["events"]
    assert any(
        e["kind"] == "move"
        and e["model"] == "brief"
        and e["data"]["src"] == "hot"
        and e["data"]["dst"] == "warm"
        and re.search(r"idle \d+s", e["message"])  # the idle time it had (keep-alive is 1s)
        for e in events
    )


def test_admin_load_and_unload(fault_daemon: Daemon) -> None:
    r = fault_daemon.post("/admin/models/think/load")
    assert r.status_code == 200 and r.json()["state"] == "ready"
    pid = r.json()["pid"]
    r = fault_daemon.post("/admin/models/think/unload")
    assert r.json()["unloaded"] is True and r.json()["state"] == "unloaded"
    wait_for(lambda: not pid_alive(pid))


def test_unloading_a_busy_model_is_a_409_naming_the_model(fault_daemon: Daemon) -> None:
    """The unload names no tier (the path names the model): its 409 said param "tier"."""
    loaded_pid(fault_daemon)
    stream = long_stream(fault_daemon)
    try:
        next(iter(stream))
        r = fault_daemon.post("/admin/models/slow/unload")
        assert r.status_code == 409, r.text
        error = r.json()["error"]
        assert (error["code"], error["param"]) == ("busy", "model"), error
        assert "serving 1 request(s)" in error["message"]
        # A tier asked for in the body is still what a move's refusal names.
        r = fault_daemon.post("/admin/models/slow/tier", json={"tier": "cold"})
        assert r.status_code == 409 and r.json()["error"]["param"] == "tier", r.text
    finally:
        stream.close()
    wait_for(lambda: fault_daemon.model("slow")["active_requests"] == 0)
    r = fault_daemon.post("/admin/models/slow/unload")
    assert r.status_code == 200 and r.json()["unloaded"] is True, r.text


def test_killing_the_daemon_leaves_no_orphan_worker(tmp_path: Path, models_dir: Path) -> None:
    d = start_daemon(tmp_path / "home", write_catalog(tmp_path / "c.toml", models_dir))
    try:
        pid = loaded_pid(d, "tiny")
        d.proc.kill()
        d.proc.wait()
        wait_for(lambda: not pid_alive(pid), timeout=10)
    finally:
        d.stop()


def test_api_keys_required_when_set(tmp_path: Path, models_dir: Path) -> None:
    d = start_daemon(
        tmp_path / "home", write_catalog(tmp_path / "c.toml", models_dir), api_key="sekret"
    )
    try:
        r = httpx.get(d.v1 + "/models", timeout=30)
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
        r = httpx.get(d.v1 + "/models", headers={"Authorization": "Bearer wrong"}, timeout=30)
        assert r.status_code == 401
        assert httpx.get(d.url + "/health", timeout=30).status_code == 200
        ok = openai.OpenAI(base_url=d.v1, api_key="sekret", max_retries=0)
        assert ok.chat.completions.create(model="tiny", messages=USER, max_tokens=1).choices
    finally:
        d.stop()


def test_concurrent_requests_share_one_load_and_all_finish(fault_daemon: Daemon) -> None:
    from concurrent.futures import ThreadPoolExecutor

    fault_daemon.post("/admin/models/think/unload")
    before = len(
        [
            e
            for e in fault_daemon.get("/admin/events").json()["events"]
            if e["model"] == "think" and e["kind"] == "move" and e["data"]["dst"] == "hot"
        ]
    )

    def one(_: int) -> int:
        r = client(fault_daemon).chat.completions.create(
            model="think", messages=USER, max_tokens=6, extra_body={"ignore_eos": True}
        )
        assert r.usage is not None
        return r.usage.completion_tokens

    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(one, range(4))) == [6, 6, 6, 6]
    loads = [
        e
        for e in fault_daemon.get("/admin/events").json()["events"]
        if e["model"] == "think" and e["kind"] == "move" and e["data"]["dst"] == "hot"
    ]
    assert len(loads) == before + 1


def test_keep_alive_forever_is_listed_and_kept(fault_daemon: Daemon) -> None:
    loaded_pid(fault_daemon, "always")
    assert fault_daemon.model("always")["keep_alive_s"] is None
    assert fault_daemon.get("/admin/models").status_code == 200
    time.sleep(2.5)
    assert fault_daemon.model("always")["state"] == "ready"


def test_sigterm_with_open_event_streams_stops_promptly(tmp_path: Path, models_dir: Path) -> None:
    d = start_daemon(tmp_path / "home", write_catalog(tmp_path / "c.toml", models_dir))
    try:
        with (
            httpx.stream("GET", d.url + "/admin/events/stream", timeout=30) as events,
            httpx.stream("GET", d.url + "/admin/telemetry/stream", timeout=30) as samples,
        ):
            next(events.iter_lines())
            next(samples.iter_lines())
            started = time.monotonic()
            d.proc.send_signal(signal.SIGTERM)
            d.proc.wait(15)
        assert time.monotonic() - started < 5
    finally:
        d.stop()
