"""Modal dialogs: confirm a deletion, inspect a model's metadata, ask what to pull."""

from __future__ import annotations

from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, DataTable, Input, Label, Static

from tui.state import NA, fmt_bytes


class ConfirmScreen(ModalScreen[bool]):
    """Yes or no; y/enter confirms, n/escape declines."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]

    def __init__(self, question: str, yes: str = "Delete") -> None:
        super().__init__(classes="dialog-screen")
        self.question = question
        self.yes = yes

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog") as box:
            box.border_title = "confirm"
            yield Static(self.question, classes="question")
            with Horizontal(classes="buttons"):
                yield Button(f"{self.yes} (y)", variant="error", id="yes")
                yield Button("Cancel (n)", id="no")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)


def _yes_no(value: Any) -> str:
    return NA if value is None else ("yes" if value else "no")


def inspect_rows(model: dict[str, Any], info: dict[str, Any]) -> list[tuple[str, str]]:
    est = info.get("estimate") or {}
    path = str(info.get("path") or "")
    params = info.get("parameters")
    raw = info.get("provider")
    provider: dict[str, Any] = raw if isinstance(raw, dict) else {}
    return [
        ("model", str(model.get("name", NA))),
        ("file", path.rsplit("/", 1)[-1] or NA),
        ("format", str(info.get("format") or "gguf")),
        ("runs on", str(provider.get("name") or NA)),
        ("architecture", str(info.get("architecture") or NA)),
        ("name in file", str(info.get("name") or NA)),
        ("parameters", NA if params is None else f"{params:,}"),
        ("quantization", str(info.get("quantization") or NA)),
        ("context length", str(info.get("context_length") or NA)),
        ("file size", fmt_bytes(info.get("file_size"))),
        ("embedding", _yes_no(info.get("embedding"))),
        ("chat template", _yes_no(info.get("has_chat_template"))),
        ("slots", str(est.get("slots") or NA)),
        ("estimate at ctx", str(est.get("context") or NA)),
        ("  weights", fmt_bytes(est.get("weights_bytes"))),
        ("  KV cache", fmt_bytes(est.get("kv_cache_bytes"))),
        ("  compute", fmt_bytes(est.get("compute_bytes"))),
        ("  total", fmt_bytes(est.get("total_bytes"))),
        ("tier / state", f"{model.get('tier', NA)} / {model.get('state', NA)}"),
        ("pin", str(model.get("pin") or "none")),
        ("aliases", ", ".join(model.get("aliases") or []) or "none"),
    ]


class InspectScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q,i", "dismiss", "Close")]

    def __init__(self, model: dict[str, Any], info: dict[str, Any]) -> None:
        super().__init__(classes="dialog-screen")
        self.model = model
        self.info = info

    def compose(self) -> ComposeResult:
        table: DataTable[str] = DataTable(show_header=False, cursor_type="row", id="inspect")
        table.add_columns("key", "value")
        for key, value in inspect_rows(self.model, self.info):
            table.add_row(key, value)
        with Vertical(classes="dialog inspect") as box:
            box.border_title = f"inspect {self.model.get('name')}"
            box.border_subtitle = "esc: close"
            yield table

    def action_dismiss(self, result: None = None) -> None:  # type: ignore[override]
        self.dismiss(None)


class PullScreen(ModalScreen[tuple[str, str | None] | None]):
    """Ask for a catalog name or an hf://org/repo/file.gguf reference, and an optional name."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, ref: str = "") -> None:
        super().__init__(classes="dialog-screen")
        self.ref = ref

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog") as box:
            box.border_title = "pull a model"
            yield Label("catalog name or hf://org/repo/file.gguf[@revision]")
            yield Input(self.ref, placeholder="model", id="pull-ref")
            yield Label("store it as (optional, for hf:// references)")
            yield Input(placeholder="name", id="pull-name")
            with Horizontal(classes="buttons"):
                yield Button("Pull", variant="primary", id="pull")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        for widget in self.query(Input):
            widget.cursor_blink = False
        self.query_one("#pull-ref", Input).focus()

    def _submit(self) -> None:
        ref = self.query_one("#pull-ref", Input).value.strip()
        name = self.query_one("#pull-name", Input).value.strip() or None
        if not ref:
            self.notify("name a model to pull", severity="warning")
            return
        self.dismiss((ref, name))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "pull":
            self._submit()
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)
