"""Server-sent events: ``data: {json}\\n\\n`` per chunk, ``data: [DONE]`` at the end."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import msgspec
from litestar.response import Stream

from llmrt.server.errors import OpenAIError

DONE = b"data: [DONE]\n\n"

_encoder = msgspec.json.Encoder()


def sse_event(payload: msgspec.Struct) -> bytes:
    """One event carrying ``payload`` as JSON."""
    return b"data: " + _encoder.encode(payload) + b"\n\n"


async def sse_events(
    events: AsyncIterator[bytes], on_close: Callable[[], None]
) -> AsyncIterator[bytes]:
    """``events`` then ``[DONE]``; an error mid-stream becomes an error event before ``[DONE]``.

    ``on_close`` runs however the stream ends, including when the client disconnects (the
    stream is then cancelled): it aborts whatever the engine still runs for this request.
    """
    try:
        async for event in events:
            yield event
        yield DONE
    except OpenAIError as error:
        yield sse_event(error.body())
        yield DONE
    finally:
        on_close()


class EventStream(Stream):
    """A ``Stream`` that keeps its own media type.

    litestar lets the route handler's media type (JSON here) win over the response's for
    streams, so the handler's is replaced by this response's own.
    """

    def to_asgi_response(self, *args: Any, **kwargs: Any) -> Any:
        """The ASGI response, sent as ``text/event-stream``."""
        kwargs["media_type"] = self.media_type
        return super().to_asgi_response(*args, **kwargs)


def sse_response(events: AsyncIterator[bytes], on_close: Callable[[], None]) -> Stream:
    """A streaming ``text/event-stream`` response."""
    return EventStream(
        sse_events(events, on_close),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
