"""One request being served: its tokens, where it stands in the KV, and its text so far.

Pure bookkeeping, no engine calls: the scheduler moves a sequence from waiting to
prefill (reading its prompt in chunks) to decode (one token a step) to done, and
asks it what to feed next and what a sampled token means.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from appliance.engines.engine import TokenSampler
from appliance.engines.jump_forward import Jump
from appliance.engines.stopping import StopBuffer


@dataclass
class Sequence:
    request_id: str
    prompt: list[int]
    params: dict[str, Any]
    max_tokens: int
    sampler: TokenSampler | None = None
    deterministic: bool = False
    jump: Jump | None = None  # watches for text the grammar forces (a call's opening)
    seq_id: int = -1
    tokens: list[int] = field(default_factory=list)  # prompt + sampled tokens, in order
    n_past: int = 0  # tokens of `tokens` already in the KV
    cached_tokens: int = 0
    checkpoints: list[int] = field(default_factory=list)  # recurrent states saved there
    chat_marks: list[int] = field(default_factory=list)  # its turns' edges (turn_marks)
    generated: int = 0
    state: str = "waiting"  # waiting | prefill | decode | done
    finish_reason: str = "length"
    submitted_at: float = field(default_factory=time.monotonic)
    started_at: float = 0.0
    prompt_done_at: float = 0.0
    stops: StopBuffer = field(init=False)
    logprobs: list[dict[str, Any]] = field(default_factory=list)  # not yet sent
    ids: list[int] = field(default_factory=list)  # token ids not yet sent (params token_ids)
    # Echo: the prompt's tokens are sent back once read, scored when prompt_logprobs is set.
    echo: bool = field(init=False)
    prompt_logprobs: int | None = field(init=False)
    prompt_scores: list[dict[str, Any]] = field(default_factory=list)  # prompt[1:], in order

    def __post_init__(self) -> None:
        self.tokens = list(self.prompt)
        self.stops = StopBuffer(tuple(self.params.get("stop") or ()))
        self.echo = bool(self.params.get("echo"))
        top = self.params.get("prompt_logprobs")
        self.prompt_logprobs = None if top is None else int(top)

    def prompt_frame(self, piece: Callable[[int], bytes]) -> dict[str, Any]:
        """The prompt's tokens as read (`echo`): text pieces, and each token's log probability
        given the ones before it when they were scored (none for the first token)."""
        entries = []
        for j, token in enumerate(self.prompt):
            raw = piece(token)
            entry: dict[str, Any] = {
                "token": raw.decode("utf-8", "replace"),
                "bytes": list(raw),
                "logprob": None,
                "top_logprobs": [],
            }
            if j > 0 and j - 1 < len(self.prompt_scores):
                scored = self.prompt_scores[j - 1]
                entry["logprob"] = scored["logprob"]
                entry["top_logprobs"] = scored["top_logprobs"]
            entries.append(entry)
        return {"type": "prompt", "id": self.request_id, "tokens": entries}

    @property
    def prefilling(self) -> bool:
        return self.state == "prefill"

    @property
    def prompt_left(self) -> int:
        """Prompt tokens to read before the next stop: a checkpoint, else the end."""
        end = self.checkpoints[0] if self.checkpoints else len(self.prompt)
        return max(end - self.n_past, 0)

    def next_chunk(self, budget: int) -> list[int]:
        """Tokens to evaluate in this step: a prompt chunk, or the last sampled token."""
        return self.tokens[self.n_past : self.n_past + max(budget, 0)]

    def evaluated(self, n: int) -> bool:
        """`n` more tokens are in the KV; True when the model's next token is now due."""
        self.n_past += n
        if self.state == "prefill" and self.n_past >= len(self.prompt):
            self.state = "decode"
            self.prompt_done_at = time.monotonic()
        return self.n_past == len(self.tokens)

    def accept(self, token: int, piece: bytes, is_eog: bool) -> str:
        """Take one sampled token; return the text now safe to send (may be empty)."""
        self.generated += 1
        if is_eog and not self.params.get("ignore_eos"):
            self.finish("stop")
            return self.stops.flush()
        text = self.stops.feed(piece)
        if self.stops.stopped:
            self.finish("stop")
            return text
        if self.generated >= self.max_tokens:
            self.finish("length")
        else:
            self.tokens.append(token)
        if self.state == "done":
            text += self.stops.flush()
        return text

    def finish(self, reason: str) -> None:
        self.state = "done"
        self.finish_reason = reason

    def done_frame(self) -> dict[str, Any]:
        """The `done` frame the worker sends when this request ends (not in error)."""
        now = time.monotonic()
        prompt_end = self.prompt_done_at or now
        frame: dict[str, Any] = {
            "type": "done",
            "id": self.request_id,
            "finish_reason": self.finish_reason,
            "prompt_tokens": len(self.prompt),
            "completion_tokens": self.generated,
            "cached_tokens": self.cached_tokens,
            "prompt_s": round(max(prompt_end - (self.started_at or now), 0.0), 6),
            "decode_s": round(max(now - prompt_end, 0.0), 6) if self.prompt_done_at else 0.0,
            "queued_s": round(max((self.started_at or now) - self.submitted_at, 0.0), 6),
        }
        if self.stops.matched is not None:
            frame["stop_sequence"] = self.stops.matched  # which of the request's stop strings
        return frame

    @property
    def kv_tokens(self) -> list[int]:
        """The tokens the KV holds for this sequence (what a cache entry can offer)."""
        return self.tokens[: self.n_past]
