"""`POST /v1/completions`: plain text completions of one prompt or a batch of prompts,
`n` choices each. Every choice is its own sequence in the model's batch (a shared prompt
is read once and reused through the prefix cache). Choice `p * n + j` completes prompt
`p`; with a seed, choice j of every prompt gets seed + j, so a batch gives what its
prompts give one by one. Usage counts each prompt once and every choice's tokens."""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from appliance.api.frames import collect_all_unless_gone, frame_error, interleave
from appliance.api.logprobs import completion_logprobs
from appliance.api.pipeline import (
    SSE_HEADERS,
    finish_reason_of,
    first_frame,
    manager_of,
    model_name,
    params_frame,
    read_json,
    usage_of,
    worker_frames,
)
from appliance.api.schemas import CompletionPrompt, CompletionRequest, parse_completion_request
from appliance.api.sse import SSE_DONE, SSE_PING, sse_data, sse_error
from appliance.engines.protocol import Frame


@dataclasses.dataclass
class _Choice:
    """One sequence: its prompt's echo (the prompt's text, or "" when the worker echoes
    the prompt's tokens), its frames, and where its logprobs' offsets are."""

    prompt_index: int
    echo: str
    frames: AsyncGenerator[Frame, None]
    prompt_text: str = ""  # "" for a prompt of token ids
    offset: int = 0


def _echo_text(choice: _Choice, prompt: list[dict[str, Any]] | None) -> str:
    """The prompt as echoed: its own text, else the text of its tokens."""
    if choice.echo or prompt is None:
        return choice.echo
    return choice.prompt_text or "".join(str(e["token"]) for e in prompt)


def _prompt_logprobs(prompt: list[dict[str, Any]], echoed: str) -> dict[str, Any]:
    """The prompt's tokens in the completions shape, their offsets into the echoed text (a
    SentencePiece tokenizer's pieces start with a space the prompt did not have)."""
    joined = "".join(str(e["token"]) for e in prompt)
    extra = len(joined) - len(echoed) if joined.endswith(echoed) else 0
    out = completion_logprobs(prompt, -extra)
    out["text_offset"] = [min(max(o, 0), len(echoed)) for o in out["text_offset"]]
    return out


def _joined(first: dict[str, Any], second: dict[str, Any]) -> dict[str, Any]:
    return {key: first[key] + second[key] for key in first}


async def completions(request: Request) -> Response:
    settings = request.app.state.settings
    req = parse_completion_request(
        await read_json(request),
        default_max_tokens=settings.default_max_tokens,
        max_tokens_limit=settings.max_tokens_limit,
    )
    name = model_name(manager_of(request), req.model, embedding=False)
    choices = await _start(request, req, name)
    cid = f"cmpl-{uuid.uuid4().hex[:24]}"
    created = int(time.time())
    if req.stream:
        return StreamingResponse(
            _stream(choices, req, cid, created, name),
            media_type="text/event-stream",
            headers=SSE_HEADERS,
        )
    results = await collect_all_unless_gone(request, [choice.frames for choice in choices])
    body = []
    for i, (choice, (text, done)) in enumerate(zip(choices, results, strict=True)):
        prompt = done.get("prompt")
        echoed = _echo_text(choice, prompt) if req.echo else ""
        logprobs = None
        if req.params.logprobs is not None:
            logprobs = completion_logprobs(done["logprobs"], len(echoed))
            if prompt is not None:
                logprobs = _joined(_prompt_logprobs(prompt, echoed), logprobs)
        body.append(
            {
                "index": i,
                "text": echoed + text,
                "logprobs": logprobs,
                "finish_reason": finish_reason_of(done),
            }
        )
    return JSONResponse(
        {
            "id": cid,
            "object": "text_completion",
            "created": created,
            "model": name,
            "choices": body,
            "usage": _usage(choices, [done for _, done in results]),
        }
    )


def _frame(req: CompletionRequest, prompt: CompletionPrompt, j: int) -> Frame:
    seed = req.params.seed
    params = req.params if seed is None else dataclasses.replace(req.params, seed=seed + j)
    frame: Frame = {
        "type": "generate",
        "mode": "completion",
        "prompt": prompt.text,
        "params": params_frame(params),
    }
    if prompt.ids is not None:
        frame["prompt_ids"] = list(prompt.ids)
    return frame


async def _start(request: Request, req: CompletionRequest, name: str) -> list[_Choice]:
    """Every choice admitted and started (an error before the first token is an HTTP
    error); when one cannot start, the ones already started leave their slots."""
    choices: list[_Choice] = []
    # The choices are admitted all together or not at all (see the supervisor's `_admit`).
    group = {"id": uuid.uuid4().hex, "size": len(req.prompts) * req.n}
    try:
        for p, prompt in enumerate(req.prompts):
            for j in range(req.n):
                frame = {**_frame(req, prompt, j), "group": group}
                frames = worker_frames(request, name, frame, want_embedding=False)
                echo = prompt.text if req.echo and not req.params.echo else ""
                choices.append(_Choice(p, echo, frames, prompt.text))
                await first_frame(frames)
    except BaseException:
        for choice in choices:
            await choice.frames.aclose()
        raise
    return choices


def _usage(choices: list[_Choice], dones: list[Frame]) -> dict[str, Any]:
    """Each prompt once (its choices read the same one), every choice's completion."""
    prompt_tokens: dict[int, int] = {}
    cached_tokens: dict[int, int] = {}
    for choice, done in zip(choices, dones, strict=True):
        p = choice.prompt_index
        prompt_tokens.setdefault(p, int(done.get("prompt_tokens", 0)))
        cached_tokens[p] = max(cached_tokens.get(p, 0), int(done.get("cached_tokens", 0)))
    return usage_of(
        {
            "prompt_tokens": sum(prompt_tokens.values()),
            "completion_tokens": sum(int(d.get("completion_tokens", 0)) for d in dones),
            "cached_tokens": sum(cached_tokens.values()),
        }
    )


async def _stream(
    choices: list[_Choice], req: CompletionRequest, cid: str, created: int, name: str
) -> AsyncIterator[bytes]:
    def chunk(
        i: int,
        text: str,
        finish: str | None = None,
        entries: list[dict[str, Any]] | None = None,
        logprobs: dict[str, Any] | None = None,
    ) -> bytes:
        if entries and req.params.logprobs is not None:
            choice = choices[i]
            logprobs = completion_logprobs(entries, choice.offset)
            choice.offset += sum(len(e["token"]) for e in entries)
        return sse_data(
            {
                "id": cid,
                "object": "text_completion",
                "created": created,
                "model": name,
                "choices": [
                    {"index": i, "text": text, "logprobs": logprobs, "finish_reason": finish}
                ],
            }
        )

    dones: dict[int, Frame] = {}
    try:
        for i, choice in enumerate(choices):
            if choice.echo:
                yield chunk(i, choice.echo)
                choice.offset = len(choice.echo)
        async for i, item in interleave([choice.frames for choice in choices]):
            if item["type"] == "ping":
                yield SSE_PING
            elif item["type"] == "prompt" and req.echo:  # echoed by the worker
                choice = choices[i]
                echoed = _echo_text(choice, list(item["tokens"]))
                scored = None
                if req.params.logprobs is not None:
                    scored = _prompt_logprobs(list(item["tokens"]), echoed)
                choice.offset = len(echoed)
                yield chunk(i, echoed, logprobs=scored)
            elif item["type"] == "token":
                yield chunk(i, str(item["text"]), entries=item.get("logprobs"))
            elif item["type"] == "error":
                yield sse_error(frame_error(item))
                return
            elif item["type"] == "done":
                yield chunk(i, "", finish_reason_of(item))
                dones[i] = item
        if req.include_usage:
            order = sorted(dones)
            yield sse_data(
                {
                    "id": cid,
                    "object": "text_completion",
                    "created": created,
                    "model": name,
                    "choices": [],
                    "usage": _usage([choices[i] for i in order], [dones[i] for i in order]),
                }
            )
        yield SSE_DONE
    finally:  # also when the client left before the first frame
        for choice in choices:
            await choice.frames.aclose()
