"""What every page shares: the status bar on top, the keys below, a view of the live state."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from textual.app import ComposeResult
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.widgets import Footer

from tui.widgets.statusbar import StatusBar, StatusLine

if TYPE_CHECKING:
    from tui.app import ApplianceApp
    from tui.state import LiveState


class LiveScreen(Screen[None]):
    MODE: ClassVar[str] = ""

    @property
    def appliance(self) -> ApplianceApp:
        from tui.app import ApplianceApp

        assert isinstance(self.app, ApplianceApp)
        return self.app

    def compose_page(self) -> ComposeResult:
        yield from ()

    def compose(self) -> ComposeResult:
        yield StatusBar(self.MODE)
        yield from self.compose_page()
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.show_state(self.appliance.state)

    def on_screen_resume(self) -> None:
        self.show_state(self.appliance.state)

    def show_state(self, state: LiveState) -> None:
        """Render the state; called on every change while this screen is on a stack."""
        try:
            self.query_one(StatusLine).show(state)
            self.refresh_view(state)
        except NoMatches:  # being torn down: its widgets are already gone
            pass

    def refresh_view(self, state: LiveState) -> None:
        """The page's own rendering."""

    def show_pulls(self, state: LiveState) -> None:
        """Render the pulls in flight, on a page that shows them."""

    def notify_error(self, exc: Any) -> None:
        self.notify(str(exc), title="error", severity="error", timeout=8)
