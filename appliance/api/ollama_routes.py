"""Ollama's generating routes: `/api/chat`, `/api/generate`, `/api/embed` and
`/api/embeddings`, over the same pipeline as the OpenAI routes (shapes in `ollama.py`).

Streams are Ollama's NDJSON (one JSON object a line, `done: true` last), the default
unless `"stream": false`. A thinking model's reasoning goes to `thinking` (dropped with
`"think": false`), never into the answer; tool calls come whole, their arguments as
objects. `/api/generate` applies the chat template to `system` and `prompt` unless
`raw`; with a `suffix` it fills in the middle, as Ollama does for code models.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from appliance.api.chat_output import ChatOutput
from appliance.api.embedding_dims import shorten
from appliance.api.errors import invalid_request
from appliance.api.frames import collect_unless_gone, frame_error
from appliance.api.ollama import (
    chat_messages,
    created_at,
    done_fields,
    ollama_tool_calls,
    sampling_fields,
)
from appliance.api.pipeline import (
    first_frame,
    manager_of,
    model_name,
    params_frame,
    read_object,
    start_chat,
    timed,
    worker_frames,
)
from appliance.api.schemas import parse_chat_request, parse_completion_request
from appliance.engines.protocol import Frame
from appliance.settings import duration_value

__all__ = ["routes"]

NDJSON = "application/x-ndjson"


def _line(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


def _loaded(
    request: Request, requested: str, embedding: bool, body: dict[str, Any]
) -> tuple[str, bool]:
    """The model a request names (or the default) and whether it is loaded already; its
    `keep_alive` (seconds, "5m", negative: for ever, 0: unload once answered) becomes
    the model's, and a request without one puts back the configured one, as Ollama
    keeps a model for what its last request said."""
    manager = manager_of(request)
    name = model_name(manager, requested, embedding=embedding)
    seconds = None
    if body.get("keep_alive") is not None:
        try:
            seconds = duration_value(body["keep_alive"])
        except ValueError as exc:
            raise invalid_request(f"'keep_alive': {exc}", "keep_alive") from None
    manager.slot(name).keep_alive_override = seconds
    slot = manager.slots.get(name)
    return name, bool(slot is not None and slot.worker is not None and slot.worker.alive)


def _logprobs(entries: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    if not entries:
        return None
    return [
        {
            "token": e["token"],
            "logprob": e["logprob"],
            "top_logprobs": [
                {"token": t["token"], "logprob": t["logprob"]} for t in e.get("top_logprobs", [])
            ],
        }
        for e in entries
    ]


class _Answer:
    """One answer written in Ollama's shape: a chat message, or generate's `response`."""

    def __init__(self, kind: str, name: str, output: ChatOutput | None, think: bool) -> None:
        self.kind = kind
        self.name = name
        self.output = output
        self.think = think

    def split(self, deltas: list[dict[str, Any]]) -> tuple[str, str]:
        content = "".join(str(d.get("content") or "") for d in deltas)
        thinking = "".join(str(d.get("reasoning_content") or "") for d in deltas)
        return content, thinking if self.think else ""

    def feed(self, text: str) -> tuple[str, str]:
        if self.output is None:
            return text, ""
        return self.split(self.output.feed(text))

    def finish(self) -> tuple[str, str]:
        return ("", "") if self.output is None else self.split(self.output.finish())

    def tool_calls(self) -> list[dict[str, Any]]:
        if self.output is None or self.output.parsed is None:
            return []
        calls = self.output.message().get("tool_calls") or []
        return ollama_tool_calls(calls)

    def part(
        self,
        content: str,
        thinking: str = "",
        calls: list[dict[str, Any]] | None = None,
        logprobs: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        out: dict[str, Any] = {"model": self.name, "created_at": created_at()}
        if self.kind == "chat":
            message: dict[str, Any] = {"role": "assistant", "content": content}
            if thinking:
                message["thinking"] = thinking
            if calls:
                message["tool_calls"] = calls
            out["message"] = message
        else:
            out["response"] = content
            if thinking:
                out["thinking"] = thinking
        if logprobs:
            out["logprobs"] = logprobs
        out["done"] = False
        return out


async def _respond(
    request: Request,
    body: dict[str, Any],
    answer: _Answer,
    frames: AsyncGenerator[Frame, None],
    began: float,
    load_s: float,
) -> Response:
    """The frames of one answer as Ollama's NDJSON stream, or whole."""
    if body.get("stream", True) is not False:

        async def stream() -> AsyncIterator[bytes]:
            async with aclosing(frames):
                async for item in frames:
                    kind = item["type"]
                    if kind == "token":
                        content, thinking = answer.feed(str(item["text"]))
                        logprobs = _logprobs(item.get("logprobs"))
                        if content or thinking or logprobs:
                            yield _line(answer.part(content, thinking, logprobs=logprobs))
                    elif kind == "error":
                        yield _line({"error": frame_error(item).message})
                        return
                    elif kind == "done":
                        content, thinking = answer.finish()
                        calls = answer.tool_calls()
                        if content or thinking or calls:
                            yield _line(answer.part(content, thinking, calls))
                        last = answer.part("")
                        last.update(done_fields(item, time.monotonic() - began, load_s))
                        yield _line(last)
                        return

        return StreamingResponse(stream(), media_type=NDJSON)

    text, done = await collect_unless_gone(request, frames)
    content, thinking = answer.feed(text)
    more, more_thinking = answer.finish()
    whole = answer.part(
        content + more,
        thinking + more_thinking,
        answer.tool_calls(),
        _logprobs(done.get("logprobs")),
    )
    whole.update(done_fields(done, time.monotonic() - began, load_s))
    return JSONResponse(whole)


def _chat_body(body: dict[str, Any], messages: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "model": body.get("model") or "",
        "messages": messages,
        **sampling_fields(body),
        "stream": False,
    }
    if body.get("tools"):
        out["tools"] = body["tools"]
    think = body.get("think")
    if isinstance(think, bool):  # Qwen3's switch: false answers without thinking first
        out["chat_template_kwargs"] = {"enable_thinking": think}
    elif think in ("low", "medium", "high"):  # gpt-oss's levels
        out["reasoning_effort"] = think
    return out


async def _chat_answer(
    request: Request, body: dict[str, Any], messages: list[dict[str, Any]], kind: str
) -> Response:
    """`messages` answered through the chat pipeline, written as `kind` ("chat": a message,
    "generate": a `response`)."""
    settings = request.app.state.settings
    began = time.monotonic()
    req = parse_chat_request(
        _chat_body(body, messages),
        default_max_tokens=settings.default_max_tokens,
        max_tokens_limit=settings.max_tokens_limit,
    )
    name, hot = _loaded(request, req.model, False, body)
    name, frames, output, _ = await start_chat(request, req)
    load_s = 0.0 if hot else time.monotonic() - began
    answer = _Answer(kind, name, output, think=body.get("think") is not False)
    return await _respond(request, body, answer, frames, began, load_s)


async def chat(request: Request) -> Response:
    body = await read_object(request)
    return await _chat_answer(request, body, chat_messages(body.get("messages") or []), "chat")


async def generate(request: Request) -> Response:
    body = await read_object(request)
    began = time.monotonic()
    if body.get("images"):
        raise invalid_request(
            "Images are not supported: this server's models read text only.", "images"
        )
    prompt = body.get("prompt") or ""
    if not isinstance(prompt, str):
        raise invalid_request("'prompt' must be a string.", "prompt")
    if not prompt and not body.get("suffix"):
        return await _load_only(request, body, began)
    if body.get("raw") or body.get("suffix"):
        return await _generate_raw(request, body, prompt, began)
    messages = []
    if body.get("system"):
        messages.append({"role": "system", "content": str(body["system"])})
    messages.append({"role": "user", "content": prompt})
    return await _chat_answer(request, body, messages, "generate")


async def _generate_raw(
    request: Request, body: dict[str, Any], prompt: str, began: float
) -> Response:
    """The prompt as it is (`raw`), or with `suffix` the middle between the two."""
    settings = request.app.state.settings
    completion = {"model": body.get("model") or "", "prompt": prompt, **sampling_fields(body)}
    req = parse_completion_request(
        completion,
        default_max_tokens=settings.default_max_tokens,
        max_tokens_limit=settings.max_tokens_limit,
    )
    name, hot = _loaded(request, req.model, False, body)
    frame: Frame = {
        "type": "generate",
        "mode": "completion",
        "prompt": prompt,
        "params": params_frame(req.params),
    }
    if body.get("suffix"):
        frame["mode"] = "infill"
        frame["infill"] = {"input_prefix": prompt, "input_suffix": str(body["suffix"])}
    frames = worker_frames(request, name, frame, want_embedding=False)
    await first_frame(frames)
    load_s = 0.0 if hot else time.monotonic() - began
    answer = _Answer("generate", name, None, think=False)
    return await _respond(request, body, answer, frames, began, load_s)


async def _load_only(request: Request, body: dict[str, Any], began: float) -> Response:
    """An empty prompt loads the model (Ollama's preload), or with keep_alive 0 unloads it."""
    manager = manager_of(request)
    name, _ = _loaded(request, str(body.get("model") or ""), False, body)
    if manager.keep_alive_s(manager.slot(name)) == 0:
        await manager.unload(name, reason="keep_alive 0 (Ollama's unload)")
        reason = "unload"
    else:
        await manager.load(name, reason="requested")
        reason = "load"
    out: dict[str, Any] = {"model": name, "created_at": created_at(), "response": "", "done": True}
    out["done_reason"] = reason
    if reason == "load":
        out["total_duration"] = int((time.monotonic() - began) * 1e9)
    return JSONResponse(out)


async def _embed_vectors(
    request: Request, body: dict[str, Any], inputs: list[str]
) -> tuple[str, list[list[float]], int]:
    name, _ = _loaded(request, str(body.get("model") or ""), True, body)
    frames = worker_frames(request, name, {"type": "embed", "inputs": inputs}, want_embedding=True)
    async with aclosing(frames):
        item = await first_frame(frames)
    if item["type"] != "embeddings":
        raise frame_error(item)
    vectors = [[float(x) for x in v] for v in item["data"]]
    return name, vectors, int(item.get("prompt_tokens", 0))


async def embed(request: Request) -> Response:
    body = await read_object(request)
    began = time.monotonic()
    value = body.get("input")
    inputs = [value] if isinstance(value, str) else value
    if not isinstance(inputs, list) or not inputs or not all(isinstance(x, str) for x in inputs):
        raise invalid_request("'input' must be a string or a non-empty list of strings.", "input")
    name, vectors, tokens = await _embed_vectors(request, body, inputs)
    dimensions = body.get("dimensions")
    if isinstance(dimensions, int) and dimensions > 0:
        vectors = [shorten(v, dimensions) for v in vectors]
    return JSONResponse(
        {
            "model": name,
            "embeddings": vectors,
            "total_duration": int((time.monotonic() - began) * 1e9),
            "load_duration": 0,
            "prompt_eval_count": tokens,
        }
    )


async def embeddings(request: Request) -> Response:
    """The older single-prompt form: {"embedding": [...]}."""
    body = await read_object(request)
    prompt = body.get("prompt")
    if not isinstance(prompt, str):
        raise invalid_request("'prompt' must be a string.", "prompt")
    _, vectors, _ = await _embed_vectors(request, body, [prompt])
    return JSONResponse({"embedding": vectors[0]})


routes = [
    Route("/api/chat", timed("/api/chat", chat), methods=["POST"]),
    Route("/api/generate", timed("/api/generate", generate), methods=["POST"]),
    Route("/api/embed", timed("/api/embed", embed), methods=["POST"]),
    Route("/api/embeddings", timed("/api/embeddings", embeddings), methods=["POST"]),
]
