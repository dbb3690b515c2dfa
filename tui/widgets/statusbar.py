"""The top line of every screen: where you are (clickable) and how the daemon is."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Static

if TYPE_CHECKING:
    from tui.state import LiveState

PAGES = (
    ("1", "dashboard", "Dashboard"),
    ("2", "models", "Models"),
    ("3", "events", "Events"),
    ("4", "chat", "Chat"),
)


class NavBar(Static):
    def __init__(self, current: str) -> None:
        parts = []
        for key, mode, title in PAGES:
            style = "reverse bold" if mode == current else ""
            parts.append(
                f"[{style}][@click=app.switch_mode('{mode}')]{key} {title}[/][/]"
                if style
                else f"[@click=app.switch_mode('{mode}')]{key} {title}[/]"
            )
        super().__init__(" ".join(parts), classes="navbar")


class StatusLine(Static):
    def show(self, state: LiveState) -> None:
        self.update(status_text(state))


def status_text(state: LiveState) -> Text:
    if state.connected is False:
        return Text("● " + state.status, style="bold red")
    if state.connected is None:
        return Text("○ " + state.status, style="dim")
    health = state.health
    status = str(health.get("status") or "ready")
    color = {"ready": "green", "loading": "yellow"}.get(status, "red")
    counts = state.tier_counts()
    text = Text("● ", style=color)
    text.append(status, style=f"bold {color}")
    backend = health.get("backend")
    text.append(f" · {backend or 'no engine'}")
    text.append(f" · {len(state.models)} models, {counts.get('hot', 0)} hot")
    return text


class StatusBar(Horizontal):
    DEFAULT_CSS = """
    StatusBar { height: 1; dock: top; background: $panel; }
    StatusBar .navbar { width: auto; padding: 0 1 0 0; }
    StatusBar StatusLine { width: 1fr; text-align: right; padding: 0 1; }
    """

    def __init__(self, current: str) -> None:
        super().__init__()
        self.current = current

    def compose(self) -> ComposeResult:
        yield NavBar(self.current)
        yield StatusLine()
