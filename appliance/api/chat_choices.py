"""Chat completions with `n` > 1: n sequences of the same request, decoded together in
the model's batch (the prompt is read once and shared through the prefix cache), as
the choices of one answer. A seed gives choice i the seed + i, so choices differ and
the same request still repeats. Usage counts the prompt once and every choice's
completion tokens."""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from appliance.api.chat_output import ChatOutput
from appliance.api.frames import collect_all_unless_gone, frame_error, interleave
from appliance.api.logprobs import chat_logprobs
from appliance.api.pipeline import SSE_HEADERS, start_chat, usage_of
from appliance.api.schemas import ChatRequest
from appliance.api.sse import SSE_DONE, SSE_PING, sse_data, sse_error
from appliance.engines.protocol import Frame

Run = tuple[str, AsyncGenerator[Frame, None], ChatOutput, Frame]


async def start_runs(request: Request, req: ChatRequest) -> list[Run]:
    runs: list[Run] = []
    group = {"id": uuid.uuid4().hex, "size": req.n}
    try:
        for i in range(req.n):
            seed = req.params.seed
            params = req.params if seed is None else dataclasses.replace(req.params, seed=seed + i)
            one = dataclasses.replace(req, params=params, n=1)
            runs.append(await start_chat(request, one, group))
    except BaseException:
        for _, frames, _, _ in runs:  # the ones already admitted leave their slots
            await frames.aclose()
        raise
    return runs


def _usage(dones: list[Frame]) -> dict[str, Any]:
    """The prompt once (every choice read the same one), every choice's completion."""
    return usage_of(
        {
            "prompt_tokens": int(dones[0].get("prompt_tokens", 0)) if dones else 0,
            "completion_tokens": sum(int(d.get("completion_tokens", 0)) for d in dones),
            "cached_tokens": max((int(d.get("cached_tokens", 0)) for d in dones), default=0),
        }
    )


def chat_choice(index: int, output: ChatOutput, text: str, done: Frame, req: ChatRequest) -> Frame:
    """One whole choice of a chat answer: its text read by the output parser."""
    output.feed(text)
    output.finish()
    choice: dict[str, Any] = {
        "index": index,
        "message": output.message(),
        "logprobs": chat_logprobs(done["logprobs"]) if req.params.logprobs is not None else None,
        "finish_reason": output.finish_reason(str(done.get("finish_reason", "stop"))),
    }
    warnings = output.warnings()
    if warnings:
        choice["warnings"] = warnings
    return choice


async def chat_n(request: Request, req: ChatRequest) -> Response:
    runs = await start_runs(request, req)
    name = runs[0][0]
    cid = f"chatcmpl-{uuid.uuid4().hex[:24]}"
    created = int(time.time())
    if req.stream:
        return StreamingResponse(
            _stream(runs, req, cid, created, name),
            media_type="text/event-stream",
            headers=SSE_HEADERS,
        )
    results = await collect_all_unless_gone(request, [frames for _, frames, _, _ in runs])
    choices = [
        chat_choice(i, output, text, done, req)
        for i, ((_, _, output, _), (text, done)) in enumerate(zip(runs, results, strict=True))
    ]
    return JSONResponse(
        {
            "id": cid,
            "object": "chat.completion",
            "created": created,
            "model": name,
            "choices": choices,
            "usage": _usage([done for _, done in results]),
        }
    )


async def _stream(
    runs: list[Run], req: ChatRequest, cid: str, created: int, name: str
) -> AsyncIterator[bytes]:
    def chunk(i: int, delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
        choice = {"index": i, "delta": delta, "logprobs": None, "finish_reason": finish, **extra}
        return sse_data(
            {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": name,
                "choices": [choice],
            }
        )

    dones: list[Frame] = []
    streams = [frames for _, frames, _, _ in runs]
    try:
        for i in range(len(runs)):
            yield chunk(i, {"role": "assistant", "content": ""})
        async for i, item in interleave(streams):
            output = runs[i][2]
            if item["type"] == "ping":
                yield SSE_PING
            elif item["type"] == "token":
                deltas = output.feed(str(item["text"]))
                entries = item.get("logprobs")
                if entries and req.params.logprobs is not None:
                    yield chunk(i, deltas[0] if deltas else {}, logprobs=chat_logprobs(entries))
                    deltas = deltas[1:]
                for delta in deltas:
                    yield chunk(i, delta)
            elif item["type"] == "error":
                yield sse_error(frame_error(item))
                return
            elif item["type"] == "done":
                for delta in output.finish():
                    yield chunk(i, delta)
                warnings = output.warnings()
                extra = {"warnings": warnings} if warnings else {}
                reason = output.finish_reason(str(item.get("finish_reason", "stop")))
                yield chunk(i, {}, reason, **extra)
                dones.append(item)
        if req.include_usage:
            yield sse_data(
                {
                    "id": cid,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": name,
                    "choices": [],
                    "usage": _usage(dones),
                }
            )
        yield SSE_DONE
    finally:  # also when the client left before the first frame
        for frames in streams:
            await frames.aclose()
