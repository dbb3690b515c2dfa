"""The OpenAI-compatible routes under /v1.

Each handler parses the body into a typed request (400 naming the parameter),
resolves the model (404), holds a worker through the model manager and turns
the worker's frames into OpenAI responses, streamed as SSE or whole. Errors
before the first token are plain HTTP errors; errors after it are SSE error
events. A client that goes away cancels its generation in the worker.
"""

from __future__ import annotations

import base64
import struct
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from appliance.api.anthropic_models import model_info, model_page, wants_anthropic
from appliance.api.chat_choices import chat_choice, chat_n
from appliance.api.chat_output import opening_delta
from appliance.api.completions import completions as text_completions
from appliance.api.embedding_dims import shorten
from appliance.api.errors import APIError, error_response
from appliance.api.frames import collect_unless_gone, frame_error
from appliance.api.logprobs import chat_logprobs
from appliance.api.pipeline import (
    SSE_HEADERS,
    manager_of,
    model_name,
    read_json,
    start_chat,
    timed,
    usage_chunk,
    usage_of,
    worker_frames,
)
from appliance.api.schemas import (
    ChatRequest,
    parse_chat_request,
    parse_embedding_request,
)
from appliance.api.sse import SSE_DONE, SSE_PING, sse_data, sse_error
from appliance.engines.protocol import Frame
from appliance.tiers.manager import ModelManager


async def chat_completions(request: Request) -> Response:
    settings = request.app.state.settings
    req: ChatRequest = parse_chat_request(
        await read_json(request),
        default_max_tokens=settings.default_max_tokens,
        max_tokens_limit=settings.max_tokens_limit,
    )
    if req.n > 1:
        return await chat_n(request, req)
    name, frames, output, _ = await start_chat(request, req)
    cid = f"chatcmpl-{uuid.uuid4().hex[:24]}"
    created = int(time.time())

    if not req.stream:
        text, item = await collect_unless_gone(request, frames)
        choice = chat_choice(0, output, text, item, req)
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

    opened = False

    def opening(first: dict[str, Any] | None) -> list[bytes]:
        nonlocal opened
        if opened:
            return []
        opened = True
        return [chunk(opening_delta(first))]

    async def _chat_stream() -> AsyncIterator[bytes]:
        async for item in frames:
            if item["type"] == "ping":
                yield SSE_PING
            elif item["type"] == "token":
                deltas = output.feed(str(item["text"]))
                entries = item.get("logprobs")
                if entries and req.params.logprobs is not None:
                    for data in opening(deltas[0] if deltas else None):
                        yield data
                    logprobs = chat_logprobs(entries)
                    yield chunk(deltas[0] if deltas else {}, logprobs=logprobs)
                    deltas = deltas[1:]
                for delta in deltas:
                    for data in opening(delta):
                        yield data
                    yield chunk(delta)
            elif item["type"] == "error":
                yield sse_error(frame_error(item))
                return
            elif item["type"] == "done":
                for delta in output.finish():
                    for data in opening(delta):
                        yield data
                    yield chunk(delta)
                for data in opening(None):
                    yield data
                warnings = output.warnings()
                extra = {"warnings": warnings} if warnings else {}
                reason = output.finish_reason(str(item.get("finish_reason", "stop")))
                yield chunk({}, reason, **extra)
                if req.include_usage:
                    yield usage_chunk(cid, "chat.completion.chunk", created, name, item)
                yield SSE_DONE
                return

    return StreamingResponse(stream(), media_type="text/event-stream", headers=SSE_HEADERS)


async def embeddings(request: Request) -> Response:
    manager = manager_of(request)
    req = parse_embedding_request(await read_json(request))
    name = model_name(manager, req.model, embedding=True)
    frame: Frame = {"type": "embed", "inputs": list(req.inputs)}
    if req.token_inputs is not None:
        frame["token_inputs"] = [list(ids) for ids in req.token_inputs]
    frames = worker_frames(request, name, frame, want_embedding=True)
    async with aclosing(frames):
        item = await frames.__anext__()
        if item["type"] == "error":
            raise frame_error(item)
        if item["type"] == "embeddings":
            data = []
            for i, vector in enumerate(item["data"]):
                values = shorten([float(x) for x in vector], req.dimensions)
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


def _created(manager: ModelManager, name: str) -> int:
    """When the model came onto this box (pulled, imported, or its file written); 0 for a
    catalog model not pulled yet."""
    stored = manager.store.get(name)
    if stored is not None:
        return int(stored.created)
    path = manager.local_file(name)
    try:
        return int(path.stat().st_mtime) if path is not None else 0
    except OSError:
        return 0


def _model_object(manager: ModelManager, name: str) -> dict[str, Any]:
    view = manager.describe(name)
    return {
        "id": name,
        "object": "model",
        "created": _created(manager, name),
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
    """Every model a request can name: those on this box first (a UI that takes the first
    entry gets one that answers now, also offline), then catalog models pulled on first use.
    In Anthropic's shape, paged, for a request naming an `anthropic-version`."""
    manager = manager_of(request)
    models = [_model_object(manager, n) for n in manager.known_names()]
    models.sort(key=lambda m: m["meta"]["tier"] == "remote")  # stable: catalog order kept
    if wants_anthropic(request.headers):
        query = request.query_params
        infos = [model_info(m["id"], m["created"]) for m in models]
        lifecycles = query.getlist("lifecycle[]") + query.getlist("lifecycle")
        return JSONResponse(model_page(infos, query, lifecycles))
    return JSONResponse({"object": "list", "data": models})


async def get_model(request: Request) -> Response:
    manager = manager_of(request)
    name = manager.canonical(request.path_params["model"])
    if wants_anthropic(request.headers):
        return JSONResponse(model_info(name, _created(manager, name)))
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
