"""The models page: the catalog and the store, and what can be done to each model."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from tui.client import DaemonError
from tui.screens.base import LiveScreen
from tui.screens.modals import ConfirmScreen, InspectScreen, PullScreen
from tui.state import NA, LiveState, fmt_bytes, fmt_time, guess_format, guess_quant
from tui.widgets.pull_progress import PullProgress
from tui.widgets.tables import selected_key, state_cell, sync_rows, tier_cell

COLUMNS = ("name", "tier", "state", "pin", "kind", "format", "quant", "size", "aliases")


def _keep_alive(seconds: Any) -> str:
    if seconds is None:
        return "forever"
    s = float(seconds)
    return f"{s / 60:g}m" if s >= 60 else f"{s:g}s"


class ModelsScreen(LiveScreen):
    MODE = "models"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("p", "pull", "Pull"),
        Binding("l", "tier('hot')", "Load"),
        Binding("w", "tier('warm')", "Warm"),
        Binding("c", "tier('cold')", "Cold"),
        Binding("u", "unload", "Unload"),
        Binding("n", "toggle_pin", "Pin"),
        Binding("x,delete", "delete", "Delete"),
        Binding("i", "inspect", "Inspect"),
        Binding("r", "refresh", "Refresh", show=False),
        Binding("escape", "dismiss_pulls", "Dismiss"),
        Binding("s", "cancel_pull", "Stop pull"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.file_info: dict[str, dict[str, str | None]] = {}  # name -> format, quant
        self._reading_files = False

    def compose_page(self) -> ComposeResult:
        table: DataTable[Any] = DataTable(id="models-table", cursor_type="row", zebra_stripes=True)
        for column in COLUMNS:
            table.add_column(column, key=column)
        yield table
        yield Static(id="model-detail")
        yield Vertical(id="pulls")

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one("#models-table", DataTable).focus()
        self.list_pulls()

    def on_screen_resume(self) -> None:
        super().on_screen_resume()
        self.list_pulls()

    @work(group="pull-list", exclusive=True)
    async def list_pulls(self) -> None:
        """Every pull in flight as the page opens, however it started; the live events
        keep them up to date after."""
        with contextlib.suppress(DaemonError):  # unreachable: the poll says so
            await self.appliance.fetch_pulls()

    # -- view -------------------------------------------------------------------------------

    def refresh_view(self, state: LiveState) -> None:
        rows = []
        for m in state.models:
            name = str(m.get("name"))
            pin = m.get("pin")
            kind = str(m.get("kind") or NA)
            info = self.file_info.get(name, {})
            rows.append(
                (
                    name,
                    (
                        name,
                        tier_cell(m.get("tier")),
                        state_cell(m.get("state")),
                        Text(str(pin), style="bold") if pin else "-",
                        "embed" if kind == "embedding" else kind,
                        info.get("format") or guess_format(m.get("source")) or NA,
                        info.get("quant") or guess_quant(m.get("source")) or NA,
                        fmt_bytes(m.get("size_bytes")),
                        ", ".join(m.get("aliases") or []) or "-",
                    ),
                )
            )
        sync_rows(self.query_one("#models-table", DataTable), rows)
        self._detail(state)
        self.show_pulls(state)
        missing = [
            str(m["name"])
            for m in state.models
            if m.get("tier") in ("hot", "warm", "cold") and m.get("name") not in self.file_info
        ]
        if missing and not self._reading_files:
            self.read_files(missing)

    @work(group="file-info")
    async def read_files(self, names: list[str]) -> None:
        """The format and quantization of each local model, from its file's metadata, once."""
        self._reading_files = True
        try:
            for name in names:
                try:
                    info = await self.appliance.client.inspect(name)
                except DaemonError:
                    self.file_info[name] = {}  # unreadable (a broken file): guessed or n/a
                    continue
                quant = info.get("quantization")
                self.file_info[name] = {"format": "gguf", "quant": str(quant) if quant else None}
        finally:
            self._reading_files = False
        if self.query("#models-table"):  # not when the app closed while the files were read
            self.refresh_view(self.appliance.state)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._detail(self.appliance.state)

    def _detail(self, state: LiveState) -> None:
        name = self.selected
        m = state.model(name) if name else None
        if m is None:
            self.query_one("#model-detail", Static).update("")
            return
        text = Text(f"{name}", style="bold")
        text.append(f" · keep-alive {_keep_alive(m.get('keep_alive_s'))}")
        text.append(f" · device {m.get('device') or NA}")
        text.append(f" · hot {fmt_bytes(m.get('hot_bytes'))}")
        if m.get("host_bytes"):  # a GPU model's host RAM, beside its VRAM
            text.append(f" + {fmt_bytes(m['host_bytes'])} host")
        move = state.last_moves.get(str(name))
        if move is not None:  # why it is where it is (an eviction, an idle drop, a request)
            text.append(f"\nlast move {fmt_time(move.get('time'))}: {move.get('message')}")
        if m.get("last_error"):
            text.append(f"\nlast error: {m['last_error']}", style="red")
        self.query_one("#model-detail", Static).update(text)

    @property
    def selected(self) -> str | None:
        return selected_key(self.query_one("#models-table", DataTable))

    def _need_selection(self) -> str | None:
        name = self.selected
        if name is None:
            self.notify("no model selected", severity="warning")
        return name

    # -- actions ----------------------------------------------------------------------------

    @work(group="actions")
    async def call_daemon(
        self, what: str, call: Callable[[], Awaitable[Any]], done: str | None = None
    ) -> None:
        self.notify(f"{what}…", timeout=2)
        try:
            await call()
        except DaemonError as exc:
            self.notify_error(f"{what}: {exc}")
        else:
            if done:
                self.notify(done, timeout=3)
        self.appliance.poll_now()

    def action_tier(self, tier: str, name: str | None = None) -> None:
        name = name or self._need_selection()
        if name is None:
            return
        client = self.appliance.client
        if tier == "hot":
            self.call_daemon(f"loading {name}", lambda: client.load(name), f"{name} is hot")
        else:
            self.call_daemon(
                f"moving {name} to {tier}",
                lambda: client.set_tier(name, tier),
                f"{name} is {tier}",
            )

    def action_unload(self, name: str | None = None) -> None:
        name = name or self._need_selection()
        if name is not None:
            client = self.appliance.client
            self.call_daemon(f"unloading {name}", lambda: client.unload(name), f"{name} unloaded")

    def action_pin(self, tier: str | None, name: str | None = None) -> None:
        name = name or self._need_selection()
        if name is None:
            return
        client = self.appliance.client
        what = f"pinning {name} to {tier}" if tier else f"unpinning {name}"
        self.call_daemon(what, lambda: client.pin(name, tier))

    def action_toggle_pin(self) -> None:
        name = self._need_selection()
        if name is None:
            return
        m = self.appliance.state.model(name) or {}
        if m.get("pin"):
            self.action_pin(None, name)
        else:
            self.action_pin("warm" if m.get("tier") == "warm" else "hot", name)

    def action_delete(self, name: str | None = None) -> None:
        name = name or self._need_selection()
        if name is None:
            return

        def answered(yes: bool | None) -> None:
            if yes:
                client = self.appliance.client
                self.call_daemon(f"deleting {name}", lambda: client.delete(name), f"{name} deleted")

        question = f"Delete '{name}' from the store?\nIts file is removed from this box's disk."
        self.app.push_screen(ConfirmScreen(question), answered)

    def action_inspect(self, name: str | None = None) -> None:
        name = name or self._need_selection()
        if name is not None:
            self.inspect(name)

    @work(group="inspect", exclusive=True)
    async def inspect(self, name: str) -> None:
        try:
            info = await self.appliance.client.inspect(name)
        except DaemonError as exc:
            self.notify_error(exc)
            return
        model = self.appliance.state.model(name) or {"name": name}
        await self.app.push_screen(InspectScreen(model, info))

    def action_refresh(self) -> None:
        self.appliance.poll_now()

    def action_pull(self) -> None:
        name = self.selected
        m = self.appliance.state.model(name) if name else None
        ref = name if m is not None and m.get("tier") == "remote" else ""

        def answered(result: tuple[str, str | None] | None) -> None:
            if result is not None:
                self.start_pull(*result)

        self.app.push_screen(PullScreen(ref or ""), answered)

    # -- pulls ------------------------------------------------------------------------------

    def show_pulls(self, state: LiveState) -> None:
        """A bar for every pull in flight: this page's own (fed by their streams) and the
        others, whoever started them, from the state (one bar per pull, never two)."""
        shown: dict[str, PullProgress] = {}
        for w in self.query(PullProgress):
            if w.owned or w.key not in shown:  # an own bar stands for its pull
                shown[w.key] = w
        for label, entry in list(state.pulls.items()):
            bar = shown.get(label)
            if (
                bar is not None
                and bar.owned
                and (bar.outcome is None or bar.run == entry["started"])
            ):
                continue  # its own stream shows it
            if bar is not None and not bar.owned and bar.run == entry["started"]:
                ran = bar.outcome is None
                bar.follow(entry)
                if ran and bar.outcome is not None:
                    self._pull_ended(bar)
                continue
            if entry["outcome"] is not None:
                continue  # it ended before this page saw it run: nothing to show
            if bar is not None:
                bar.remove()  # an earlier pull's outcome: this one replaces it
            new = PullProgress(label, owned=False)
            new.follow(entry)
            self.query_one("#pulls", Vertical).mount(new)
            shown[label] = new
            self.refresh_bindings()  # "Stop pull" now means something
        for w in self.query(PullProgress):
            if not w.owned and w.outcome is None and w.key not in state.pulls:
                w.remove()  # it ended unseen (the list no longer has it)

    def _pull_ended(self, widget: PullProgress) -> None:
        if widget.outcome == "error":  # kept until dismissed or tried again
            self.notify(
                str(widget.error), title=f"pull {widget.ref} failed", severity="error", timeout=10
            )
        else:
            self.set_timer(8, widget.remove)
        self.refresh_bindings()

    def start_pull(self, ref: str, name: str | None = None) -> PullProgress:
        for shown in self.query(PullProgress):
            if shown.ref != ref and shown.key != (name or ref):
                continue
            if shown.outcome is None:  # one transfer, one bar
                self.notify(f"{ref} is already being pulled", timeout=3)
                return shown
            shown.remove()  # an earlier try's outcome: this one replaces it
        widget = PullProgress(ref, name)
        self.query_one("#pulls", Vertical).mount(widget)
        self.pull(widget, ref, name)
        self.refresh_bindings()  # "Stop pull" now means something
        return widget

    @work(group="pulls")
    async def pull(self, widget: PullProgress, ref: str, name: str | None) -> None:
        try:
            async for event in self.appliance.client.pull(ref, name):
                if event.get("status") == "success":
                    widget.success(event)
                else:
                    key = widget.key
                    widget.progress(event)
                    if widget.key != key:  # the daemon calls it otherwise (an alias typed)
                        self._drop_followers(widget)
        except DaemonError as exc:
            if exc.code == "pull_cancelled":
                widget.cancelled()
            elif exc.code == "shutting_down" and widget.outcome is None:
                widget.interrupted()  # the daemon resumes it when it starts again
            else:
                widget.failure(str(exc))
        if widget.outcome is None:
            widget.failure("the daemon ended the stream before the pull finished")
        self.appliance.poll_now()
        self._pull_ended(widget)

    def _drop_followers(self, widget: PullProgress) -> None:
        """The bar shown for `widget`'s pull from the events, before its stream named it."""
        for w in self.query(PullProgress):
            if not w.owned and w.key == widget.key:
                w.remove()

    def action_cancel_pull(self) -> None:
        """Stop the selected model's pull, or the only one running, whoever started it (its
        partial download is kept, and the next pull resumes it)."""
        running = [w for w in self.query(PullProgress) if w.outcome is None]
        chosen = [w for w in running if self.selected in (w.ref, w.pull_name, w.key)] or running
        if len(chosen) != 1:
            self.notify("select the model whose pull to stop", timeout=3)
            return
        widget = chosen[0]
        label = widget.key
        client = self.appliance.client
        self.call_daemon(f"stopping the pull of {label}", lambda: client.cancel_pull(label), None)

    async def action_dismiss_pulls(self) -> None:
        """Take the failed pulls' messages away."""
        await self.query(PullProgress).filter(".-failed").remove()
        self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "dismiss_pulls":  # esc means something only while a failure shows
            return any(w.outcome == "error" for w in self.query(PullProgress))
        if action == "cancel_pull":
            return any(w.outcome is None for w in self.query(PullProgress))
        return True
