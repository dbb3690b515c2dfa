"""POST /v1/responses (and GET/DELETE of a stored one, GET of its input items): the
Responses API over the chat pipeline, with stored responses so that
`previous_response_id` carries a conversation.

Stored responses live in the data folder (`responses/<id>.json`, beside the store),
bounded by count and bytes, oldest dropped first; `store: false` keeps nothing.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from appliance.api.errors import APIError, invalid_request
from appliance.api.frames import collect_unless_gone, frame_error
from appliance.api.pipeline import (
    SSE_HEADERS,
    manager_of,
    model_name,
    read_json,
    start_chat,
    timed,
    usage_of,
)
from appliance.api.responses import ResponseBuilder, new_id
from appliance.api.responses_request import LISTED_INCLUDES, input_items, to_chat_body
from appliance.api.schemas import ChatRequest, parse_chat_request, query_limit
from appliance.api.sse import SSE_PING, sse_event
from appliance.api.truncation import fit_to_context
from appliance.engines.protocol import Frame
from appliance.tiers.manager import ModelManager

MAX_STORED = 1000
MAX_STORED_BYTES = 64 << 20
_ID_OK = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_")


class ResponseStore:
    def __init__(
        self, folder: Path, max_count: int = MAX_STORED, max_bytes: int = MAX_STORED_BYTES
    ):
        self.folder = folder
        self.max_count = max_count
        self.max_bytes = max_bytes
        self._lock = threading.Lock()

    def _path(self, response_id: str) -> Path | None:
        if not response_id.startswith("resp_") or not set(response_id) <= _ID_OK:
            return None
        return self.folder / f"{response_id}.json"

    def put(self, response_id: str, record: dict[str, Any]) -> None:
        path = self._path(response_id)
        if path is None:
            return
        with self._lock:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".tmp-")
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(record, f)
            os.replace(tmp, path)
            self._prune()

    def _prune(self) -> None:
        files = sorted(self.folder.glob("resp_*.json"), key=lambda p: p.stat().st_mtime)
        total = sum(p.stat().st_size for p in files)
        while files and (len(files) > self.max_count or total > self.max_bytes):
            oldest = files.pop(0)
            total -= oldest.stat().st_size
            oldest.unlink(missing_ok=True)

    def get(self, response_id: str) -> dict[str, Any] | None:
        path = self._path(response_id)
        try:
            return json.loads(path.read_text(encoding="utf-8")) if path else None
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def delete(self, response_id: str) -> bool:
        path = self._path(response_id)
        if path is None or not path.exists():
            return False
        path.unlink(missing_ok=True)
        return True


def _store(request: Request) -> ResponseStore:
    store = getattr(request.app.state, "responses", None)
    if store is None:
        manager: ModelManager = request.app.state.manager
        store = ResponseStore(manager.store.root.parent / "responses")
        request.app.state.responses = store
    return store


def _not_found(response_id: str, param: str | None = "previous_response_id") -> APIError:
    return APIError(
        404,
        f"no stored response '{response_id}' (responses are kept while there is room, and "
        "never with store: false)",
        "invalid_request_error",
        param,
        "response_not_found",
    )


async def create_response(request: Request) -> Response:
    settings = request.app.state.settings
    body = await read_json(request)
    if not isinstance(body, dict):
        raise invalid_request("the request body must be a JSON object")
    store = _store(request)
    history: list[dict[str, Any]] = []
    previous = body.get("previous_response_id")
    if previous is not None:
        record = store.get(str(previous))
        if record is None:
            raise _not_found(str(previous))
        history = record["history"]
    chat_body = to_chat_body(body, history)
    items = input_items(body["input"])  # read by to_chat_body: well formed

    def parse(chat: dict[str, Any]) -> ChatRequest:
        return parse_chat_request(
            chat,
            default_max_tokens=settings.default_max_tokens,
            max_tokens_limit=settings.max_tokens_limit,
        )

    try:
        req = parse(chat_body)
        try:
            name, frames, output, started = await start_chat(request, req)
        except APIError as err:
            if err.code != "context_length_exceeded" or body.get("truncation") != "auto":
                raise
            # Its oldest turns dropped until it fits, as OpenAI's: else the same error.
            name = model_name(manager_of(request), req.model, embedding=False)
            try:
                fitted = await fit_to_context(request, name, chat_body, parse)
            except APIError:  # an engine that cannot count (ONNX): the context error
                fitted = None
            if fitted is None:
                raise err from None
            chat_body, req = fitted, parse(fitted)
            name, frames, output, started = await start_chat(request, req)
    except APIError as err:
        err.param = _responses_param(err.param)
        raise
    builder = ResponseBuilder(body, name, new_id("resp"), logprobs=req.params.logprobs is not None)
    conversation = list(chat_body["messages"])

    def on_token(item: Frame) -> list[dict[str, Any]]:
        """A token's text as the builder's events, its logprobs given first so that they
        go with the text it made."""
        builder.add_logprobs(item.get("logprobs"))
        return [ev for delta in output.feed(str(item["text"])) for ev in builder.feed(delta)]

    async def fed(frames: AsyncGenerator[Frame, None]) -> AsyncGenerator[Frame, None]:
        """The frames, each token given to the builder as it passes (as when streaming)."""
        async with aclosing(frames):
            async for item in frames:
                if item["type"] == "token":
                    on_token(item)
                yield item

    def keep() -> None:
        if body.get("store", True):
            store.put(
                builder.id,
                {
                    "response": builder.response(),
                    "history": conversation + builder.as_history(),
                    "input_items": items,
                },
            )

    if not req.stream:
        _, done = await collect_unless_gone(request, fed(frames))
        for delta in output.finish():
            builder.feed(delta)
        builder.finish(output.finish_reason(str(done.get("finish_reason", "stop"))), usage_of(done))
        keep()
        return JSONResponse(builder.response())

    generated = [0]  # tokens streamed so far: a cancelled response's usage
    ended_well = [False]  # the answer (or an error) was sent whole

    async def events() -> AsyncIterator[bytes]:
        yield _named(builder.event("response.created", response=builder.response("in_progress")))
        yield _named(
            builder.event("response.in_progress", response=builder.response("in_progress"))
        )
        async for item in frames:
            if item["type"] == "ping":
                yield SSE_PING
            elif item["type"] == "token":
                generated[0] += 1
                for ev in on_token(item):
                    yield _named(ev)
            elif item["type"] == "error":
                ended_well[0] = True  # an error event: nothing to keep
                err = frame_error(item)
                yield _named(
                    builder.event("error", code=err.code, message=err.message, param=err.param)
                )
                return
            elif item["type"] == "done":
                if item.get("finish_reason") == "cancelled":
                    return  # the client went away first: kept as cancelled (below)
                for delta in output.finish():
                    for ev in builder.feed(delta):
                        yield _named(ev)
                reason = output.finish_reason(str(item.get("finish_reason", "stop")))
                for ev in builder.finish(reason, usage_of(item)):
                    yield _named(ev)
                keep()
                ended_well[0] = True
                return

    async def stream() -> AsyncIterator[bytes]:
        ended = False
        try:
            async with aclosing(frames):
                async for data in events():
                    yield data
            ended = ended_well[0]
        finally:
            if not ended:
                # The client stopped reading (a chat UI's Stop): the answer so far is kept as
                # a cancelled response, so that a next turn naming it (previous_response_id)
                # still has its conversation; it was a 404.
                prompt = int(started.get("prompt_tokens", 0))
                builder.finish(
                    "length",
                    usage_of({"prompt_tokens": prompt, "completion_tokens": generated[0]}),
                )
                builder.status = "cancelled"
                keep()

    return StreamingResponse(stream(), media_type="text/event-stream", headers=SSE_HEADERS)


def _responses_param(param: str | None) -> str | None:
    """A chat parameter's name as this API calls it."""
    if param is None:
        return None
    if param.startswith("messages"):
        return "input"  # its own and earlier turns
    return {"max_tokens": "max_output_tokens"}.get(param, param)


def _named(event: dict[str, Any]) -> bytes:
    return sse_event(event["type"], event)


async def get_response(request: Request) -> Response:
    response_id = request.path_params["response_id"]
    record = _store(request).get(response_id)
    if record is None:
        raise _not_found(response_id)
    return JSONResponse(record["response"])


MAX_LIST_LIMIT = 100


async def list_input_items(request: Request) -> Response:
    """The stored response's own input items, as OpenAI lists them: `order` desc (the
    default) or asc, `limit` of them (20; at most 100) after the item `after`. The
    items of a `previous_response_id`'s turns are that response's, not this one's. A
    response stored before items were kept lists none."""
    response_id = request.path_params["response_id"]
    query = request.query_params
    limit = query_limit(query.get("limit"), MAX_LIST_LIMIT)
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise invalid_request(f"'order' must be 'asc' or 'desc', not {order!r}", "order")
    for name in query.getlist("include") + query.getlist("include[]"):
        if name not in LISTED_INCLUDES:
            raise invalid_request(f"'include': unknown value {name!r}", "include")
    record = _store(request).get(response_id)
    if record is None:
        raise _not_found(response_id, None)
    items: list[dict[str, Any]] = list(record.get("input_items") or [])
    if order == "desc":
        items.reverse()
    start = 0
    after = query.get("after")
    if after is not None:
        ids = [item.get("id") for item in items]
        if after not in ids:
            raise invalid_request(
                f"'after': no input item '{after}' in response '{response_id}'", "after"
            )
        start = ids.index(after) + 1
    page = items[start : start + limit]
    return JSONResponse(
        {
            "object": "list",
            "data": page,
            "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None,
            "has_more": start + limit < len(items),
        }
    )


async def delete_response(request: Request) -> Response:
    response_id = request.path_params["response_id"]
    if not _store(request).delete(response_id):
        raise _not_found(response_id)
    return JSONResponse({"id": response_id, "object": "response", "deleted": True})


routes = [
    Route("/responses", timed("/v1/responses", create_response), methods=["POST"]),
    Route("/responses/{response_id}", get_response, methods=["GET"]),
    Route("/responses/{response_id}", delete_response, methods=["DELETE"]),
    Route("/responses/{response_id}/input_items", list_input_items, methods=["GET"]),
]
