"""POST /v1/messages and /v1/messages/count_tokens: the Anthropic Messages API over the
chat pipeline, so Claude-style clients and coding tools can use a local model.

Errors raised here reach the app's handlers like any API's; `errors.ErrorResponse` gives
them Anthropic's shape on these paths (the middleware's too: API keys, body, drain)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from appliance.api.anthropic import MessageBuilder, to_chat_body
from appliance.api.frames import collect_unless_gone, frame_error
from appliance.api.pipeline import (
    SSE_HEADERS,
    read_json,
    start_chat,
    timed,
)
from appliance.api.schemas import parse_chat_request
from appliance.api.sse import SSE_PING, sse_event


async def create_message(request: Request) -> Response:
    settings = request.app.state.settings
    chat_body = to_chat_body(await read_json(request))
    req = parse_chat_request(
        chat_body,
        default_max_tokens=settings.default_max_tokens,
        max_tokens_limit=settings.max_tokens_limit,
    )
    name, frames, output, started = await start_chat(request, req)
    builder = MessageBuilder(name, int(started.get("prompt_tokens", 0)), req.params.max_tokens)

    if not req.stream:
        text, done = await collect_unless_gone(request, frames)
        for delta in output.feed(text) + output.finish():
            builder.feed(delta)
        reason = output.finish_reason(str(done.get("finish_reason", "stop")))
        builder.finish(
            reason,
            int(done.get("completion_tokens", 0)),
            int(done.get("cached_tokens", 0)),
            done.get("stop_sequence"),
        )
        return JSONResponse(builder.message())

    def start() -> list[bytes]:
        events = [sse_event(name_, data) for name_, data in builder.start()]
        return [*events, sse_event("ping", {"type": "ping"})]

    async def events() -> AsyncIterator[bytes]:
        started_stream = False
        async for item in frames:
            if item["type"] == "ping":
                yield SSE_PING
                continue
            if not started_stream:
                # message_start waits for the frame that says how much of the prompt was
                # read from the cache (sent as the request gets its sequence, before the
                # prompt is read), so that its usage has the final split, as Anthropic's.
                # Engines without one: the first frame, whatever it is.
                started_stream = True
                if item["type"] in ("admitted", "done"):
                    builder.cached_tokens = int(item.get("cached_tokens", 0))
                for chunk in start():
                    yield chunk
            if item["type"] == "token":
                for delta in output.feed(str(item["text"])):
                    for name_, data in builder.feed(delta):
                        yield sse_event(name_, data)
            elif item["type"] == "error":  # after the 200: Anthropic's error event
                yield sse_event("error", frame_error(item).to_anthropic_body())
                return
            elif item["type"] == "done":
                for delta in output.finish():
                    for name_, data in builder.feed(delta):
                        yield sse_event(name_, data)
                reason = output.finish_reason(str(item.get("finish_reason", "stop")))
                ended = builder.finish(
                    reason,
                    int(item.get("completion_tokens", 0)),
                    int(item.get("cached_tokens", 0)),
                    item.get("stop_sequence"),
                )
                for name_, data in ended:
                    yield sse_event(name_, data)
                return
        if not started_stream:
            for chunk in start():
                yield chunk

    async def stream() -> AsyncIterator[bytes]:
        async with aclosing(frames):
            async for data in events():
                yield data

    return StreamingResponse(stream(), media_type="text/event-stream", headers=SSE_HEADERS)


async def count_tokens(request: Request) -> Response:
    """The prompt's tokens as the model's template and tokenizer make them: the request is
    read by the worker (which answers with the count first) and cancelled at once."""
    settings = request.app.state.settings
    body = await read_json(request)
    if isinstance(body, dict):
        body = {**body, "max_tokens": 1, "stream": False}
    req = parse_chat_request(
        to_chat_body(body),
        default_max_tokens=settings.default_max_tokens,
        max_tokens_limit=settings.max_tokens_limit,
    )
    _, frames, _, started = await start_chat(request, req)
    await frames.aclose()
    return JSONResponse({"input_tokens": int(started.get("prompt_tokens", 0))})


routes = [
    Route("/messages", timed("/v1/messages", create_message), methods=["POST"]),
    Route("/messages/count_tokens", count_tokens, methods=["POST"]),
]
