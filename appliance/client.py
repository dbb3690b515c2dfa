"""The CLI's typed client of the daemon's admin API (its error classes are the TUI's too)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx


class DaemonError(Exception):
    """The daemon answered with an error; the message is its own."""

    def __init__(self, message: str, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class DaemonUnreachable(DaemonError):
    """Nothing answers at the daemon's address."""


def _error_from(response: httpx.Response) -> DaemonError:
    try:
        err = response.json().get("error", {})
        return DaemonError(
            str(err.get("message") or response.text), response.status_code, err.get("code")
        )
    except (ValueError, AttributeError):
        return DaemonError(
            f"HTTP {response.status_code}: {response.text[:200]}", response.status_code
        )


class AdminClient:
    def __init__(self, base_url: str, api_key: str | None = None, timeout: float = 600.0) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> AdminClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise DaemonUnreachable(
                f"the daemon does not answer at {self.base_url} ({type(exc).__name__}); "
                "start it with `appliance serve` or `systemctl start appliance`"
            ) from exc
        if response.status_code >= 400:
            raise _error_from(response)
        return response.json()

    def health(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/health")
        return result

    def models(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/admin/models")["models"])

    def store(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/admin/store")["models"])

    def load(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST", f"/admin/models/{name}/load")
        return result

    def unload(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST", f"/admin/models/{name}/unload")
        return result

    def pulls(self) -> list[dict[str, Any]]:
        """The daemon's pulls in flight (GET /admin/pulls)."""
        return list(self._call("GET", "/admin/pulls")["pulls"])

    def cancel_pull(self, label: str) -> dict[str, Any]:
        """Stop the daemon's pull of `label` (a model name, or the hf:// reference of a
        pull without one); its partial download is kept for the next pull."""
        result: dict[str, Any] = self._call("DELETE", f"/admin/pull/{label}")
        return result

    def remove(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("DELETE", f"/admin/models/{name}")
        return result

    def inspect(self, name: str, context: int | None = None) -> dict[str, Any]:
        params = {"context": str(context)} if context else None
        result: dict[str, Any] = self._call("GET", f"/admin/models/{name}/inspect", params=params)
        return result

    def set_tier(self, name: str, tier: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call(
            "POST", f"/admin/models/{name}/tier", json={"tier": tier}
        )
        return result

    def pin(self, name: str, tier: str | None) -> dict[str, Any]:
        if tier is None:
            result: dict[str, Any] = self._call("DELETE", f"/admin/models/{name}/pin")
        else:
            result = self._call("POST", f"/admin/models/{name}/pin", json={"tier": tier})
        return result

    def budgets(self, changes: dict[str, Any] | None = None) -> dict[str, Any]:
        if changes:
            result: dict[str, Any] = self._call("POST", "/admin/budgets", json=changes)
        else:
            result = self._call("GET", "/admin/budgets")
        return result

    def import_file(self, path: str, name: str | None = None) -> dict[str, Any]:
        result: dict[str, Any] = self._call(
            "POST", "/admin/import", json={"path": path, "name": name}
        )
        return result

    def events(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/admin/events")["events"])

    def hardware(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/admin/hardware")
        return result

    def pull(self, model: str, name: str | None = None) -> Iterator[dict[str, Any]]:
        """Yield progress events; the last is {"status": "success", ...} or raises."""
        body: dict[str, Any] = {"model": model}
        if name:
            body["name"] = name
        try:
            with self._http.stream("POST", "/admin/pull", json=body) as response:
                if response.status_code >= 400:
                    response.read()
                    raise _error_from(response)
                for line in response.iter_lines():
                    if not line.startswith("data: "):
                        continue
                    event = json.loads(line[6:])
                    if "error" in event:
                        err = event["error"]
                        raise DaemonError(str(err.get("message")), None, err.get("code"))
                    yield event
        except httpx.TransportError as exc:
            raise DaemonUnreachable(
                f"the daemon does not answer at {self.base_url}: {type(exc).__name__}"
            ) from exc
