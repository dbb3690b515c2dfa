"""Bad input over raw HTTP: every error in the OpenAI shape with the right status."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.daemon import Daemon

JSON = {"Content-Type": "application/json"}
USER = [{"role": "user", "content": "hi"}]


def post_raw(
    daemon: Daemon, path: str, content: bytes, headers: dict[str, str] | None = None
) -> httpx.Response:
    return httpx.post(
        daemon.url + path,
        content=content,
        timeout=60,
        headers={"Content-Type": "application/json", **(headers or {})},
    )


def assert_error(
    r: httpx.Response, status: int, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert err["message"]
    if param is not None:
        assert err["param"] == param
    if code is not None:
        assert err["code"] == code
    return dict(err)


def test_malformed_json(daemon: Daemon) -> None:
    err = assert_error(post_raw(daemon, "/v1/chat/completions", b'{"model": "tiny",'), 400)
    assert "JSON" in err["message"]


def test_json_python_cannot_hold_is_a_400_and_the_connection_stays_open(daemon: Daemon) -> None:
    """A 5000-digit number and 100k nested brackets raised past the JSON check (500),
    and the 500 closed the client's keep-alive connection under its next request."""
    with httpx.Client(base_url=daemon.url, timeout=60) as http:
        for body in (
            b'{"model": "tiny", "max_tokens": ' + b"9" * 5000 + b"}",
            b"[" * 100_000,
        ):
            r = http.post("/v1/chat/completions", content=body, headers=JSON)
            message = assert_error(r, 400)["message"]
            assert "too long" in message or "nested too deeply" in message, message
            assert "sys." not in message and "recursion" not in message  # no Python internals
        r = http.post("/admin/import", content=b'{"path": "/tmp/x.gguf\\u0000x"}', headers=JSON)
        assert "NUL" in assert_error(r, 400, "path")["message"]
        r = http.post(
            "/v1/chat/completions", json={"model": "tiny", "messages": USER, "max_tokens": 1}
        )
        assert r.status_code == 200, r.text


def test_a_lone_surrogate_becomes_a_replacement_character(daemon: Daemon) -> None:
    """A JavaScript client that cut an emoji in two sends a lone surrogate escape: it
    failed as a 500 (not encodable as UTF-8) in the prompt, a stop string and the model
    name; it reads as U+FFFD, as a browser's encoder writes it."""
    body = (
        b'{"model": "tiny", "max_tokens": 2, "stop": ["\\udc00"], '
        b'"messages": [{"role": "user", "content": "a\\ud83d b \\ud83d\\ude00"}]}'
    )
    r = post_raw(daemon, "/v1/chat/completions", body)
    assert r.status_code == 200, r.text
    r = post_raw(daemon, "/v1/completions", b'{"model": "tiny\\ud800", "prompt": "x"}')
    assert "tiny\ufffd" in assert_error(r, 404)["message"]


def test_empty_body_and_non_object(daemon: Daemon) -> None:
    assert_error(post_raw(daemon, "/v1/chat/completions", b""), 400)
    assert_error(post_raw(daemon, "/v1/chat/completions", b"[1, 2]"), 400)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_tokens", -5),
        ("max_tokens", 10**12),
        ("max_tokens", 1.5),
        ("max_tokens", True),
        ("temperature", -1),
        ("temperature", 99),
        ("top_p", -0.5),
        ("n", 9),
        ("stop", ["x"] * 65),
        ("logit_bias", {"abc": 1}),
        ("seed", 2**70),
        ("messages", []),
        # Asked of a model that cannot give it: refused, not answered with text alone.
        ("modalities", ["text", "audio"]),
        ("audio", {"voice": "alloy", "format": "wav"}),
        ("web_search_options", {}),
    ],
)
def test_absurd_parameters_name_the_parameter(daemon: Daemon, field: str, value: Any) -> None:
    body: dict[str, Any] = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}]}
    body[field] = value
    r = httpx.post(daemon.v1 + "/chat/completions", json=body, timeout=60)
    err = assert_error(r, 400)
    assert field in (err["param"] or "")


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity"])
def test_non_finite_temperature_refused(daemon: Daemon, literal: bytes) -> None:
    body = (
        b'{"model": "tiny", "messages": [{"role": "user", "content": "hi"}], '
        b'"temperature": ' + literal + b"}"
    )
    assert_error(post_raw(daemon, "/v1/chat/completions", body), 400, "temperature")


def test_body_over_limit_is_413(daemon: Daemon) -> None:
    big = b'{"model": "tiny", "prompt": "' + b"a" * (9 * 1024 * 1024) + b'"}'
    assert_error(post_raw(daemon, "/v1/completions", big), 413)


def test_unknown_model_404_and_unknown_route_404(daemon: Daemon) -> None:
    r = httpx.post(daemon.v1 + "/completions", json={"model": "zzz", "prompt": "x"}, timeout=60)
    assert_error(r, 404, "model", "model_not_found")
    assert_error(httpx.get(daemon.url + "/v1/nothing-here", timeout=60), 404)
    assert_error(httpx.get(daemon.v1 + "/chat/completions", timeout=60), 405)


def test_a_malformed_tool_is_refused_clearly(daemon: Daemon) -> None:
    body: dict[str, Any] = {
        "model": "tiny",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 2,
        "tools": [{"type": "function", "function": {"name": "f"}}],
    }
    # tiny's template cannot show tools: they are described to it as plain JSON calls.
    assert httpx.post(daemon.v1 + "/chat/completions", json=body, timeout=60).status_code == 200
    body["tools"] = [{"type": "function", "function": {"description": "no name"}}]
    r = httpx.post(daemon.v1 + "/chat/completions", json=body, timeout=60)
    assert r.status_code == 400 and r.json()["error"]["param"].startswith("tools")


def test_default_max_tokens_is_finite(daemon: Daemon) -> None:
    # No max_tokens: the answer still ends (at the context end at the latest).
    body = {"model": "tiny", "prompt": "x", "ignore_eos": True}
    r = httpx.post(daemon.v1 + "/completions", json=body, timeout=120)
    assert r.status_code == 200
    usage = r.json()["usage"]
    assert usage["prompt_tokens"] + usage["completion_tokens"] <= 512
    assert r.json()["choices"][0]["finish_reason"] == "length"


def test_daemon_healthy_after_bad_input(daemon: Daemon) -> None:
    r = httpx.post(
        daemon.v1 + "/chat/completions",
        timeout=60,
        json={"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2},
    )
    assert r.status_code == 200
    assert daemon.get("/health").json()["status"] in ("ready", "degraded")


@pytest.mark.parametrize(
    ("field", "value"),
    [("conversation", "conv_123"), ("prompt", {"id": "pmpt_123", "variables": {}})],
)
def test_responses_features_kept_by_openai_are_refused(
    daemon: Daemon, field: str, value: Any
) -> None:
    """A conversation or prompt template this server does not keep: a 400 naming it, not an
    answer that silently lost the history or the instructions."""
    body = {"model": "tiny", "input": "hi", field: value}
    assert_error(httpx.post(daemon.v1 + "/responses", json=body, timeout=60), 400, field)
