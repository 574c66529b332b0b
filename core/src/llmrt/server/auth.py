"""``--api-key``: a bearer token required on every route except an explicit allow-list.

The key is compared with ``hmac.compare_digest`` (constant time), so response timing does
not reveal how much of a guess was right.
"""

from __future__ import annotations

import hmac
from typing import Any

import msgspec

from llmrt.server.errors import OpenAIError

OPEN_PATHS = frozenset({"/health", "/ping", "/metrics"})
"""Routes that answer without a key (probes and scrapers)."""


def authorized(headers: list[tuple[bytes, bytes]], expected: bytes) -> bool:
    """True if the ``Authorization`` header is exactly ``Bearer <key>``."""
    value = b""
    for name, header_value in headers:
        if name.lower() == b"authorization":
            value = header_value
            break
    return hmac.compare_digest(value, expected)


class APIKeyMiddleware:
    """ASGI middleware answering 401 in OpenAI's shape to requests without the right key."""

    def __init__(self, app: Any, api_key: str) -> None:
        self.app = app
        self.expected = b"Bearer " + api_key.encode("utf-8")

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if (
            scope["type"] != "http"
            or scope["path"] in OPEN_PATHS
            or authorized(scope["headers"], self.expected)
        ):
            await self.app(scope, receive, send)
            return
        error = OpenAIError(
            401,
            "Incorrect or missing API key; send 'Authorization: Bearer <key>'.",
            code="invalid_api_key",
        )
        body = msgspec.json.encode(error.body())
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"www-authenticate", b"Bearer"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
