"""The scheduler over a fake engine: batching, prefix reuse, cancellation, failures."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from appliance.engines.cache_costs import CacheCosts
from appliance.engines.engine import BatchEntry
from appliance.engines.protocol import Frame
from appliance.engines.scheduler import GATHER_MAX_S, GATHER_SHARE, Scheduler
from appliance.engines.state_store import StateStore
from tests.engines.fake_engine import FakeEngine


class Run:
    def __init__(self, engine: FakeEngine | None = None, slots: int = 2, **kw: Any) -> None:
        self.engine = engine or FakeEngine()
        self.frames: list[Frame] = []
        # The fake engine is nearly free: saved states are worth it however short.
        kw.setdefault("costs", CacheCosts(min_saved_s=0, min_saved_tokens=1, measure=False))
        self.scheduler = Scheduler(self.engine, self.frames.append, n_slots=slots, **kw)

    def submit(self, request_id: str, prompt: list[int], **params: Any) -> None:
        params.setdefault("max_tokens", 4)
        self.scheduler.submit(
            {
                "type": "generate",
                "id": request_id,
                "mode": "completion",
                "prompt": " ".join(map(str, prompt)),
                "params": params,
            }
        )

    def until_idle(self, limit: int = 500) -> None:
        s = self.scheduler
        for _ in range(limit):
            s._drain(block=False)
            s._admit()
            self.check_kv()
            if not s.active and not s.waiting and s.inbox.empty():
                return
            s._step()
            self.check_kv()
        raise AssertionError("the scheduler did not finish")

    def check_kv(self) -> None:
        """Every running request's sequence holds exactly its own tokens so far, and so does
        every cache entry: a prefix taken from the wrong place shows here, whatever the
        fake engine answers."""
        if not isinstance(self.engine, FakeEngine):
            return  # a real engine's KV is checked by what it answers
        s, kv = self.scheduler, self.engine.kv
        for seq in s.active.values():
            held = kv.get(seq.seq_id, [])
            assert held == seq.kv_tokens, f"{seq.request_id}: KV {held} != {seq.kv_tokens}"
        for entry in s.kv.index.entries.values():
            assert kv.get(entry.seq_id, []) == list(entry.tokens), f"entry {entry.seq_id}"

    def of(self, request_id: str, kind: str) -> list[Frame]:
        return [f for f in self.frames if f["id"] == request_id and f["type"] == kind]

    def text(self, request_id: str) -> str:
        return "".join(f["text"] for f in self.of(request_id, "token"))

    def done(self, request_id: str) -> Frame:
        (frame,) = self.of(request_id, "done")
        return frame


def test_concurrent_requests_share_steps_and_each_gets_its_own_answer() -> None:
    run = Run(slots=3)
    run.submit("a", [10, 11, 12])
    run.submit("b", [20, 21])
    run.submit("c", [30])
    run.until_idle()
    assert run.text("a") == "<13><14><15><16>"
    assert run.text("b") == "<22><23><24><25>"
    assert run.text("c") == "<31><32><33><34>"
    for rid, n in (("a", 3), ("b", 2), ("c", 1)):
        done = run.done(rid)
        assert (done["prompt_tokens"], done["completion_tokens"]) == (n, 4)
        assert done["finish_reason"] == "length"
    # After the prompts, one step carries the next token of all three sequences.
    assert max(len(step) for step in run.engine.steps) == 3


def test_requests_beyond_the_slots_wait_then_run() -> None:
    run = Run(slots=1)
    run.submit("a", [5])
    run.submit("b", [7])
    run.scheduler._drain(block=False)
    run.scheduler._admit()
    assert len(run.scheduler.active) == 1 and len(run.scheduler.waiting) == 1
    # Both got their started frame at once: clients get headers while they wait.
    assert [f["id"] for f in run.frames if f["type"] == "started"] == ["a", "b"]
    run.until_idle()
    assert run.text("b") == "<8><9><10><11>"
    assert run.done("b")["queued_s"] >= 0


def test_end_of_sequence_stops_with_reason_stop() -> None:
    run = Run(engine=FakeEngine(n_vocab=50))
    run.submit("a", [47], max_tokens=10)
    run.until_idle()
    assert run.text("a") == "<48><49>"  # then 0, the end-of-sequence token
    assert run.done("a")["finish_reason"] == "stop"
    assert run.done("a")["completion_tokens"] == 3


def test_stop_string_ends_the_answer_without_leaking() -> None:
    run = Run()
    run.submit("a", [3], max_tokens=10, stop=["<6>"])
    run.until_idle()
    assert run.text("a") == "<4><5>"
    assert run.done("a")["finish_reason"] == "stop"


def test_long_prompt_is_read_in_chunks_while_others_decode() -> None:
    engine = FakeEngine()
    run = Run(engine=engine, slots=2)
    run.submit("short", [2], max_tokens=8)
    run.scheduler._drain(block=False)
    run.scheduler._admit()
    run.scheduler._step()  # short's prompt
    run.submit("long", list(range(1, 41)), max_tokens=2)
    run.until_idle()
    # Every step with the long prompt also carried short's next token, within n_batch.
    mixed = [s for s in engine.steps if len(s) == 2]
    assert mixed, "prefill chunks and decode tokens never shared a step"
    assert all(sum(len(e.tokens) for e in s) <= engine.n_batch for s in engine.steps)
    assert run.text("long") == "<41><42>"
    assert run.text("short") == "".join(f"<{t}>" for t in range(3, 11))


def test_echo_scores_every_prompt_token_over_chunks_without_the_cache() -> None:
    """Prompt logprobs (completions' echo): token j is scored from the output at j - 1,
    across prefill chunks; a cached prefix is not reused (it has no outputs)."""
    engine = FakeEngine()
    run = Run(engine=engine, slots=2)
    prompt = list(range(1, 41))  # three chunks of n_batch 16
    run.submit("warm", prompt)
    run.until_idle()
    run.submit("scored", prompt, max_tokens=0, echo=True, prompt_logprobs=0)
    run.until_idle()
    (frame,) = run.of("scored", "prompt")
    tokens = frame["tokens"]
    assert [t["token"] for t in tokens] == [f"<{t}>" for t in prompt]
    assert tokens[0]["logprob"] is None
    assert [t["logprob"] for t in tokens[1:]] == [
        -(prompt[j - 1] + prompt[j] / 1000) for j in range(1, len(prompt))
    ]
    done = run.done("scored")
    assert (done["completion_tokens"], done["cached_tokens"]) == (0, 0)
    assert done["finish_reason"] == "length" and not run.of("scored", "token")
    run.submit("echo-and-go", [7, 8, 9], max_tokens=2, echo=True)  # echo without scores
    run.until_idle()
    (frame,) = run.of("echo-and-go", "prompt")
    assert [t["logprob"] for t in frame["tokens"]] == [None, None, None]
    assert run.text("echo-and-go") == "<10><11>"


def test_prefix_is_reused_across_requests_and_users() -> None:
    engine = FakeEngine()
    run = Run(engine=engine, slots=2)
    doc = list(range(1, 31))
    run.submit("first", [*doc, 40])
    run.until_idle()
    assert run.done("first")["cached_tokens"] == 0
    run.submit("other", [5, 6, 7])  # another user in between
    run.until_idle()
    run.submit("again", [*doc, 41])
    run.until_idle()
    assert run.done("again")["cached_tokens"] == 30
    assert run.text("again") == "<42><43><44><45>"
    # The split is sent as the request gets its sequence, before its first token.
    for rid, cached in (("first", 0), ("again", 30)):
        (admitted,) = run.of(rid, "admitted")
        assert admitted["cached_tokens"] == cached
        ours = [f for f in run.frames if f["id"] == rid]
        assert ours.index(admitted) < ours.index(run.of(rid, "token")[0])


def test_identical_prompt_reevaluates_only_its_last_token() -> None:
    run = Run()
    prompt = list(range(1, 21))
    run.submit("a", prompt)
    run.until_idle()
    run.submit("b", prompt)
    run.until_idle()
    assert run.done("b")["cached_tokens"] == 19
    assert run.text("a") == run.text("b")


def test_cache_entry_is_copied_when_it_holds_more_than_is_shared() -> None:
    engine = FakeEngine()
    run = Run(engine=engine, slots=2)
    doc = list(range(1, 31))
    run.submit("a", [*doc, 40, 41, 42])
    run.until_idle()
    run.submit("b", [*doc, 7])
    run.until_idle()
    assert run.done("b")["cached_tokens"] == 30
    assert engine.copies and engine.copies[-1][2] == 30
    # a's entry still holds its whole sequence: a third request can use all of it.
    run.submit("c", [*doc, 40, 41, 42, 43, 44])
    run.until_idle()
    assert run.done("c")["cached_tokens"] >= 33


def test_cancel_during_prefill_and_decode_frees_the_slot() -> None:
    engine = FakeEngine()
    run = Run(engine=engine, slots=1)
    run.submit("long", list(range(1, 50)), max_tokens=50)
    run.scheduler._drain(block=False)
    run.scheduler._admit()
    run.scheduler._step()  # first chunk of the prompt only
    assert run.scheduler.active
    run.scheduler.submit({"type": "cancel", "id": "long"})
    run.submit("next", [3])
    run.until_idle()
    assert run.done("long")["finish_reason"] == "cancelled"
    assert run.text("next") == "<4><5><6><7>"
    run.submit("decoding", [9], max_tokens=50)
    run.scheduler._drain(block=False)
    run.scheduler._admit()
    for _ in range(3):
        run.scheduler._step()
    run.scheduler.submit({"type": "cancel", "id": "decoding"})
    run.until_idle()
    done = run.done("decoding")
    assert done["finish_reason"] == "cancelled" and 0 < done["completion_tokens"] < 50


def test_cancel_while_waiting_answers_at_once() -> None:
    run = Run(slots=1)
    run.submit("a", [1], max_tokens=30)
    run.submit("b", [2])
    run.scheduler._drain(block=False)
    run.scheduler._admit()
    run.scheduler.submit({"type": "cancel", "id": "b"})
    run.scheduler._drain(block=False)
    assert run.done("b")["finish_reason"] == "cancelled"
    assert run.done("b")["completion_tokens"] == 0


def test_a_failing_sequence_fails_alone() -> None:
    run = Run(slots=3)
    run.submit("ok1", [10])
    run.submit("bad", [20], fail_sampling=True)
    run.submit("ok2", [30])
    run.until_idle()
    (error,) = run.of("bad", "error")
    assert error["code"] == "engine_error" and "grammar" in error["message"]
    assert not run.of("bad", "done")
    assert run.text("ok1") == "<11><12><13><14>"
    assert run.text("ok2") == "<31><32><33><34>"


def test_bad_request_is_refused_before_it_starts() -> None:
    run = Run()
    run.submit("schema", [1], bad_grammar=True)
    run.submit("long", list(range(1, 70)))
    run.until_idle()
    assert run.of("schema", "error")[0]["status"] == 400
    assert run.of("long", "error")[0]["code"] == "context_length_exceeded"
    assert not run.of("schema", "started") and not run.of("long", "started")


def test_full_kv_drops_cache_entries_first() -> None:
    engine = FakeEngine(n_seq_max=6, capacity=60)
    run = Run(engine=engine, slots=1)
    run.submit("a", list(range(1, 30)))
    run.until_idle()
    assert run.scheduler.kv.index.entries
    run.submit("b", [5] * 30)
    run.until_idle()
    assert run.text("b") == "<6><7><8><9>"
    assert not run.of("b", "error")


def test_a_full_kv_refuses_the_newest_request_not_an_answer_under_way() -> None:
    engine = FakeEngine(n_seq_max=3, capacity=44, prefix_copy=False)
    run = Run(engine=engine, slots=3)
    run.submit("warm", [4] * 14)  # leaves an entry in sequence 0
    run.until_idle()
    run.submit("first", [3] * 8, max_tokens=20)  # sequence 1
    s = run.scheduler
    for _ in range(4):  # it is answering
        s._drain(block=False)
        s._admit()
        s._step()
    assert run.of("first", "token")
    run.submit("second", [4] * 14, max_tokens=20)  # takes sequence 0 over: a lower id
    run.until_idle()
    assert run.done("first")["finish_reason"] == "length"
    assert len(run.of("first", "token")) == 20
    [error] = run.of("second", "error")
    assert (error["code"], error["status"]) == ("kv_cache_full", 503)


class FailsOnToken(FakeEngine):
    """An engine whose decode fails whenever a step holds token 40 (an engine error tied
    to one request's input)."""

    def decode(self, entries: Sequence[BatchEntry]) -> list[int]:
        if any(40 in e.tokens for e in entries):
            raise RuntimeError("llama_decode failed with code -3")
        return super().decode(entries)


def test_an_engine_error_fails_its_own_request_and_the_others_go_on() -> None:
    run = Run(engine=FailsOnToken(n_seq_max=3), slots=3)
    run.submit("a", [2, 3, 4], max_tokens=6)
    run.submit("poison", [5, 40, 6])
    run.submit("c", [7, 8], max_tokens=6)
    run.until_idle()
    [error] = run.of("poison", "error")
    assert error["code"] == "engine_error" and "llama_decode failed" in error["message"]
    for rid, prompt in (("a", [2, 3, 4]), ("c", [7, 8])):
        alone = Run()
        alone.submit(rid, prompt, max_tokens=6)
        alone.until_idle()
        assert run.text(rid) == alone.text(rid) != ""  # as if the failed step never was
        assert run.done(rid)["finish_reason"] == alone.done(rid)["finish_reason"]
    assert not run.scheduler.suspects
    # Batched again once each suspect has passed alone.
    run.submit("d", [9], max_tokens=4)
    run.submit("e", [10], max_tokens=4)
    run.until_idle()
    assert max(len(step) for step in run.engine.steps[-4:]) == 2


def test_deterministic_request_runs_alone_without_cache() -> None:
    engine = FakeEngine()
    run = Run(engine=engine, slots=3)
    doc = list(range(1, 21))
    run.submit("warm", doc)
    run.until_idle()
    run.submit("other", [7], max_tokens=20)
    run.submit("det", doc, deterministic=True)
    run.submit("after", [9])
    s = run.scheduler
    saw_det = False
    for _ in range(500):
        s._drain(block=False)
        s._admit()
        if any(q.deterministic for q in s.active.values()):
            saw_det = True
            assert len(s.active) == 1, "a deterministic request shared its steps"
            assert not s.kv.index.entries, "the KV still held other sequences"
        if not s.active and not s.waiting:
            break
        s._step()
    assert saw_det
    assert run.done("det")["cached_tokens"] == 0
    assert run.text("det") == run.text("warm")
    assert run.text("after") == "<10><11><12><13>"


def test_states_saved_on_eviction_are_restored(tmp_path: Path) -> None:
    engine = FakeEngine(n_seq_max=2, capacity=400)
    states = StateStore("model|ctx=64", ram_bytes=1 << 20, disk_dir=tmp_path, disk_bytes=1 << 20)
    run = Run(engine=engine, slots=1, states=states)
    doc = list(range(1, 31))
    run.submit("doc", [*doc, 40])
    run.until_idle()
    for i in range(3):  # push the doc's entry out of the KV
        run.submit(f"o{i}", [i + 2] * 40)
        run.until_idle()
    assert all(e.tokens[:30] != doc for e in run.scheduler.kv.index.entries.values())
    assert any(s.tokens[:30] == doc for s in states.states)
    run.submit("again", [*doc, 41])
    run.until_idle()
    assert run.done("again")["cached_tokens"] == 30


class RestoreFails(FakeEngine):
    """An engine whose KV has no room for a saved state (llama.cpp's set_data gives 0)."""

    def seq_restore(self, seq_id: int, data: bytes) -> bool:
        return False


def test_a_failed_restore_never_hands_out_an_id_it_freed(tmp_path: Path) -> None:
    engine = RestoreFails(n_seq_max=2, prefix_copy=False)
    states = StateStore("model|ctx=64", ram_bytes=1 << 20, disk_dir=tmp_path, disk_bytes=1 << 20)
    run = Run(engine=engine, slots=2, states=states)
    doc = list(range(1, 41))
    run.submit("doc", [*doc, 45])
    run.until_idle()
    # Two entries share the document's first 20 tokens; the whole document is a saved state.
    run.submit("a", [*doc[:20], *range(60, 70)])
    run.until_idle()
    run.submit("b", [*doc[:20], *range(80, 85)])
    run.until_idle()
    assert any(s.tokens[:40] == doc for s in states.states)
    kv = run.scheduler.kv
    # The state would save more reading than an entry: restoring it evicts entries for
    # room, fails, and the request starts from what is left.
    run.submit("again", [*doc, 46])
    run.submit("other", [5] * 20)
    s = run.scheduler
    s._drain(block=False)
    s._admit()
    ids = [seq.seq_id for seq in s.active.values()]
    assert len(ids) == len(set(ids)) == 2  # two requests, two sequences
    assert not set(ids) & set(kv.free_ids)  # none of them free for a third
    assert not set(ids) & set(kv.index.entries)  # nor still a cache entry
    run.until_idle()
    alone = Run()  # the same prompt on a fresh engine: the answer of its own tokens
    alone.submit("again", [*doc, 46])
    alone.until_idle()
    assert run.text("again") == alone.text("again") != ""
    assert run.done("again")["finish_reason"] == alone.done("again")["finish_reason"]
    assert run.done("other")["finish_reason"] in ("stop", "length")  # answered, not lost


def test_shutdown_keeps_the_cache_on_disk(tmp_path: Path) -> None:
    key = "model|ctx=64"
    engine = FakeEngine()
    run = Run(engine=engine, states=StateStore(key, 1 << 20, tmp_path, 1 << 20))
    doc = list(range(1, 31))
    run.submit("doc", [*doc, 40])
    run.until_idle()
    run.scheduler.submit({"type": "shutdown", "id": None})
    run.scheduler.run()
    # A new worker (fresh engine, empty KV) starts from the saved state.
    engine2 = FakeEngine()
    run2 = Run(engine=engine2, states=StateStore(key, 1 << 20, tmp_path, 1 << 20))
    run2.submit("again", [*doc, 41])
    run2.until_idle()
    assert run2.done("again")["cached_tokens"] == 30
    assert run2.text("again") == "<42><43><44><45>"
    # Another model's key sees none of it.
    run3 = Run(engine=FakeEngine(), states=StateStore("other|ctx=64", 1 << 20, tmp_path, 1 << 20))
    run3.submit("x", [*doc, 41])
    run3.until_idle()
    assert run3.done("x")["cached_tokens"] == 0


def test_split_kv_takes_an_entry_over_and_saves_what_it_held_past_the_prefix(
    tmp_path: Path,
) -> None:
    engine = FakeEngine(n_vocab=100, prefix_copy=False)
    states = StateStore("model|ctx=64", ram_bytes=1 << 20, disk_dir=tmp_path, disk_bytes=1 << 20)
    run = Run(engine=engine, slots=2, states=states)
    doc = list(range(1, 31))
    tail = list(range(40, 60))
    run.submit("a", [*doc, *tail])
    run.until_idle()
    run.submit("b", [*doc, 7])
    run.until_idle()
    assert run.done("b")["cached_tokens"] == 30
    assert not engine.copies  # split streams never copy a prefix: b took a's sequence over
    assert any(s.tokens[:50] == [*doc, *tail] for s in states.states)
    # a's whole sequence comes back from the saved state for a request that extends it.
    run.submit("c", [*doc, *tail, 61])
    run.until_idle()
    assert run.done("c")["cached_tokens"] >= 50
    assert run.text("c") == "<62><63><64><65>"


def test_split_kv_keeps_an_entry_in_every_idle_stream() -> None:
    engine = FakeEngine(n_seq_max=3, capacity=1000, prefix_copy=False)
    run = Run(engine=engine, slots=3)
    prompts = [[k] * 40 for k in (2, 3, 4)]
    for i, prompt in enumerate(prompts):
        run.submit(f"p{i}", prompt)
        run.until_idle()
    # 3 × 43 tokens: more than one context (64), still all held (each in its own stream).
    assert len(run.scheduler.kv.index) == 3
    for i, prompt in enumerate(prompts):
        run.submit(f"again{i}", [*prompt, 9])
        run.until_idle()
        assert run.done(f"again{i}")["cached_tokens"] == 40


def test_a_step_lists_its_sequences_in_id_order() -> None:
    engine = FakeEngine(n_seq_max=3, prefix_copy=False)
    run = Run(engine=engine, slots=3)
    docs = [[k] * 20 for k in (2, 3, 4)]
    for i, doc in enumerate(docs):
        run.submit(f"d{i}", doc)
    run.until_idle()
    ids = {tuple(engine.kv[s][:20]): s for s in engine.kv}
    engine.steps.clear()
    # Admitted in the reverse order of the sequences their cached prefixes live in.
    for i in (2, 0, 1):
        run.submit(f"r{i}", [*docs[i], 5], max_tokens=6)
    run.until_idle()
    assert {ids[tuple(docs[i])] for i in range(3)} == {0, 1, 2}
    assert max(len(step) for step in engine.steps) == 3
    for step in engine.steps:  # prefill chunks as well as decode rows
        assert [e.seq_id for e in step] == sorted(e.seq_id for e in step)


def test_split_kv_take_over_saves_nothing_for_a_short_tail(tmp_path: Path) -> None:
    states = StateStore("model|ctx=64", ram_bytes=1 << 20, disk_dir=tmp_path, disk_bytes=1 << 20)
    run = Run(engine=FakeEngine(prefix_copy=False), slots=1, states=states)
    doc = list(range(1, 31))
    run.submit("a", [*doc, 40], max_tokens=2)
    run.until_idle()
    run.submit("b", [*doc, 41], max_tokens=2)  # the same document, another question
    run.until_idle()
    assert run.done("b")["cached_tokens"] == 30
    assert not states.states  # a's few tokens past the document were not worth a copy


def test_split_kv_reads_the_prompts_that_fit_whole_and_the_rest_in_equal_chunks() -> None:
    engine = FakeEngine(n_seq_max=4, capacity=1000, prefix_copy=False)
    run = Run(engine=engine, slots=4)
    lengths = (40, 20, 30, 9)
    run.submit("p0", [3] * lengths[0], max_tokens=2)
    run.scheduler._drain(block=False)
    run.scheduler._admit()
    run.scheduler._step()  # p0 reads 16 tokens alone (n_batch)
    for i in (1, 2, 3):
        run.submit(f"p{i}", [3 + i] * lengths[i], max_tokens=2)
    run.until_idle()
    chunks = [
        [len(e.tokens) for e in step if e.pos < lengths[e.seq_id]] for step in engine.steps[1:]
    ]
    # A step of 16 tokens (a decode row takes one) reads whole the prompts that fit, the
    # shortest first; every prompt it cannot finish reads the same, largest length that
    # fits in what is left.
    assert chunks[:5] == [[2, 2, 2, 9], [5, 5, 5], [1, 13, 1], [7, 7], [9, 7]]
    for i in range(4):
        assert run.done(f"p{i}")["finish_reason"] == "length"


def test_split_kv_pads_an_idle_stream_between_decoding_rows_and_takes_the_pad_back() -> None:
    engine = FakeEngine(n_seq_max=4, capacity=1000, prefix_copy=False, gap_fill_tokens=1)
    run = Run(engine=engine, slots=4)
    run.submit("a", [10, 11], max_tokens=8)
    run.submit("b", [20, 21, 22], max_tokens=1)  # done first: its stream (1) idles
    run.submit("c", [30], max_tokens=8)
    run.until_idle()
    held_b = engine.kv[1]
    assert held_b[:3] == [20, 21, 22]
    pads = [e for step in engine.steps for e in step if e.seq_id == 1 and e.pos >= len(held_b)]
    assert pads, "no step padded the idle stream between a's and c's rows"
    for step in engine.steps:
        if any(e.seq_id == 1 and e.pos >= len(held_b) for e in step):
            assert [e.seq_id for e in step] == [0, 1, 2]  # one run of ids: one micro-batch
            assert all(not e.logits for e in step if e.seq_id == 1)
    # The pads were taken back: b's stream holds what b left, and a and c answered as alone.
    assert engine.kv[1] == held_b
    assert run.text("a") == "".join(f"<{t}>" for t in range(12, 20))
    assert run.text("c") == "".join(f"<{t}>" for t in range(31, 39))
    run.submit("b2", [20, 21, 22, 5], max_tokens=1)
    run.until_idle()
    assert run.done("b2")["cached_tokens"] == 3


def test_unified_kv_and_prompt_steps_are_not_padded() -> None:
    engine = FakeEngine(n_seq_max=4, capacity=1000, prefix_copy=True, gap_fill_tokens=1)
    run = Run(engine=engine, slots=4)
    run.submit("a", [10, 11], max_tokens=6)
    run.submit("b", [20, 21, 22], max_tokens=1)
    run.submit("c", [30], max_tokens=6)
    run.until_idle()
    assert all(e.logits or e.pos < 3 for step in engine.steps for e in step if e.seq_id == 1)


def test_an_idle_engine_reads_requests_sent_together_in_one_step() -> None:
    engine = FakeEngine(n_seq_max=3, capacity=1000, prefix_copy=False, step_s=0.02)
    frames: list[Frame] = []
    # Prompts read at 0.1 token/s: the first may wait 5% of its 30 s, here capped at 10 s.
    costs = CacheCosts(prefill_tps=0.1, measure=False)
    scheduler = Scheduler(engine, frames.append, n_slots=3, costs=costs, gather_max_s=10.0)
    loop = threading.Thread(target=scheduler.run)
    loop.start()

    def send(rid: str, prompt: list[int]) -> None:
        params = {"max_tokens": 2}
        frame = {"type": "generate", "id": rid, "mode": "completion", "params": params}
        scheduler.submit({**frame, "prompt": " ".join(map(str, prompt))})

    def until_done(n: int) -> None:
        deadline = time.monotonic() + 30
        while sum(f["type"] == "done" for f in frames) < n and time.monotonic() < deadline:
            time.sleep(0.01)

    try:
        send("lone", [5, 6, 7])  # one request at a time: nothing waits for company
        until_done(1)
        assert len(engine.steps) == 2
        send("p0", [8, 9, 10])
        send("p1", [8, 9, 11])
        until_done(3)
        started = len(engine.steps)
        for i, prompt in enumerate(([10, 11, 12], [20, 21, 22], [30, 31, 32])):
            if i:
                time.sleep(0.05)  # sent a moment after the first, as a client burst arrives
            send(f"r{i}", prompt)
        until_done(6)
    finally:
        scheduler.submit({"type": "shutdown", "id": None})
        loop.join(30)
    assert sum(f["type"] == "done" for f in frames) == 6
    # After a busy period of two at once, the third request of the burst filled the slots
    # and ended the wait: all three prompts in one step.
    first = engine.steps[started]
    assert sorted(e.seq_id for e in first) == [0, 1, 2]
    assert all(len(e.tokens) == 3 for e in first)


def test_the_gather_wait_is_a_share_of_the_prompt_time_and_none_before_it_is_measured() -> None:
    run = Run(slots=2, costs=CacheCosts(measure=False))
    run.scheduler.last_busy_peak = 2  # the last busy period served two at once
    run.submit("a", [2] * 20)
    run.submit("d", [2] * 20, deterministic=True)
    run.scheduler._drain(block=False)
    a, d = run.scheduler.waiting
    assert run.scheduler._gather_window(a) == 0.0  # no prompt was read yet: no known speed
    run.scheduler.costs.prefill_tps = 100.0  # 20 tokens read in 0.2 s
    assert run.scheduler._gather_window(a) == pytest.approx(GATHER_SHARE * 0.2)
    assert run.scheduler._gather_window(d) == 0.0  # it runs alone anyway
    run.scheduler.costs.prefill_tps = 1.0
    assert run.scheduler._gather_window(a) == GATHER_MAX_S
    # A prompt mostly cached waits for the part left to read only.
    run.scheduler.kv.index.add(5, [2] * 18, now=0.0)
    assert run.scheduler._gather_window(a) == pytest.approx(GATHER_SHARE * 2.0)
    run.scheduler.last_busy_peak = 1  # one at a time: no wait
    assert run.scheduler._gather_window(a) == 0.0


# -- forced text (jump_forward) ------------------------------------------------------------


def test_a_forced_opening_is_written_unsampled_and_read_in_one_step() -> None:
    run = Run()
    run.submit("a", [5, 6, 7], max_tokens=6, forced={"text": "<20><21><22>"})
    run.until_idle()
    # The opening, then the model's own tokens from after it (the fake answers last + 1).
    assert run.text("a") == "<20><21><22><23><24><25>"
    assert run.done("a")["completion_tokens"] == 6
    assert run.engine.samplers[0].accepted == [20, 21, 22]
    # The three forced tokens are read together, as one entry asking for the next token.
    rows = [e for step in run.engine.steps for e in step if e.seq_id == 0]
    assert [list(e.tokens) for e in rows[:3]] == [[5, 6, 7], [20, 21, 22], [23]]
    assert rows[1].logits and rows[1].pos == 3


def test_forced_text_after_its_trigger_follows_the_sampled_token() -> None:
    run = Run()
    forced = {"text": "<9><30><31>", "start": r"^[\s\S]*?(<9>)[\s\S]*$", "marker": "<9>"}
    run.submit("a", [5, 6], max_tokens=7, forced=forced)
    run.until_idle()
    # 7, 8 and 9 sampled; 9 opens the forced text, whose rest is written at once.
    assert run.text("a") == "<7><8><9><30><31><32><33>"
    assert run.engine.samplers[0].accepted == [30, 31]
    assert run.done("a")["completion_tokens"] == 7


def test_forced_text_stops_where_the_grammar_or_the_limits_stop() -> None:
    run = Run()
    run.submit("refused", [5], max_tokens=4, forced={"text": "<20><21><22>"}, refuse=[21])
    run.submit("short", [5], max_tokens=2, forced={"text": "<20><21><22>"})
    run.submit("stop", [5], max_tokens=6, forced={"text": "<20><21><22>"}, stop=["<21>"])
    run.until_idle()
    # The grammar refused 21: 20 stays written, and the model goes on from it.
    assert run.text("refused") == "<20><21><22><23>"
    assert run.engine.samplers[0].accepted == [20]
    assert run.text("short") == "<20><21>"
    assert run.done("short")["finish_reason"] == "length"
    assert run.done("short")["completion_tokens"] == 2
    assert run.text("stop") == "<20>"
    assert run.done("stop")["finish_reason"] == "stop"


def test_forced_text_past_the_steps_budget_is_read_over_several_steps() -> None:
    run = Run()  # the fake engine's steps carry at most 16 tokens
    opening = "".join(f"<{t}>" for t in range(20, 32))  # 12 tokens
    run.submit("a", [5], max_tokens=14, forced={"text": opening})
    run.submit("b", [6], max_tokens=14, forced={"text": opening})
    run.until_idle()
    for rid in ("a", "b"):
        assert run.text(rid) == opening + "<32><33>"
        assert run.done(rid)["completion_tokens"] == 14
    assert max(sum(len(e.tokens) for e in step) for step in run.engine.steps) == 16


def test_a_forced_opening_nothing_of_which_is_taken_leaves_the_model_to_sample() -> None:
    run = Run()
    run.submit("a", [5, 6], max_tokens=3, forced={"text": "<20><21>"}, refuse=[20])
    run.submit("b", [5, 6], max_tokens=3, forced={"text": "no tokens here"})
    run.until_idle()
    for rid in ("a", "b"):
        assert run.text(rid) == "<7><8><9>"  # as without forced text
        assert run.done(rid)["finish_reason"] == "length"


class SilentToken(FakeEngine):
    """Token 7 spells nothing (as a control token's piece does)."""

    def piece(self, token: int) -> bytes:
        return b"" if token == 7 else super().piece(token)


def test_the_id_of_a_last_token_with_no_text_is_still_sent() -> None:
    run = Run(engine=SilentToken())
    run.submit("a", [3], max_tokens=4, token_ids=True)  # 4, 5, 6, then 7: no text
    run.submit("b", [5], max_tokens=4, token_ids=True)  # 6, then 7 mid-answer, 8, 9
    run.until_idle()
    for rid, ids, text in (("a", [4, 5, 6, 7], "<4><5><6>"), ("b", [6, 7, 8, 9], "<6><8><9>")):
        assert [t for f in run.of(rid, "token") for t in f.get("ids", [])] == ids
        assert run.text(rid) == text


def test_an_end_before_a_required_text_is_replaced_by_it() -> None:
    run = Run()  # the fake samples last + 1; 0 (after 49) is its end of sequence
    required = {
        "text": "<9><30><31>",
        "start": r"^[\s\S]*?(<9>)[\s\S]*$",
        "marker": "<9>",
        "required": True,
    }
    run.submit("a", [47], max_tokens=6, forced=required)
    run.submit("b", [47], max_tokens=6, forced={**required, "required": False})
    run.until_idle()
    # 48 and 49 sampled, then the end: the required text is written instead, and the
    # model goes on from it.
    assert run.text("a") == "<48><49><9><30><31><32>"
    assert run.done("a")["finish_reason"] == "length"
    assert run.text("b") == "<48><49>"  # not required: it ends
    assert run.done("b")["finish_reason"] == "stop"
