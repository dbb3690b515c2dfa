"""A stream waiting behind others (or reading a long prompt) sends SSE comment lines, as
llama-server does, so that clients and proxies that give up on a silent body (undici's
300 s) keep it; the SDKs read the answer around them."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx
import openai
import pytest

from tests.daemon import Daemon, start_daemon, wait_for

USER = [{"role": "user", "content": "hello"}]


@pytest.fixture(scope="module")
def one_slot(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> Iterator[Daemon]:
    home = tmp_path_factory.mktemp("pings")
    catalog = home / "catalog.toml"
    catalog.write_text(
        f'[models.single]\nsource = "{models_dir / "slow.gguf"}"\ncontext = 4096\n'
        'parallel = 1\nkeep_alive = "forever"\n'
    )
    d = start_daemon(home, catalog, env={"APPLIANCE_SSE_PING_INTERVAL": "0.1s"})
    yield d
    d.stop()


def hold_the_slot(d: Daemon) -> threading.Thread:
    """A long answer that keeps the one slot busy for a second or more (1000 tokens took
    a quarter of a second on a quiet moment of this box: too few pings for the test)."""

    def run() -> None:
        body = {"model": "single", "prompt": "x", "max_tokens": 4000, "ignore_eos": True}
        httpx.post(d.v1 + "/completions", json=body, timeout=120).raise_for_status()

    thread = threading.Thread(target=run)
    thread.start()
    wait_for(lambda: d.model("single")["slots_busy"] == 1)
    return thread


def test_a_queued_stream_pings_and_the_sdks_read_around_the_pings(one_slot: Daemon) -> None:
    d = one_slot
    openai.OpenAI(base_url=d.v1, api_key="x").completions.create(
        model="single", prompt="x", max_tokens=1
    )
    holder = hold_the_slot(d)
    body = {"model": "single", "messages": USER, "max_tokens": 3, "stream": True}
    with httpx.stream("POST", d.v1 + "/chat/completions", json=body, timeout=120) as r:
        raw = r.read().decode()
    holder.join()
    first_token = raw.index('"content":"', raw.index('"content":""') + 1)
    assert raw[:first_token].count(":\n\n") >= 3, raw[:first_token]
    assert raw.rstrip().endswith("data: [DONE]")

    holder = hold_the_slot(d)
    chunks = openai.OpenAI(base_url=d.v1, api_key="x", max_retries=0).chat.completions.create(
        model="single", messages=USER, max_tokens=3, stream=True
    )
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    holder.join()
    assert finishes[-1] == "length"

    holder = hold_the_slot(d)
    client = anthropic.Anthropic(base_url=d.url, api_key="x", max_retries=0)
    with client.messages.stream(model="single", max_tokens=3, messages=USER) as stream:
        message = stream.get_final_message()
    holder.join()
    assert message.stop_reason == "max_tokens" and message.usage.output_tokens == 3

    holder = hold_the_slot(d)
    native = {"prompt": "x", "n_predict": 3, "stream": True, "model": "single"}
    with httpx.stream("POST", d.url + "/completion", json=native, timeout=120) as r:
        raw = r.read().decode()
    holder.join()
    assert raw.startswith(":\n\n") and '"stop":true' in raw
