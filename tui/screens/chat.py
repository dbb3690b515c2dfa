"""The chat page: pick a model, type, watch the reply stream in (reasoning apart, dimmed)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any, ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.css.query import NoMatches
from textual.widgets import Input, Label, Select, Static

from tui.client import DaemonError
from tui.screens.base import LiveScreen
from tui.state import LiveState
from tui.widgets.transcript import TranscriptView

FLUSH_S = 0.1  # redraw a streaming reply at most 10 times a second
SHOWN_TURNS = 20  # turns kept on screen (the model still gets the whole conversation)
TOO_LONG = "context_length_exceeded"  # the daemon's code for a prompt over the context


class Reply:
    """One assistant turn: its blocks in the transcript, its text, and how it went.

    It ends once (`outcome`): "done", "stopped" (esc), "cut off" (a new message sent
    while it streamed), "error" or "cleared"; its figures give the stats line either way.
    """

    def __init__(self, view: TranscriptView, model: str, turn: dict[str, Any]) -> None:
        self.view = view
        self.model = model
        self.turn = turn  # the user's message it answers, in the history
        self.reasoning = ""
        self.content = ""
        self.placeholder = "…"
        self.suffix = ""  # after a stopped answer
        self.reasoning_block = view.add("reasoning")  # empty, so no lines until it has some
        self.content_block = view.add("reply", "…", gap=True)
        self.sent = time.monotonic()
        self.first: float | None = None
        self.tokens = 0
        self.usage: dict[str, Any] = {}
        self.finish = ""
        self.dropped = 0  # oldest messages left out so that the conversation fits
        self.outcome: str | None = None

    def flush(self) -> None:
        self.view.set_text(self.reasoning_block, self.reasoning)
        text = self.content + self.suffix if self.content else self.placeholder
        self.view.set_text(self.content_block, text)


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
        self.reply: Reply | None = None
        self._flush_pending = False
        self._talking_to: str | None = None  # the model picked, to say when it changes
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

    @property
    def streaming(self) -> bool:
        return self.reply is not None and self.reply.outcome is None

    def on_select_changed(self, event: Select.Changed) -> None:
        """Say so in the transcript: the new model gets the conversation held so far."""
        model = event.value if isinstance(event.value, str) else None
        if model is None:
            return
        previous, self._talking_to = self._talking_to, model
        view = self.query_one(TranscriptView)
        if previous is not None and previous != model and view.blocks:
            kept = "it gets the conversation so far" if self.messages else "nothing said yet"
            view.add("note", f"── now talking to {model} ({kept}; ctrl+l: start over)", gap=True)

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
        if self.reply is not None and self.reply.outcome is None:
            # Its partial text goes into the history before the new message, not after.
            self.workers.cancel_group(self, "chat")
            self.end(self.reply, "cut off")
        view = self.query_one(TranscriptView)
        view.trim(3 * SHOWN_TURNS - 3)
        view.add("user", "› " + text)
        turn = {"role": "user", "content": text}
        self.messages.append(turn)
        self.reply = Reply(view, model, turn)
        self.stream(self.reply)

    @work(group="chat", exclusive=True)
    async def stream(self, reply: Reply) -> None:
        self.query_one("#chat-stats", Static).update(f"{reply.model}: waiting for the first token…")
        try:
            while True:
                try:
                    await self._receive(reply)
                    break
                except DaemonError as exc:
                    if exc.code == TOO_LONG and not reply.tokens and self._drop_oldest(reply):
                        continue  # asked again, once, without the oldest turns
                    self.end(reply, "error", exc)
                    return
        except asyncio.CancelledError:
            with contextlib.suppress(NoMatches):  # the app quitting: the page is gone
                self.end(reply, "stopped")
            raise
        self.end(reply, "done")

    async def _receive(self, reply: Reply) -> None:
        params = dict(self.appliance.chat_params)
        chunks = self.appliance.client.chat(reply.model, list(self.messages), **params)
        async for delta in chunks:
            if "usage" in delta:
                reply.usage = delta["usage"] or {}
                continue
            piece_r = delta.get("reasoning_content") or ""
            piece_c = delta.get("content") or ""
            reply.finish = delta.get("finish_reason") or reply.finish
            if not piece_r and not piece_c:
                continue
            if reply.first is None:
                reply.first = time.monotonic()
            reply.tokens += 1
            reply.reasoning += piece_r
            reply.content += piece_c
            self._schedule_flush()

    def _drop_oldest(self, reply: Reply) -> bool:
        """Leave out the oldest half of the earlier turns (whole exchanges), once a reply."""
        earlier = len(self.messages) - 1  # all but the message being answered
        if reply.dropped or earlier < 2:
            return False
        half = (earlier + 1) // 2
        reply.dropped = min(earlier, half + half % 2)  # whole exchanges: user and answer
        del self.messages[: reply.dropped]
        self.notify(
            f"the conversation no longer fits {reply.model}'s context: left out the "
            f"{reply.dropped} oldest messages and asked again",
            severity="warning",
            timeout=8,
        )
        return True

    def end(self, reply: Reply, outcome: str, exc: DaemonError | None = None) -> None:
        """Close a reply (once): its text, the history, the stats line."""
        if reply.outcome is not None:
            return
        reply.outcome = outcome
        view = self.query_one(TranscriptView)
        stopped = outcome in ("stopped", "cut off")
        if exc is not None:
            text = f"error: {exc}"
            if exc.code == TOO_LONG:
                text += (
                    f"\nthe conversation is longer than {reply.model}'s context: ctrl+l clears it"
                    if len(self.messages) > 1
                    else f"\nthis message alone is longer than {reply.model}'s context"
                )
            if reply.content or reply.reasoning:
                reply.flush()
                view.add("error", text, gap=True)
            else:  # in the reply's place, with no "(empty)" line above it
                view.replace(reply.content_block, "error", text)
            self.notify_error(exc)
        else:
            if stopped:
                reply.placeholder, reply.suffix = "(stopped before an answer)", " [stopped]"
            elif reply.reasoning:
                reply.placeholder = "(no answer outside the reasoning)"
            else:
                reply.placeholder = "(empty)"
            reply.flush()
        if outcome != "cleared":
            # The history alternates: an answer (even a partial one) follows its question;
            # a question without one (failed, or stopped before a word) leaves it.
            if reply.content and exc is None:
                self.messages.append({"role": "assistant", "content": reply.content})
            elif self.messages and self.messages[-1] is reply.turn:
                self.messages.pop()
        self._show_stats(reply)

    def _show_stats(self, reply: Reply) -> None:
        now = time.monotonic()
        n = int(reply.usage.get("completion_tokens") or reply.tokens)
        first = reply.first
        rate = (n - 1) / (now - first) if first is not None and n > 1 and now > first else None
        ttft = None if first is None else (first - reply.sent) * 1000
        self.last_stats = {
            "tokens": n,
            "tokens_per_s": rate,
            "ttft_ms": ttft,
            "finish": reply.finish,
            "outcome": reply.outcome,
        }
        if reply.outcome == "cleared":
            return
        head = {"stopped": "stopped", "cut off": "cut off", "error": "failed"}.get(
            str(reply.outcome)
        )
        parts = [f"{reply.model}: {head + ' after ' if head else ''}{n} tokens"]
        if rate is not None:
            parts.append(f"{rate:.1f} tok/s")
        if ttft is not None:
            parts.append(f"TTFT {ttft:.0f} ms")
        if reply.finish:
            parts.append(f"finish {reply.finish}")
        if reply.dropped:
            parts.append(f"{reply.dropped} oldest messages left out")
        self.query_one("#chat-stats", Static).update(" · ".join(parts))

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
        if self.reply is not None and self.reply.outcome is None:
            self.workers.cancel_group(self, "chat")
            self.end(self.reply, "stopped")
            self.notify("stopped", timeout=2)
        else:
            self.query_one(TranscriptView).focus()

    def action_focus_input(self) -> None:
        self.query_one("#chat-input", Input).focus()

    def action_clear(self) -> None:
        self.workers.cancel_group(self, "chat")
        if self.reply is not None:
            self.end(self.reply, "cleared")
        self.messages.clear()
        self.reply = None
        self.query_one(TranscriptView).clear()
        self.query_one("#chat-stats", Static).update("cleared")
