"""llama-server's native routes, for the clients written against it: `/completion`,
`/infill`, `/tokenize`, `/detokenize`, `/apply-template`,
`/props` and `/slots`. Each takes an optional `model` (llama-server's router mode names
it the same way); without one, the default chat model answers. Shapes are in
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
from appliance.api.pipeline import (
    SSE_HEADERS,
    first_frame,
    manager_of,
    message_frame,
    model_name,
    params_frame,
    read_json,
    worker_frames,
)
from appliance.api.schemas import (
    CompletionRequest,
    parse_chat_request,
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


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise invalid_request("The request body must be a JSON object.", None)
    return body


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
    body = _object(await read_json(request))
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
    if infill and req.choices != 1:
        raise invalid_request("'/infill' makes one completion at a time.", "n_cmpl")
    manager = manager_of(request)
    name = model_name(manager, req.model, embedding=False)
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
                    if final:  # the content and tokens went in the partial results
                        result = {**result, "content": "", "tokens": []}
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


async def _ask(request: Request, body: dict[str, Any], frame: Frame) -> Frame:
    """One question to the model's worker (loaded if it is not): its answer frame."""
    name = model_name(manager_of(request), _model(body), embedding=False)
    frames = worker_frames(request, name, frame, want_embedding=None)
    answer = await first_frame(frames)
    await frames.aclose()
    return answer


def _model(body: dict[str, Any]) -> str:
    value = body.get("model") or ""
    if not isinstance(value, str):
        raise invalid_request("'model' must be a string.", "model")
    return value


async def tokenize(request: Request) -> Response:
    body = _object(await read_json(request))
    content = body.get("content")
    if not isinstance(content, str):
        raise invalid_request("'content' is required: the text to tokenize.", "content")
    frame: Frame = {
        "type": "tokenize",
        "content": content,
        "add_special": bool(body.get("add_special", False)),
        "parse_special": bool(body.get("parse_special", True)),
        "with_pieces": bool(body.get("with_pieces", False)),
    }
    answer = await _ask(request, body, frame)
    ids = list(answer.get("tokens") or [])
    if frame["with_pieces"]:
        pieces = list(answer.get("pieces") or [])
        return JSONResponse(
            {"tokens": [{"id": t, "piece": p} for t, p in zip(ids, pieces, strict=True)]}
        )
    return JSONResponse({"tokens": ids})


async def detokenize(request: Request) -> Response:
    body = _object(await read_json(request))
    tokens = body.get("tokens", [])
    if not isinstance(tokens, list) or not all(
        isinstance(t, int) and not isinstance(t, bool) for t in tokens
    ):
        raise invalid_request("'tokens' must be a list of token ids.", "tokens")
    answer = await _ask(request, body, {"type": "detokenize", "tokens": tokens})
    return JSONResponse({"content": answer.get("content", "")})


async def apply_template(request: Request) -> Response:
    """The chat prompt the model's template makes of `messages`, generating nothing."""
    settings = request.app.state.settings
    body = _object(await read_json(request))
    req = parse_chat_request(
        {**body, "stream": False, "max_tokens": 1},
        default_max_tokens=settings.default_max_tokens,
        max_tokens_limit=settings.max_tokens_limit,
    )
    frame: Frame = {
        "type": "render",
        "messages": [message_frame(m) for m in req.messages],
        "params": {},
    }
    answer = await _ask(request, body, frame)
    return JSONResponse({"prompt": answer.get("content", "")})


async def _loaded(request: Request) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """The model `?model=` names (else the default), loaded as llama-server's always is,
    with its engine's facts and its view."""
    manager = manager_of(request)
    name = model_name(manager, request.query_params.get("model", ""), embedding=False)
    worker = await manager.load(name, reason="first request")
    return name, dict(worker.info), manager.describe(name)


async def props(request: Request) -> Response:
    """llama-server's server properties for the model (`?model=`, else the default):
    what SillyTavern and llama.vscode read the context size and template from (the model
    is loaded first, as llama-server's always is)."""
    from appliance import __version__

    name, engine, view = await _loaded(request)
    n_ctx = engine.get("n_ctx")
    slots = engine.get("slots") or 1
    defaults = {
        "n_predict": -1,
        "seed": -1,
        "temperature": 0.8,
        "top_k": 40,
        "top_p": 0.95,
        "min_p": 0.05,
        "repeat_last_n": 64,
        "repeat_penalty": 1.0,
        "presence_penalty": 0.0,
        "frequency_penalty": 0.0,
        "stop": [],
        "stream": False,
        "n_probs": 0,
    }
    return JSONResponse(
        {
            "default_generation_settings": {
                "id": 0,
                "id_task": -1,
                "n_ctx": n_ctx,
                "is_processing": bool(view.get("slots_busy")),
                "params": defaults,
            },
            "total_slots": slots,
            "model_path": name,
            "model_alias": name,
            "chat_template": engine.get("chat_template", ""),
            "modalities": {"vision": False, "audio": False},
            "build_info": f"appliance {__version__}",
            "is_sleeping": False,
        }
    )


async def slots(request: Request) -> Response:
    """Each slot of the model and whether it is busy (llama-server's `/slots`, short)."""
    name, engine, view = await _loaded(request)
    n_ctx = engine.get("n_ctx")
    count = int(engine.get("slots") or 1)
    busy = int(view.get("slots_busy") or 0)
    return JSONResponse(
        [{"id": i, "n_ctx": n_ctx, "model": name, "is_processing": i < busy} for i in range(count)]
    )


routes = [
    Route("/completion", completion, methods=["POST"]),
    Route("/infill", infill, methods=["POST"]),
    Route("/tokenize", tokenize, methods=["POST"]),
    Route("/detokenize", detokenize, methods=["POST"]),
    Route("/apply-template", apply_template, methods=["POST"]),
    Route("/props", props, methods=["GET"]),
    Route("/slots", slots, methods=["GET"]),
]
