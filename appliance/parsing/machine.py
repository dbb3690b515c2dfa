"""The streaming split of one output into reasoning, content and tool-call regions.

States, in the order an output passes through them:

- ``prefix``: not yet known whether the output opens a reasoning block (an opening
  tag, after whitespace, only counts at the very start; a stray closing tag there
  is dropped).
- ``start``: the prompt opened the reasoning; a repeated opening tag is dropped.
- ``reasoning``: until a closing tag. Tool markers here are reasoning, but text
  from a tool marker on is held (``hold``) until the block closes, because a block
  that never closes and ends in a valid call is read as that call (see ``_replay``).
- ``content``: text, with tool-call openers (and bare JSON calls at its start).
- ``region``: inside one tool-call region, until the region says it ended.

Only text that could still turn out to be a marker, a call or whitespace to trim
is held back; everything else is passed on as soon as it arrives.
"""

from __future__ import annotations

from collections.abc import Callable

from appliance.parsing.regions import BareJsonRegion, Region, Viability
from appliance.parsing.segments import Kind, Seg, ready_calls
from appliance.parsing.syntax import Context, Syntax
from appliance.parsing.text import MarkerSearch, find_first, held_suffix

__all__ = ["TextMachine"]


class TextMachine:
    """Every family but HARMONY: tags for reasoning, markers (or bare JSON) for calls."""

    def __init__(
        self, syntax: Syntax, ctx: Context, *, reasoning_started: bool, content_only: bool = False
    ) -> None:
        self._syn = syntax
        self._ctx = ctx
        self._opens = tuple(o for o, _ in syntax.think)
        self._all_closes = tuple(c for _, c in syntax.think)
        self._closes = self._all_closes
        later = self._opens if syntax.later_reasoning else ()
        self._content_markers = syntax.openers + later + syntax.strays
        self._buf = ""
        self._region: Region | None = None
        self._held: list[str] = []
        self._hold_search: MarkerSearch | None = None
        self._bare_ok = True
        self._after_call = False
        self._out: list[Seg] = []
        self._steps: dict[str, Callable[[bool], bool]] = {
            "prefix": self._prefix,
            "start": self._start,
            "reasoning": self._reasoning,
            "hold": self._hold,
            "content": self._content,
            "region": self._in_region,
            "done": self._done,
        }
        if content_only:
            self._state = "content"
            self._bare_ok = False
        elif reasoning_started:
            self._state = "start"
            self._out.append(Seg(Kind.OPENED))
        else:
            self._state = "prefix"

    def feed(self, piece: str) -> list[Seg]:
        self._buf += piece
        return self._run(eof=False)

    def finish(self) -> list[Seg]:
        return self._run(eof=True)

    def _done(self, eof: bool) -> bool:
        return False

    def _run(self, *, eof: bool) -> list[Seg]:
        while self._steps[self._state](eof):
            pass
        out, self._out = self._out, []
        return out

    def _emit(self, kind: Kind, text: str) -> None:
        if text:
            self._out.append(Seg(kind, text))

    # --- reasoning -------------------------------------------------------------

    def _prefix(self, eof: bool) -> bool:
        s = self._buf.lstrip()
        for open_tag, close_tag in self._syn.think:
            if s.startswith(open_tag):
                self._buf = s[len(open_tag) :]
                self._closes = (close_tag,)
                self._out.append(Seg(Kind.OPENED))
                self._state = "reasoning"
                return True
        for close_tag in self._all_closes:
            if s.startswith(close_tag):
                self._buf = s[len(close_tag) :]
                self._state = "content"
                return True
        if not eof and any(t.startswith(s) for t in self._opens + self._all_closes):
            return False
        self._state = "content"
        return True

    def _start(self, eof: bool) -> bool:
        s = self._buf.lstrip()
        for open_tag in self._opens:
            if s.startswith(open_tag):
                self._buf = s[len(open_tag) :]
                self._state = "reasoning"
                return True
        if not eof and any(t.startswith(s) for t in self._opens):
            return False
        self._state = "reasoning"
        return True

    def _reasoning(self, eof: bool) -> bool:
        markers = self._closes + self._syn.openers
        hit = find_first(self._buf, markers)
        if hit is None:
            keep = 0 if eof else held_suffix(self._buf, markers)
            self._emit(Kind.REASONING, self._buf[: len(self._buf) - keep])
            self._buf = self._buf[len(self._buf) - keep :]
            if eof:
                self._out.append(Seg(Kind.UNCLOSED))
                self._state = "done"
            return False
        pos, marker = hit
        self._emit(Kind.REASONING, self._buf[:pos])
        if marker in self._closes:
            self._buf = self._buf[pos + len(marker) :]
            self._state = "content"
        else:
            self._buf = self._buf[pos:]
            self._hold_search = MarkerSearch(self._closes)
            self._state = "hold"
        return True

    def _hold(self, eof: bool) -> bool:
        assert self._hold_search is not None
        if self._buf:
            hit = self._hold_search.feed(self._buf)
            if hit is not None:
                end, marker = hit
                text = "".join(self._held) + self._buf[:end]
                self._emit(Kind.REASONING, text[: len(text) - len(marker)])
                self._held, self._buf = [], self._buf[end:]
                self._state = "content"
                return True
            self._held.append(self._buf)
            self._buf = ""
        if eof:
            self._replay("".join(self._held))
            self._held = []
            self._state = "done"
        return False

    def _replay(self, text: str) -> None:
        """A reasoning block never closed, and from a tool marker on it was held.

        If that tail reads as one or more valid calls (and nothing malformed), the
        model meant them: they become calls and the block ended at the marker (as
        llama.cpp does for Qwen3.5, which often skips ``</think>`` before calling).
        Otherwise the tail is reasoning like the rest.
        """
        sub = TextMachine(self._syn, self._ctx, reasoning_started=False, content_only=True)
        segs = sub.feed(text) + sub.finish()
        kinds = {s.kind for s in segs}
        if Kind.CALLS in kinds and Kind.MALFORMED not in kinds:
            self._out.append(Seg(Kind.UNCLOSED))
            self._out.append(Seg(Kind.RECOVERED))
            self._out.extend(segs)
        else:
            self._emit(Kind.REASONING, text)
            self._out.append(Seg(Kind.UNCLOSED))

    # --- content ---------------------------------------------------------------

    def _content(self, eof: bool) -> bool:
        if self._after_call:
            return self._drop_after_call(eof)
        bare = self._syn.bare
        if self._bare_ok and bare is not None:
            s = self._buf.lstrip()
            if not s and not eof:
                return False
            verdict = bare.viability(s)
            if verdict is Viability.CALL:
                self._emit(Kind.CONTENT, self._buf[: len(self._buf) - len(s)])
                self._buf = s
                self._region = BareJsonRegion(self._ctx.known_tools)
                self._state = "region"
                return True
            if verdict is Viability.MAYBE and not eof:
                return False
            self._bare_ok = False
        markers = self._content_markers
        hit = find_first(self._buf, markers)
        if hit is not None:
            pos, marker = hit
            if marker in self._syn.openers:
                self._content_text(self._buf[:pos])
                self._buf = self._buf[pos + len(marker) :]
                self._region = self._syn.region(marker, self._ctx)
                self._state = "region"
                return True
            rest = self._buf[pos:]
            if not eof and any(len(m) > len(rest) and m.startswith(rest) for m in markers):
                # A stray that may yet be the start of a longer marker: wait for more.
                self._content_text(self._buf[:pos])
                self._buf = rest
                return False
            self._content_text(self._buf[:pos])
            self._buf = rest[len(marker) :]
            if marker in self._syn.strays:
                return True
            self._closes = tuple(c for o, c in self._syn.think if o == marker)
            self._out.append(Seg(Kind.OPENED))
            self._state = "reasoning"
            return True
        keep = 0 if eof else held_suffix(self._buf, markers)
        self._content_text(self._buf[: len(self._buf) - keep])
        self._buf = self._buf[len(self._buf) - keep :]
        return False

    def _content_text(self, text: str) -> None:
        if text.strip():
            self._bare_ok = False
        self._emit(Kind.CONTENT, text)

    def _drop_after_call(self, eof: bool) -> bool:
        s = self._buf.lstrip()
        for leftover in self._syn.after_call:
            if s.startswith(leftover):
                self._buf = s[len(leftover) :]
                return True
        if not eof and any(t.startswith(s) for t in self._syn.after_call):
            return False
        self._after_call = False
        return True

    def _in_region(self, eof: bool) -> bool:
        region = self._region
        assert region is not None
        rest: str | None = None
        if self._buf:
            rest, self._buf = region.feed(self._buf), ""
        if rest is None:
            if not eof:
                return False
            region.finish()
        outcome = region.outcome()
        ready = ready_calls(outcome.calls) if outcome.calls else None
        if ready:
            self._out.append(Seg(Kind.CALLS, calls=ready))
            self._after_call = bool(self._syn.after_call)
            self._bare_ok = True
        else:
            # Not a call (bare JSON that is just JSON) is content; anything else that
            # failed, including arguments JSON cannot hold, is a malformed call.
            if outcome.flagged or outcome.calls:
                self._out.append(Seg(Kind.MALFORMED, region.raw))
            else:
                self._emit(Kind.CONTENT, region.raw)
            if region.raw.strip():
                self._bare_ok = False
        self._region = None
        self._buf = rest or ""
        self._state = "content"
        return True
