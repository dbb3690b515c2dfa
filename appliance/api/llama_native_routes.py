"""llama-server's native routes, for the clients written against it: `/completion` and
`/infill` here; `/tokenize`, `/detokenize`, `/apply-template`, `/props` and `/slots` in
`llama_native_model_routes.py`. Each takes an optional `model` (llama-server's router
mode names it the same way); without one, the default chat model answers. Shapes are in
`llama_native.py`; generation runs the `/v1/completions` path. (`/completions` without
/v1 stays OpenAI's, as it was here before: llama-server answers it natively.)"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from appliance.api import llama_native_model_routes
from appliance.api.errors import APIError, invalid_request
from appliance.api.frames import Interleaved, frame_error, unless_gone
from appliance.api.llama_native import (
    FimLimits,
    completion_body,
    final_result,
    generation_settings,
    partial_result,
    probabilities,
    select_fields,
)
from appliance.api.llama_native_model_routes import native_model
from appliance.api.pipeline import (
    SSE_HEADERS,
    first_frame,
    manager_of,
    params_frame,
    read_object,
    timed,
    worker_frames,
)
from appliance.api.schemas import (
    CompletionRequest,
    parse_completion_request,
)
from appliance.api.sse import SSE_PING, sse_data, sse_error
from appliance.engines.protocol import Frame

__all__ = ["routes"]


@dataclasses.dataclass
class _Run:
    """One completion: its frames, what was sent of it, and its FIM limits."""

    frames: AsyncGenerator[Frame, None]
    prompt: str
    prompt_tokens: int
    limits: FimLimits
    started_at: float
    text: list[str] = dataclasses.field(default_factory=list)
    ids: list[int] = dataclasses.field(default_factory=list)
    entries: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    tokens: int = 0
    ended: bool = False

    def cut_done(self, now: float) -> Frame:
        """The done frame of a run a FIM limit ended (its worker request was cancelled)."""
        first = self.limits.first_at or now
        return {
            "finish_reason": "length",
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.tokens,
            "cached_tokens": 0,
            "prompt_s": max(first - self.started_at, 0.0),
            "decode_s": max(now - first, 0.0),
        }


def _infill_fields(body: dict[str, Any]) -> dict[str, Any]:
    """`/infill`'s own fields, checked as llama-server checks them."""
    for key in ("input_prefix", "input_suffix"):
        if key not in body:
            raise invalid_request(f"'{key}' is required.", key)
        if not isinstance(body[key], str):
            raise invalid_request(f"'{key}' must be a string.", key)
    prompt = body.get("prompt", "")
    if not isinstance(prompt, str):
        raise invalid_request("'prompt' must be a string.", "prompt")
    extra = body.get("input_extra", [])
    if not isinstance(extra, list):
        raise invalid_request(
            '\'input_extra\' must be a list of {"filename": string, "text": string}.',
            "input_extra",
        )
    for i, chunk in enumerate(extra):
        if not isinstance(chunk, dict) or not isinstance(chunk.get("text"), str):
            raise invalid_request(f"'input_extra[{i}]' must have a string 'text'.", "input_extra")
        if not isinstance(chunk.get("filename", ""), str):
            raise invalid_request(f"'input_extra[{i}].filename' must be a string.", "input_extra")
    return {
        "input_prefix": body["input_prefix"],
        "input_suffix": body["input_suffix"],
        "input_extra": [{"filename": c.get("filename", ""), "text": c["text"]} for c in extra],
        "prompt": prompt,
    }


async def _start(
    request: Request,
    req: CompletionRequest,
    name: str,
    body: dict[str, Any],
    infill: dict[str, Any] | None,
) -> list[_Run]:
    """Every completion admitted and started (an error before the first token is an HTTP
    error); when one cannot start, the ones already started leave their slots."""
    runs: list[_Run] = []
    group = {"id": uuid.uuid4().hex, "size": req.choices}
    try:
        for prompt in req.prompts:
            for j in range(req.n):
                seed = req.params.seed
                params = (
                    req.params if seed is None else dataclasses.replace(req.params, seed=seed + j)
                )
                frame: Frame = {
                    "type": "generate",
                    "mode": "infill" if infill is not None else "completion",
                    "prompt": prompt.text,
                    "params": {**params_frame(params), "token_ids": True},
                    "group": group,
                }
                if prompt.ids is not None:
                    frame["prompt_ids"] = list(prompt.ids)
                if infill is not None:
                    frame["infill"] = infill
                frames = worker_frames(request, name, frame, want_embedding=False)
                run = _Run(frames, prompt.text, 0, FimLimits.of(body), time.monotonic())
                runs.append(run)
                started = await first_frame(frames)
                run.prompt_tokens = int(started.get("prompt_tokens", 0))
    except BaseException:
        for run in runs:
            await run.frames.aclose()
        raise
    return runs


async def _results(
    runs: list[_Run], settings: dict[str, Any], post_sampling: bool, n_probs: bool
) -> AsyncIterator[tuple[int, dict[str, Any] | None, bool]]:
    """(index, result, final) for every partial and final result, as they come; a result
    None is a ping (a stream shows it is alive)."""
    merged = Interleaved([run.frames for run in runs])
    async for i, item in merged.items():
        run = runs[i]
        if run.ended:
            continue
        kind = item["type"]
        if kind == "ping":
            yield i, None, False
        elif kind == "error":
            raise frame_error(item)
        elif kind == "token":
            now = time.monotonic()
            text, stop = run.limits.feed(str(item["text"]), now)
            ids = [int(t) for t in item.get("ids") or ()]
            entries = list(item.get("logprobs") or ())
            run.text.append(text)
            run.ids += ids
            run.entries += entries
            run.tokens += max(1, len(ids))
            probs = probabilities(entries, post_sampling) if n_probs else None
            yield i, partial_result(i, text, ids, run.tokens, run.prompt_tokens, probs), False
            if stop:
                run.ended = True
                await merged.stop(i)
                done = run.cut_done(time.monotonic())
                yield i, _final(run, i, done, settings, post_sampling, n_probs, cut=True), True
        elif kind == "done":
            run.ended = True
            yield i, _final(run, i, item, settings, post_sampling, n_probs, cut=False), True


def _final(
    run: _Run,
    index: int,
    done: Frame,
    settings: dict[str, Any],
    post_sampling: bool,
    n_probs: bool,
    cut: bool,
) -> dict[str, Any]:
    probs = probabilities(run.entries, post_sampling) if n_probs else None
    content = "".join(run.text)
    return final_result(index, content, run.ids, done, settings, run.prompt, cut, probs)


async def _complete(request: Request, infill: bool) -> Response:
    app_settings = request.app.state.settings
    body = await read_object(request)
    FimLimits.of(body)  # checked before anything starts
    translated = completion_body(body, app_settings.max_tokens_limit)
    fields = _infill_fields(body) if infill else None
    if fields is not None:
        translated["prompt"] = fields["prompt"]
    req = parse_completion_request(
        translated,
        default_max_tokens=app_settings.default_max_tokens,
        max_tokens_limit=app_settings.max_tokens_limit,
    )
    manager = manager_of(request)
    name = native_model(manager, req.model)
    runs = await _start(request, req, name, body, fields)
    slot = manager.slots.get(name)
    n_ctx = slot.info.get("n_ctx") if slot is not None and slot.info else None
    settings = generation_settings(req, n_ctx, name)
    post_sampling = bool(body.get("post_sampling_probs"))
    n_probs = req.params.logprobs is not None
    return_tokens = bool(body.get("return_tokens"))
    response_fields = body.get("response_fields")
    select_fields(response_fields, {})  # checked before the answer

    if req.stream:

        async def stream() -> AsyncIterator[bytes]:
            try:
                async for _, result, final in _results(runs, settings, post_sampling, n_probs):
                    if result is None:
                        yield SSE_PING
                        continue
                    if final:  # the content, tokens and probabilities went in the parts
                        result = {**result, "content": "", "tokens": []}
                        result.pop("completion_probabilities", None)
                        result = select_fields(response_fields, result)
                    yield sse_data(result)
            except APIError as err:
                yield sse_error(err)
            finally:
                for run in runs:
                    await run.frames.aclose()

        return StreamingResponse(stream(), media_type="text/event-stream", headers=SSE_HEADERS)

    finals: dict[int, dict[str, Any]] = {}

    async def collect() -> None:
        async for i, result, final in _results(runs, settings, post_sampling, n_probs):
            if result is not None and final:
                if not return_tokens:
                    result = {**result, "tokens": []}
                finals[i] = select_fields(response_fields, result)

    await unless_gone(request, collect())
    answers = [finals[i] for i in sorted(finals)]
    return JSONResponse(answers[0] if len(answers) == 1 else answers)


async def completion(request: Request) -> Response:
    return await _complete(request, infill=False)


async def infill(request: Request) -> Response:
    return await _complete(request, infill=True)


routes = [
    Route("/completion", timed("/completion", completion), methods=["POST"]),
    Route("/infill", timed("/infill", infill), methods=["POST"]),
    *llama_native_model_routes.routes,
]
