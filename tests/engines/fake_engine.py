"""A pure-Python engine with the `BatchEngine` interface, for scheduler tests.

Its KV memory is a dict of token lists with a cell capacity; a step checks that
every entry continues its sequence at the right position. Its "model" answers
each sequence with the tokens after the last one it read: (last + 1) % n_vocab,
so an answer is a function of the prompt alone, whichever batch it was in.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from typing import Any

from appliance.engines.engine import BatchEntry, EngineRequestError, KVFull
from appliance.engines.jump_forward import ForcedText
from appliance.engines.turn_marks import TurnMarkers

EOS = 0


class FakeSampler:
    """Its "grammar" forces `params["forced"]` (ForcedText's fields) and refuses the
    tokens in `params["refuse"]` when forced."""

    def __init__(self, engine: FakeEngine, params: dict[str, Any]) -> None:
        self.engine = engine
        self.params = params
        forced = params.get("forced")
        self.forced = ForcedText(**forced) if forced else None
        self.accepted: list[int] = []  # taken unsampled

    def accept(self, token: int) -> bool:
        if token in (self.params.get("refuse") or ()):
            return False
        self.accepted.append(token)
        return True

    def sample(self, output_index: int) -> int:
        last = self.engine.last_outputs[output_index]
        if self.params.get("fail_sampling"):
            raise RuntimeError("grammar rejected every token")
        return (last + 1) % self.engine.n_vocab


class FakeEngine:
    n_ctx = 64
    n_batch = 16
    can_truncate = True
    eos_token_id = EOS
    bos_token_id = 1

    def __init__(
        self,
        n_seq_max: int = 6,
        capacity: int = 256,
        n_vocab: int = 50,
        prefix_copy: bool = True,
        gap_fill_tokens: int = 0,
        step_s: float = 0.0,
    ) -> None:
        self.step_s = step_s  # each step takes this long (a request stays in flight)
        self.n_seq_max = n_seq_max
        self.prefix_copy = prefix_copy  # False: split KV, a sequence cannot take another's prefix
        self.gap_fill_tokens = gap_fill_tokens
        self.capacity = capacity
        self.n_vocab = n_vocab
        self.kv: dict[int, list[int]] = {}
        self.last_outputs: list[int] = []
        self.steps: list[list[BatchEntry]] = []
        self.copies: list[tuple[int, int, int]] = []
        self.samplers: list[FakeSampler] = []

    def used(self) -> int:
        return sum(len(t) for t in self.kv.values())

    tool_family = "hermes"

    def token_logprobs(self, output_index: int, token: int, top_n: int) -> dict[str, Any]:
        # Says which output it came from (the token evaluated there) and which token.
        logprob = -(self.last_outputs[output_index] + token / 1000)
        return {"token": str(token), "logprob": logprob, "bytes": [], "top_logprobs": []}

    def render_chat(
        self,
        messages: Sequence[dict[str, Any]],
        tools: list[dict[str, Any]] | None = None,
        parallel: bool = True,
        variables: dict[str, Any] | None = None,
    ) -> tuple[str, bool]:
        return " ".join(str(m.get("content", "")) for m in messages), False

    def turn_markers(self, variables: Mapping[str, Any] | None = None) -> TurnMarkers:
        return TurnMarkers()

    def prompt_tokens(self, text: str, *, templated: bool) -> list[int]:
        return [int(t) for t in text.split()]

    def infill_prompt(self, request: dict[str, Any]) -> list[int]:
        raise EngineRequestError("no FIM tokens", code="infill_unsupported")

    def check_context(self, n_prompt: int, param: str) -> None:
        if n_prompt >= self.n_ctx:
            raise EngineRequestError("too long", "context_length_exceeded", 400, param)

    def piece(self, token: int) -> bytes:
        return f"<{token}>".encode()

    def forced_tokens(self, text: str) -> list[int]:
        return [int(t) for t in re.findall(r"<(\d+)>", text)]

    def is_eog(self, token: int) -> bool:
        return token == EOS

    def new_sampler(self, params: dict[str, Any], prompt: Sequence[int] = ()) -> FakeSampler:
        if params.get("bad_grammar"):
            raise EngineRequestError("bad schema", "invalid_json_schema", 400, "response_format")
        sampler = FakeSampler(self, params)
        self.samplers.append(sampler)
        return sampler

    def decode(self, entries: Sequence[BatchEntry]) -> list[int]:
        if self.step_s:
            time.sleep(self.step_s)
        n = sum(len(e.tokens) for e in entries)
        assert n <= self.n_batch, f"step of {n} tokens over n_batch"
        if self.used() + n > self.capacity:
            raise KVFull("full")
        outputs: list[int] = []
        self.last_outputs = []
        for entry in entries:
            assert entry.tokens, f"seq {entry.seq_id}: an entry with no tokens (no output)"
            held = self.kv.setdefault(entry.seq_id, [])
            assert entry.pos == len(held), f"seq {entry.seq_id}: pos {entry.pos} != {len(held)}"
            held.extend(entry.tokens)
            if entry.all_logits:
                for token in entry.tokens:
                    outputs.append(len(self.last_outputs))
                    self.last_outputs.append(token)
            elif entry.logits:
                outputs.append(len(self.last_outputs))
                self.last_outputs.append(held[-1])
        self.steps.append(list(entries))
        return outputs

    def seq_clear(self, seq_id: int) -> None:
        self.kv.pop(seq_id, None)

    def seq_truncate(self, seq_id: int, n_keep: int) -> None:
        self.kv[seq_id] = self.kv.get(seq_id, [])[:n_keep]

    def seq_copy(self, src: int, dst: int, n_tokens: int) -> None:
        assert self.prefix_copy, "a prefix copy between split KV streams"
        assert not self.kv.get(dst), "copy into a sequence that is not empty"
        self.kv[dst] = list(self.kv[src][:n_tokens])
        self.copies.append((src, dst, n_tokens))

    def seq_save(self, seq_id: int) -> bytes:
        return " ".join(map(str, self.kv.get(seq_id, []))).encode()

    def seq_restore(self, seq_id: int, data: bytes) -> bool:
        self.kv[seq_id] = [int(t) for t in data.decode().split()]
        return True

    def info(self) -> dict[str, Any]:
        return {}
