"""CORS for browser front-ends (only the configured origins, preflights answered before
the API key), and the OpenAI routes without the /v1 prefix (llama-server and Ollama
scripts)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import write_catalog
from tests.daemon import Daemon, start_daemon

ALLOWED = "http://localhost:3000"
KEY = "sk-test-cors"


@pytest.fixture(scope="module")
def cors_daemon(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> Iterator[Daemon]:
    home = tmp_path_factory.mktemp("cors")
    d = start_daemon(
        home,
        write_catalog(home / "catalog.toml", models_dir),
        env={"APPLIANCE_CORS_ORIGINS": ALLOWED},
        api_key=KEY,
    )
    yield d
    d.stop()


def preflight(d: Daemon, origin: str) -> httpx.Response:
    return httpx.options(
        d.v1 + "/chat/completions",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
        timeout=30,
    )


def test_preflight_from_an_allowed_origin_needs_no_key(cors_daemon: Daemon) -> None:
    r = preflight(cors_daemon, ALLOWED)
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == ALLOWED
    assert "POST" in r.headers["access-control-allow-methods"]
    assert "authorization" in r.headers["access-control-allow-headers"].lower()


def test_preflight_with_the_sdks_own_headers_is_allowed(cors_daemon: Daemon) -> None:
    """openai-node and the anthropic SDK send x-stainless-* (and anthropic-*) headers on
    every request: a browser app built on them must pass its preflight."""
    sdk_headers = (
        "authorization,content-type,x-stainless-os,x-stainless-lang,x-stainless-retry-count,"
        "anthropic-version,anthropic-dangerous-direct-browser-access"
    )
    for path in ("/chat/completions", "/messages"):
        r = httpx.options(
            cors_daemon.v1 + path,
            headers={
                "Origin": ALLOWED,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": sdk_headers,
            },
            timeout=30,
        )
        assert r.status_code == 200, (path, r.text)
        allowed = r.headers["access-control-allow-headers"].lower()
        assert "x-stainless-retry-count" in allowed and "anthropic-version" in allowed


def test_preflight_from_another_origin_is_refused(cors_daemon: Daemon) -> None:
    r = preflight(cors_daemon, "http://evil.example")
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "origin_not_allowed"
    assert not [h for h in r.headers if h.lower().startswith("access-control-")]


def test_a_browser_request_gets_cors_headers_and_still_needs_the_key(cors_daemon: Daemon) -> None:
    body = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    r = httpx.post(
        cors_daemon.v1 + "/chat/completions",
        json=body,
        headers={"Origin": ALLOWED, "Authorization": f"Bearer {KEY}"},
        timeout=60,
    )
    assert r.status_code == 200, r.text
    assert r.headers["access-control-allow-origin"] == ALLOWED
    assert "retry-after-ms" in r.headers["access-control-expose-headers"].lower()
    r = httpx.post(cors_daemon.v1 + "/chat/completions", json=body, headers={"Origin": ALLOWED})
    assert r.status_code == 401
    other = httpx.post(
        cors_daemon.v1 + "/chat/completions",
        json=body,
        headers={"Origin": "http://evil.example", "Authorization": f"Bearer {KEY}"},
        timeout=60,
    )
    assert "access-control-allow-origin" not in other.headers


def test_openai_routes_answer_without_the_v1_prefix(cors_daemon: Daemon) -> None:
    auth = {"Authorization": f"Bearer {KEY}"}
    body = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    r = httpx.post(cors_daemon.url + "/chat/completions", json=body, headers=auth, timeout=60)
    assert r.status_code == 200, r.text
    assert r.json()["object"] == "chat.completion"
    models = httpx.get(cors_daemon.url + "/models", headers=auth, timeout=30)
    assert models.status_code == 200 and models.json()["object"] == "list"
