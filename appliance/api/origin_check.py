"""Requests from web pages: only from origins the operator named, or local ones.

A browser lets any page send a "simple" cross-origin POST (`Content-Type: text/plain`)
without asking first; the page cannot read the answer, but the request runs. The daemon
reads JSON whatever the content type, so without this check any site the user visits
could load, unload or pull models, change budgets or spend the box's compute (a user
install has no API key). Browsers name the page in `Origin`; clients that are not
browsers (SDKs, curl, a web app's own server) send none, and are served as before.

Served: no `Origin`; an origin in `cors_origins` (or `*` there); the daemon's own origin;
loopback pages (a developer's app on localhost, or its dev server's proxy, as Ollama
allows them); and local apps' schemes (`app://`, `file://`, `tauri://`,
`vscode-webview://`, ...), which no remote site can take. An opaque `null` origin (a
sandboxed frame, which any site can make) is served only when listed.

CORS headers go to the same pages (`PageCORSMiddleware`): a page that is served but may
not read the answer is not served at all, and a browser app on a developer's localhost
(openai-node with `dangerouslyAllowBrowser`, `ollama/browser`) works with no settings, as
with Ollama.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from appliance.api.errors import APIError, error_response
from appliance.api.host_check import LOOPBACK_NAMES

__all__ = ["OriginCheckMiddleware", "PageCORSMiddleware", "origin_allowed"]


def origin_allowed(origin: str, host: str | None, listed: tuple[str, ...]) -> bool:
    """Whether a request from a page at `origin` (to the daemon at `host`) is served."""
    origin = origin.strip()
    if "*" in listed or origin in listed:
        return True
    if origin == "null":
        return False
    try:
        parts = urlsplit(origin)
        name = (parts.hostname or "").rstrip(".")  # lowercase, brackets taken off
    except ValueError:
        return False
    if parts.scheme not in ("http", "https"):
        return bool(parts.scheme)  # a local app's own scheme
    if name in LOOPBACK_NAMES:
        return True
    return host is not None and parts.netloc.lower() == host.strip().lower()


def refused(origin: str) -> APIError:
    """403: a page at `origin` may not drive this daemon."""
    return APIError(
        403,
        f"requests from web pages at {origin!r} are refused (so that no site a user visits "
        "can drive this daemon); to serve a browser app there, add its origin to "
        "cors_origins in settings.toml or to APPLIANCE_CORS_ORIGINS and restart the daemon",
        "invalid_request_error",
        None,
        "origin_not_allowed",
    )


class OriginCheckMiddleware:
    """403 in the API's error shape for a request from a page the check refuses."""

    def __init__(self, app: ASGIApp, listed: tuple[str, ...] = ()) -> None:
        self.app = app
        self.listed = tuple(o.strip() for o in listed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        origin, host = _origin_and_host(scope)
        if origin is None or origin_allowed(origin, host, self.listed):
            await self.app(scope, receive, send)
            return
        shown = origin.strip()[:100]
        await error_response(refused(shown))(scope, receive, send)


def _origin_and_host(scope: Scope) -> tuple[str | None, str | None]:
    """The request's Origin and Host headers (None where absent)."""
    origin: str | None = None
    host: str | None = None
    for key, value in scope.get("headers", []):
        if key == b"origin":
            origin = value.decode("latin-1")
        elif key == b"host":
            host = value.decode("latin-1")
    return origin, host


class PageCORSMiddleware(CORSMiddleware):
    """CORS for exactly the pages `origin_allowed` serves; any other page's request, its
    preflight too, goes on to the Origin check's 403 (no CORS headers at all)."""

    def __init__(self, app: ASGIApp, listed: tuple[str, ...] = ()) -> None:
        listed = tuple(o.strip() for o in listed)
        # Any request header: the openai and anthropic SDKs send their own (x-stainless-*,
        # anthropic-version, ...) on every request. The retry headers are exposed so that
        # a browser's SDK can read them. A wildcard never goes with credentials.
        super().__init__(
            app,
            allow_origins=list(listed),
            allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
            allow_headers=["*"],
            expose_headers=["retry-after", "retry-after-ms", "x-should-retry"],
            allow_credentials="*" not in listed,
            max_age=600,
        )
        self.listed = listed

    def is_allowed_origin(self, origin: str) -> bool:
        """Only pages `origin_allowed` serves reach here (`__call__` sent the others on),
        and that check needs the request's Host, which this method is not given."""
        return True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        origin, host = _origin_and_host(scope) if scope["type"] == "http" else (None, None)
        if origin is not None and not origin_allowed(origin, host, self.listed):
            await self.app(scope, receive, send)
            return
        await super().__call__(scope, receive, send)
