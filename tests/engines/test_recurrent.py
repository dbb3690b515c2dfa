"""A recurrent model (Mamba) through the real daemon and the official `openai` client.

Its state cannot be cut back to a prefix, so the engine gives it one slot, whatever
`parallel` asks, and never starts a request from a cached prefix: concurrent requests
are served one at a time, none lost, and the same prompt gives the same answer.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import openai
import pytest

from appliance.tiny_model import write_tiny_mamba_gguf
from tests.daemon import Daemon, start_daemon, wait_for

DOC = " ".join(f"line {i} of the shared document says the same thing again." for i in range(6))


@pytest.fixture(scope="module")
def mamba_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    home = tmp_path_factory.mktemp("recurrent")
    model = write_tiny_mamba_gguf(home / "mamba.gguf")
    catalog = home / "catalog.toml"
    catalog.write_text(f'''
[models.mamba]
source = "{model}"
context = 512
parallel = 4
keep_alive = "forever"
''')
    # Every state saved, were any offered (none is: a recurrent state is never cached).
    env = {"APPLIANCE_PROMPT_CACHE_MIN_SAVE": "0", "APPLIANCE_WEIGHT_REPACK": "false"}
    d = start_daemon(home, catalog, env=env)
    yield d
    d.stop()


def client(d: Daemon) -> openai.OpenAI:
    return openai.OpenAI(base_url=d.v1, api_key="x", max_retries=0, timeout=60)


def ask(d: Daemon, content: str, **kw: Any) -> Any:
    kw.setdefault("max_tokens", 8)
    kw.setdefault("temperature", 0)
    return client(d).chat.completions.create(
        model="mamba", messages=[{"role": "user", "content": content}], **kw
    )


def cache_stats(d: Daemon) -> dict[str, Any]:
    """The worker's last reported scheduler counters (sent with its heartbeat)."""
    stats: dict[str, Any] = d.model("mamba")["prompt_cache"] or {}
    return stats


def test_a_recurrent_model_gets_one_slot_and_says_why(mamba_daemon: Daemon) -> None:
    r = ask(mamba_daemon, "hello", max_tokens=4)
    assert r.choices[0].finish_reason in ("stop", "length")
    model = mamba_daemon.model("mamba")
    engine = model["engine"]
    assert engine["architecture"] == "mamba"
    assert engine["slots"] == 1 and engine["n_seq_max"] == 1
    assert "recurrent" in engine["slots_reason"] and "one slot" in engine["slots_reason"]
    assert model["slots"] == 1  # what `appliance ps` and the TUI show, not the 4 asked for
    events = mamba_daemon.get("/admin/events").json()["events"]
    [load] = [e for e in events if e["model"] == "mamba" and e["kind"] == "move"]
    assert engine["slots_reason"] in load["message"]  # said in the log and the events too
    wait_for(lambda: 'appliance_slots{model="mamba"}' in mamba_daemon.get("/metrics").text)
    assert 'appliance_slots{model="mamba"} 1.0' in mamba_daemon.get("/metrics").text


def test_concurrent_requests_are_served_one_at_a_time_and_none_is_lost(
    mamba_daemon: Daemon,
) -> None:
    ask(mamba_daemon, "load", max_tokens=1)
    before = wait_for(lambda: (s := cache_stats(mamba_daemon)).get("steps") and s)

    def one(i: int) -> Any:
        return ask(
            mamba_daemon,
            f"request number {i} " * (i + 1),
            max_tokens=32,
            temperature=0.8,
            seed=i,
            extra_body={"ignore_eos": True},
        )

    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(one, range(3)))
    for r in results:
        assert r.choices[0].finish_reason == "length"
        assert r.usage.prompt_tokens > 0
        assert r.usage.completion_tokens == 32
        assert r.choices[0].message.content
    # Each request's prompt length is its own: none was answered with another's.
    assert len({r.usage.prompt_tokens for r in results}) == 3

    # Every step ran one sequence: the requests took the one slot in turn.
    def counted() -> dict[str, Any] | None:
        stats = cache_stats(mamba_daemon)
        return stats if stats["step_sequences"] >= before["step_sequences"] + 3 * 32 else None

    stats = wait_for(counted)
    assert stats["steps"] - before["steps"] == stats["step_sequences"] - before["step_sequences"]
    assert stats["busy"] == 0 and stats["waiting"] == 0
    assert mamba_daemon.model("mamba")["active_requests"] == 0


def test_the_same_prompt_gives_the_same_text_and_nothing_is_reused(mamba_daemon: Daemon) -> None:
    prompt = DOC + " what does it say?"
    first = ask(mamba_daemon, prompt, max_tokens=24, extra_body={"ignore_eos": True})
    ask(mamba_daemon, "something else entirely", max_tokens=5)  # another state in between
    second = ask(mamba_daemon, prompt, max_tokens=24, extra_body={"ignore_eos": True})
    assert first.choices[0].message.content == second.choices[0].message.content
    assert first.usage.prompt_tokens == second.usage.prompt_tokens > 40
    for r in (first, second):
        details = r.usage.prompt_tokens_details
        assert details is None or not details.cached_tokens
    stats = cache_stats(mamba_daemon)
    assert stats["cache_entries"] == 0 and stats["cache_tokens"] == 0
    assert stats["cached_tokens"] == 0
    assert (stats.get("states") or {}).get("states", 0) == 0
    ratio = re.search(
        r'appliance_prompt_cache_hit_ratio\{model="mamba"\} ([0-9.e-]+)',
        mamba_daemon.get("/metrics").text,
    )
    assert ratio is None or float(ratio.group(1)) == 0
