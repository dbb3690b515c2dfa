"""Marker search over text that arrives in pieces, and whitespace-trimmed streams."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["MarkerSearch", "Trimmed", "find_first", "held_suffix"]


def held_suffix(text: str, markers: Sequence[str]) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of a marker.

    That much must be held back: the next piece may complete the marker.
    """
    best = 0
    for marker in markers:
        for n in range(min(len(marker) - 1, len(text)), best, -1):
            if text.endswith(marker[:n]):
                best = n
                break
    return best


def find_first(text: str, markers: Sequence[str], start: int = 0) -> tuple[int, str] | None:
    """Earliest ``(position, marker)`` of any marker in ``text[start:]``; longest on ties."""
    found: tuple[int, str] | None = None
    for marker in markers:
        pos = text.find(marker, start)
        if pos < 0:
            continue
        if found is None or pos < found[0] or (pos == found[0] and len(marker) > len(found[1])):
            found = (pos, marker)
    return found


class MarkerSearch:
    """Finds the first of some markers in a stream, looking at each character once or so.

    Only the last ``len(longest marker) - 1`` characters are kept between pieces, so a
    long region costs linear time however finely it is split.
    """

    def __init__(self, markers: Sequence[str]) -> None:
        self._markers = tuple(markers)
        self._keep = max(len(m) for m in markers) - 1
        self._tail = ""

    def feed(self, piece: str) -> tuple[int, str] | None:
        """``(end, marker)``: ``piece[:end]`` completes the stream up to and including the
        first marker; None when no marker has appeared yet."""
        window = self._tail + piece
        hit = find_first(window, self._markers)
        if hit is None:
            self._tail = window[-self._keep :] if self._keep else ""
            return None
        pos, marker = hit
        return pos + len(marker) - len(self._tail), marker


class Trimmed:
    """A text stream with its leading and trailing whitespace removed, as it arrives.

    Leading whitespace is dropped; a whitespace run is held until non-whitespace
    follows it, so a run at the very end never comes out. The pieces returned add up
    to ``whole.strip()``.
    """

    def __init__(self) -> None:
        self.started = False
        self._pending = ""

    def push(self, text: str) -> str:
        body = text.rstrip()
        if not body:
            if self.started:
                self._pending += text
            return ""
        tail = text[len(body) :]
        if self.started:
            out = self._pending + body
        else:
            out = body.lstrip()
            self.started = True
        self._pending = tail
        return out
