"""OpenAPI details litestar cannot infer: streamed responses are ``text/event-stream``."""

from __future__ import annotations

from dataclasses import dataclass

from litestar.openapi.spec import OpenAPIMediaType, OpenAPIResponse, OpenAPIType, Operation, Schema

EVENT_STREAM = "text/event-stream"


@dataclass
class StreamingOperation(Operation):
    """An operation whose 200 response is JSON, or server-sent events when ``stream`` is true."""

    def __post_init__(self) -> None:
        ok = (self.responses or {}).get("200")
        if isinstance(ok, OpenAPIResponse):
            events = Schema(
                type=OpenAPIType.OBJECT,
                description="one event per chunk (`data: {chunk JSON}`), then `data: [DONE]`",
                properties={"data": Schema(type=OpenAPIType.STRING)},
            )
            ok.content = {**(ok.content or {}), EVENT_STREAM: OpenAPIMediaType(schema=events)}
