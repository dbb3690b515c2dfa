"""A one-line gauge: a label, a bar and a value ("n/a" when the fraction is unknown)."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget


class Meter(Widget):
    DEFAULT_CSS = """
    Meter { height: 1; width: 1fr; }
    """

    label: reactive[str] = reactive("")
    fraction: reactive[float | None] = reactive(None)
    value: reactive[str] = reactive("n/a")

    def __init__(self, label: str = "", *, label_width: int = 5, id: str | None = None) -> None:
        super().__init__(id=id)
        self.label = label
        self.label_width = label_width

    def set(self, fraction: float | None, value: str) -> None:
        """Set the fill (0..1, None when unknown) and the text beside it."""
        if fraction is not None:
            fraction = max(0.0, min(1.0, fraction))
        self.fraction = fraction
        self.value = value

    def render(self) -> Text:
        width = self.size.width
        label = self.label[: self.label_width].ljust(self.label_width)
        bar_width = max(0, width - len(label) - len(self.value) - 1)
        text = Text(label, style="bold")
        if self.fraction is None:
            text.append("·" * bar_width, style="dim")
        else:
            filled = round(self.fraction * bar_width)
            color = "green" if self.fraction < 0.7 else "yellow" if self.fraction < 0.9 else "red"
            text.append("█" * filled, style=color)
            text.append("░" * (bar_width - filled), style="dim")
        text.append(" " + self.value)
        return text
