"""Noticing that a client went away while a non-streaming response is being computed.

Streaming responses are cancelled by litestar when the client disconnects; a plain handler
is not, so :func:`until_disconnected` races the work against the ASGI ``http.disconnect``
message and cancels the work (which aborts the engine requests) if the client leaves first.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")


class ClientDisconnected(Exception):
    """The client closed the connection before the response was ready."""


async def _wait_for_disconnect(receive: Callable[[], Awaitable[dict[str, Any]]]) -> None:
    while True:
        message = await receive()
        if message.get("type") == "http.disconnect":
            return


async def until_disconnected(
    receive: Callable[[], Awaitable[dict[str, Any]]], work: Awaitable[T]
) -> T:
    """The result of ``work``; :class:`ClientDisconnected` (work cancelled) if the client leaves.

    Call only after the request body was read: ``receive`` then yields nothing but the disconnect.
    """
    work_task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_wait_for_disconnect(receive))
    try:
        await asyncio.wait({work_task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not work_task.done():
            work_task.cancel()
        watcher.cancel()
    if work_task.cancelled() or not work_task.done():
        raise ClientDisconnected()
    return work_task.result()
