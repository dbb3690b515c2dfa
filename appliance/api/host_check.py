"""DNS-rebinding protection: only requests whose ``Host`` names this daemon are served.

A web page on an attacker's name can be re-pointed (DNS rebinding) at 127.0.0.1, and
the browser then sends it requests to the daemon as same-origin ones. The ``Host``
header still carries the attacker's name, so naming only what the daemon answers to
closes that door: the loopback names, the address it is bound to and `allowed_hosts`.
"""

from __future__ import annotations

import ipaddress

from starlette.types import ASGIApp, Receive, Scope, Send

from appliance.api.errors import APIError, error_response

__all__ = ["HostCheckMiddleware", "allowed_hosts", "host_name"]

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
WILDCARD_BINDS = frozenset({"", "0.0.0.0", "::"})


def host_name(header: str) -> str:
    """The name in a ``Host`` header: lowercase, without port, brackets or final dot."""
    host = header.strip().lower()
    if host.startswith("["):
        host = host[1:].partition("]")[0]
    elif host.count(":") == 1:
        host = host.partition(":")[0]
    return host.rstrip(".")


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
    without a ``Host`` (HTTP/1.0) comes from no browser and is served.
    """

    def __init__(self, app: ASGIApp, bind_host: str, extra: tuple[str, ...] = ()) -> None:
        self.app = app
        self.names = allowed_hosts(bind_host, extra)
        self.any_ip = bind_host in WILDCARD_BINDS

    def allows(self, header: str | None) -> bool:
        if header is None:
            return True
        name = host_name(header)
        return name in self.names or (self.any_ip and _is_ip(name))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # lifespan; the daemon serves no websockets
            await self.app(scope, receive, send)
            return
        header: str | None = None
        for key, value in scope.get("headers", []):
            if key == b"host":
                header = value.decode("latin-1")
                break
        if self.allows(header):
            await self.app(scope, receive, send)
            return
        shown = host_name(header or "")[:100]
        await error_response(misdirected(shown))(scope, receive, send)
