"""Server-sent events framing for streamed responses (OpenAI's, the Responses API's and
Anthropic's)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from appliance.api.errors import RESPONSES_PATHS, APIError, is_anthropic_path

__all__ = [
    "SSE_DONE",
    "SSE_PING",
    "follow",
    "sse_data",
    "sse_error",
    "sse_event",
    "sse_stream_error",
]

SSE_DONE = b"data: [DONE]\n\n"
# A comment line: every SSE reader skips it; it tells a client (and any proxy between)
# that a stream still waiting for its first token or a long prompt is alive. undici,
# under Node's fetch and the JS SDKs, gives up on a body silent for 300 s.
SSE_PING = b":\n\n"


def sse_data(obj: Any) -> bytes:
    """One ``data:`` event carrying ``obj`` as compact JSON (one line, UTF-8)."""
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return b"data: " + text.encode("utf-8") + b"\n\n"


def sse_event(name: str, obj: Any) -> bytes:
    """A named event (``event:`` then ``data:``), as the Responses and Anthropic streams use."""
    return f"event: {name}\n".encode() + sse_data(obj)


def sse_error(err: APIError) -> bytes:
    """An error event mid-stream, in the OpenAI shape (the openai client raises it)."""
    return sse_data(err.to_body())


def sse_stream_error(path: str, err: APIError) -> bytes:
    """The event that ends a stream with `err`, in the shape of the API at `path`: the
    anthropic SDK skips an unnamed event, so a cut Messages stream looked finished."""
    if is_anthropic_path(path):
        return sse_event("error", err.to_anthropic_body())
    if path in RESPONSES_PATHS:
        fields = {"code": err.code, "message": err.message, "param": err.param}
        return sse_event("error", {"type": "error", "sequence_number": 0, **fields})
    return sse_error(err)


async def follow(
    queue: asyncio.Queue[Any],
    render: Callable[[Any], bytes],
    should_stop: Callable[[], bool],
    keep_alive_s: float = 15.0,
) -> AsyncIterator[bytes]:
    """Events from `queue` as SSE until `should_stop()` (the server is shutting down).

    Looks at `should_stop` every second, so a restart never waits on an open stream,
    and sends a keep-alive comment after `keep_alive_s` of silence.
    """
    quiet = 0.0
    while not should_stop():
        try:
            item = await asyncio.wait_for(queue.get(), 1.0)
        except TimeoutError:
            quiet += 1.0
            if quiet >= keep_alive_s:
                quiet = 0.0
                yield b": keep-alive\n\n"
            continue
        quiet = 0.0
        yield render(item)
