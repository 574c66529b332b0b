"""The HTTP routes: thin handlers that decode, log unknown fields and call the serving modules."""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from litestar import Request, Response, get, post
from litestar.datastructures import State
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import JSONBody

from llmrt.server import serving_chat, serving_completion, serving_models, serving_tokenize
from llmrt.server.context import ServerContext
from llmrt.server.errors import ErrorResponse
from llmrt.server.metrics import CONTENT_TYPE
from llmrt.server.openapi import StreamingOperation
from llmrt.server.protocol.chat import ChatCompletionRequest, ChatCompletionResponse
from llmrt.server.protocol.completion import CompletionRequest, CompletionResponse
from llmrt.server.protocol.models import ModelList, VersionResponse
from llmrt.server.protocol.tokenize import (
    DetokenizeRequest,
    DetokenizeResponse,
    TokenizeRequest,
    TokenizeResponse,
)

logger = logging.getLogger("llmrt.server")

MAX_LOGGED_UNKNOWN_FIELDS = 16

_ERRORS = {
    status: ResponseSpec(ErrorResponse, description=description)
    for status, description in [
        (400, "invalid request"),
        (401, "missing or wrong API key"),
        (404, "unknown model"),
        (413, "body too large"),
        (429, "queue full"),
        (503, "engine starting, shutting down or dead"),
    ]
}
_STREAM_NOTE = (
    " With `stream: true` the response is `text/event-stream`, one chunk per event,"
    " ending with `data: [DONE]`."
)


def _ctx(state: State) -> ServerContext:
    return state.ctx  # type: ignore[no-any-return]


async def log_unknown_fields(request: Request[Any, Any, Any], schema: type[msgspec.Struct]) -> None:
    """Log request fields that ``schema`` does not know (they are accepted and ignored)."""
    try:
        keys = msgspec.json.decode(await request.body(), type=dict[str, msgspec.Raw]).keys()
    except (msgspec.DecodeError, msgspec.ValidationError):
        return
    unknown = sorted(set(keys) - set(schema.__struct_fields__))
    if unknown:
        shown = [name[:64] for name in unknown[:MAX_LOGGED_UNKNOWN_FIELDS]]
        logger.info(
            "%s: ignoring unknown fields %s%s",
            request.url.path,
            shown,
            " ..." if len(unknown) > len(shown) else "",
        )


@post(
    "/v1/chat/completions",
    status_code=200,
    responses=_ERRORS,
    summary="Create a chat completion",
    operation_class=StreamingOperation,
    description="OpenAI's chat completions." + _STREAM_NOTE,
)
async def chat_completions(
    request: Request[Any, Any, Any], data: JSONBody[ChatCompletionRequest], state: State
) -> ChatCompletionResponse:
    """``POST /v1/chat/completions``."""
    await log_unknown_fields(request, ChatCompletionRequest)
    return await serving_chat.create_chat_completion(_ctx(state), data, request)  # type: ignore[no-any-return]


@post(
    "/v1/completions",
    status_code=200,
    responses=_ERRORS,
    summary="Create a completion",
    operation_class=StreamingOperation,
    description="OpenAI's (legacy) completions." + _STREAM_NOTE,
)
async def completions(
    request: Request[Any, Any, Any], data: JSONBody[CompletionRequest], state: State
) -> CompletionResponse:
    """``POST /v1/completions``."""
    await log_unknown_fields(request, CompletionRequest)
    return await serving_completion.create_completion(_ctx(state), data, request)  # type: ignore[no-any-return]


@get("/v1/models", summary="List the served models")
async def models(state: State) -> ModelList:
    """``GET /v1/models``."""
    return serving_models.list_models(_ctx(state))


@post(
    "/tokenize", status_code=200, responses=_ERRORS, summary="Tokenize a prompt or a conversation"
)
async def tokenize(data: JSONBody[TokenizeRequest], state: State) -> TokenizeResponse:
    """``POST /tokenize``."""
    return await serving_tokenize.tokenize(_ctx(state), data)


@post("/detokenize", status_code=200, responses=_ERRORS, summary="Turn token ids into text")
async def detokenize(data: JSONBody[DetokenizeRequest], state: State) -> DetokenizeResponse:
    """``POST /detokenize``."""
    return await serving_tokenize.detokenize(_ctx(state), data)


@get("/health", summary="200 when the engine can serve, else 503", responses={503: _ERRORS[503]})
async def health(state: State) -> None:
    """``GET /health``."""
    serving_models.health(_ctx(state))


@get("/ping", summary="Like /health", responses={503: _ERRORS[503]})
async def ping(state: State) -> None:
    """``GET /ping``."""
    serving_models.health(_ctx(state))


@get("/version", summary="The llmrt version")
async def version() -> VersionResponse:
    """``GET /version``."""
    return serving_models.version()


@get("/metrics", summary="Prometheus metrics", media_type=CONTENT_TYPE)
async def metrics(state: State) -> Response[bytes]:
    """``GET /metrics``."""
    return Response(_ctx(state).metrics.render(), media_type=CONTENT_TYPE)  # type: ignore[union-attr]


ROUTES = [
    chat_completions,
    completions,
    models,
    tokenize,
    detokenize,
    health,
    ping,
    version,
    metrics,
]
"""Core's route handlers; plugins add theirs through ``llmrt_register_server_routes``."""
