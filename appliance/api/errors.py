"""Errors in the OpenAI shape: ``{"error": {"message", "type", "param", "code"}}``, on
the Anthropic Messages API's paths in Anthropic's:
``{"type": "error", "error": {"type", "message"}}``, and on Ollama's native API (`/api/...`)
in Ollama's: ``{"error": "message"}``."""

from __future__ import annotations

import math
import random
from typing import Any

from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from appliance.tiers.errors import (
    BadModelRequest,
    ModelConflict,
    ModelError,
    ModelFailed,
    ModelNotFound,
    ModelUnavailable,
)

__all__ = [
    "ANTHROPIC_PATHS",
    "RESPONSES_PATHS",
    "APIError",
    "ErrorResponse",
    "anthropic_error_type",
    "engine_error",
    "error_response",
    "from_model_error",
    "invalid_request",
    "is_anthropic_path",
    "is_anthropic_request",
    "is_ollama_path",
    "model_not_found",
    "payload_too_large",
    "unauthorized",
    "unavailable",
]


class APIError(Exception):
    """An error returned to an API client, rendered in the OpenAI error shape."""

    def __init__(
        self,
        status: int,
        message: str,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        *,
        retry_after: float | None = None,
        retryable: bool = True,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.details = details  # Anthropic's `error.details` (its SDKs read error_code)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.retry_after = retry_after
        self.retryable = retryable

    def to_body(self) -> dict[str, Any]:
        """The JSON body of the error, as the OpenAI API returns it."""
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }

    def to_anthropic_body(self) -> dict[str, Any]:
        """The JSON body of the error as the Anthropic API returns it (its clients read
        `error.type` and `error.message`; the status picks the SDK's exception class)."""
        error: dict[str, Any] = {"type": anthropic_error_type(self.status), "message": self.message}
        if self.details:
            error["details"] = self.details
        return {"type": "error", "error": error}

    def to_ollama_body(self) -> dict[str, Any]:
        """The JSON body of the error as Ollama's API returns it: its clients (the ollama
        SDKs, Open WebUI, LangChain's ChatOllama) read a string under `error`."""
        return {"error": self.message}

    def __repr__(self) -> str:
        return (
            f"APIError(status={self.status!r}, message={self.message!r}, type={self.type!r}, "
            f"param={self.param!r}, code={self.code!r})"
        )


# Anthropic's error type of each status (its documented table). Our 503s (a model still
# loading, no memory for it now, the daemon draining) are "not now", what Anthropic sends
# as 529 overloaded_error; the status stays 503 (the SDK's ServiceUnavailableError).
ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}

# The Anthropic Messages API's and the Responses API's routes, served with and without
# /v1 like every API here: their errors mid-stream have their own shapes.
ANTHROPIC_PATHS = ("/v1/messages", "/messages")
RESPONSES_PATHS = ("/v1/responses", "/responses")


def anthropic_error_type(status: int) -> str:
    """Anthropic's `error.type` for an HTTP status."""
    default = "api_error" if status >= 500 else "invalid_request_error"
    return ANTHROPIC_ERROR_TYPES.get(status, default)


def is_anthropic_path(path: str) -> bool:
    """Whether a request's path is the Anthropic Messages API's (or under it)."""
    return any(path == p or path.startswith(p + "/") for p in ANTHROPIC_PATHS)


MODELS_PATHS = ("/v1/models", "/models")

# Ollama's native API: every route under it (and an unknown one) answers errors in its shape.
OLLAMA_PREFIX = "/api"


def is_ollama_path(path: str) -> bool:
    """Whether a request's path is Ollama's native API's (`/api/tags`, `/api/chat`, ...)."""
    return path == OLLAMA_PREFIX or path.startswith(OLLAMA_PREFIX + "/")


def is_anthropic_request(scope: Scope) -> bool:
    """Whether a request's errors take Anthropic's shape: on the Messages API's paths, and
    on the models routes when it names an `anthropic-version` (the anthropic SDK's list
    and retrieve, answered in Anthropic's shape)."""
    path = str(scope.get("path", ""))
    if is_anthropic_path(path):
        return True
    if not any(path == p or path.startswith(p + "/") for p in MODELS_PATHS):
        return False
    return any(name.lower() == b"anthropic-version" for name, _ in scope.get("headers", ()))


def invalid_request(message: str, param: str | None = None, code: str | None = None) -> APIError:
    """400: the request is malformed or names an unsupported value."""
    return APIError(400, message, "invalid_request_error", param, code)


def model_not_found(model: str) -> APIError:
    """404: no model of that name or alias."""
    return from_model_error(ModelNotFound(model))


# HTTP status and OpenAI error type of each of the tiers' domain errors.
_MODEL_ERRORS: tuple[tuple[type[ModelError], int, str], ...] = (
    (ModelNotFound, 404, "invalid_request_error"),
    (BadModelRequest, 400, "invalid_request_error"),
    (ModelConflict, 409, "invalid_request_error"),
    (ModelUnavailable, 503, "server_error"),
    (ModelFailed, 500, "server_error"),
)


def from_model_error(exc: ModelError) -> APIError:
    """The API's rendering of a domain error raised by the tiers."""
    status, kind = next(
        ((s, k) for cls, s, k in _MODEL_ERRORS if isinstance(exc, cls)), (500, "server_error")
    )
    return APIError(
        status,
        exc.message,
        kind,
        exc.param,
        exc.code,
        retry_after=exc.retry_after,
        retryable=exc.retryable,
    )


def payload_too_large(limit: int) -> APIError:
    """413: the request body is larger than the server accepts."""
    return APIError(
        413,
        f"The request body is too large: the limit is {limit} bytes.",
        "invalid_request_error",
        None,
        "payload_too_large",
    )


def unauthorized() -> APIError:
    """401: missing or wrong API key."""
    return APIError(
        401,
        "Incorrect or missing API key. Send it as 'Authorization: Bearer <key>'.",
        "invalid_request_error",
        None,
        "invalid_api_key",
    )


def engine_error(message: str) -> APIError:
    """500: the engine failed while serving the request."""
    return APIError(500, message, "server_error", None, None)


def unavailable(message: str, retry_after: float | None = None) -> APIError:
    """503: the server cannot serve the request now (loading, overloaded, out of memory)."""
    return APIError(
        503, message, "server_error", None, "service_unavailable", retry_after=retry_after
    )


class ErrorResponse(JSONResponse):
    """An error's response: its body in the OpenAI shape, in Anthropic's when it is sent
    on the Anthropic Messages API's paths, in Ollama's on Ollama's (`/api/...`).

    The shape is chosen as the response is sent, from the request's path (and, on the
    models routes, its `anthropic-version` header), because the middleware (API keys, the
    drain, the Host check) and the app's exception handlers that render errors are shared
    by every API and see no more than the request's scope.
    """

    def __init__(self, err: APIError, headers: dict[str, str] | None = None) -> None:
        self.err = err
        super().__init__(err.to_body(), status_code=err.status, headers=headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if is_anthropic_request(scope):
            self.body = self.render(self.err.to_anthropic_body())
            self.headers["content-length"] = str(len(self.body))
        elif is_ollama_path(str(scope.get("path", ""))):
            self.body = self.render(self.err.to_ollama_body())
            self.headers["content-length"] = str(len(self.body))
        await super().__call__(scope, receive, send)


def error_response(err: APIError) -> JSONResponse:
    """The Starlette response for an error, with ``Retry-After`` when the error has one, or
    ``x-should-retry: false`` when it cannot pass by retrying.

    Beside the whole seconds, ``retry-after-ms`` (which the openai and anthropic SDKs
    read first) spreads the wait over up to half as long again: clients turned away
    together otherwise all retried at the same moment, and some were turned away again
    (1 in 22 requests of a burst failed after the SDK's two retries)."""
    headers: dict[str, str] = {}
    if not err.retryable:
        # The OpenAI clients retry 5xx (and 408/409/429) unless told not to: a failure
        # that retrying cannot fix must not keep the user waiting a minute for it.
        headers["x-should-retry"] = "false"
    elif err.retry_after is not None and math.isfinite(err.retry_after):
        headers["Retry-After"] = str(max(0, math.ceil(err.retry_after)))
        wait = max(0.0, err.retry_after) * random.uniform(1.0, 1.5)
        headers["retry-after-ms"] = str(round(wait * 1000))
    return ErrorResponse(err, headers or None)
