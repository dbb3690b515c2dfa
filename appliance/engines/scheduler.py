"""Continuous batching over an engine: every step carries the next token of each decoding
sequence plus chunks of the prompts being read, in one engine call.

The worker's reader thread hands frames to `submit`; the worker's main thread runs
`run`. Requests wait in arrival order for a slot; a slot's sequence starts from the
longest token prefix any cached sequence holds (copied in the KV, or restored from
the saved-state tiers), so a document or a system prompt is read once for everyone.
A finished sequence stays in the KV as a cache entry until its sequence id or its
cells are needed. A cancelled request leaves at the next step, during prefill as
well as decode; a request that fails (a grammar that rejects every token, an engine
error) fails alone.

A `deterministic` request is computed as if alone: it waits until nothing else runs,
the KV is emptied (cache entries move to the saved-state tier), nothing is reused
and nothing joins it, so the same request always gives the same tokens.
"""

from __future__ import annotations

import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

from appliance.engines.cache_costs import CacheCosts
from appliance.engines.engine import (
    BatchEngine,
    BatchEntry,
    EngineRequestError,
    KVFull,
    check_token_ids,
    error_frame,
    render_chat_frame,
)
from appliance.engines.jump_forward import Jump
from appliance.engines.kv_streams import KVStreams
from appliance.engines.protocol import Frame
from appliance.engines.request_inbox import RequestInbox
from appliance.engines.sequence import Sequence
from appliance.engines.state_store import StateStore
from appliance.engines.step_plan import gap_fillers, oldest_first, whole_then_equal
from appliance.engines.turn_marks import chat_marks

Emit = Callable[[Frame], None]

GATHER_SHARE = 0.05  # of the first prompt's reading time, waited for requests sent with it
GATHER_MAX_S = 0.1


class Scheduler(RequestInbox):
    def __init__(
        self,
        engine: BatchEngine,
        emit: Emit,
        *,
        n_slots: int,
        states: StateStore | None = None,
        costs: CacheCosts | None = None,
        cache_tokens: int | None = None,
        gather_max_s: float = GATHER_MAX_S,
    ) -> None:
        super().__init__()
        self.gather_max_s = gather_max_s
        self.busy_peak = 0  # most requests running or waiting at once since the engine was idle
        self.last_busy_peak = 0  # the same, over the last busy period
        self.engine = engine
        # In a unified KV, cached entries' cells widen every step's attention (llama.cpp
        # attends up to the highest used cell): keep them to about one context's worth.
        # Split streams hold one sequence each, cached or not.
        if cache_tokens is None:
            cache_tokens = engine.n_ctx * (1 if engine.prefix_copy else engine.n_seq_max)
        self.costs = costs or CacheCosts()
        self.kv = KVStreams(engine, states=states, costs=self.costs, cache_tokens=cache_tokens)
        self.emit = emit
        self.n_slots = max(1, min(n_slots, engine.n_seq_max))
        self.active: dict[int, Sequence] = {}
        # The sequences of a step the engine failed: each runs alone until it passes or
        # fails alone, so that an engine error fails its own request only.
        self.suspects: set[int] = set()
        # Counters for the heartbeat (metrics).
        self.steps = 0
        self.step_tokens = 0
        self.step_sequences = 0
        self.prompt_tokens_total = 0
        self.cached_tokens_total = 0

    # -- the reader thread's side -----------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "slots": self.n_slots,
            "busy": len(self.active),
            "waiting": len(self.waiting) + self.inbox.qsize(),
            "cache_entries": len(self.kv.index),
            "cache_tokens": self.kv.index.cached_tokens(),
            "steps": self.steps,
            "step_tokens": self.step_tokens,
            "step_sequences": self.step_sequences,
            "prompt_tokens": self.prompt_tokens_total,
            "cached_tokens": self.cached_tokens_total,
        }
        if self.kv.states is not None:
            out["states"] = self.kv.states.stats()
        return out

    # -- the main loop ----------------------------------------------------------------------

    def run(self) -> None:
        while not self.stopping:
            idle = not (self.active or self.waiting)
            if idle and self.busy_peak:  # a busy period ended: remember how busy it was
                self.last_busy_peak, self.busy_peak = self.busy_peak, 0
            self._drain(block=idle)
            if idle and self.waiting:
                self._gather(self._gather_window(self.waiting[0]), self.n_slots)
            if self.stopping:
                break
            self._admit()
            self.busy_peak = max(self.busy_peak, len(self.active) + len(self.waiting))
            if self.active:
                self._step()
        self._shutdown()

    def _gather_window(self, first: Sequence) -> float:
        """Seconds the first request to reach an idle engine waits for others sent with it.

        Requests sent together (a burst of clients, an agent fanning out) arrive some ms
        apart; read in the same steps, their answers then decode together instead of
        staggered in smaller steps. The wait is at most GATHER_SHARE of the time the part
        of its prompt not cached takes to read; none before that time was measured, or for
        a request that runs alone anyway. Nor when the last busy period served one request
        at a time: a lone user does not pay for bursts that never come.
        """
        if first.deterministic or self.costs.prefill_tps is None or self.last_busy_peak < 2:
            return 0.0
        _, cached = self.kv.best(first.prompt)
        to_read = max(1, len(first.prompt) - cached)
        return min(self.gather_max_s, GATHER_SHARE * self.costs.prefill_s(to_read))

    def _intake(self, request_id: str, frame: Frame) -> Sequence | None:
        """Tokenize and check a request; it gets its `started` frame or its error now."""
        engine = self.engine
        params = dict(frame.get("params") or {})
        marks: list[int] = []
        try:
            reasoning_started = False
            if frame.get("mode") == "chat":
                text, reasoning_started = render_chat_frame(engine, frame, params)
                tokens = engine.prompt_tokens(text, templated=True)
                param = "messages"
                if not engine.can_truncate:  # a recurrent model saves its state there
                    markers = engine.turn_markers(dict(frame.get("template_vars") or {}))
                    marks = chat_marks(
                        text, tokens, markers, lambda t: engine.prompt_tokens(t, templated=True)
                    )
            elif frame.get("mode") == "infill":
                tokens = engine.infill_prompt(dict(frame.get("infill") or {}))
                param = "input_prefix"
            elif frame.get("prompt_ids"):
                tokens = check_token_ids(frame["prompt_ids"], engine.n_vocab, "prompt")
                param = "prompt"
            else:
                text = str(frame.get("prompt", ""))
                tokens = engine.prompt_tokens(text, templated=False)
                param = "prompt"
            if not tokens:
                tokens = [engine.bos_token_id]
            engine.check_context(len(tokens), param)
            if frame.get("tools"):
                params["tools"] = frame["tools"]
                params["reasoning_started"] = reasoning_started
            sampler = engine.new_sampler(params, tokens)
        except Exception as exc:
            self._error(request_id, exc)
            return None
        # Like llama-server, a request asking for more than the context leaves is cut at
        # the context's end (finish_reason "length"), not refused.
        max_tokens = min(int(params.get("max_tokens", 256)), engine.n_ctx - len(tokens))
        least = 0 if params.get("echo") else 1  # echo with max_tokens 0: score the prompt
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
            request_id=request_id,
            prompt=tokens,
            params=params,
            max_tokens=max(max_tokens, least),
            sampler=sampler,
            deterministic=bool(params.get("deterministic")),
            jump=Jump(sampler.forced) if sampler.forced is not None else None,
            chat_marks=marks,
        )

    def _cancel(self, request_id: str) -> None:
        for seq in self.waiting:
            if seq.request_id == request_id:
                self.waiting.remove(seq)
                seq.finish("cancelled")
                self._done_frame(seq)
                return
        for seq in list(self.active.values()):
            if seq.request_id == request_id:
                seq.finish("cancelled")
                self._release(seq)
                return

    # -- admission --------------------------------------------------------------------------

    def _admit(self) -> None:
        while self.waiting and len(self.active) < self.n_slots:
            seq = self.waiting[0]
            if seq.deterministic and self.active:
                return  # it runs alone: wait for the others to finish
            if any(s.deterministic for s in self.active.values()):
                return  # nothing joins a deterministic request
            self.waiting.popleft()
            try:
                self.kv.place(seq)
            except Exception as exc:
                self._error(seq.request_id, exc)
                continue
            self.kv.plan_checkpoint(seq)
            seq.state = "prefill"
            seq.started_at = time.monotonic()
            self.active[seq.seq_id] = seq
            self.prompt_tokens_total += len(seq.prompt)
            self.cached_tokens_total += seq.cached_tokens
            # The prompt's cache split is known from now on (its `done` says the same):
            # Anthropic's message_start reports it before the answer.
            self.emit(
                {"type": "admitted", "id": seq.request_id, "cached_tokens": seq.cached_tokens}
            )

    # -- one step ---------------------------------------------------------------------------

    def _build(self) -> list[tuple[Sequence, BatchEntry]]:
        batch: list[tuple[Sequence, BatchEntry]] = []
        budget = self.engine.n_batch
        if self.suspects:
            self.suspects &= self.active.keys()
        running = [self.active[min(self.suspects)]] if self.suspects else self.active.values()
        decoding = [s for s in running if s.state == "decode"]
        budget -= len(decoding)  # a token each, first: the last one sampled
        for seq in decoding:
            # Forced text written after it (jump_forward) takes what the step has left, the
            # rest in the next steps: the next token is wanted once all of it is read.
            pending = len(seq.tokens) - seq.n_past
            extra = min(pending - 1, max(budget, 0))
            budget -= extra
            chunk = seq.next_chunk(1 + extra)
            wanted = seq.n_past + len(chunk) == len(seq.tokens)
            batch.append((seq, BatchEntry(seq.seq_id, chunk, seq.n_past, wanted)))
        prefill = sorted((s for s in running if s.state == "prefill"), key=lambda s: s.started_at)
        sizes = self._prompt_chunks([s.prompt_left for s in prefill], budget)
        for seq, size in zip(prefill, sizes, strict=True):
            if size <= 0:
                continue
            chunk = seq.next_chunk(min(size, seq.prompt_left))
            last = seq.n_past + len(chunk) >= len(seq.prompt)
            scored = seq.prompt_logprobs is not None
            batch.append((seq, BatchEntry(seq.seq_id, chunk, seq.n_past, last, scored)))
        # In sequence-id order: with split KV, llama.cpp puts only consecutive sequence ids
        # in one micro-batch (and each micro-batch reads every weight once more).
        batch.sort(key=lambda pair: pair[1].seq_id)
        return batch

    def _prompt_chunks(self, remaining: list[int], budget: int) -> list[int]:
        """Tokens to read of each prompt in this step (arrival order, `remaining` left).

        In one KV pool llama.cpp takes any mix of lengths in a micro-batch, so prompts are
        read oldest first. With a stream per slot, the prompts that fit are read whole
        (the shortest first) and the rest in equal chunks: see `step_plan`. In a simulation
        of the 4-stream bench (`bench/step_sim.py`) this gave a mean time to first token
        lower than equal chunks for all, or the same, in all 16 prompt lengths and arrival
        spreads tried (450-token prompts: 8.0 s against 10.5 s), for 0-1.3% of throughput.
        The cost is staggering: prompts finished a step apart send their next requests a
        step apart, and each then reads beside decode rows (two micro-batches). On the real
        bench's synchronous waves it made 317 micro-batches to llama-server's 300.
        """
        plan = oldest_first if self.engine.prefix_copy else whole_then_equal
        return plan(remaining, budget)

    def _fillers(self, batch: list[tuple[Sequence, BatchEntry]]) -> list[BatchEntry]:
        """Throwaway tokens for idle streams between a decode step's sequences, when they
        cost less than the extra micro-batch llama.cpp would read the weights in."""
        engine = self.engine
        if engine.prefix_copy or not engine.can_truncate or engine.gap_fill_tokens <= 0:
            return []
        rows = [entry.seq_id for _, entry in batch]
        if max(rows) - min(rows) + 1 == len(rows) or any(len(e.tokens) != 1 for _, e in batch):
            return []  # no gap (most steps), or a prompt chunk no pad can join
        fill = gap_fillers(rows, self.kv.idle(), engine.n_ctx, engine.gap_fill_tokens)
        return [BatchEntry(g, [engine.bos_token_id], held, False) for g, held in fill.items()]

    def _drop_fillers(self, fillers: list[BatchEntry]) -> None:
        for entry in fillers:
            self.kv.cut_back(entry.seq_id, entry.pos)

    def _decode(self, batch: list[tuple[Sequence, BatchEntry]]) -> list[int] | None:
        """Run the step, making room in the KV when it is full; None when it failed."""
        fillers = self._fillers(batch)
        while batch:
            entries = sorted([e for _, e in batch] + fillers, key=lambda e: e.seq_id)
            try:
                outputs = self.engine.decode(entries)
            except KVFull:
                self._drop_fillers(fillers)
                fillers = []  # an eviction below may empty a padded stream
                if self.kv.evict_least():
                    continue
                # Nothing cached is left to drop: the newest prompt gives way (an answer
                # under way keeps going), told to retry.
                newest = max(batch, key=lambda p: (p[0].state == "prefill", p[0].started_at))
                batch.remove(newest)
                self._fail(
                    newest[0],
                    EngineRequestError(
                        "the model's KV memory is full; retry the request",
                        code="kv_cache_full",
                        status=503,
                    ),
                )
                continue
            except Exception as exc:
                traceback.print_exc(file=sys.stderr)
                self._drop_fillers(fillers)
                if len(batch) > 1:
                    # Whose? Each runs alone next, from where it was: no sequence has moved
                    # on, and what llama.cpp may have kept of the step is cut off.
                    for seq, _ in batch:
                        try:
                            self.engine.seq_truncate(seq.seq_id, seq.n_past)
                        except Exception:
                            self._fail(seq, exc)
                    self.suspects = {seq.seq_id for seq, _ in batch if seq.state != "done"}
                    return None
                for seq, _ in batch:
                    self._fail(seq, exc)
                return None
            self._drop_fillers(fillers)
            return outputs
        return None

    def _step(self) -> None:
        batch = self._build()
        if not batch:
            return
        started = time.monotonic()
        outputs = self._decode(batch)
        if outputs is None:
            return
        if self.suspects:  # a suspect that ran alone and passed
            self.suspects.difference_update(seq.seq_id for seq, _ in batch)
        prefill = sum(len(e.tokens) for s, e in batch if s.state == "prefill")
        self.costs.saw_prefill(prefill, time.monotonic() - started)
        self.steps += 1
        self.step_tokens += sum(len(entry.tokens) for _, entry in batch)
        self.step_sequences += len(batch)
        out = iter(outputs)
        for seq, entry in batch:
            start = seq.n_past
            due = seq.evaluated(len(entry.tokens))
            if seq.checkpoints and seq.checkpoints[0] == seq.n_past:
                self.kv.checkpoint(seq)
            if entry.all_logits:
                indices = [next(out) for _ in entry.tokens]
                try:
                    self._score_prompt(seq, start, indices)
                except Exception as exc:
                    self._fail(seq, exc)
                    continue
            elif entry.logits:
                indices = [next(out)]
            else:
                continue
            if not due or seq.state == "done":
                continue
            if seq.echo and start < len(seq.prompt):  # the prompt is read: echo it
                self.emit(seq.prompt_frame(self.engine.piece))
                if seq.max_tokens == 0:
                    seq.finish("length")
                    self._release(seq)
                    continue
            try:
                text = self._next_tokens(seq, indices[-1])
            except Exception as exc:
                self._fail(seq, exc)
                continue
            # Ids of tokens with no text yet go with the next text, or here at the end.
            if text or seq.logprobs or (seq.ids and seq.state == "done"):
                frame: Frame = {"type": "token", "id": seq.request_id, "text": text}
                if seq.logprobs:  # sent with the text they belong to, or before it
                    frame["logprobs"], seq.logprobs = seq.logprobs, []
                if seq.ids:
                    frame["ids"], seq.ids = seq.ids, []
                self.emit(frame)
            if seq.state == "done":
                self._release(seq)

    def _next_tokens(self, seq: Sequence, index: int) -> str:
        """Sample the sequence's next token from the logits at `index`, with any text its
        grammar then forces (`jump_forward`); return the text now safe to send."""
        assert seq.sampler is not None
        jump = seq.jump
        opening = jump.at_start() if jump is not None else ""
        if opening:  # a forced call: its opening is written, the model goes on from there
            text = self._force(seq, opening)
            if len(seq.tokens) > seq.n_past or seq.state == "done":
                return text
            # Nothing written (the tokenizer cannot spell it, the grammar refused): sampled.
        token = seq.sampler.sample(index)
        is_eog = self.engine.is_eog(token)
        if is_eog and jump is not None and not seq.params.get("ignore_eos"):
            closing = jump.at_end()
            if closing:  # a required call the model tried to end before: written instead
                text = self._force(seq, closing)
                if len(seq.tokens) > seq.n_past or seq.state == "done":
                    return text
        top_n = seq.params.get("logprobs")
        if top_n is not None and not is_eog:
            seq.logprobs.append(self.engine.token_logprobs(index, token, int(top_n)))
        piece = self.engine.piece(token)
        text = seq.accept(token, piece, is_eog)
        if seq.params.get("token_ids") and not is_eog:
            seq.ids.append(token)
        if jump is not None and seq.state != "done":
            rest = jump.after(piece)
            if rest:
                text += self._force(seq, rest)
        return text

    def _force(self, seq: Sequence, text: str) -> str:
        """Take `text`'s tokens as if sampled (read in the next step, with the last
        sampled token): as far as the grammar, the stop strings and max_tokens allow."""
        assert seq.sampler is not None
        out = ""
        for token in self.engine.forced_tokens(text):
            if seq.state == "done" or not seq.sampler.accept(token):
                break
            out += seq.accept(token, self.engine.piece(token), False)
            if seq.params.get("token_ids"):
                seq.ids.append(token)
        return out

    def _score_prompt(self, seq: Sequence, start: int, indices: list[int]) -> None:
        """Score a chunk of the prompt read from position `start`: each output gives the
        next prompt token's log probability given the tokens before it."""
        top_n = seq.prompt_logprobs or 0
        for k, index in enumerate(indices):
            nxt = start + k + 1
            if nxt < len(seq.prompt):
                seq.prompt_scores.append(self.engine.token_logprobs(index, seq.prompt[nxt], top_n))

    # -- endings ----------------------------------------------------------------------------

    def _done_frame(self, seq: Sequence) -> None:
        self.emit(seq.done_frame())

    def _release(self, seq: Sequence, keep: bool = True) -> None:
        """End an active sequence: its KV stays as a cache entry when it can serve again."""
        if seq.state != "done":
            seq.finish("cancelled")
        if seq.finish_reason != "error":
            self._done_frame(seq)
        self.active.pop(seq.seq_id, None)
        if keep and seq.n_past > 0:
            self.kv.keep(seq.seq_id, seq.kv_tokens)
        else:
            self.kv.drop(seq.seq_id)

    def _fail(self, seq: Sequence, exc: BaseException) -> None:
        self._error(seq.request_id, exc)
        seq.finish("error")
        if seq.seq_id in self.active:
            self._release(seq, keep=False)

    def _error(self, request_id: str, exc: BaseException) -> None:
        if not isinstance(exc, EngineRequestError):
            traceback.print_exc(file=sys.stderr)
        self.emit(error_frame(request_id, exc))

    def _shutdown(self) -> None:
        """The worker is stopping: end what is left, keep the cache on disk."""
        for seq in list(self.waiting):
            self._error(
                seq.request_id,
                EngineRequestError("the model is being unloaded", "model_unloaded", 503),
            )
        self.waiting.clear()
        for seq in list(self.active.values()):
            self._fail(
                seq, EngineRequestError("the model is being unloaded", "model_unloaded", 503)
            )
        self.kv.flush()
