"""A tiny stand-in OpenAI-compatible server for client tests (bench, chat REPL).

``serve_openai_stub(...)`` runs a Starlette app under uvicorn in a background thread on
127.0.0.1 (random free port) and yields a :class:`StubServer` whose ``base_url`` ends in
``/v1`` and whose ``requests`` list records every JSON body received.

Behaviour:

- ``GET /v1/models`` lists ``model`` with ``meta.eos_token_id`` (omitted when None).
- ``POST /v1/completions`` and ``/v1/chat/completions`` stream (SSE) one token per chunk
  with ``delay_s`` between chunks. The "natural" reply is ``natural_tokens`` tokens and
  finishes with ``stop``; when the request bans EOS (``ignore_eos: true`` or
  ``logit_bias[eos] <= -100``) the reply runs to ``max_tokens`` and finishes with
  ``length``. ``max_tokens`` always caps the reply. Chat replies start with
  ``"echo: <last user message>"`` split into short pieces; ``reasoning`` (if set) is sent
  first as ``delta.reasoning_content``. A usage chunk follows when
  ``stream_options.include_usage`` is true. Non-streaming requests get one JSON reply.
- Errors: ``mode="error400"`` / ``"error404"`` answer every generation request with an
  OpenAI error body; ``mode="sse_error"`` emits an SSE error event after two chunks.
  Per request, the same happens when the prompt / last user message contains
  ``TRIGGER_400``, ``TRIGGER_404`` or ``TRIGGER_SSE_ERROR``; an unknown model gets 404.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route


@dataclass
class StubServer:
    base_url: str = ""
    model: str = "stub-model"
    eos_token_id: int | None = 4
    natural_tokens: int = 5
    default_max_tokens: int = 16
    delay_s: float = 0.0
    mode: str = "ok"  # ok | error400 | error404 | sse_error
    reasoning: str | None = None
    requests: list[dict[str, Any]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __str__(self) -> str:
        return self.base_url

    def bodies(self, path_suffix: str) -> list[dict[str, Any]]:
        with self._lock:
            return [r["body"] for r in self.requests if r["path"].endswith(path_suffix)]

    def record(self, path: str, body: dict[str, Any]) -> None:
        with self._lock:
            self.requests.append({"path": path, "body": body})


def _error(status: int, message: str, type_: str, code: str | None = None) -> JSONResponse:
    return JSONResponse(
        {"error": {"message": message, "type": type_, "param": None, "code": code}},
        status_code=status,
    )


def _sse(obj: Any) -> bytes:
    return f"data: {json.dumps(obj)}\n\n".encode()


def _split(text: str, size: int = 4) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def _bans_eos(body: dict[str, Any], eos: int | None) -> bool:
    if body.get("ignore_eos") is True:
        return True
    bias = body.get("logit_bias")
    if eos is not None and isinstance(bias, dict):
        value = bias.get(str(eos))
        return isinstance(value, int | float) and value <= -100
    return False


def build_app(stub: StubServer) -> Starlette:
    async def models(request: Request) -> Response:
        meta: dict[str, Any] = {"n_ctx": 2048}
        if stub.eos_token_id is not None:
            meta["eos_token_id"] = stub.eos_token_id
        entry = {"id": stub.model, "object": "model", "created": 0, "owned_by": "stub"}
        entry["meta"] = meta
        return JSONResponse({"object": "list", "data": [entry]})

    async def generate(request: Request) -> Response:
        chat = request.url.path.endswith("/chat/completions")
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "invalid JSON body", "invalid_request_error")
        if not isinstance(body, dict):
            return _error(400, "body must be an object", "invalid_request_error")
        stub.record(request.url.path, body)

        if chat:
            messages = body.get("messages") or []
            users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
            trigger_text = str(users[-1].get("content", "")) if users else ""
            pieces = _split(f"echo: {trigger_text}")
        else:
            trigger_text = str(body.get("prompt", ""))
            pieces = [f" w{i}" for i in range(stub.natural_tokens)]

        mode = stub.mode
        for marker, m in (("TRIGGER_400", "error400"), ("TRIGGER_404", "error404")):
            if marker in trigger_text:
                mode = m
        if "TRIGGER_SSE_ERROR" in trigger_text:
            mode = "sse_error"
        if mode == "error400":
            return _error(400, "stub rejected the request", "invalid_request_error")
        if mode == "error404" or body.get("model") != stub.model:
            return _error(404, f"model '{body.get('model')}' not found", "invalid_request_error")

        max_tokens = body.get("max_tokens")
        if not isinstance(max_tokens, int) or max_tokens < 1:
            max_tokens = stub.default_max_tokens
        if _bans_eos(body, stub.eos_token_id):
            while len(pieces) < max_tokens:
                pieces.append(f" x{len(pieces)}")
            finish = "length"
        else:
            finish = "length" if len(pieces) > max_tokens else "stop"
        pieces = pieces[:max_tokens]
        reasoning = _split(stub.reasoning) if (chat and stub.reasoning) else []
        created = int(time.time())
        obj_name = "chat.completion.chunk" if chat else "text_completion"
        rid = f"{'chatcmpl' if chat else 'cmpl'}-stub{len(stub.requests)}"
        usage = {
            "prompt_tokens": 7,
            "completion_tokens": len(pieces) + len(reasoning),
            "total_tokens": 7 + len(pieces) + len(reasoning),
        }

        if not body.get("stream"):
            text = "".join(pieces)
            choice: dict[str, Any]
            if chat:
                choice = {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": finish,
                }
            else:
                choice = {"index": 0, "text": text, "finish_reason": finish}
            return JSONResponse(
                {
                    "id": rid,
                    "object": "chat.completion" if chat else "text_completion",
                    "created": created,
                    "model": stub.model,
                    "choices": [choice],
                    "usage": usage,
                }
            )

        def chunk(choice: dict[str, Any] | None, **extra: Any) -> dict[str, Any]:
            c: dict[str, Any] = {
                "id": rid,
                "object": obj_name,
                "created": created,
                "model": stub.model,
                "choices": [choice] if choice is not None else [],
            }
            c.update(extra)
            return c

        def piece(text: str, kind: str = "content") -> dict[str, Any]:
            if chat:
                return {"index": 0, "delta": {kind: text}, "finish_reason": None}
            return {"index": 0, "text": text, "finish_reason": None}

        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

        async def events() -> AsyncIterator[bytes]:
            if chat:
                yield _sse(chunk({"index": 0, "delta": {"role": "assistant"}}))
            for i, text in enumerate(reasoning):
                if i:
                    await asyncio.sleep(stub.delay_s)
                yield _sse(chunk(piece(text, "reasoning_content")))
            for i, text in enumerate(pieces):
                if i or reasoning:
                    await asyncio.sleep(stub.delay_s)
                if mode == "sse_error" and i == 2:
                    yield _sse(
                        {"error": {"message": "stub failed mid-stream", "type": "server_error"}}
                    )
                    return
                yield _sse(chunk(piece(text)))
            end: dict[str, Any] = {"index": 0, "finish_reason": finish}
            if chat:
                end["delta"] = {}
            else:
                end["text"] = ""
            yield _sse(chunk(end))
            if include_usage:
                yield _sse(chunk(None, usage=usage))
            yield b"data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    return Starlette(
        routes=[
            Route("/v1/models", models, methods=["GET"]),
            Route("/v1/completions", generate, methods=["POST"]),
            Route("/v1/chat/completions", generate, methods=["POST"]),
        ]
    )


@contextmanager
def serve_openai_stub(**settings: Any) -> Iterator[StubServer]:
    """Run the stub in a background thread; yields the :class:`StubServer` (``.base_url``)."""
    stub = StubServer(**settings)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        build_app(stub),
        log_level="warning",
        lifespan="off",
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("openai stub failed to start")
        time.sleep(0.01)
    stub.base_url = f"http://127.0.0.1:{port}/v1"
    try:
        yield stub
    finally:
        server.should_exit = True
        thread.join(timeout=5)
        sock.close()


def free_port() -> int:
    """A port that nothing listens on (for unreachable-server tests)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port
