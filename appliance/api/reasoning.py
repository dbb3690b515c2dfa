"""Split ``<think>...</think>`` reasoning from the answer, whole or while streaming.

Reasoning models open their output with a ``<think>`` block (possibly after some
whitespace), or the chat template already opened it in the prompt (``started``),
in which case output begins inside the reasoning and only ``</think>`` closes it.
A ``<think>`` anywhere else is plain content.
"""

from __future__ import annotations

from enum import Enum

__all__ = ["CLOSE_TAG", "OPEN_TAG", "ReasoningSplitter", "split_reasoning"]

OPEN_TAG = "<think>"
CLOSE_TAG = "</think>"
_CONTENT_STRIP = "\r\n"


def split_reasoning(text: str, *, started: bool = False) -> tuple[str | None, str]:
    """``(reasoning, content)`` of a whole output; reasoning is None without a think block.

    An unclosed block makes the whole rest reasoning and the content ``""``. Leading
    newlines of the content after ``</think>`` are dropped.
    """
    if started:
        rest = text
    else:
        stripped = text.lstrip()
        if not stripped.startswith(OPEN_TAG):
            return None, text
        rest = stripped[len(OPEN_TAG) :]
    end = rest.find(CLOSE_TAG)
    if end < 0:
        return rest, ""
    return rest[:end], rest[end + len(CLOSE_TAG) :].lstrip(_CONTENT_STRIP)


class _State(Enum):
    PREFIX = "prefix"  # not yet known whether the output opens with <think>
    REASONING = "reasoning"
    CONTENT_START = "content_start"  # just after </think>: leading newlines are dropped
    CONTENT = "content"


def _held_suffix(text: str, tag: str) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of ``tag``."""
    for n in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:n]):
            return n
    return 0


class ReasoningSplitter:
    """Streaming counterpart of :func:`split_reasoning`.

    Feed output deltas in order; each call returns ``(reasoning_delta, content_delta)``.
    A tag split across deltas is never leaked: only the shortest text that could still
    become a tag is held back, and :meth:`flush` releases it at the end. For any split
    of a text into deltas, the concatenated outputs equal ``split_reasoning(text)``.
    """

    def __init__(self, started: bool = False) -> None:
        self._state = _State.REASONING if started else _State.PREFIX
        self._buf = ""
        self._has_reasoning = started

    @property
    def has_reasoning(self) -> bool:
        """True once the output is known to carry a reasoning block."""
        return self._has_reasoning

    @property
    def in_reasoning(self) -> bool:
        """True while the output is inside the reasoning block."""
        return self._state is _State.REASONING

    def feed(self, delta: str) -> tuple[str, str]:
        """Consume one delta; return the reasoning and content that are now certain."""
        reasoning: list[str] = []
        content: list[str] = []
        text = self._buf + delta
        self._buf = ""
        while text:
            if self._state is _State.PREFIX:
                stripped = text.lstrip()
                if stripped.startswith(OPEN_TAG):
                    self._state = _State.REASONING
                    self._has_reasoning = True
                    text = stripped[len(OPEN_TAG) :]
                elif OPEN_TAG.startswith(stripped):
                    self._buf = text  # whitespace and/or a partial "<think>"
                    text = ""
                else:
                    self._state = _State.CONTENT
            elif self._state is _State.REASONING:
                end = text.find(CLOSE_TAG)
                if end >= 0:
                    reasoning.append(text[:end])
                    text = text[end + len(CLOSE_TAG) :]
                    self._state = _State.CONTENT_START
                else:
                    held = _held_suffix(text, CLOSE_TAG)
                    reasoning.append(text[: len(text) - held])
                    self._buf = text[len(text) - held :]
                    text = ""
            elif self._state is _State.CONTENT_START:
                text = text.lstrip(_CONTENT_STRIP)
                if text:
                    self._state = _State.CONTENT
            else:
                content.append(text)
                text = ""
        return "".join(reasoning), "".join(content)

    def flush(self) -> tuple[str, str]:
        """End of output: release whatever was held back."""
        held, self._buf = self._buf, ""
        if self._state is _State.REASONING:
            return held, ""
        if self._state is _State.PREFIX:
            self._state = _State.CONTENT
            return "", held
        return "", held
