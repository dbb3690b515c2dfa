"""The Starlette application: routes, API keys, errors (OpenAI's shape, Anthropic's on its
paths), lifespan."""

from __future__ import annotations

import contextlib
import hmac
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from appliance import __version__
from appliance.api import (
    admin_routes,
    anthropic_routes,
    llama_native_routes,
    ollama_model_routes,
    ollama_routes,
    openai_routes,
    responses_routes,
    telemetry_routes,
)
from appliance.api.drain import Drain, DrainMiddleware
from appliance.api.errors import APIError, error_response, from_model_error, unauthorized
from appliance.api.host_check import HostCheckMiddleware
from appliance.api.openapi import openapi_json
from appliance.api.origin_check import OriginCheckMiddleware, PageCORSMiddleware
from appliance.catalog import Catalog
from appliance.hardware import HardwareReport
from appliance.settings import Settings
from appliance.store.store import Store
from appliance.telemetry.sampler import Telemetry
from appliance.tiers.errors import ModelError
from appliance.tiers.manager import ModelManager

log = logging.getLogger("appliance.api")

OPEN_PATHS = ("/health",)


class APIKeyMiddleware:
    """Bearer keys (or Anthropic clients' `x-api-key`) on every route but /health, compared
    in constant time."""

    def __init__(self, app: ASGIApp, keys: tuple[str, ...]) -> None:
        self.app = app
        self.keys = tuple(k.encode() for k in keys)

    def _allowed(self, header: str) -> bool:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer":
            return False
        presented = token.strip().encode()
        ok = False
        for key in self.keys:  # no early exit: time does not depend on which key matched
            ok |= hmac.compare_digest(presented, key)
        return ok

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.keys or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        header = ""
        for name, value in scope.get("headers", []):
            if name == b"authorization":
                header = value.decode("latin-1")
            elif name == b"x-api-key" and not header:
                header = "Bearer " + value.decode("latin-1")
        if not self._allowed(header):
            await error_response(unauthorized())(scope, receive, send)
            return
        await self.app(scope, receive, send)


async def health(request: Request) -> Response:
    manager: ModelManager = request.app.state.manager
    reasons: list[str] = list(manager.hardware.problems)
    states = {name: slot.state for name, slot in manager.slots.items()}
    for name, slot in manager.slots.items():
        if slot.state == "failed":
            reasons.append(f"model '{name}' failed: {slot.last_error}")
    if any(s == "failed" for s in states.values()) or manager.hardware.engine is None:
        status = "degraded"
    elif any(s in ("loading", "pulling") for s in states.values()):
        status = "loading"
    else:
        status = "ready"
    engine = manager.hardware.engine
    return JSONResponse(
        {
            "status": status,
            "reasons": reasons,
            "version": __version__,
            "backend": engine.backend if engine else None,
            "models": {n: manager.describe(n)["state"] for n in manager.slots},
        }
    )


# Failures that a retry cannot mend: tell the openai client not to retry them.
PERMANENT_CODES = frozenset({"invalid_model_file", "model_load_failed", "insufficient_memory"})


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, APIError)
    response = error_response(exc)
    if exc.code in PERMANENT_CODES and exc.retry_after is None:
        response.headers["x-should-retry"] = "false"
    return response


async def _model_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ModelError)
    return await _api_error(request, from_model_error(exc))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "unknown_route", 405: "method_not_allowed"}.get(exc.status_code)
    message = (
        f"no route {request.method} {request.url.path}"
        if exc.status_code == 404
        else f"{request.method} is not allowed on {request.url.path}"
        if exc.status_code == 405
        else str(exc.detail)
    )
    return error_response(APIError(exc.status_code, message, "invalid_request_error", None, code))


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return error_response(
        APIError(500, f"internal error: {type(exc).__name__}: {exc}", "server_error")
    )


def create_app(
    settings: Settings, catalog: Catalog, store: Store, hardware: HardwareReport, data_dir: Path
) -> Starlette:
    manager = ModelManager(settings, catalog, store, hardware, data_dir)
    telemetry = Telemetry(manager, disk_path=store.root, interval_s=settings.telemetry_interval_s)
    drain = Drain()
    admin_routes.ensure_inbox(store)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await telemetry.start()  # first: it subscribes to the events of the manager's start
        await manager.start()
        try:
            yield
        finally:
            await telemetry.stop()
            await manager.shutdown()

    app = Starlette(
        routes=[
            Route("/health", health, methods=["GET"]),
            Route("/metrics", telemetry_routes.metrics, methods=["GET"]),
            Route("/openapi.json", openapi_json, methods=["GET"]),
            Mount(
                "/v1",
                routes=[
                    *openai_routes.routes,
                    *responses_routes.routes,
                    *anthropic_routes.routes,
                ],
            ),
            Mount("/admin", routes=[*admin_routes.routes, *telemetry_routes.routes]),
            *llama_native_routes.routes,
            *ollama_routes.routes,
            # Ollama's native API (`/api/...`, and its probe `GET /`).
            *ollama_model_routes.routes,
            # The same routes without /v1, for scripts written for llama-server or Ollama.
            *openai_routes.routes,
            *responses_routes.routes,
            *anthropic_routes.routes,
        ],
        exception_handlers={
            APIError: _api_error,
            ModelError: _model_error,
            HTTPException: _http_error,
            Exception: _unexpected,
        },
        lifespan=lifespan,
    )
    app.state.settings = settings
    # Open event streams end when this turns true: the drain began (or, set by
    # `appliance serve`, uvicorn stops).
    app.state.shutting_down = lambda: drain.draining
    app.state.drain = drain
    app.state.manager = manager
    app.state.telemetry = telemetry
    # The last added runs first: a request meets the Host check, CORS, the Origin check, the
    # drain, then the keys.
    if settings.api_keys:
        app.add_middleware(APIKeyMiddleware, keys=settings.api_keys)
    app.add_middleware(DrainMiddleware, drain=drain)
    # After CORS (which answers the preflights of the pages it serves): a page's own requests.
    app.add_middleware(OriginCheckMiddleware, listed=settings.cors_origins)
    # Before the keys: a preflight carries none.
    app.add_middleware(PageCORSMiddleware, listed=settings.cors_origins)
    app.add_middleware(HostCheckMiddleware, bind_host=settings.host, extra=settings.allowed_hosts)
    return app
