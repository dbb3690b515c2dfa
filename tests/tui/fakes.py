"""A daemon in memory for the TUI tests: what it says, and when, is set by the test.

An httpx MockTransport behind the app's client, so that a test can make the daemon
slow (a reply that streams for seconds), refuse a long conversation the way the real
one does (400 `context_length_exceeded`), change a model's figures between two polls,
or send an event or a telemetry sample at a chosen moment.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx

from tui.app import ApplianceApp, make_app
from tui.client import TuiClient


def model(name: str, tier: str = "cold", **extra: Any) -> dict[str, Any]:
    """A row of /admin/models."""
    return {
        "name": name,
        "tier": tier,
        "state": "ready" if tier == "hot" else "idle",
        "pin": None,
        "kind": "chat",
        "aliases": [],
        "size_bytes": 1 << 20,
        "requests_total": 0,
        **extra,
    }


def _sse(item: Any) -> bytes:
    return f"data: {item if isinstance(item, str) else json.dumps(item)}\n\n".encode()


class FakeDaemon:
    def __init__(self) -> None:
        self.health: dict[str, Any] = {"status": "ready", "backend": "cpu", "reasons": []}
        self.models: list[dict[str, Any]] = [model("m", "hot"), model("other")]
        self.budgets: dict[str, Any] = {"warm": {"budget": 1 << 30, "used": 0, "free": 1 << 30}}
        self.events: list[dict[str, Any]] = []
        self.live: asyncio.Queue[dict[str, Any]] = asyncio.Queue()  # the telemetry stream
        self.chats: list[list[dict[str, Any]]] = []  # the messages of each chat request
        self.words = ["one ", "two ", "three ", "four "]
        self.word_delay = 0.0
        self.context_chars: int | None = None  # longer conversations are refused
        self.chat_error: str | None = None  # every chat request fails with this message
        self.pull_error: str | None = None
        self.pull_label: str | None = None  # the label its /admin/pull events carry ...
        self.pull_started = 1.0  # ... and the pull's start
        self.pulls: list[dict[str, Any]] | None = []  # GET /admin/pulls; None: no such route
        self.cancelled: list[str] = []  # the labels of DELETE /admin/pull/{label}

    def app(self) -> ApplianceApp:
        app = make_app("http://fake.invalid")
        app.client = TuiClient(app.base_url, transport=httpx.MockTransport(self.handle))
        return app

    def push(self, item: dict[str, Any]) -> None:
        """Send an event or a sample on the live stream."""
        self.live.put_nowait(item)

    def push_pull(self, label: str, status: str, downloaded: int = 0, **data: Any) -> None:
        """A `pull_progress` event of the pull labelled `label` (started at 1.0 unless said)."""
        data = {"status": status, "downloaded": downloaded, "total": 1 << 20, **data}
        data.setdefault("started", 1.0)
        data.setdefault("ref", f"hf://org/{label}/x.gguf@main")
        self.push(
            {"time": 2.0, "model": label, "kind": "pull_progress", "message": status, "data": data}
        )

    async def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        plain: dict[str, Any] = {
            "/health": self.health,
            "/admin/models": {"models": self.models},
            "/admin/budgets": self.budgets,
            "/admin/events": {"events": self.events},
            "/admin/telemetry": {},
        }
        if path in plain:
            return httpx.Response(200, json=plain[path])
        if path == "/admin/pulls" and self.pulls is not None:
            return httpx.Response(200, json={"pulls": self.pulls})
        if path.startswith("/admin/pull/") and request.method == "DELETE":
            label = path.removeprefix("/admin/pull/")
            self.cancelled.append(label)
            return httpx.Response(200, json={"cancelled": label})
        if path == "/admin/telemetry/stream":
            return self._stream(self._live())
        if path == "/v1/chat/completions":
            return self._chat(json.loads(request.content))
        if path == "/admin/pull":
            return self._stream(self._pull())
        return httpx.Response(404, json={"error": {"message": "Not Found"}})

    def _stream(self, body: AsyncIterator[bytes]) -> httpx.Response:
        return httpx.Response(200, content=body, headers={"content-type": "text/event-stream"})

    async def _live(self) -> AsyncIterator[bytes]:
        yield _sse({"kind": "hello"})
        while True:
            yield _sse(await self.live.get())

    def _chat(self, body: dict[str, Any]) -> httpx.Response:
        messages = body["messages"]
        self.chats.append(messages)
        if self.chat_error:
            error = {"message": self.chat_error, "code": "model_load_failed"}
            return httpx.Response(503, json={"error": error})
        size = sum(len(m["content"]) for m in messages)
        if self.context_chars is not None and size > self.context_chars:
            error = {
                "message": f"This model's maximum context length is {self.context_chars}.",
                "code": "context_length_exceeded",
            }
            return httpx.Response(400, json={"error": error})
        return self._stream(self._words(list(self.words), self.word_delay))

    async def _words(self, words: list[str], delay: float) -> AsyncIterator[bytes]:
        for word in words:
            await asyncio.sleep(delay)
            yield _sse({"choices": [{"delta": {"content": word}, "finish_reason": None}]})
        yield _sse({"choices": [{"delta": {}, "finish_reason": "stop"}]})
        yield _sse({"choices": [], "usage": {"completion_tokens": len(words)}})
        yield _sse("[DONE]")

    async def _pull(self) -> AsyncIterator[bytes]:
        label = {"model": self.pull_label, "started": self.pull_started} if self.pull_label else {}
        yield _sse({"status": "downloading", "downloaded": 0, "total": 0, **label})
        await asyncio.sleep(0.3)
        if self.pull_error:
            yield _sse({"error": {"message": self.pull_error, "code": "checksum_mismatch"}})
        else:
            yield _sse({"status": "success", "model": "other", "size": 1 << 20})
