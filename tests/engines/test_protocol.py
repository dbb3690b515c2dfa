"""Framing between daemon and worker."""

from __future__ import annotations

import asyncio
import socket
import struct

import pytest

from appliance.engines.protocol import (
    MAX_FRAME_BYTES,
    AsyncChannel,
    BlockingChannel,
    ProtocolError,
    decode_body,
    encode_frame,
)


def test_round_trip_between_blocking_and_async_sides() -> None:
    a, b = socket.socketpair()
    worker = BlockingChannel(b)

    async def run() -> dict[str, object]:
        daemon = await AsyncChannel.from_socket(a)
        worker.send({"type": "token", "id": "r1", "text": "héllo"})
        frame = await daemon.recv()
        await daemon.send({"type": "cancel", "id": "r1"})
        daemon.close()
        return frame

    assert asyncio.run(run()) == {"type": "token", "id": "r1", "text": "héllo"}
    assert worker.recv() == {"type": "cancel", "id": "r1"}


def test_bad_frames_are_refused() -> None:
    with pytest.raises(ProtocolError):
        decode_body(b"not json")
    with pytest.raises(ProtocolError):
        decode_body(b'{"no": "type"}')
    a, b = socket.socketpair()
    a.sendall(struct.pack(">I", MAX_FRAME_BYTES + 1))
    with pytest.raises(ProtocolError, match="exceeds"):
        BlockingChannel(b).recv()


def test_closed_peer_is_a_protocol_error() -> None:
    a, b = socket.socketpair()
    a.sendall(encode_frame({"type": "x"})[:3])
    a.close()
    with pytest.raises(ProtocolError, match="closed"):
        BlockingChannel(b).recv()
