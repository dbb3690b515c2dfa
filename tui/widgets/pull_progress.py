"""One pull in progress: what it is doing and a bar.

A pull this page started is fed by its own /admin/pull event stream; any other pull (the
CLI's, the API's, a request's first use of a catalog model, one running before the TUI
opened or resumed after a restart) follows the daemon's `pull_progress` events as the
state keeps them (`follow`). A failed pull stays, its whole message wrapped and its bar
gone, until it is dismissed (a click, or esc on the models page) or the same pull is
tried again.
"""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Label, ProgressBar

from tui.state import fmt_bytes, num


class PullProgress(Vertical):
    DEFAULT_CSS = """
    PullProgress { height: auto; }
    PullProgress Label { width: 1fr; }
    PullProgress ProgressBar { width: 1fr; }
    PullProgress Bar { width: 1fr; }
    PullProgress.-done Label { color: $success; }
    PullProgress.-failed Label { color: $error; }
    """

    def __init__(self, ref: str, name: str | None = None, *, owned: bool = True) -> None:
        super().__init__()
        self.ref = ref
        self.pull_name = name  # the store name given to an hf:// reference
        self.key = name or ref  # the daemon's label for the pull, once its stream says
        self.owned = owned  # fed by its own /admin/pull stream, not by the state
        self.run: float | None = None  # the pull's start time, which tells it from the next
        self.outcome: str | None = (
            None  # None while running, then "success", "error", "cancelled" or "interrupted"
        )
        self.error: str | None = None
        self.seen: list[tuple[int, int | None]] = []  # (downloaded, total) as they came
        self._following: dict[str, Any] | None = None  # the state's entry it shows
        self._applied = -1  # the version of it shown

    def compose(self) -> ComposeResult:
        yield Label(f"pull {self.ref}: starting…", classes="pull-label")
        yield ProgressBar(total=None, show_eta=False)

    @property
    def label(self) -> Label:
        return self.query_one(Label)

    def on_mount(self) -> None:
        if self._following is not None:
            self.follow(self._following)

    def follow(self, entry: dict[str, Any]) -> None:
        """Show the state's entry of a pull this page did not start (`LiveState.pulls`)."""
        self._following = entry
        self.run = entry.get("started")
        if entry.get("version") == self._applied or not self.query(ProgressBar):
            return  # nothing new, or not composed yet (on_mount shows it)
        self._applied = int(entry.get("version") or 0)
        outcome = entry.get("outcome")
        if outcome is None:
            self.progress(entry)
        elif outcome == "success":
            self.success({"model": self.key, "size": entry.get("total")})
        elif outcome == "cancelled":
            self.cancelled()
        elif outcome == "interrupted":
            self.interrupted()
        else:
            self.failure(str(entry.get("message") or "the daemon gave no reason"))

    def progress(self, event: dict[str, Any]) -> None:
        if self.owned and event.get("model"):  # the daemon's label and start of this pull
            self.key = str(event["model"])
            self.run = num(event.get("started"))
        downloaded = num(event.get("downloaded"))
        total = num(event.get("total"))
        status = str(event.get("status") or "…")
        bar = self.query_one(ProgressBar)
        if total:
            bar.update(total=total, progress=downloaded or 0)
        if downloaded is not None:
            self.seen.append((int(downloaded), None if total is None else int(total)))
        size = f"{fmt_bytes(downloaded)} / {fmt_bytes(total)}" if total else ""
        self.label.update(f"pull {self.ref}: {status} {size}".rstrip())

    def success(self, event: dict[str, Any]) -> None:
        self.outcome = "success"
        bar = self.query_one(ProgressBar)
        size = num(event.get("size"))
        if size:
            bar.update(total=size, progress=size)
        elif bar.total:
            bar.update(progress=bar.total)
        sha = str(event.get("sha256") or "")[:12]
        text = f"pulled {event.get('model')}: {fmt_bytes(size)}"
        self.label.update(text + (f", sha256 {sha}…" if sha else ""))
        self.add_class("-done")

    def cancelled(self) -> None:
        self.outcome = "cancelled"
        self.query_one(ProgressBar).display = False
        self.label.update(f"pull {self.ref} cancelled: the partial download is kept (p: resume)")

    def interrupted(self) -> None:
        self.outcome = "interrupted"
        self.query_one(ProgressBar).display = False
        self.label.update(
            f"pull {self.ref} interrupted: the daemon stopped; it resumes the pull when it "
            "starts again"
        )

    def failure(self, message: str) -> None:
        self.outcome, self.error = "error", message
        self.query_one(ProgressBar).display = False  # no bar still "working" on a dead pull
        self.label.update(f"pull {self.ref} failed: {message} (p: retry · esc or click: dismiss)")
        self.add_class("-failed")

    async def on_click(self) -> None:
        if self.outcome == "error":
            screen = self.screen
            await self.remove()
            screen.refresh_bindings()  # esc has no failure left to dismiss
