"""OpenAI's error shape and the exception handlers that produce it.

Every error leaves the server as ``{"error": {"message", "type", "param", "code"}}`` with the
status that says whose fault it was: 4xx for the client's, 503 while the engine is starting
or after it died, 500 only for a bug in llmrt (logged with its traceback).
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException

logger = logging.getLogger("llmrt.server")


class ErrorInfo(msgspec.Struct):
    """The body of an OpenAI error."""

    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(msgspec.Struct):
    """``{"error": {...}}``, as OpenAI returns it."""

    error: ErrorInfo


_TYPES = {
    400: "BadRequestError",
    401: "AuthenticationError",
    404: "NotFoundError",
    405: "MethodNotAllowedError",
    413: "RequestEntityTooLargeError",
    422: "UnprocessableEntityError",
    429: "RateLimitError",
    500: "InternalServerError",
    503: "ServiceUnavailableError",
}


class OpenAIError(Exception):
    """An error to return to the client in OpenAI's shape."""

    def __init__(
        self,
        status: int,
        message: str,
        param: str | None = None,
        code: str | None = None,
        error_type: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.type = error_type or _TYPES.get(
            status, HTTPStatus(status).phrase.replace(" ", "") + "Error"
        )

    def body(self) -> ErrorResponse:
        """The response body."""
        return ErrorResponse(ErrorInfo(self.message, self.type, self.param, self.code))


def bad_request(message: str, param: str | None = None, code: str | None = None) -> OpenAIError:
    """A 400 naming the offending field."""
    return OpenAIError(400, message, param, code)


def service_unavailable(message: str) -> OpenAIError:
    """A 503: the engine is starting, shutting down or dead."""
    return OpenAIError(503, message, code="service_unavailable")


def from_request_error(exc: Exception) -> OpenAIError:
    """A 400 from a validation error of the engine or of SamplingParams (which carry ``param``)."""
    return OpenAIError(400, str(exc), getattr(exc, "param", None), getattr(exc, "code", None))


def error_response(error: OpenAIError) -> Response[ErrorResponse]:
    """A litestar response carrying ``error``."""
    return Response(error.body(), status_code=error.status)


def _openai_error_handler(_: Request[Any, Any, Any], exc: OpenAIError) -> Response[ErrorResponse]:
    return error_response(exc)


def _validation_handler(
    _: Request[Any, Any, Any], exc: ValidationException
) -> Response[ErrorResponse]:
    extra = exc.extra if isinstance(exc.extra, list) else []
    first = extra[0] if extra and isinstance(extra[0], dict) else {}
    param = first.get("key")
    message = first.get("message") or exc.detail
    if param and param != "data":
        message = f"{message} (at '{param}')"
    else:
        param = None
    return error_response(bad_request(str(message), param))


def _http_handler(_: Request[Any, Any, Any], exc: HTTPException) -> Response[ErrorResponse]:
    status = exc.status_code
    message = exc.detail or HTTPStatus(status).phrase
    if status == 413:
        message = f"request body too large: {message}"
    response = error_response(OpenAIError(status, message))
    response.headers.update(exc.headers or {})  # e.g. Allow on 405
    return response


def _internal_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[ErrorResponse]:
    logger.exception(
        "internal error while serving %s %s", request.method, request.url.path, exc_info=exc
    )
    return error_response(OpenAIError(500, f"internal server error: {type(exc).__name__}"))


EXCEPTION_HANDLERS: dict[type[Exception], Any] = {
    OpenAIError: _openai_error_handler,
    ValidationException: _validation_handler,
    HTTPException: _http_handler,
    Exception: _internal_handler,
}
"""Exception handlers for :func:`llmrt.server.app.create_app`."""
