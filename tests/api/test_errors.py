import json

from appliance.api.errors import (
    APIError,
    engine_error,
    error_response,
    invalid_request,
    model_not_found,
    payload_too_large,
    unauthorized,
    unavailable,
)


def test_body_has_the_openai_shape() -> None:
    err = invalid_request("bad value", param="temperature", code="x")
    assert err.status == 400
    assert err.to_body() == {
        "error": {
            "message": "bad value",
            "type": "invalid_request_error",
            "param": "temperature",
            "code": "x",
        }
    }
    assert isinstance(err, Exception)
    assert str(err) == "bad value"


def test_model_not_found() -> None:
    err = model_not_found("gpt-9")
    assert (err.status, err.code, err.param) == (404, "model_not_found", "model")
    assert "The model 'gpt-9' does not exist" in err.message
    assert "/v1/models" in err.message


def test_other_constructors() -> None:
    assert payload_too_large(1024).status == 413
    assert "1024" in payload_too_large(1024).message
    auth = unauthorized()
    assert (auth.status, auth.type, auth.code) == (401, "invalid_request_error", "invalid_api_key")
    eng = engine_error("worker crashed")
    assert (eng.status, eng.type, eng.message) == (500, "server_error", "worker crashed")
    busy = unavailable("loading", retry_after=2.5)
    assert (busy.status, busy.retry_after) == (503, 2.5)


def test_error_response() -> None:
    resp = error_response(unavailable("model is loading", retry_after=2.5))
    assert resp.status_code == 503
    assert resp.headers["retry-after"] == "3"
    assert json.loads(bytes(resp.body))["error"]["message"] == "model is loading"
    plain = error_response(APIError(400, "nope"))
    assert plain.status_code == 400
    assert "retry-after" not in plain.headers
    assert plain.headers["content-type"].startswith("application/json")
    assert "retry-after-ms" not in plain.headers


def test_clients_turned_away_together_are_told_different_waits() -> None:
    """retry-after-ms (read first by the openai and anthropic SDKs) spreads a burst's
    retries over [wait, 1.5 x wait], so they do not all come back at once."""
    waits = []
    for _ in range(20):
        resp = error_response(APIError(429, "busy", "rate_limit_error", retry_after=2))
        assert resp.headers["retry-after"] == "2"
        waits.append(int(resp.headers["retry-after-ms"]))
    assert all(2000 <= w <= 3000 for w in waits), waits
    assert len(set(waits)) > 10, waits
