"""A chat transcript drawn line by line: appending streamed text costs no relayout.

Each turn is a block of text (the user's message, the reasoning, the answer) wrapped
to the widget's width. A streaming reply only rewraps its own last paragraph and
redraws the lines that changed, like Textual's Log, so a token costs microseconds
rather than a reflow of the whole screen.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

ROLES = ("user", "reasoning", "reply", "error", "note")


@dataclass(eq=False)
class Block:
    role: str
    text: str = ""
    gap: bool = False  # a blank line after it
    # Wrapped lines of each paragraph but the last (which still grows), for one width.
    done: list[list[Strip]] = field(default_factory=list)
    width: int = 0


class TranscriptView(ScrollView, can_focus=True):
    COMPONENT_CLASSES = {  # noqa: RUF012 (Textual's own class variable)
        "transcript--user",
        "transcript--reasoning",
        "transcript--reply",
        "transcript--error",
        "transcript--note",
    }
    DEFAULT_CSS = """
    TranscriptView { height: 1fr; margin: 0 1; }
    TranscriptView > .transcript--user { color: $text-accent; text-style: bold; }
    TranscriptView > .transcript--reasoning { color: $text-muted; text-style: italic; }
    TranscriptView > .transcript--reply { color: $text; }
    TranscriptView > .transcript--error { color: $text-error; }
    TranscriptView > .transcript--note { color: $text-muted; }
    """

    def __init__(self, id: str | None = None) -> None:
        super().__init__(id=id)
        self.blocks: list[Block] = []
        self._lines: list[Strip] = []
        self._starts: list[int] = []  # first line of each block in _lines
        self._width = 0

    # -- content ----------------------------------------------------------------------------

    def add(self, role: str, text: str = "", gap: bool = False) -> Block:
        """A new block at the end: the handle to change its text by."""
        block = Block(role, text, gap)
        self.blocks.append(block)
        self._relayout(len(self.blocks) - 1)
        return block

    def set_text(self, block: Block, text: str) -> None:
        """Change a block's text (a block trimmed away meanwhile is left alone)."""
        if text == block.text:
            return
        if not text.startswith(block.text):
            block.done = []  # not an append: wrap it all again
        block.text = text
        for index in range(len(self.blocks) - 1, -1, -1):  # the last ones change most
            if self.blocks[index] is block:
                self._relayout(index)
                return

    def replace(self, block: Block, role: str, text: str) -> None:
        """Turn a block into another kind in place (a reply's "…" into the error it met)."""
        block.role, block.text, block.done = role, text, []
        for index in range(len(self.blocks) - 1, -1, -1):
            if self.blocks[index] is block:
                self._relayout(index)
                return

    def clear(self) -> None:
        self.blocks.clear()
        self._lines.clear()
        self._starts.clear()
        self.virtual_size = Size(0, 0)
        self.scroll_to(0, 0, animate=False)
        self.refresh()

    def trim(self, keep: int) -> None:
        """Keep only the last `keep` blocks."""
        if len(self.blocks) > keep:
            del self.blocks[: len(self.blocks) - keep]
            self._relayout(0)

    @property
    def plain_lines(self) -> list[str]:
        return [strip.text for strip in self._lines]

    # -- wrapping ---------------------------------------------------------------------------

    def _style(self, role: str) -> Style:
        return self.get_component_rich_style(f"transcript--{role}", partial=True)

    def _wrap(self, text: str, role: str, width: int) -> list[Strip]:
        console = self.app.console
        lines = Text(text, style=self._style(role)).wrap(console, width, overflow="fold")
        return [Strip(list(line.render(console)), line.cell_len) for line in lines] or [
            Strip([Segment("")], 0)
        ]

    def _block_lines(self, block: Block, width: int) -> list[Strip]:
        if block.width != width:
            block.done, block.width = [], width
        paragraphs = block.text.split("\n") if block.text else []
        while len(block.done) < len(paragraphs) - 1:  # paragraphs finished since last time
            block.done.append(self._wrap(paragraphs[len(block.done)], block.role, width))
        del block.done[max(0, len(paragraphs) - 1) :]
        lines = [strip for done in block.done for strip in done]
        if paragraphs:
            lines += self._wrap(paragraphs[-1], block.role, width)
        if block.gap:
            lines.append(Strip([Segment("")], 0))
        return lines

    def _relayout(self, first: int) -> None:
        """Rewrap blocks from `first` on; redraw only the lines that changed."""
        width = self.scrollable_content_region.width
        if width <= 0:
            return  # not laid out yet: on_resize wraps everything
        if width != self._width:
            self._width, first = width, 0
        at_end = self.is_vertical_scroll_end
        start = self._starts[first] if first < len(self._starts) else len(self._lines)
        del self._lines[start:]
        del self._starts[first:]
        for block in self.blocks[first:]:
            self._starts.append(len(self._lines))
            self._lines.extend(self._block_lines(block, width))
        self.virtual_size = Size(width, len(self._lines))
        self.refresh_lines(start, len(self._lines) - start + 1)
        if at_end:
            self.scroll_end(animate=False, immediate=True, x_axis=False)

    def on_resize(self) -> None:
        self._width = 0
        self._relayout(0)

    # -- drawing ----------------------------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        index = scroll_y + y
        width = self.scrollable_content_region.width
        rich_style = self.rich_style
        if index >= len(self._lines):
            return Strip.blank(width, rich_style)
        strip = self._lines[index].apply_style(rich_style)
        return strip.crop_extend(scroll_x, scroll_x + width, rich_style)
