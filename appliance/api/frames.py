"""A request's frames from its worker as the routes take them: collected whole (one
request, or the several sequences of one answer together) with a client that leaves
cancelling them, interleaved as they come for a stream, and an engine's error frame
as the APIError it stands for."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Sequence
from contextlib import aclosing
from typing import Any, TypeVar

from starlette.requests import Request

from appliance.api.errors import APIError
from appliance.engines.protocol import Frame

T = TypeVar("T")


def frame_error(frame: Frame) -> APIError:
    status = int(frame.get("status") or 500)
    kind = (
        "invalid_request_error"
        if status < 500
        else "not_supported_error"
        if status == 501
        else "server_error"
    )
    return APIError(
        status,
        str(frame.get("message") or "engine error"),
        kind,
        frame.get("param"),
        frame.get("code"),
    )


async def client_gone(request: Request) -> None:
    """Returns when the client of a request whose body was read has disconnected."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


async def collect(frames: AsyncGenerator[Frame, None]) -> tuple[str, Frame]:
    """All the text of a request and its final frame (with the tokens' logprobs, if any,
    gathered under "logprobs", and the prompt's tokens under "prompt" when echoed)."""
    parts: list[str] = []
    logprobs: list[dict[str, Any]] = []
    prompt: list[dict[str, Any]] | None = None
    async with aclosing(frames):
        async for item in frames:
            if item["type"] == "token":
                parts.append(str(item["text"]))
                logprobs.extend(item.get("logprobs") or ())
            elif item["type"] == "prompt":  # the prompt's tokens, echoed by the worker
                prompt = list(item["tokens"])
            elif item["type"] == "error":
                raise frame_error(item)
            elif item["type"] == "done":
                return "".join(parts), {**item, "logprobs": logprobs, "prompt": prompt}
    raise APIError(500, "the engine ended the request without an answer", "server_error")


async def unless_gone(request: Request, work: Awaitable[T]) -> T:
    """`work`'s result; a client that leaves first cancels it (and with it the frames it
    reads: their slots are freed) and gets a 499."""
    task: asyncio.Future[T] = asyncio.ensure_future(work)
    gone: asyncio.Future[None] = asyncio.ensure_future(client_gone(request))
    try:
        waiting: set[asyncio.Future[Any]] = {task, gone}
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
    if not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        raise APIError(499, "the client closed the request", "invalid_request_error")
    return task.result()


async def collect_all_unless_gone(
    request: Request, streams: Sequence[AsyncGenerator[Frame, None]]
) -> list[tuple[str, Frame]]:
    """`collect` of each, together; a client that leaves cancels them all."""
    return await unless_gone(request, asyncio.gather(*(collect(frames) for frames in streams)))


async def collect_unless_gone(
    request: Request, frames: AsyncGenerator[Frame, None]
) -> tuple[str, Frame]:
    (result,) = await collect_all_unless_gone(request, [frames])
    return result


class Interleaved:
    """The frames of several requests as they come, each with its stream's index, until
    every stream has ended or was stopped; when the consumer stops, every stream is
    closed."""

    def __init__(self, streams: Sequence[AsyncGenerator[Frame, None]]) -> None:
        self.streams = list(streams)
        self.queue: asyncio.Queue[tuple[int, Frame | None]] = asyncio.Queue()
        self.tasks = [asyncio.ensure_future(self._pump(i, s)) for i, s in enumerate(streams)]

    async def _pump(self, i: int, frames: AsyncGenerator[Frame, None]) -> None:
        try:
            async for item in frames:
                await self.queue.put((i, item))
        finally:
            await self.queue.put((i, None))

    async def stop(self, i: int) -> None:
        """End stream `i` now (its request is cancelled in the worker); frames it had
        already sent may still come."""
        self.tasks[i].cancel()
        await asyncio.gather(self.tasks[i], return_exceptions=True)
        await self.streams[i].aclose()

    async def items(self) -> AsyncIterator[tuple[int, Frame]]:
        try:
            open_streams = len(self.streams)
            while open_streams:
                i, item = await self.queue.get()
                if item is None:
                    open_streams -= 1
                else:
                    yield i, item
        finally:
            for task in self.tasks:
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)
            for frames in self.streams:
                await frames.aclose()


def interleave(
    streams: Sequence[AsyncGenerator[Frame, None]],
) -> AsyncIterator[tuple[int, Frame]]:
    """`Interleaved(streams).items()`: every stream's frames as they come."""
    return Interleaved(streams).items()
