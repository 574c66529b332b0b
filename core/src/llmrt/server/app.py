"""create_app(): the litestar application of the OpenAI-compatible server."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar, Response
from litestar.datastructures import State
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin

from llmrt.server.auth import APIKeyMiddleware
from llmrt.server.context import ServerContext
from llmrt.server.disconnect import ClientDisconnected
from llmrt.server.errors import EXCEPTION_HANDLERS
from llmrt.server.routes import ROUTES
from llmrt.version import __version__

logger = logging.getLogger("llmrt.server")


def _disconnected_handler(_: Any, __: ClientDisconnected) -> Response[bytes]:
    """The client is gone; nobody reads this response."""
    return Response(b"", status_code=400)


@asynccontextmanager
async def _lifespan(app: Litestar) -> AsyncIterator[None]:
    ctx: ServerContext = app.state.ctx
    await ctx.engine.start()
    try:
        yield
    finally:
        await ctx.engine.shutdown()
        ctx.tokenizer.close()


def create_app(ctx: ServerContext, plugin_routes: list[Any] | None = None) -> Litestar:
    """The application serving ``ctx``: routes, errors, auth, body limit, OpenAPI (/openapi.json).

    ``plugin_routes`` defaults to the routes plugins register (``llmrt_register_server_routes``).
    Starting the application connects the engine client; stopping it shuts the engine process down.
    """
    if plugin_routes is None:
        from llmrt.plugins import get_plugin_host

        plugin_routes = get_plugin_host().server_routes()
    middleware = [DefineMiddleware(APIKeyMiddleware, api_key=ctx.api_key)] if ctx.api_key else []
    return Litestar(
        route_handlers=[*ROUTES, *plugin_routes],
        exception_handlers={**EXCEPTION_HANDLERS, ClientDisconnected: _disconnected_handler},
        middleware=middleware,
        request_max_body_size=ctx.limits.max_body_bytes,
        openapi_config=OpenAPIConfig(
            title="llmrt",
            version=__version__,
            path="/",
            render_plugins=[SwaggerRenderPlugin(path="/docs")],
        ),
        state=State({"ctx": ctx}),
        lifespan=[_lifespan],
        logging_config=None,
    )
