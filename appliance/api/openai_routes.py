"""The OpenAI-compatible routes under /v1.

Each handler parses the body into a typed request (400 naming the parameter),
resolves the model (404), holds a worker through the model manager and turns
the worker's frames into OpenAI responses, streamed as SSE or whole. Errors
before the first token are plain HTTP errors; errors after it are SSE error
events. A client that goes away cancels its generation in the worker.
"""

from __future__ import annotations

import asyncio
import base64
import json
import struct
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from typing import Any

from starlette.requests import Request
from starlette.responses import Content, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from appliance.api.chat_output import ChatOutput
from appliance.api.completions import completions as text_completions
from appliance.api.errors import APIError, error_response, from_model_error, invalid_request
from appliance.api.frames import collect_unless_gone, frame_error
from appliance.api.logprobs import chat_logprobs
from appliance.api.schemas import (
    ChatMessage,
    ChatRequest,
    SamplingParams,
    parse_chat_request,
    parse_embedding_request,
)
from appliance.api.sse import SSE_DONE, sse_data, sse_error
from appliance.engines.protocol import Frame
from appliance.engines.supervisor import QueueFull
from appliance.telemetry.sampler import RequestTrack
from appliance.tiers.errors import ModelError
from appliance.tiers.manager import ModelManager

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


async def read_json(request: Request) -> Any:
    """The request body as JSON, refusing oversized and malformed bodies."""
    limit: int = request.app.state.settings.max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise APIError(
            413,
            f"request body of {declared} bytes exceeds the limit of {limit} bytes",
            "invalid_request_error",
            None,
            "payload_too_large",
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise APIError(
                413,
                f"request body exceeds the limit of {limit} bytes",
                "invalid_request_error",
                None,
                "payload_too_large",
            )
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        raise invalid_request("the request body is empty; send a JSON object")
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise invalid_request(f"the request body is not valid JSON: {exc}") from exc


def params_frame(params: SamplingParams) -> dict[str, Any]:
    fmt = params.response_format
    return {
        "max_tokens": params.max_tokens,
        "temperature": params.temperature,
        "top_p": params.top_p,
        "top_k": params.top_k,
        "min_p": params.min_p,
        "stop": list(params.stop),
        "seed": params.seed,
        "logit_bias": {str(k): v for k, v in params.logit_bias.items()},
        "presence_penalty": params.presence_penalty,
        "frequency_penalty": params.frequency_penalty,
        "repeat_penalty": params.repeat_penalty,
        "ignore_eos": params.ignore_eos,
        "deterministic": params.deterministic,
        "logprobs": params.logprobs,
        "echo": params.echo,
        "prompt_logprobs": params.prompt_logprobs,
        "response_format": None
        if fmt is None or fmt.type == "text"
        else {"type": fmt.type, "schema": fmt.schema},
    }


def _manager(request: Request) -> ModelManager:
    manager: ModelManager = request.app.state.manager
    return manager


# -- telemetry hooks: each request's status and duration, and every worker frame it gets --

Handler = Callable[[Request], Awaitable[Response]]


def timed(endpoint: str, handler: Handler) -> Handler:
    """`handler`, reporting each request's end to the app's telemetry (when it has one)."""

    async def wrapper(request: Request) -> Response:
        telemetry = getattr(request.app.state, "telemetry", None)
        if telemetry is None:
            return await handler(request)
        track: RequestTrack = telemetry.track(endpoint)
        request.state.track = track
        try:
            response = await handler(request)
        except APIError as exc:
            track.finish(exc.status, exc.code)
            raise
        except ModelError as exc:
            err = from_model_error(exc)
            track.finish(err.status, err.code)
            raise
        except Exception:
            track.finish(500, "internal_error")
            raise
        if isinstance(response, StreamingResponse):
            response.body_iterator = _finish_after(response.body_iterator, track, response)
        else:
            track.finish(response.status_code)
        return response

    return wrapper


async def _finish_after(
    body: AsyncIterable[Content], track: RequestTrack, response: Response
) -> AsyncIterator[Content]:
    try:
        async for chunk in body:
            yield chunk
    finally:  # the stream ended, failed, or its client went away
        track.finish(response.status_code)


async def _frames(
    request: Request, name: str, frame: Frame, want_embedding: bool
) -> AsyncGenerator[Frame, None]:
    track: RequestTrack | None = getattr(request.state, "track", None)
    if track is not None:
        track.model = name
    async with _manager(request).use(name) as worker:
        if worker.spec.embedding != want_embedding:
            if want_embedding:
                raise invalid_request(
                    f"model '{name}' is not an embedding model; use it with "
                    "/v1/chat/completions or /v1/completions",
                    "model",
                )
            raise invalid_request(
                f"model '{name}' is an embedding model; use it with /v1/embeddings", "model"
            )
        if worker.spec.deterministic and frame.get("type") == "generate":
            frame = {**frame, "params": {**frame.get("params", {}), "deterministic": True}}
        timeout_s: float = request.app.state.settings.request_timeout_s
        try:
            async for item in _with_deadline(worker.request(frame), timeout_s):
                if track is not None:
                    track.frame(item)
                yield item
        except QueueFull as exc:
            raise APIError(
                429,
                str(exc),
                "rate_limit_error",
                None,
                "model_busy",
                retry_after=exc.retry_after_s,
            ) from None


async def _with_deadline(
    frames: AsyncGenerator[Frame, None], timeout_s: float
) -> AsyncIterator[Frame]:
    """The frames of one request until `timeout_s` has passed (queue wait included); then
    the request is cancelled in the worker and ends with a `request_timeout` error frame."""
    deadline = time.monotonic() + timeout_s
    async with aclosing(frames):
        while True:
            remaining = deadline - time.monotonic()
            try:
                # asyncio.timeout, not wait_for: wait_for can swallow a cancellation that
                # lands as the next frame arrives, and a gone client must cancel.
                async with asyncio.timeout(max(remaining, 0.0)):
                    item = await frames.__anext__()
            except StopAsyncIteration:
                return
            except TimeoutError:
                yield {
                    "type": "error",
                    "code": "request_timeout",
                    "status": 504,
                    "message": f"the request ran past the daemon's request_timeout of "
                    f"{timeout_s:g} s and was stopped; raise request_timeout or ask for "
                    "fewer tokens",
                }
                return
            yield item


async def _first(frames: AsyncGenerator[Frame, None]) -> Frame:
    first = await frames.__anext__()
    if first["type"] == "error":
        await frames.aclose()
        raise frame_error(first)
    return first


def usage_of(done: Frame) -> dict[str, Any]:
    prompt = int(done.get("prompt_tokens", 0))
    completion = int(done.get("completion_tokens", 0))
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": int(done.get("cached_tokens", 0))},
    }


def _usage_chunk(cid: str, obj: str, created: int, name: str, done: Frame) -> bytes:
    """The last streamed chunk when stream_options.include_usage is set."""
    return sse_data(
        {
            "id": cid,
            "object": obj,
            "created": created,
            "model": name,
            "choices": [],
            "usage": usage_of(done),
        }
    )


def _finish(done: Frame) -> str:
    reason = str(done.get("finish_reason", "stop"))
    return reason if reason in ("stop", "length") else "stop"


def _model_name(manager: ModelManager, requested: str, *, embedding: bool) -> str:
    """The model a request names (aliases, any case), or without one, the default: the
    catalog's default chat model (its first embedding model for embeddings)."""
    if requested:
        return manager.canonical(requested)
    name = manager.default_model(embedding=embedding)
    if name is None:
        raise invalid_request(
            "'model' is required: this server has no default "
            + ("embedding" if embedding else "chat")
            + " model (see GET /v1/models)",
            "model",
        )
    return name


def _reasoning_mode(manager: ModelManager, name: str) -> str:
    entry = manager.catalog.resolve(name)
    return entry.reasoning if entry is not None else "auto"


async def start_chat(
    request: Request, req: ChatRequest
) -> tuple[str, AsyncGenerator[Frame, None], ChatOutput, Frame]:
    """The one chat pipeline under every API that chats (chat completions, Responses):
    the model resolved, the request sent to its worker, the first frame received (an
    error before it is an HTTP error), and the output parser ready for the text."""
    manager = _manager(request)
    name = _model_name(manager, req.model, embedding=False)
    frame: Frame = {
        "type": "generate",
        "mode": "chat",
        "messages": [_message_frame(m) for m in req.messages],
        "params": params_frame(req.params),
    }
    if req.tools.active:
        frame["tools"] = [t.openai() for t in req.tools.offered()]
        frame["params"]["tool_choice"] = {
            "mode": req.tools.choice.mode,
            "name": req.tools.choice.name,
            "parallel": req.tools.parallel,
        }
    frames = _frames(request, name, frame, want_embedding=False)
    started = await _first(frames)
    split = _reasoning_mode(manager, name) != "off"
    output = ChatOutput(
        split_reasoning=split,
        reasoning_started=bool(started.get("reasoning_started")) and split,
        family=started.get("tool_family"),
        tools=req.tools,
    )
    return name, frames, output, started


async def chat_completions(request: Request) -> Response:
    settings = request.app.state.settings
    req: ChatRequest = parse_chat_request(
        await read_json(request),
        default_max_tokens=settings.default_max_tokens,
        max_tokens_limit=settings.max_tokens_limit,
    )
    if req.n > 1:
        from appliance.api.chat_choices import chat_n

        return await chat_n(request, req)
    name, frames, output, _ = await start_chat(request, req)
    cid = f"chatcmpl-{uuid.uuid4().hex[:24]}"
    created = int(time.time())

    if not req.stream:
        text, item = await collect_unless_gone(request, frames)
        output.feed(text)
        output.finish()
        choice: dict[str, Any] = {
            "index": 0,
            "message": output.message(),
            "logprobs": chat_logprobs(item["logprobs"])
            if req.params.logprobs is not None
            else None,
            "finish_reason": output.finish_reason(str(item.get("finish_reason", "stop"))),
        }
        warnings = output.warnings()
        if warnings:
            choice["warnings"] = warnings
        return JSONResponse(
            {
                "id": cid,
                "object": "chat.completion",
                "created": created,
                "model": name,
                "choices": [choice],
                "usage": usage_of(item),
            }
        )

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
        return sse_data(
            {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": name,
                "choices": [
                    {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish, **extra}
                ],
            }
        )

    async def stream() -> AsyncIterator[bytes]:
        async with aclosing(frames):
            async for data in _chat_stream():
                yield data

    async def _chat_stream() -> AsyncIterator[bytes]:
        yield chunk({"role": "assistant", "content": ""})
        async for item in frames:
            if item["type"] == "token":
                deltas = output.feed(str(item["text"]))
                entries = item.get("logprobs")
                if entries and req.params.logprobs is not None:
                    logprobs = chat_logprobs(entries)
                    yield chunk(deltas[0] if deltas else {}, logprobs=logprobs)
                    deltas = deltas[1:]
                for delta in deltas:
                    yield chunk(delta)
            elif item["type"] == "error":
                yield sse_error(frame_error(item))
                return
            elif item["type"] == "done":
                for delta in output.finish():
                    yield chunk(delta)
                warnings = output.warnings()
                extra = {"warnings": warnings} if warnings else {}
                reason = output.finish_reason(str(item.get("finish_reason", "stop")))
                yield chunk({}, reason, **extra)
                if req.include_usage:
                    yield _usage_chunk(cid, "chat.completion.chunk", created, name, item)
                yield SSE_DONE
                return

    return StreamingResponse(stream(), media_type="text/event-stream", headers=SSE_HEADERS)


def _message_frame(m: ChatMessage) -> dict[str, Any]:
    """One message as the worker's chat template gets it."""
    out: dict[str, Any] = {"role": m.role, "content": m.content}
    for key, value in (
        ("name", m.name),
        ("reasoning_content", m.reasoning_content),
        ("tool_call_id", m.tool_call_id),
    ):
        if value is not None:
            out[key] = value
    if m.tool_calls:
        out["tool_calls"] = [c.for_template() for c in m.tool_calls]
    return out


async def embeddings(request: Request) -> Response:
    manager = _manager(request)
    req = parse_embedding_request(await read_json(request))
    name = _model_name(manager, req.model, embedding=True)
    frame: Frame = {"type": "embed", "inputs": list(req.inputs)}
    if req.token_inputs is not None:
        frame["token_inputs"] = [list(ids) for ids in req.token_inputs]
    frames = _frames(request, name, frame, want_embedding=True)
    async with aclosing(frames):
        item = await frames.__anext__()
        if item["type"] == "error":
            raise frame_error(item)
        if item["type"] == "embeddings":
            data = []
            for i, vector in enumerate(item["data"]):
                values = [float(x) for x in vector]
                if req.dimensions is not None:
                    values = values[: req.dimensions]
                embedding: Any = values
                if req.encoding_format == "base64":
                    embedding = base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()
                data.append({"object": "embedding", "index": i, "embedding": embedding})
            tokens = int(item.get("prompt_tokens", 0))
            return JSONResponse(
                {
                    "object": "list",
                    "data": data,
                    "model": name,
                    "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
                }
            )
    raise APIError(500, "the engine ended the request without an answer", "server_error")


def _model_object(manager: ModelManager, name: str) -> dict[str, Any]:
    view = manager.describe(name)
    return {
        "id": name,
        "object": "model",
        "created": 0,
        "owned_by": "appliance",
        "meta": {
            k: view[k]
            for k in (
                "state",
                "tier",
                "pin",
                "kind",
                "format",
                "provider",  # what runs it, once loaded: cpu | cuda (ONNX) or the device
                "aliases",
                "eos_token_id",
                "active_requests",
                "queue_depth",
            )
        },
    }


async def list_models(request: Request) -> Response:
    manager = _manager(request)
    return JSONResponse(
        {"object": "list", "data": [_model_object(manager, n) for n in manager.known_names()]}
    )


async def get_model(request: Request) -> Response:
    manager = _manager(request)
    name = manager.canonical(request.path_params["model"])
    return JSONResponse(_model_object(manager, name))


async def not_found(request: Request) -> Response:
    return error_response(
        APIError(
            404,
            f"no route {request.method} {request.url.path}",
            "invalid_request_error",
            None,
            "unknown_route",
        )
    )


routes = [
    Route("/models", list_models, methods=["GET"]),
    Route("/models/{model:path}", get_model, methods=["GET"]),
    Route("/chat/completions", timed("/v1/chat/completions", chat_completions), methods=["POST"]),
    Route("/completions", timed("/v1/completions", text_completions), methods=["POST"]),
    Route("/embeddings", timed("/v1/embeddings", embeddings), methods=["POST"]),
]
