"""Serving an ONNX LLM: requests admitted in arrival order to the slots, and every active
request's generator advanced by one token in turn.

The worker drives it like the llama.cpp `Scheduler` (`submit` from the reader thread,
`run` on the main thread, `stats` for the heartbeat) and it emits the same frames
(`started`, `token`, `done`, `error`). A cancelled request leaves before its next
token; a request that fails fails alone. A prompt is read in chunks of about half a
second, one per turn, so a long prompt does not stall the other streams.
"""

from __future__ import annotations

import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

from appliance.engines.engine import (
    EngineRequestError,
    check_token_ids,
    error_frame,
    render_chat_frame,
)
from appliance.engines.genai import GenaiEngine
from appliance.engines.protocol import Frame
from appliance.engines.request_inbox import RequestInbox
from appliance.engines.sequence import Sequence

Emit = Callable[[Frame], None]
CHUNK_S = 0.5
MIN_CHUNK, MAX_CHUNK = 16, 512


class _Active:
    def __init__(self, seq: Sequence, generator: Any, stream: Any) -> None:
        self.seq = seq
        self.generator = generator
        self.stream = stream


class Runner(RequestInbox):
    def __init__(self, engine: GenaiEngine, emit: Emit, *, n_slots: int) -> None:
        super().__init__()
        self.engine = engine
        self.emit = emit
        self.n_slots = max(1, n_slots)
        self.active: dict[str, _Active] = {}
        self.steps = 0
        self.step_tokens = 0
        self.step_sequences = 0
        self.prompt_tokens_total = 0
        self.prefill_tps: float | None = None  # measured prefill tokens/s

    def stats(self) -> dict[str, Any]:
        return {
            "slots": self.n_slots,
            "busy": len(self.active),
            "waiting": len(self.waiting) + self.inbox.qsize(),
            "cache_entries": 0,
            "cache_tokens": 0,
            "steps": self.steps,
            "step_tokens": self.step_tokens,
            "step_sequences": self.step_sequences,
            "prompt_tokens": self.prompt_tokens_total,
            "cached_tokens": 0,
        }

    def run(self) -> None:
        while not self.stopping:
            self._drain(block=not (self.active or self.waiting))
            if self.stopping:
                break
            self._admit()
            self._step()
        for item in list(self.active.values()):
            self._end(item, "cancelled")
        while self.waiting:
            seq = self.waiting.popleft()
            seq.finish("cancelled")
            self.emit(seq.done_frame())

    def _intake(self, request_id: str, frame: Frame) -> Sequence | None:
        engine = self.engine
        params = dict(frame.get("params") or {})
        try:
            reasoning_started = False
            if frame.get("mode") == "infill":
                raise EngineRequestError(
                    "Infill (fill-in-the-middle) is served for GGUF models; this one is ONNX.",
                    code="infill_unsupported",
                    status=501,
                    param="model",
                )
            if frame.get("mode") == "chat":
                text, reasoning_started = render_chat_frame(engine, frame, params)
                param = "messages"
            elif frame.get("prompt_ids"):
                text = ""
                param = "prompt"
            else:
                text = str(frame.get("prompt", ""))
                param = "prompt"
            if frame.get("prompt_ids"):
                tokens = check_token_ids(frame["prompt_ids"], engine.n_vocab, "prompt")
            else:
                tokens = engine.prompt_tokens(text) or [engine.bos_or_zero()]
            engine.check_context(len(tokens), param)
            if frame.get("tools"):
                params["tools"] = frame["tools"]
                params["reasoning_started"] = reasoning_started
            engine.check_params(params)
        except Exception as exc:
            self._error(request_id, exc)
            return None
        max_tokens = min(int(params.get("max_tokens", 256)), engine.n_ctx - len(tokens))
        params["max_tokens"] = max(max_tokens, 1)
        self.emit(
            {
                "type": "started",
                "id": request_id,
                "prompt_tokens": len(tokens),
                "reasoning_started": reasoning_started,
                "tool_family": engine.tool_family,
            }
        )
        return Sequence(
            request_id=request_id, prompt=tokens, params=params, max_tokens=params["max_tokens"]
        )

    def _cancel(self, request_id: str) -> None:
        for seq in self.waiting:
            if seq.request_id == request_id:
                self.waiting.remove(seq)
                seq.finish("cancelled")
                self.emit(seq.done_frame())
                return
        item = self.active.get(request_id)
        if item is not None:
            self._end(item, "cancelled")

    def _admit(self) -> None:
        while self.waiting and len(self.active) < self.n_slots:
            seq = self.waiting.popleft()
            seq.started_at = time.monotonic()
            try:
                generator = self.engine.new_generator(seq.prompt, seq.params)
            except Exception as exc:
                self._error(seq.request_id, exc)
                continue
            seq.state = "prefill"
            self.prompt_tokens_total += len(seq.prompt)
            self.active[seq.request_id] = _Active(seq, generator, self.engine.new_stream())
            # As the scheduler's: nothing is read from a cache here.
            self.emit({"type": "admitted", "id": seq.request_id, "cached_tokens": 0})

    def _step(self) -> None:
        if not self.active:
            return
        self.steps += 1
        for item in list(self.active.values()):
            seq = item.seq
            if seq.state == "prefill":
                self._prefill(item)
                continue
            try:
                item.generator.generate_next_token()
                token = int(item.generator.get_next_tokens()[0])
                piece = item.stream.decode(token).encode("utf-8")
                piece = self.engine.shown.get(token, piece)  # markup the stream skips
                is_eog = token in self.engine.eog_ids
                text = seq.accept(token, b"" if is_eog else piece, is_eog)
            except Exception as exc:
                traceback.print_exc(file=sys.stderr)
                self.active.pop(seq.request_id, None)
                self._error(seq.request_id, exc)
                continue
            self.step_tokens += 1
            self.step_sequences += 1
            if text:
                self.emit({"type": "token", "id": seq.request_id, "text": text})
            if seq.state != "done" and item.generator.is_done():
                seq.finish("length")  # the context's end: the generator has no room left
                rest = seq.stops.flush()
                if rest:
                    self.emit({"type": "token", "id": seq.request_id, "text": rest})
            if seq.state == "done":
                self._end(item, seq.finish_reason)

    def chunk_tokens(self) -> int:
        """Prompt tokens to read in one turn: about CHUNK_S seconds' worth."""
        if self.prefill_tps is None:
            return 64
        return max(MIN_CHUNK, min(MAX_CHUNK, int(self.prefill_tps * CHUNK_S)))

    def _prefill(self, item: _Active) -> None:
        seq = item.seq
        chunk = seq.prompt[seq.n_past : seq.n_past + self.chunk_tokens()]
        started = time.monotonic()
        try:
            item.generator.append_tokens(chunk)
        except Exception as exc:
            traceback.print_exc(file=sys.stderr)
            self.active.pop(seq.request_id, None)
            self._error(seq.request_id, exc)
            return
        elapsed = max(time.monotonic() - started, 1e-6)
        if len(chunk) >= MIN_CHUNK:
            rate = len(chunk) / elapsed
            self.prefill_tps = (
                rate if self.prefill_tps is None else 0.7 * self.prefill_tps + 0.3 * rate
            )
        self.step_tokens += len(chunk)
        self.step_sequences += 1
        seq.evaluated(len(chunk))  # moves to decode once the whole prompt is in

    def _end(self, item: _Active, reason: str) -> None:
        seq = item.seq
        if seq.state != "done":
            seq.finish(reason)
        self.active.pop(seq.request_id, None)
        item.generator = None  # free its KV now, not at the next garbage collection
        self.emit(seq.done_frame())

    def _error(self, request_id: str, exc: BaseException) -> None:
        self.emit(error_frame(request_id, exc))
