"""An async client of the daemon's HTTP API, for the TUI.

Everything the TUI knows comes through here: the admin routes, the OpenAI chat
route and the server-sent event streams. Errors are `DaemonError` (the daemon
said no, with its own message) or `DaemonUnreachable` (nothing answers), the same
classes the CLI's `AdminClient` raises.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import httpx

from appliance.client import DaemonError, DaemonUnreachable

__all__ = ["DaemonError", "DaemonUnreachable", "RouteMissing", "TuiClient"]

# Short reads for the dashboard's polls; actions (a load, a tier move) may take minutes.
POLL_TIMEOUT = httpx.Timeout(10.0, connect=3.0)
ACTION_TIMEOUT = httpx.Timeout(600.0, connect=3.0)


class RouteMissing(DaemonError):
    """The daemon has no such route (an older daemon): the caller falls back."""


def _error_from(response: httpx.Response) -> DaemonError:
    cls = RouteMissing if response.status_code == 404 else DaemonError
    try:
        err = response.json().get("error", {})
        if isinstance(err, dict):
            message = str(err.get("message") or response.text)
            return cls(message, response.status_code, err.get("code"))
    except (ValueError, AttributeError):
        pass
    return cls(f"HTTP {response.status_code}: {response.text[:200]}", response.status_code)


def _unreachable(base_url: str, exc: Exception) -> DaemonUnreachable:
    return DaemonUnreachable(f"the daemon does not answer at {base_url} ({type(exc).__name__})")


class TuiClient:
    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.AsyncClient(
            base_url=self.base_url, headers=headers, timeout=POLL_TIMEOUT, transport=transport
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- plain calls ------------------------------------------------------------------------

    async def _call(
        self, method: str, path: str, timeout: httpx.Timeout = POLL_TIMEOUT, **kw: Any
    ) -> Any:
        try:
            response = await self._http.request(method, path, timeout=timeout, **kw)
        except httpx.TransportError as exc:
            raise _unreachable(self.base_url, exc) from exc
        if response.status_code >= 400:
            raise _error_from(response)
        try:
            return response.json()
        except ValueError as exc:
            raise DaemonError(f"{path}: the daemon's answer is not JSON", 502) from exc

    async def health(self) -> dict[str, Any]:
        return dict(await self._call("GET", "/health"))

    async def models(self) -> list[dict[str, Any]]:
        return list((await self._call("GET", "/admin/models"))["models"])

    async def budgets(self) -> dict[str, Any]:
        return dict(await self._call("GET", "/admin/budgets"))

    async def events(self) -> list[dict[str, Any]]:
        return list((await self._call("GET", "/admin/events"))["events"])

    async def telemetry(self) -> dict[str, Any]:
        """The latest sample; raises RouteMissing on a daemon without telemetry."""
        return dict(await self._call("GET", "/admin/telemetry"))

    async def store(self) -> list[dict[str, Any]]:
        return list((await self._call("GET", "/admin/store"))["models"])

    async def inspect(self, name: str) -> dict[str, Any]:
        return dict(await self._call("GET", f"/admin/models/{name}/inspect"))

    async def load(self, name: str) -> dict[str, Any]:
        return dict(await self._call("POST", f"/admin/models/{name}/load", ACTION_TIMEOUT))

    async def unload(self, name: str) -> dict[str, Any]:
        return dict(await self._call("POST", f"/admin/models/{name}/unload", ACTION_TIMEOUT))

    async def set_tier(self, name: str, tier: str) -> dict[str, Any]:
        path = f"/admin/models/{name}/tier"
        return dict(await self._call("POST", path, ACTION_TIMEOUT, json={"tier": tier}))

    async def pin(self, name: str, tier: str | None) -> dict[str, Any]:
        path = f"/admin/models/{name}/pin"
        if tier is None:
            return dict(await self._call("DELETE", path, ACTION_TIMEOUT))
        return dict(await self._call("POST", path, ACTION_TIMEOUT, json={"tier": tier}))

    async def pulls(self) -> list[dict[str, Any]]:
        """The daemon's pulls in flight; raises RouteMissing on a daemon without the list."""
        return list((await self._call("GET", "/admin/pulls"))["pulls"])

    async def cancel_pull(self, label: str) -> dict[str, Any]:
        return dict(await self._call("DELETE", f"/admin/pull/{label}", ACTION_TIMEOUT))

    async def delete(self, name: str) -> dict[str, Any]:
        return dict(await self._call("DELETE", f"/admin/models/{name}", ACTION_TIMEOUT))

    # -- streams ----------------------------------------------------------------------------

    async def _sse(
        self,
        method: str,
        path: str,
        read_timeout: float | None,
        json_body: Any = None,
    ) -> AsyncGenerator[Any, None]:
        """Each `data:` payload of a server-sent event stream, decoded; stops at [DONE]."""
        timeout = httpx.Timeout(10.0, connect=3.0, read=read_timeout)
        try:
            async with self._http.stream(method, path, json=json_body, timeout=timeout) as resp:
                if resp.status_code >= 400:
                    await resp.aread()
                    raise _error_from(resp)
                async for line in resp.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    payload = line[5:].strip()
                    if payload == "[DONE]":
                        return
                    try:
                        yield json.loads(payload)
                    except ValueError:
                        continue
        except httpx.TransportError as exc:
            raise _unreachable(self.base_url, exc) from exc

    async def event_stream(self) -> AsyncIterator[dict[str, Any]]:
        """Live events; the daemon sends a keep-alive every 15 s, so 40 s of silence is a fault."""
        async with contextlib.aclosing(self._sse("GET", "/admin/events/stream", 40.0)) as items:
            async for item in items:
                if isinstance(item, dict):
                    yield item

    async def telemetry_stream(self) -> AsyncIterator[dict[str, Any]]:
        """Samples (kind "sample") and events; raises RouteMissing on an older daemon."""
        async with contextlib.aclosing(self._sse("GET", "/admin/telemetry/stream", 40.0)) as items:
            async for item in items:
                if isinstance(item, dict):
                    yield item

    async def pull(self, ref: str, name: str | None = None) -> AsyncIterator[dict[str, Any]]:
        """Progress events {"status", "downloaded", "total"}; the last is status "success"."""
        body: dict[str, Any] = {"model": ref}
        if name:
            body["name"] = name
        async for item in self._sse("POST", "/admin/pull", None, body):
            if not isinstance(item, dict):
                continue
            if "error" in item:
                err = item["error"] if isinstance(item["error"], dict) else {}
                raise DaemonError(str(err.get("message", item["error"])), None, err.get("code"))
            yield item

    async def chat(
        self, model: str, messages: list[dict[str, Any]], **params: Any
    ) -> AsyncIterator[dict[str, Any]]:
        """Stream a chat completion: each chunk's delta, then {"usage": ...} when sent."""
        body = {
            "model": model,
            "messages": messages,
            "stream": True,
            "stream_options": {"include_usage": True},
            **params,
        }
        async for item in self._sse("POST", "/v1/chat/completions", 600.0, body):
            if not isinstance(item, dict):
                continue
            if "error" in item:
                err = item["error"] if isinstance(item["error"], dict) else {}
                raise DaemonError(str(err.get("message", item["error"])), None, err.get("code"))
            for choice in item.get("choices") or []:
                delta = choice.get("delta") or {}
                if choice.get("finish_reason"):
                    delta = {**delta, "finish_reason": choice["finish_reason"]}
                yield delta
            if item.get("usage"):
                yield {"usage": item["usage"]}
