"""A request's frames from its worker as the routes take them: collected whole (one
request, or the several sequences of one answer together) with a client that leaves
cancelling them, interleaved as they come for a stream, and an engine's error frame
as the APIError it stands for."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import aclosing
from typing import Any

from starlette.requests import Request

from appliance.api.errors import APIError
from appliance.engines.protocol import Frame


def frame_error(frame: Frame) -> APIError:
    status = int(frame.get("status") or 500)
    kind = "invalid_request_error" if status < 500 else "server_error"
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


async def collect_all_unless_gone(
    request: Request, streams: Sequence[AsyncGenerator[Frame, None]]
) -> list[tuple[str, Frame]]:
    """`collect` of each, together; a client that leaves cancels them all (their slots
    are freed)."""
    everything: asyncio.Future[list[tuple[str, Frame]]] = asyncio.gather(
        *(collect(frames) for frames in streams)
    )
    gone: asyncio.Future[None] = asyncio.ensure_future(client_gone(request))
    try:
        waiting: set[asyncio.Future[Any]] = {everything, gone}
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
    if not everything.done():
        everything.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await everything
        raise APIError(499, "the client closed the request", "invalid_request_error")
    return everything.result()


async def collect_unless_gone(
    request: Request, frames: AsyncGenerator[Frame, None]
) -> tuple[str, Frame]:
    (result,) = await collect_all_unless_gone(request, [frames])
    return result


async def interleave(
    streams: Sequence[AsyncGenerator[Frame, None]],
) -> AsyncIterator[tuple[int, Frame]]:
    """The frames of several requests as they come, each with its stream's index, until
    every stream has ended; when the consumer stops, every stream is closed."""
    queue: asyncio.Queue[tuple[int, Frame | None]] = asyncio.Queue()

    async def pump(i: int, frames: AsyncGenerator[Frame, None]) -> None:
        try:
            async for item in frames:
                await queue.put((i, item))
        finally:
            await queue.put((i, None))

    tasks = [asyncio.ensure_future(pump(i, frames)) for i, frames in enumerate(streams)]
    try:
        open_streams = len(streams)
        while open_streams:
            i, item = await queue.get()
            if item is None:
                open_streams -= 1
            else:
                yield i, item
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for frames in streams:
            await frames.aclose()
