"""DNS-rebinding protection: only requests whose ``Host`` names this daemon are served.

A web page on an attacker's name can be re-pointed (DNS rebinding) at 127.0.0.1, and
the browser then sends it requests to the daemon as same-origin ones. The ``Host``
header still carries the attacker's name, so naming only what the daemon answers to
closes that door: the loopback names, the address it is bound to and `allowed_hosts`.
"""

from __future__ import annotations

import ipaddress
import re

from starlette.types import ASGIApp, Receive, Scope, Send

from appliance.api.errors import APIError, error_response

__all__ = ["HostCheckMiddleware", "allowed_hosts", "host_name", "request_host"]

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
WILDCARD_BINDS = frozenset({"", "0.0.0.0", "::"})

# A Host header is a name (or an IPv4 literal), or an IPv6 literal in brackets, then an
# optional port (RFC 9110: digits, maybe none): nothing else (no userinfo, path, second
# port or text after the brackets).
_PORT = r"(?::(?P<port>[0-9]{0,5}))?"
_NAME_HOST = re.compile(r"(?P<name>[a-z0-9_-]+(?:\.[a-z0-9_-]+)*\.?)" + _PORT)
_IPV6_HOST = re.compile(r"\[(?P<name>[0-9a-f:.]+)\]" + _PORT)


def host_name(header: str) -> str:
    """The name in a ``Host`` header: lowercase, without port, brackets or final dot."""
    host = header.strip().lower()
    if host.startswith("["):
        host = host[1:].partition("]")[0]
    elif host.count(":") == 1:
        host = host.partition(":")[0]
    return host.rstrip(".")


def request_host(header: str) -> str | None:
    """The name a request's ``Host`` header names, as `host_name` gives it, or None when
    the header is not strictly a host with an optional port (``localhost:1@evil.example``,
    ``[::1]evil.example``, ``localhost:x``): such a header is refused, never cut down to
    a prefix that happens to be served."""
    host = header.strip().lower()
    match = _NAME_HOST.fullmatch(host)
    if match is None:
        match = _IPV6_HOST.fullmatch(host)
        if match is None or not _is_ip(match["name"]):
            return None
    port = match["port"]
    if port and int(port) > 65535:
        return None
    name: str = match["name"]
    return name.rstrip(".")


def allowed_hosts(bind_host: str, extra: tuple[str, ...]) -> frozenset[str]:
    """The names served: loopback, the bound address (unless a wildcard), `extra`."""
    names = set(LOOPBACK_NAMES) | {host_name(h) for h in extra}
    if bind_host not in WILDCARD_BINDS:
        names.add(host_name(bind_host))
    return frozenset(names)


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def misdirected(name: str) -> APIError:
    """421: the request names a host this daemon does not serve."""
    return APIError(
        421,
        f"this daemon does not answer to the host name {name!r} (protection against DNS "
        "rebinding); to serve it, add it to allowed_hosts in settings.toml or to "
        "APPLIANCE_ALLOWED_HOSTS (comma-separated) and restart the daemon",
        "invalid_request_error",
        None,
        "host_not_allowed",
    )


class HostCheckMiddleware:
    """421 in the API's error shape for a ``Host`` that is not one of `allowed_hosts`.

    A daemon bound to a wildcard address also serves IP literals: the box's addresses
    are many and change, and an address cannot be rebound, only a name can. A request
    without a ``Host`` (HTTP/1.0) comes from no browser and is served; one with a
    malformed ``Host``, or with more than one, is refused.
    """

    def __init__(self, app: ASGIApp, bind_host: str, extra: tuple[str, ...] = ()) -> None:
        self.app = app
        self.names = allowed_hosts(bind_host, extra)
        self.any_ip = bind_host in WILDCARD_BINDS

    def allows(self, header: str | None) -> bool:
        if header is None:
            return True
        name = request_host(header)
        if name is None:
            return False
        return name in self.names or (self.any_ip and _is_ip(name))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # lifespan; the daemon serves no websockets
            await self.app(scope, receive, send)
            return
        headers = [value for key, value in scope.get("headers", []) if key == b"host"]
        header = headers[0].decode("latin-1") if headers else None
        if len(headers) <= 1 and self.allows(header):
            await self.app(scope, receive, send)
            return
        if len(headers) > 1:
            shown = ", ".join(h.decode("latin-1").strip() for h in headers)
        else:
            shown = request_host(header or "") or (header or "").strip()
        await error_response(misdirected(shown[:100]))(scope, receive, send)
