import json

from appliance.api.errors import engine_error
from appliance.api.sse import SSE_DONE, sse_data, sse_error


def test_sse_data_is_one_compact_event() -> None:
    event = sse_data({"a": [1, 2], "text": "é\nline"})
    assert event.startswith(b"data: ")
    assert event.endswith(b"\n\n")
    payload = event[len(b"data: ") : -2]
    assert b"\n" not in payload
    assert b", " not in payload
    assert json.loads(payload) == {"a": [1, 2], "text": "é\nline"}


def test_done_and_error() -> None:
    assert SSE_DONE == b"data: [DONE]\n\n"
    event = sse_error(engine_error("worker died"))
    body = json.loads(event[len(b"data: ") : -2])
    assert body["error"]["message"] == "worker died"
    assert body["error"]["type"] == "server_error"


def test_openai_client_raises_on_error_event() -> None:
    openai = __import__("pytest").importorskip("openai")
    import httpx

    chunk = {
        "id": "c1",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "m",
        "choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": None}],
    }
    body = sse_data(chunk) + sse_error(engine_error("worker died")) + SSE_DONE

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body, headers={"content-type": "text/event-stream"})

    client = openai.OpenAI(
        base_url="http://test/v1",
        api_key="k",
        http_client=httpx.Client(transport=httpx.MockTransport(handler)),
    )
    stream = client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "x"}], stream=True
    )
    got = []
    try:
        for part in stream:
            got.append(part.choices[0].delta.content)
    except openai.APIError as exc:
        assert "worker died" in str(exc)
    else:
        raise AssertionError("the error event was not raised")
    assert got == ["hi"]
