"""Length-prefixed frames over a stream socket: 4-byte big-endian length, then the payload.

The blocking functions serve the engine process (one reader and one writer thread); the
asyncio ones serve the front end.
"""

from __future__ import annotations

import asyncio
import socket
import struct

HEADER = struct.Struct(">I")
MAX_FRAME_BYTES = 1 << 30
"""Frames above this size are refused (a corrupt header must not allocate gigabytes)."""


class ChannelClosed(ConnectionError):
    """The other end closed the socket."""


def frame(payload: bytes) -> bytes:
    """``payload`` with its length header."""
    return HEADER.pack(len(payload)) + payload


def _checked_length(header: bytes) -> int:
    (length,) = HEADER.unpack(header)
    if length > MAX_FRAME_BYTES:
        raise ConnectionError(f"frame of {length} bytes exceeds the {MAX_FRAME_BYTES}-byte limit")
    return length


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(min(size - len(chunks), 1 << 20))
        if not chunk:
            raise ChannelClosed("peer closed the connection")
        chunks += chunk
    return bytes(chunks)


def recv_frame(sock: socket.socket) -> bytes:
    """Read one frame from a blocking socket; raises :class:`ChannelClosed` at end of stream."""
    return _recv_exact(sock, _checked_length(_recv_exact(sock, HEADER.size)))


def send_frame(sock: socket.socket, payload: bytes) -> None:
    """Write one frame to a blocking socket."""
    sock.sendall(frame(payload))


async def read_frame(reader: asyncio.StreamReader) -> bytes:
    """Read one frame from an asyncio stream; raises :class:`ChannelClosed` at end of stream."""
    try:
        header = await reader.readexactly(HEADER.size)
        return await reader.readexactly(_checked_length(header))
    except asyncio.IncompleteReadError as exc:
        raise ChannelClosed("peer closed the connection") from exc
