"""The request pipeline under every API that generates (chat and text completions,
Responses, Anthropic Messages): the body read and bounded, the model resolved (a missing
`model` is the default one), sampling parameters as the worker takes them, the request
sent to its worker (429 past its queue, 504 past `request_timeout`), the first frame
awaited so that an early error is a plain HTTP error, usage and finish reasons, and
request timing for the metrics."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from typing import Any

from starlette.requests import Request
from starlette.responses import Content, Response, StreamingResponse

from appliance.api.chat_output import ChatOutput
from appliance.api.errors import APIError, from_model_error, invalid_request
from appliance.api.frames import frame_error
from appliance.api.schemas import ChatMessage, ChatRequest, SamplingParams
from appliance.api.sse import sse_data
from appliance.engines.protocol import Frame
from appliance.engines.supervisor import QueueFull
from appliance.telemetry.sampler import RequestTrack
from appliance.tiers.errors import ModelError
from appliance.tiers.manager import ModelManager

log = logging.getLogger("appliance.api")

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
        body = json.loads(raw)
        # A lone surrogate escape (a JavaScript client that cut an emoji in two) cannot be
        # encoded as UTF-8 further on: it becomes U+FFFD, as a browser's encoder writes it.
        return without_lone_surrogates(body) if _SURROGATE_ESCAPE.search(raw) else body
    except RecursionError as exc:
        raise invalid_request("the request body is nested too deeply to read") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise invalid_request(f"the request body is not valid JSON: {exc}") from exc
    except ValueError as exc:  # int() of a number past Python's 4300 digits
        raise invalid_request(
            "the request body holds a number too long to read (over 4300 digits)"
        ) from exc


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def without_lone_surrogates(value: Any) -> Any:
    """`value` (parsed JSON) with every lone surrogate replaced by U+FFFD."""
    if isinstance(value, str):
        return _LONE_SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [without_lone_surrogates(v) for v in value]
    if isinstance(value, dict):
        return {without_lone_surrogates(k): without_lone_surrogates(v) for k, v in value.items()}
    return value


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
        "repeat_last_n": params.repeat_last_n,
        "ignore_eos": params.ignore_eos,
        "deterministic": params.deterministic,
        "logprobs": params.logprobs,
        "echo": params.echo,
        "prompt_logprobs": params.prompt_logprobs,
        "response_format": None
        if fmt is None or fmt.type == "text"
        else {"type": fmt.type, "schema": fmt.schema},
        "grammar": params.grammar,
        "samplers": params.samplers,
        "sampler_order": list(params.sampler_order),
    }


async def read_object(request: Request) -> dict[str, Any]:
    """The request body, which must be a JSON object (the routes that take no list)."""
    body = await read_json(request)
    if not isinstance(body, dict):
        raise invalid_request("The request body must be a JSON object.", None)
    return body


def manager_of(request: Request) -> ModelManager:
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


# Frames that show a request ran in its worker: after one, a crash is the request's too.
_RAN = frozenset({"admitted", "token", "prompt", "done"})


async def worker_frames(
    request: Request, name: str, frame: Frame, want_embedding: bool | None
) -> AsyncGenerator[Frame, None]:
    """The frames of one request to `name`'s worker (loaded if it is not); `want_embedding`
    None takes either kind of model. A generation its worker had queued but not yet run
    when the worker crashed is sent once more, to the restarted worker: the crash was
    another request's, and this one loses nothing (its client sees one answer)."""
    track: RequestTrack | None = getattr(request.state, "track", None)
    if track is not None:
        track.model = name
    timeout_s: float = request.app.state.settings.request_timeout_s
    deadline = time.monotonic() + timeout_s
    started_sent = ran = False
    for attempt in range(2):
        crash: Frame | None = None
        try:
            async with aclosing(_attempt(request, name, frame, want_embedding, deadline)) as got:
                async for item in got:
                    if item["type"] == "started" and started_sent:
                        continue  # the resubmission's: the consumer has its first already
                    if attempt == 0 and not ran and _crashed(item, frame):
                        crash = item
                        break
                    started_sent = started_sent or item["type"] == "started"
                    ran = ran or item["type"] in _RAN
                    if track is not None:
                        track.frame(item)
                    yield item
        except (APIError, ModelError) as exc:
            if attempt == 0:
                raise
            err = exc if isinstance(exc, APIError) else from_model_error(exc)
            # Mid-answer for the consumer (its first frame came): an error frame, not a raise.
            message = (
                f"the engine worker for model '{name}' crashed while this request waited, "
                f"and its restart failed: {err.message}"
            )
            yield {"type": "error", "status": err.status, "code": err.code, "message": message}
            return
        if crash is None:
            return
        log.warning("model %s: a request its crashed worker had not run is sent again", name)


def _crashed(item: Frame, frame: Frame) -> bool:
    """A report that the worker crashed, for a generation (which can be sent again)."""
    return (
        item["type"] == "error"
        and item.get("code") == "engine_crashed"
        and frame.get("type") == "generate"
    )


async def _attempt(
    request: Request, name: str, frame: Frame, want_embedding: bool | None, deadline: float
) -> AsyncGenerator[Frame, None]:
    async with manager_of(request).use(name) as worker:
        if want_embedding is not None and worker.spec.embedding != want_embedding:
            if want_embedding:
                raise invalid_request(
                    f"model '{name}' is not an embedding model; use it with "
                    "/v1/chat/completions or /v1/completions",
                    "model",
                )
            raise invalid_request(
                f"model '{name}' is an embedding model; use it with /v1/embeddings", "model"
            )
        sent = frame
        if worker.spec.deterministic and sent.get("type") == "generate":
            sent = {**sent, "params": {**sent.get("params", {}), "deterministic": True}}
        timeout_s: float = request.app.state.settings.request_timeout_s
        try:
            ping_s: float = request.app.state.settings.sse_ping_interval_s
            async for item in _with_deadline(worker.request(sent, ping_s), timeout_s, deadline):
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
    frames: AsyncGenerator[Frame, None], timeout_s: float, deadline: float
) -> AsyncIterator[Frame]:
    """The frames of one request until `deadline` (`timeout_s` after it came, queue wait
    included); then the request is cancelled in the worker and ends with a
    `request_timeout` error frame."""
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


async def first_frame(frames: AsyncGenerator[Frame, None]) -> Frame:
    """A request's first frame (pings passed over); an error one raised as the APIError."""
    first = await frames.__anext__()
    while first["type"] == "ping":
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


def usage_chunk(cid: str, obj: str, created: int, name: str, done: Frame) -> bytes:
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


def finish_reason_of(done: Frame) -> str:
    reason = str(done.get("finish_reason", "stop"))
    return reason if reason in ("stop", "length") else "stop"


def model_name(manager: ModelManager, requested: str, *, embedding: bool) -> str:
    """The model a request names (aliases, any case), or without one, the default
    (`ModelManager.default_model`)."""
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
    entry = manager.catalog.exact(name)
    return entry.reasoning if entry is not None else "auto"


async def start_chat(
    request: Request, req: ChatRequest, group: dict[str, Any] | None = None
) -> tuple[str, AsyncGenerator[Frame, None], ChatOutput, Frame]:
    """The one chat pipeline under every API that chats (chat completions, Responses):
    the model resolved, the request sent to its worker, the first frame received (an
    error before it is an HTTP error), and the output parser ready for the text."""
    manager = manager_of(request)
    name = model_name(manager, req.model, embedding=False)
    frame = chat_frame(req)
    if group is not None:  # one of n choices: admitted all together or not at all
        frame["group"] = group
    frames = worker_frames(request, name, frame, want_embedding=False)
    started = await first_frame(frames)
    split = _reasoning_mode(manager, name) != "off"
    output = ChatOutput(
        split_reasoning=split,
        reasoning_started=bool(started.get("reasoning_started")) and split,
        family=started.get("tool_family"),
        tools=req.tools,
    )
    return name, frames, output, started


def chat_frame(req: ChatRequest, kind: str = "generate") -> Frame:
    """A chat request as the worker reads it: its messages, parameters and the tools the
    prompt offers (also for `render`, which shows the prompt without generating)."""
    frame: Frame = {
        "type": kind,
        "mode": "chat",
        "messages": [message_frame(m) for m in req.messages],
        "params": params_frame(req.params),
    }
    if req.template_vars:
        frame["template_vars"] = dict(req.template_vars)
    if req.tools.active:
        frame["tools"] = [t.openai() for t in req.tools.offered()]
        frame["params"]["tool_choice"] = {
            "mode": req.tools.choice.mode,
            "name": req.tools.choice.name,
            "parallel": req.tools.parallel,
        }
    return frame


def message_frame(m: ChatMessage) -> dict[str, Any]:
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
