"""Graceful shutdown: stop taking requests, let those in flight finish, end the rest cleanly.

On SIGTERM (`appliance.api.server`) the daemon drains: new requests get a 503 in the
OpenAI shape with ``Retry-After`` while the listening socket stays open (a client is
told to come back instead of finding nothing there), requests in flight get
`drain_timeout` to finish, and each one still running then is ended by the daemon:
a stream with an SSE error event (code ``shutting_down``) its client can read, a
request without an answer yet with the 503. Only then does uvicorn close the
sockets and the lifespan unload the workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from appliance.api.errors import APIError, error_response
from appliance.api.sse import sse_stream_error

__all__ = ["Drain", "DrainMiddleware", "shutting_down"]

log = logging.getLogger("appliance.api")

# A restarted daemon answers within seconds; tell clients to retry after that.
RETRY_AFTER_S = 5.0


def shutting_down(detail: str) -> APIError:
    """503: the daemon is stopping (a restart, an upgrade)."""
    return APIError(
        503,
        f"the daemon is shutting down: {detail}; retry shortly",
        "server_error",
        None,
        "shutting_down",
        retry_after=RETRY_AFTER_S,
    )


class _InFlight:
    """One request being served: what of its response has gone out, and its task."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self.task: asyncio.Task[None] | None = None
        self.started = False
        self.finished = False
        self.event_stream = False
        self.cut = False

    async def send(self, message: Message) -> None:
        if self.cut:  # the daemon ended this response; the app's unwinding sends nothing
            return
        if message["type"] == "http.response.start":
            self.started = True
            for key, value in message.get("headers", []):
                if key.lower() == b"content-type":
                    self.event_stream = value.startswith(b"text/event-stream")
        elif message["type"] == "http.response.body" and not message.get("more_body", False):
            self.finished = True
        await self._send(message)

    async def close(self, scope: Scope, receive: Receive) -> None:
        """End a response the drain cut: an SSE error event, or a whole 503."""
        err = shutting_down("the request was still running when the drain timeout ended")
        if not self.started:
            await error_response(err)(scope, receive, self._send)
        elif self.event_stream and not self.finished:
            body = sse_stream_error(str(scope.get("path", "")), err)
            await self._send({"type": "http.response.body", "body": body, "more_body": False})
        # Anything else (a plain body half sent) cannot be ended well; the server closes it.


class Drain:
    """The requests in flight, and the drain that ends them."""

    def __init__(self) -> None:
        self.draining = False
        self._inflight: set[_InFlight] = set()
        self._changed = asyncio.Event()
        self._hurry = asyncio.Event()

    @property
    def in_flight(self) -> int:
        return len(self._inflight)

    def _add(self, request: _InFlight) -> None:
        self._inflight.add(request)

    def _discard(self, request: _InFlight) -> None:
        self._inflight.discard(request)
        self._changed.set()

    def hurry(self) -> None:
        """End the remaining requests now (a second signal)."""
        self._hurry.set()
        self._changed.set()

    async def run(self, timeout_s: float) -> int:
        """Refuse new requests, wait up to `timeout_s` for those in flight, end the rest.

        Returns how many were ended by the daemon rather than finished.
        """
        self.draining = True
        deadline = time.monotonic() + timeout_s
        while self._inflight and not self._hurry.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 1.0))
        cut = list(self._inflight)
        for request in cut:
            request.cut = True
            if request.task is not None:
                request.task.cancel()
        # Each request's own coroutine sends its ending; give them a moment to.
        deadline = time.monotonic() + 5.0
        while self._inflight and time.monotonic() < deadline:
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), 0.5)
        return len(cut)


class DrainMiddleware:
    """Counts requests in flight; while draining, answers new ones with a 503."""

    def __init__(self, app: ASGIApp, drain: Drain) -> None:
        self.app = app
        self.drain = drain

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.drain.draining:
            err = shutting_down("it takes no new requests")
            response = error_response(err)
            response.headers["Connection"] = "close"
            await response(scope, receive, send)
            return
        request = _InFlight(send)
        # The app runs as its own task so that the drain can cancel it and this
        # coroutine, not cancelled, still ends the response properly.
        task: asyncio.Task[Any] = asyncio.ensure_future(self.app(scope, receive, request.send))
        request.task = task
        self.drain._add(request)
        try:
            await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if not request.cut or (current is not None and current.cancelling()):
                raise
            await request.close(scope, receive)
        finally:
            self.drain._discard(request)
