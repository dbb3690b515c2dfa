"""Writing a forced call's opening without sampling it (SGLang's "jump-forward").

A grammar that forces a tool call leaves the model no choice over the call's opening
(`<tool_call>\\n{"name": "final_result", "arguments":`), but the model still picks
its tokens one at a time, and the name's text can be spelled by several token splits
("final" or "fin" + "al"). Forced, a small model can pick an odd split, and the odd
tokens then steer its arguments: SmolLM2-135M answered `{"city": "final_result", ...}`
after a prompt-cache hit had tipped it to a split it answered London with cold. The
opening's tokens are written as the tokenizer splits the text (the model's own
spelling), in one step rather than one step a token.

Pure: the scheduler feeds a sequence's output to its `Jump` and writes what it says;
the sampler checks each written token against the grammar before taking it.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

__all__ = ["ForcedText", "Jump"]


@dataclass(frozen=True)
class ForcedText:
    """`text` is what the grammar allows in one way only, starting where it takes hold:
    at the output's start (`start` None), or where group 1 of the regex `start` begins
    once it matches the whole output (a lazy grammar's trigger). `marker` is the literal
    that opens group 1: the regex is tried only when it appears. `required`: the output
    may not end before it (a call required after the reasoning block the prompt opened),
    so an end of the answer inside the block is replaced by it."""

    text: str
    start: str | None = None
    marker: str = ""
    required: bool = False


class Jump:
    """One sequence's watch for its forced text: says, once, what to write unsampled."""

    def __init__(self, forced: ForcedText) -> None:
        self.forced = forced
        self.done = False
        self._output = ""
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def at_start(self) -> str:
        """The text to write before the first token is sampled ("" for none)."""
        if self.done or self.forced.start is not None:
            return ""
        self.done = True
        return self.forced.text

    def at_end(self) -> str:
        """The text to write instead of the end the model sampled ("" to let it end): all
        of a required forced text not yet begun (llama-server's grammar, which holds the
        reasoning too, cannot end there either)."""
        if self.done or not self.forced.required:
            return ""
        self.done = True
        return self.forced.text

    def after(self, piece: bytes) -> str:
        """Take a sampled token's text; return what to write after it ("" for nothing)."""
        if self.done:
            return ""
        new = self._decoder.decode(piece)
        self._output += new
        forced = self.forced
        if forced.start is None:
            self.done = True  # the output began with a sampled token: too late
            return ""
        if forced.marker not in self._output[-(len(new) + len(forced.marker)) :]:
            return ""
        match = re.fullmatch(forced.start, self._output)
        if match is None:
            return ""  # not where the grammar takes hold (e.g. inside the reasoning)
        self.done = True
        tail = self._output[match.start(1) :]
        if len(tail) < len(forced.text) and forced.text.startswith(tail):
            return forced.text[len(tail) :]
        return ""
