"""Frames between the daemon and an engine worker.

One frame is a 4-byte big-endian length followed by that many bytes of UTF-8
JSON holding an object with a "type" key. The same framing is used in both
directions over one Unix socket pair; the worker side is blocking (threads),
the daemon side is asyncio.

daemon -> worker: generate, embed, cancel, shutdown
worker -> daemon: ready, load_failed, heartbeat, started, admitted (the request got its
sequence: the prompt tokens read from the cache), token, prompt
(scored prompt tokens), done, error, embeddings
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import threading
from typing import Any

MAX_FRAME_BYTES = 64 * 1024 * 1024
_HEADER = struct.Struct(">I")

Frame = dict[str, Any]


class ProtocolError(RuntimeError):
    """The peer sent something that is not a frame, or went away."""


def encode_frame(frame: Frame) -> bytes:
    body = json.dumps(frame, separators=(",", ":"), ensure_ascii=False).encode()
    if len(body) > MAX_FRAME_BYTES:
        raise ProtocolError(f"frame of {len(body)} bytes exceeds {MAX_FRAME_BYTES}")
    return _HEADER.pack(len(body)) + body


def decode_body(body: bytes) -> Frame:
    try:
        frame = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError(f"undecodable frame: {exc}") from exc
    if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
        raise ProtocolError("frame is not an object with a type")
    return frame


def _check_length(length: int) -> None:
    if length > MAX_FRAME_BYTES:
        raise ProtocolError(f"frame length {length} exceeds {MAX_FRAME_BYTES}")


class BlockingChannel:
    """Worker side: thread-safe sends, one reader thread."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._send_lock = threading.Lock()

    def send(self, frame: Frame) -> None:
        data = encode_frame(frame)
        with self._send_lock:
            self._sock.sendall(data)

    def _recv_exact(self, n: int) -> bytes:
        chunks: list[bytes] = []
        while n:
            chunk = self._sock.recv(min(n, 1 << 20))
            if not chunk:
                raise ProtocolError("peer closed the channel")
            chunks.append(chunk)
            n -= len(chunk)
        return b"".join(chunks)

    def recv(self) -> Frame:
        (length,) = _HEADER.unpack(self._recv_exact(_HEADER.size))
        _check_length(length)
        return decode_body(self._recv_exact(length))


class AsyncChannel:
    """Daemon side over asyncio streams."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    @classmethod
    async def from_socket(cls, sock: socket.socket) -> AsyncChannel:
        reader, writer = await asyncio.open_unix_connection(sock=sock, limit=MAX_FRAME_BYTES)
        return cls(reader, writer)

    async def send(self, frame: Frame) -> None:
        self._writer.write(encode_frame(frame))
        await self._writer.drain()

    async def recv(self) -> Frame:
        try:
            header = await self._reader.readexactly(_HEADER.size)
            (length,) = _HEADER.unpack(header)
            _check_length(length)
            body = await self._reader.readexactly(length)
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            raise ProtocolError("worker closed the channel") from exc
        return decode_body(body)

    def close(self) -> None:
        self._writer.close()
