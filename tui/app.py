"""The appliance TUI: a Textual app over the daemon's HTTP API, and its factory `make_app`.

The app keeps one `LiveState` fed by two workers: a poll of /health, /admin/models and
/admin/budgets (every 2 s, and at once after an event), and a stream of samples and
events (/admin/telemetry/stream, or /admin/events/stream on a daemon without
telemetry). When the daemon goes away the status line says so and both retry with a
back-off of 1 to 5 s. No network call runs on the UI thread's event handlers.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable
from functools import partial
from typing import Any

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from tui.client import DaemonError, DaemonUnreachable, RouteMissing, TuiClient
from tui.screens.base import LiveScreen
from tui.screens.chat import ChatScreen
from tui.screens.dashboard import DashboardScreen
from tui.screens.events import EventsScreen
from tui.screens.models import ModelsScreen
from tui.state import LiveState, is_demotion

POLL_S = 2.0
BACKOFF_MIN_S = 1.0
BACKOFF_MAX_S = 5.0
# Events after which the model list is fetched at once rather than at the next poll.
REFRESHING_KINDS = frozenset(
    {
        "move",
        "load",
        "loading",
        "unload",
        "evict",
        "crash",
        "load_failed",
        "pull",
        "remove",
        "import",
        "pin",
        "restart",
        "error",
        "budgets",
    }
)


class ApplianceApp(App[None]):
    CSS_PATH = "app.tcss"
    TITLE = "appliance"
    MODES = {  # noqa: RUF012 (Textual's own class variable)
        "dashboard": DashboardScreen,
        "models": ModelsScreen,
        "events": EventsScreen,
        "chat": ChatScreen,
    }
    DEFAULT_MODE = "dashboard"
    BINDINGS = [  # noqa: RUF012
        Binding("1,f1", "switch_mode('dashboard')", "Dashboard", show=False),
        Binding("2,f2", "switch_mode('models')", "Models", show=False),
        Binding("3,f3", "switch_mode('events')", "Events", show=False),
        Binding("4,f4", "switch_mode('chat')", "Chat", show=False),
        Binding("question_mark", "toggle_help", "Keys"),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(self, base_url: str, api_key: str | None = None, *, live: bool = True) -> None:
        super().__init__()
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.live = live
        self.client = TuiClient(self.base_url, api_key)
        self.state = LiveState(status=f"connecting to {self.base_url}…")
        self.chat_params: dict[str, Any] = {}
        self._wake = asyncio.Event()
        self._told_reasons: set[str] = set()  # /health reasons already shown as a toast

    # -- lifecycle --------------------------------------------------------------------------

    def on_mount(self) -> None:
        if self.live:
            self.run_worker(self._poll_loop(), name="poll", group="net")
            self.run_worker(self._stream_loop(), name="stream", group="net")
        else:
            self.run_worker(self._fetch_once(), name="fetch", group="net")

    async def on_unmount(self) -> None:
        await self.client.aclose()

    def poll_now(self) -> None:
        """Fetch the model list now instead of at the next tick."""
        self._wake.set()

    def refresh_views(self) -> None:
        """Show the state on every live page of the current stack (under any modal too)."""
        for screen in self.screen_stack:
            if isinstance(screen, LiveScreen) and screen.is_mounted:
                screen.show_state(self.state)

    def refresh_pulls(self) -> None:
        """Show the pulls on the pages of the current stack that show them (progress ticks
        come four times a second: the rest of each page stays as it is)."""
        for screen in self.screen_stack:
            if isinstance(screen, LiveScreen) and screen.is_mounted:
                screen.show_pulls(self.state)

    async def fetch_pulls(self) -> None:
        """Every pull in flight now (GET /admin/pulls), however it started; an older daemon
        without the list has only its live events."""
        asked_at = time.monotonic()
        with contextlib.suppress(RouteMissing):
            self.state.set_pulls(await self.client.pulls(), asked_at)
            self.refresh_pulls()

    # -- the poll ---------------------------------------------------------------------------

    async def fetch(self) -> None:
        health, models, budgets = await asyncio.gather(
            self.client.health(), self.client.models(), self.client.budgets()
        )
        self.state.health = health
        if self.live:
            self._tell_new_reasons()
        self.state.models = models
        if not (self.state.telemetry and self.state.budgets):
            self.state.budgets = budgets

    def _tell_new_reasons(self) -> None:
        """A toast for each new /health reason (a model failed, no engine): seen on any page."""
        reasons = self.state.health_reasons()
        for reason in reasons:
            if reason not in self._told_reasons:
                self.notify(reason, title="daemon degraded", severity="error", timeout=10)
        self._told_reasons = set(reasons)

    async def _fetch_once(self) -> None:
        """The live=False mode: one look at the daemon, no timers, no streams (snapshots)."""
        try:
            await self.fetch()
            self.state.add_events(await self.client.events())
            self._connected()
        except DaemonError as exc:
            self._unreachable(exc)
        self.refresh_views()

    def _connected(self) -> None:
        self.state.connected = True
        self.state.status = "connected"

    def _unreachable(self, exc: Exception) -> None:
        self.state.connected = False
        if isinstance(exc, DaemonUnreachable):
            self.state.status = f"daemon unreachable, retrying… ({self.base_url})"
        else:
            self.state.status = f"daemon error: {exc}; retrying…"

    async def _poll_loop(self) -> None:
        backoff = BACKOFF_MIN_S
        while True:
            try:
                await self.fetch()
            except (DaemonError, KeyError, TypeError, ValueError) as exc:
                self._unreachable(exc)
                wait = backoff
                backoff = min(BACKOFF_MAX_S, backoff * 2)
            else:
                was_down = self.state.connected is not True
                self._connected()
                backoff = BACKOFF_MIN_S
                wait = POLL_S
                if was_down:
                    self.log.info("connected to", self.base_url)
            self.refresh_views()
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)

    # -- the stream -------------------------------------------------------------------------

    async def _stream_loop(self) -> None:
        backoff = BACKOFF_MIN_S
        while True:
            try:
                if self.state.telemetry is not False:
                    try:
                        await self._consume(self.client.telemetry_stream(), telemetry=True)
                    except RouteMissing:
                        self.state.telemetry = False
                        continue
                else:
                    await self._consume(self.client.event_stream(), telemetry=False)
                backoff = BACKOFF_MIN_S  # the daemon closed the stream: reconnect soon
            except DaemonError:
                self.state.telemetry = None  # a new daemon may differ: ask again
                self.poll_now()  # let the poll say "unreachable" now, not in 2 s
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                self.log.error("the event stream sent something unexpected:", exc)
            await asyncio.sleep(backoff)
            backoff = min(BACKOFF_MAX_S, backoff * 2)

    async def _consume(self, stream: Any, telemetry: bool) -> None:
        history_loaded = False
        # Closed here, by this task, when it ends or is cancelled (the app quitting): left to
        # the loop's finalizer, the stream's generator could be closed while still running
        # ("aclose(): asynchronous generator is already running", once in CI).
        async with contextlib.aclosing(stream):
            async for item in stream:
                if not history_loaded:
                    # Subscribed: now the history, which may overlap what streams (deduped).
                    history_loaded = True
                    with contextlib.suppress(DaemonError):
                        if telemetry:
                            self.state.telemetry = True
                            self.state.load_history(await self.client.telemetry())
                        if self.state.add_events(await self.client.events()):
                            self.poll_now()
                        await self.fetch_pulls()  # those started before this connection
                        self.refresh_views()
                self._take(item)

    def _take(self, item: dict[str, Any]) -> None:
        kind = item.get("kind")
        if kind == "sample":
            self.state.add_sample(item)
            self.refresh_views()
            return
        if kind == "event" and isinstance(item.get("event"), dict):
            item = item["event"]
            kind = item.get("kind")
        if kind == "hello" or "message" not in item:
            return
        if kind == "pull_progress":  # any pull's, whoever started it
            if self.state.take_pull_event(item):
                self.refresh_pulls()
            return
        new = self.state.add_events([item])
        if new:
            if any(ev.get("kind") in REFRESHING_KINDS for ev in new):
                self.poll_now()
            for ev in new:
                if is_demotion(ev):  # the why is only in the event: say it where one looks
                    self.notify(
                        f"{ev.get('model')}: {ev.get('message')}", title="tier change", timeout=8
                    )
            self.refresh_views()

    # -- command palette --------------------------------------------------------------------

    def action_toggle_help(self) -> None:
        """`?`: the keys panel the palette's "Keys" shows, and `?` again hides it."""
        if self.screen.query("HelpPanel"):
            self.action_hide_help_panel()
        else:
            self.action_show_help_panel()

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for mode, title in (
            ("dashboard", "Dashboard"),
            ("models", "Models"),
            ("events", "Events"),
            ("chat", "Chat"),
        ):
            yield SystemCommand(
                f"Go to {title}",
                f"Show the {title.lower()} page",
                partial(self.switch_mode, mode),
            )
        if not isinstance(screen, ModelsScreen):
            yield SystemCommand(
                "Pull a model…", "Download a model into the store", self._palette_pull
            )
            return
        yield SystemCommand("Pull a model…", "Download a model into the store", screen.action_pull)
        name = screen.selected
        if name is None:
            return
        yield SystemCommand(
            f"Load {name} (hot)", "Start its engine worker", lambda: screen.action_tier("hot", name)
        )
        yield SystemCommand(
            f"Move {name} to warm",
            "Keep its weights in RAM, no worker",
            lambda: screen.action_tier("warm", name),
        )
        yield SystemCommand(
            f"Move {name} to cold",
            "Only its file on disk",
            lambda: screen.action_tier("cold", name),
        )
        yield SystemCommand(f"Unload {name}", "End its worker", lambda: screen.action_unload(name))
        yield SystemCommand(
            f"Pin {name} hot", "Keep it loaded", lambda: screen.action_pin("hot", name)
        )
        yield SystemCommand(
            f"Pin {name} warm", "Keep it in RAM at least", lambda: screen.action_pin("warm", name)
        )
        yield SystemCommand(
            f"Unpin {name}", "Let the policy move it", lambda: screen.action_pin(None, name)
        )
        yield SystemCommand(
            f"Delete {name}…",
            "Remove its file from the store (asks first)",
            lambda: screen.action_delete(name),
        )
        yield SystemCommand(
            f"Inspect {name}", "Metadata and memory estimate", lambda: screen.action_inspect(name)
        )

    def _palette_pull(self) -> None:
        def go() -> None:
            screen = self.screen
            if isinstance(screen, ModelsScreen):
                screen.action_pull()

        self.switch_mode("models")
        self.call_after_refresh(go)


def make_app(base_url: str, api_key: str | None = None, *, live: bool = True) -> ApplianceApp:
    """The TUI for the daemon at `base_url`; `live=False` looks once and never refreshes."""
    return ApplianceApp(base_url, api_key, live=live)
