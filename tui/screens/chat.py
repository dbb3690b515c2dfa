"""The chat page: pick a model, type, watch the reply stream in (reasoning apart, dimmed)."""

from __future__ import annotations

import time
from typing import Any, ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.widgets import Input, Label, Select, Static

from tui.client import DaemonError
from tui.screens.base import LiveScreen
from tui.state import LiveState
from tui.widgets.transcript import TranscriptView

FLUSH_S = 0.1  # redraw a streaming reply at most 10 times a second
SHOWN_TURNS = 20  # turns kept on screen (the model still gets the whole conversation)


class Reply:
    """One assistant turn in the transcript: its reasoning block above its answer block."""

    def __init__(self, view: TranscriptView) -> None:
        self.view = view
        self.reasoning = ""
        self.content = ""
        self.placeholder = "…"
        self.reasoning_block = view.add("reasoning")  # empty, so no lines until it has some
        self.content_block = view.add("reply", "…", gap=True)

    def flush(self) -> None:
        self.view.set_text(self.reasoning_block, self.reasoning)
        self.view.set_text(self.content_block, self.content or self.placeholder)


class ChatScreen(LiveScreen):
    MODE = "chat"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "stop", "Stop/leave input"),
        Binding("ctrl+l", "clear", "Clear"),
        Binding("enter", "focus_input", "Type", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[dict[str, Any]] = []
        self.streaming = False
        self.reply: Reply | None = None
        self._flush_pending = False
        self.last_stats: dict[str, Any] = {}

    def compose_page(self) -> ComposeResult:
        with Horizontal(id="chat-top"):
            yield Label("model ")
            yield Select[str]([], prompt="pick a model", id="chat-model")
        yield TranscriptView(id="transcript")
        yield Static("enter: send · esc: stop or leave the input · ctrl+l: clear", id="chat-stats")
        yield Input(placeholder="say something to the model", id="chat-input")

    def on_mount(self) -> None:
        super().on_mount()
        field = self.query_one("#chat-input", Input)
        field.cursor_blink = False
        field.focus()

    def refresh_view(self, state: LiveState) -> None:
        select = self.query_one("#chat-model", Select)
        names = state.chat_models()
        if names == getattr(select, "_names", None):
            return
        current = select.value
        select._names = names  # type: ignore[attr-defined]
        select.set_options((n, n) for n in names)
        if isinstance(current, str) and current in names:
            select.value = current
        elif names:
            hot = [m["name"] for m in state.models if m.get("tier") == "hot" and m["name"] in names]
            select.value = hot[0] if hot else names[0]

    @property
    def model(self) -> str | None:
        value = self.query_one("#chat-model", Select).value
        return value if isinstance(value, str) else None

    # -- sending ----------------------------------------------------------------------------

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        text = event.value.strip()
        if not text:
            return
        model = self.model
        if model is None:
            self.notify("pick a model first", severity="warning")
            return
        event.input.value = ""
        self.send(model, text)

    def send(self, model: str, text: str) -> None:
        view = self.query_one(TranscriptView)
        view.trim(3 * SHOWN_TURNS - 3)
        view.add("user", "› " + text)
        self.messages.append({"role": "user", "content": text})
        self.reply = Reply(view)
        self.stream(model, self.reply)

    @work(group="chat", exclusive=True)
    async def stream(self, model: str, reply: Reply) -> None:
        self.streaming = True
        stats = self.query_one("#chat-stats", Static)
        stats.update(f"{model}: waiting for the first token…")
        params = dict(self.appliance.chat_params)
        sent = time.monotonic()
        first: float | None = None
        tokens = 0
        usage: dict[str, Any] = {}
        finish = ""
        try:
            async for delta in self.appliance.client.chat(model, list(self.messages), **params):
                if "usage" in delta:
                    usage = delta["usage"] or {}
                    continue
                piece_r = delta.get("reasoning_content") or ""
                piece_c = delta.get("content") or ""
                finish = delta.get("finish_reason") or finish
                if not piece_r and not piece_c:
                    continue
                if first is None:
                    first = time.monotonic()
                tokens += 1
                reply.reasoning += piece_r
                reply.content += piece_c
                self._schedule_flush()
        except DaemonError as exc:
            self.query_one(TranscriptView).add("error", f"error: {exc}", gap=True)
            self.notify_error(exc)
        finally:
            self.streaming = False
            reply.placeholder = (
                "(no answer outside the reasoning)" if reply.reasoning else "(empty)"
            )
            reply.flush()
        if reply.content:
            self.messages.append({"role": "assistant", "content": reply.content})
        now = time.monotonic()
        n = int(usage.get("completion_tokens") or tokens)
        rate = (n - 1) / (now - first) if first is not None and n > 1 and now > first else None
        ttft = None if first is None else (first - sent) * 1000
        self.last_stats = {"tokens": n, "tokens_per_s": rate, "ttft_ms": ttft, "finish": finish}
        parts = [f"{model}: {n} tokens"]
        if rate is not None:
            parts.append(f"{rate:.1f} tok/s")
        if ttft is not None:
            parts.append(f"TTFT {ttft:.0f} ms")
        if finish:
            parts.append(f"finish {finish}")
        stats.update(" · ".join(parts))

    def _schedule_flush(self) -> None:
        if not self._flush_pending:
            self._flush_pending = True
            self.set_timer(FLUSH_S, self._flush)

    def _flush(self) -> None:
        self._flush_pending = False
        if self.reply is not None:
            self.reply.flush()

    # -- keys -------------------------------------------------------------------------------

    def action_stop(self) -> None:
        if self.streaming:
            self.workers.cancel_group(self, "chat")
            self.streaming = False
            self.notify("stopped", timeout=2)
        else:
            self.query_one(TranscriptView).focus()

    def action_focus_input(self) -> None:
        self.query_one("#chat-input", Input).focus()

    def action_clear(self) -> None:
        self.workers.cancel_group(self, "chat")
        self.messages.clear()
        self.reply = None
        self.query_one(TranscriptView).clear()
        self.query_one("#chat-stats", Static).update("cleared")
