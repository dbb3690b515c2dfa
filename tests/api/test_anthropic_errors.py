"""Errors on the Anthropic Messages API come in Anthropic's shape,
``{"type": "error", "error": {"type", "message"}}``, with the type its status stands
for: the routes' own, the shared middleware's (API keys, body limit, queue) and a
stream's error event, read raw and by the official `anthropic` client. The OpenAI
routes of the same daemon keep the OpenAI shape."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from appliance.api.errors import APIError, error_response
from tests.conftest import write_catalog
from tests.daemon import Daemon, start_daemon

anthropic = pytest.importorskip("anthropic", reason="the anthropic SDK (dev extra)")

KEY = "anthropic-errors-key"
HELLO = [{"role": "user", "content": "hello"}]


EXTRA_ONE = """
[models.one]
source = "{slow}"
context = 4096
parallel = 1
max_queue = 0
"""


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> Iterator[Daemon]:
    """A daemon with an API key, a small body limit, a short request timeout, and `one`:
    a slow model with one slot and no queue (a second request gets 429)."""
    home = tmp_path_factory.mktemp("anthropic-errors")
    extra = EXTRA_ONE.format(slow=models_dir / "endless.gguf")
    env = {"APPLIANCE_MAX_BODY_BYTES": "65536", "APPLIANCE_REQUEST_TIMEOUT": "1s"}
    d = start_daemon(home, write_catalog(home / "catalog.toml", models_dir, extra), env, KEY)
    yield d
    d.stop()


@pytest.fixture(scope="module")
def queueless(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> Iterator[Daemon]:
    """`one` as in `keyed`, without its 1 s request timeout: the answer holding the slot
    must outlast the requests turned away (on a busy box they can take a second)."""
    home = tmp_path_factory.mktemp("anthropic-queue")
    extra = EXTRA_ONE.format(slow=models_dir / "slow.gguf")
    d = start_daemon(home, write_catalog(home / "catalog.toml", models_dir, extra), None, KEY)
    yield d
    d.stop()


def post(d: Daemon, path: str, body: Any, key: str = KEY, **kw: Any) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"x-api-key": key, "content-type": "application/json", "anthropic-version": "1"}
    return httpx.post(d.url + path, content=content, headers=headers, timeout=60, **kw)


def anthropic_error(r: httpx.Response, status: int, kind: str) -> str:
    """The message of an error in Anthropic's shape, with that status and type."""
    assert r.status_code == status, r.text
    body = r.json()
    assert body["type"] == "error" and set(body) == {"type", "error"}, body
    assert set(body["error"]) == {"type", "message"} and body["error"]["type"] == kind, body
    assert body["error"]["message"]
    return str(body["error"]["message"])


def client(d: Daemon, key: str = KEY) -> Any:
    return anthropic.Anthropic(base_url=d.url, api_key=key, max_retries=0, timeout=60)


def test_request_errors_in_anthropic_shape(keyed: Daemon) -> None:
    body: dict[str, Any] = {"model": "tiny", "messages": HELLO}
    message = anthropic_error(post(keyed, "/v1/messages", body), 400, "invalid_request_error")
    assert message == "'max_tokens' is required"
    body["max_tokens"] = 4
    bad_json = post(keyed, "/v1/messages", b'{"model": "tiny",')
    assert "JSON" in anthropic_error(bad_json, 400, "invalid_request_error")
    huge = {**body, "system": "x" * 70_000}
    assert "limit" in anthropic_error(post(keyed, "/v1/messages", huge), 413, "request_too_large")
    server_tool = {**body, "tools": [{"type": "web_search_20250305", "name": "web_search"}]}
    message = anthropic_error(
        post(keyed, "/v1/messages", server_tool), 400, "invalid_request_error"
    )
    assert "web_search_20250305" in message and "custom tools" in message
    unknown = {**body, "model": "no-such-model"}
    anthropic_error(post(keyed, "/v1/messages", unknown), 404, "not_found_error")
    anthropic_error(post(keyed, "/v1/messages/count_tokens", unknown), 404, "not_found_error")
    r = httpx.get(keyed.url + "/v1/messages", headers={"x-api-key": KEY}, timeout=60)
    anthropic_error(r, 405, "invalid_request_error")
    # The routes without /v1, and the middleware's refusal of a wrong key.
    for path in ("/v1/messages", "/messages", "/v1/messages/count_tokens"):
        anthropic_error(post(keyed, path, body, key="wrong"), 401, "authentication_error")
    assert post(keyed, "/messages", body).status_code == 200

    # The OpenAI routes are unchanged.
    chat = {"model": "tiny", "messages": HELLO, "max_tokens": 4}
    for r in (
        post(keyed, "/v1/chat/completions", chat, key="wrong"),
        post(keyed, "/v1/chat/completions", b'{"model": "tiny",'),
        post(keyed, "/v1/chat/completions", {**chat, "model": "no-such-model"}),
    ):
        assert set(r.json()["error"]) == {"message", "type", "param", "code"}, r.text


def test_models_errors_in_anthropic_shape_when_asked_for(keyed: Daemon) -> None:
    """The models routes answer a request naming `anthropic-version` in Anthropic's shape,
    its errors too (the middleware's included); without it, OpenAI's."""
    anthropic_headers = {"x-api-key": KEY, "anthropic-version": "2023-06-01"}

    def get(path: str, headers: dict[str, str], **params: str) -> httpx.Response:
        return httpx.get(keyed.url + path, headers=headers, params=params, timeout=60)

    bad = get("/v1/models", anthropic_headers, limit="0")
    assert "limit" in anthropic_error(bad, 400, "invalid_request_error")
    anthropic_error(
        get("/v1/models", anthropic_headers, limit="1001"), 400, "invalid_request_error"
    )
    both = get("/v1/models", anthropic_headers, after_id="tiny", before_id="tiny")
    assert "not both" in anthropic_error(both, 400, "invalid_request_error")
    nowhere = get("/v1/models", anthropic_headers, after_id="no-such-model")
    assert "no-such-model" in anthropic_error(nowhere, 400, "invalid_request_error")
    lifecycle = get("/v1/models", anthropic_headers, **{"lifecycle[]": "forever"})
    anthropic_error(lifecycle, 400, "invalid_request_error")
    for path in ("/v1/models/no-such-model", "/models/no-such-model"):
        anthropic_error(get(path, anthropic_headers), 404, "not_found_error")
    wrong = {**anthropic_headers, "x-api-key": "wrong"}
    anthropic_error(get("/v1/models", wrong), 401, "authentication_error")
    assert get("/models", anthropic_headers).json()["data"][0]["type"] == "model"
    with pytest.raises(anthropic.AuthenticationError):
        client(keyed, key="wrong").models.list()
    # Without the header: OpenAI's shape, its errors too.
    openai_headers = {"Authorization": f"Bearer {KEY}"}
    r = get("/v1/models/no-such-model", openai_headers)
    assert r.status_code == 404 and set(r.json()["error"]) == {"message", "type", "param", "code"}
    r = get("/v1/models", {"Authorization": "Bearer wrong"})
    assert r.status_code == 401 and set(r.json()["error"]) == {"message", "type", "param", "code"}
    assert get("/v1/models", openai_headers, limit="0").json()["object"] == "list"


def test_the_sdk_raises_its_error_classes_with_the_body(keyed: Daemon) -> None:
    kw: dict[str, Any] = {"model": "tiny", "max_tokens": 4, "messages": HELLO}
    with pytest.raises(anthropic.NotFoundError) as not_found:
        client(keyed).messages.create(**{**kw, "model": "no-such-model"})
    assert not_found.value.body["type"] == "error"
    assert not_found.value.body["error"]["type"] == "not_found_error"
    assert "no-such-model" in not_found.value.body["error"]["message"]
    with pytest.raises(anthropic.AuthenticationError) as denied:
        client(keyed, key="wrong").messages.create(**kw)
    assert denied.value.body["error"]["type"] == "authentication_error"
    with pytest.raises(anthropic.BadRequestError) as bad:
        client(keyed).messages.count_tokens(
            model="tiny", messages=[{"role": "tool", "content": "x"}]
        )
    assert bad.value.body["error"] == {
        "type": "invalid_request_error",
        "message": "'messages[0].role' must be 'user', 'assistant' or 'system'",
    }


def test_a_full_queue_is_a_rate_limit_error_with_retry_after(queueless: Daemon) -> None:
    busy = {
        "model": "one",
        "messages": HELLO,
        "max_tokens": 100000,
        "ignore_eos": True,
        "stream": True,
    }
    post(queueless, "/v1/messages", {"model": "one", "max_tokens": 1, "messages": HELLO})  # loaded
    headers = {"authorization": f"Bearer {KEY}"}
    with httpx.stream(
        "POST", queueless.v1 + "/chat/completions", json=busy, headers=headers, timeout=60
    ) as running:
        assert running.status_code == 200
        body = {"model": "one", "max_tokens": 4, "messages": HELLO}
        r = post(queueless, "/v1/messages", body)
        assert "busy" in anthropic_error(r, 429, "rate_limit_error")
        assert r.headers["retry-after"].isdigit()
        with pytest.raises(anthropic.RateLimitError) as limited:
            client(queueless).messages.create(**body)
        assert limited.value.body["error"]["type"] == "rate_limit_error"


def test_an_error_after_the_stream_started_is_an_error_event(keyed: Daemon) -> None:
    """The request timeout (1 s here) ends a long answer under way: Anthropic's `error`
    event, which the SDK raises. (`one` is the endless model: a greedy answer never ends,
    and the Messages API has no ignore_eos.)"""
    story = [{"role": "user", "content": "Write a long story."}]
    body = {"model": "one", "max_tokens": 100000, "messages": story, "temperature": 0}
    events: list[tuple[str, dict[str, Any]]] = []
    name = ""
    with httpx.stream(
        "POST",
        keyed.url + "/v1/messages",
        json={**body, "stream": True},
        headers={"x-api-key": KEY},
        timeout=60,
    ) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                events.append((name, json.loads(line[6:])))
    assert events[0][0] == "message_start"
    assert events[-1][0] == "error", events[-1]
    error = events[-1][1]
    assert error["type"] == "error" and error["error"]["type"] == "timeout_error"
    assert "request_timeout" in error["error"]["message"]

    del body["temperature"]  # this SDK has no temperature argument
    with (
        pytest.raises(anthropic.APIStatusError) as raised,
        client(keyed).messages.stream(**body, extra_body={"temperature": 0}) as stream,
    ):
        for _ in stream.text_stream:
            pass
    assert raised.value.body["error"]["type"] == "timeout_error"


def test_the_error_response_picks_the_shape_by_path() -> None:
    """The headers survive the Anthropic body (Retry-After, x-should-retry set after the
    response was made, a Content-Length that matches)."""
    err = APIError(429, "busy", "rate_limit_error", None, "model_busy", retry_after=2.2)

    def sent(path: str) -> Any:
        messages: list[Any] = []

        async def send(message: Any) -> None:
            messages.append(message)

        async def receive() -> Any:
            return {"type": "http.request"}

        response = error_response(err)
        response.headers["x-should-retry"] = "false"
        asyncio.run(response({"type": "http", "path": path}, receive, send))
        headers = {k.decode(): v.decode() for k, v in messages[0]["headers"]}
        body = messages[1]["body"]
        assert headers["content-length"] == str(len(body))
        assert (headers["retry-after"], headers["x-should-retry"]) == ("3", "false")
        return json.loads(body)

    anthropic_body = {"type": "error", "error": {"type": "rate_limit_error", "message": "busy"}}
    assert sent("/v1/messages/count_tokens") == sent("/messages") == anthropic_body
    assert sent("/v1/chat/completions") == sent("/v1/messagesx") == err.to_body()
