"""Incremental text out of generated token bytes: UTF-8 reassembly and stop strings.

Pure code: the worker feeds it the bytes of each token and sends on what it
returns. The bytes of a character split over tokens wait for the rest of it, and
text that might be the start of a stop string is held back until it is clear
either way, so a stop string never leaks into the output.
"""

from __future__ import annotations

import codecs


class StopBuffer:
    def __init__(self, stops: tuple[str, ...] | list[str] = ()) -> None:
        self._stops = tuple(s for s in stops if s)
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending = ""
        self.stopped = False
        self.matched: str | None = None  # the stop string that ended the text

    def _holdback(self, text: str) -> int:
        """Length of the longest suffix of `text` that is a proper prefix of a stop string."""
        best = 0
        for stop in self._stops:
            for n in range(min(len(stop) - 1, len(text)), best, -1):
                if text.endswith(stop[:n]):
                    best = n
                    break
        return best

    def feed(self, piece: bytes) -> str:
        """Add one token's bytes; return the text that is now safe to send."""
        if self.stopped:
            return ""
        self._pending += self._decoder.decode(piece)
        if not self._stops:
            out, self._pending = self._pending, ""
            return out
        cut = -1
        for stop in self._stops:
            i = self._pending.find(stop)
            if i != -1 and (cut == -1 or i < cut):
                cut, self.matched = i, stop
        if cut != -1:
            out = self._pending[:cut]
            self._pending = ""
            self.stopped = True
            return out
        keep = self._holdback(self._pending)
        out = self._pending[: len(self._pending) - keep]
        self._pending = self._pending[len(out) :]
        return out

    def flush(self) -> str:
        """The rest, once generation ended for another reason than a stop string.

        The bytes of a character cut off at the end (max_tokens reached in the middle of
        an emoji's tokens) are dropped, not sent as U+FFFD: the rest of the character will
        never come, and llama-server never sends such a tail either.
        """
        if self.stopped:
            return ""
        self._decoder.reset()
        out, self._pending = self._pending, ""
        return out
