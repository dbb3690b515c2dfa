"""The events page: tier moves with their reasons, loads, pulls, errors, worker restarts."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import RichLog

from tui.screens.base import LiveScreen
from tui.state import LiveState, fmt_time

KIND_STYLE = {
    "move": "cyan",
    "load": "green",
    "loading": "green",
    "unload": "cyan",
    "evict": "yellow",
    "pull": "magenta",
    "import": "magenta",
    "remove": "magenta",
    "crash": "bold red",
    "error": "bold red",
    "load_failed": "bold red",
    "restart": "yellow",
    "budgets": "blue",
}


def event_line(ev: dict[str, Any]) -> Text:
    kind = str(ev.get("kind") or "?")
    style = KIND_STYLE.get(kind, "red" if "fail" in kind or "error" in kind else "")
    text = Text(fmt_time(ev.get("time")) + " ", style="dim")
    text.append(f"{kind:<7}", style=style)
    text.append(f" {ev.get('model') or '*'}: ", style="bold")
    text.append(str(ev.get("message") or ""))
    return text


class EventsScreen(LiveScreen):
    MODE = "events"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("end,G", "scroll_end", "Newest"),
        Binding("home,g", "scroll_home", "Oldest"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.seen = 0
        self.lines: list[str] = []  # the text of each line written, for tests and copy

    def compose_page(self) -> ComposeResult:
        yield RichLog(id="event-log", wrap=True, max_lines=2000, auto_scroll=True)

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one(RichLog).focus()

    def refresh_view(self, state: LiveState) -> None:
        new = state.events_since(self.seen)
        self.seen = state.events_total
        if not new:
            return
        log = self.query_one(RichLog)
        for ev in new:
            line = event_line(ev)
            self.lines.append(line.plain)
            log.write(line)
        del self.lines[:-2000]

    def action_scroll_end(self) -> None:
        self.query_one(RichLog).scroll_end(animate=False)

    def action_scroll_home(self) -> None:
        self.query_one(RichLog).scroll_home(animate=False)
