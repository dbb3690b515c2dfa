"""The scheduler over a fake recurrent engine: its sequences decode together, and a
cached state serves only a prompt that extends it whole (a state cannot be cut back)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from appliance.engines.cache_costs import CacheCosts
from appliance.engines.state_store import StateStore
from appliance.engines.turn_marks import TurnMarkers
from tests.engines.fake_engine import FakeEngine
from tests.engines.test_scheduler import Run


class Recurrent(FakeEngine):
    """Mamba's rules: a sequence is cleared whole or not at all, and never copied."""

    can_truncate = False

    def __init__(self, n_seq_max: int = 3) -> None:
        super().__init__(n_seq_max=n_seq_max, n_vocab=200, prefix_copy=False)

    def seq_truncate(self, seq_id: int, n_keep: int) -> None:
        held = self.kv.get(seq_id, [])
        assert n_keep <= 0 or n_keep >= len(held), f"cut {seq_id} from {len(held)} to {n_keep}"
        super().seq_truncate(seq_id, n_keep)

    def seq_restore(self, seq_id: int, data: bytes) -> bool:
        self.restored = getattr(self, "restored", 0) + 1
        return super().seq_restore(seq_id, data)


DOC = list(range(1, 31))


def with_states(tmp_path: Path, n_seq_max: int, **kw: object) -> tuple[Recurrent, StateStore, Run]:
    """A one-slot run over a recurrent engine with saved states."""
    engine = Recurrent(n_seq_max=n_seq_max)
    states = StateStore("model|ctx=64", ram_bytes=1 << 20, disk_dir=tmp_path, disk_bytes=1 << 20)
    return engine, states, Run(engine=engine, slots=1, states=states, **kw)


def test_a_recurrent_models_sequences_decode_together() -> None:
    run = Run(engine=Recurrent(), slots=3)
    for rid, first in (("a", 10), ("b", 50), ("c", 90)):
        run.submit(rid, [first, first + 1])
    run.until_idle()
    assert run.text("a") == "<12><13><14><15>"
    assert run.text("b") == "<52><53><54><55>"
    assert run.text("c") == "<92><93><94><95>"
    assert max(len(step) for step in run.engine.steps) == 3


def test_a_cached_state_serves_only_a_prompt_that_extends_it_whole() -> None:
    run = Run(engine=Recurrent(), slots=2)
    run.submit("a", [*DOC, 40])
    run.until_idle()
    assert run.text("a") == "<41><42><43><44>"
    # The entry holds what was read: the prompt and the answer less its last token.
    held = [*DOC, 40, 41, 42, 43]
    assert [e.tokens for e in run.scheduler.kv.index.entries.values()] == [held]

    run.submit("same", [*DOC, 40])  # the entry is longer than this prompt: not cut back
    run.submit("partial", [*DOC, 99])  # shares 30 tokens, but not all of the entry
    run.until_idle()
    assert run.done("same")["cached_tokens"] == 0
    assert run.done("partial")["cached_tokens"] == 0
    assert run.text("same") == "<41><42><43><44>"
    assert run.text("partial") == "<100><101><102><103>"

    run.submit("next turn", [*DOC, 40, 41, 42, 43, 44, 7])
    run.until_idle()
    assert run.done("next turn")["cached_tokens"] == 34
    assert run.text("next turn") == "<8><9><10><11>"


def test_a_saved_recurrent_state_comes_back_only_whole(tmp_path: Path) -> None:
    engine, states, run = with_states(tmp_path, 1)
    run.submit("doc", [*DOC, 40])
    run.until_idle()
    run.submit("other", [7] * 20)  # takes the one sequence: the doc's state is saved
    run.until_idle()
    finished = [*DOC, 40, 41, 42, 43]
    assert finished in [s.tokens for s in states.states]

    run.submit("whole", [*finished, 44, 45])
    run.until_idle()
    assert run.done("whole")["cached_tokens"] == 34
    assert engine.restored == 1
    assert run.text("whole") == "<46><47><48><49>"


def test_a_recurrent_prompt_is_saved_before_its_last_token(tmp_path: Path) -> None:
    engine, states, run = with_states(tmp_path, 2)
    run.submit("doc", [*DOC, 40])
    run.until_idle()
    # The prompt was read up to its last token, saved there, then the last token read.
    # (The fake engine's steps hold 16 tokens.)
    assert [[len(e.tokens) for e in step] for step in engine.steps[:3]] == [[16], [14], [1]]
    assert DOC in [s.tokens for s in states.states]

    # Asked again: the finished sequence is longer than the prompt, the checkpoint is not.
    run.submit("retry", [*DOC, 40])
    run.until_idle()
    assert run.done("retry")["cached_tokens"] == 30
    assert run.text("retry") == run.text("doc") == "<41><42><43><44>"
    # A next turn whose template renders the answer otherwise: from the checkpoint too.
    run.submit("re-rendered", [*DOC, 40, 99, 98, 7])
    run.until_idle()
    assert run.done("re-rendered")["cached_tokens"] == 30
    assert run.text("re-rendered") == "<8><9><10><11>"


def test_a_short_prompt_is_read_in_one_piece_and_not_saved(tmp_path: Path) -> None:
    costs = CacheCosts(min_saved_s=0, min_saved_tokens=100, measure=False)
    engine, states, run = with_states(tmp_path, 3, costs=costs)
    run.submit("doc", [*DOC, 40])
    run.until_idle()
    assert [[len(e.tokens) for e in step] for step in engine.steps[:2]] == [[16], [15]]
    assert not states.states


def test_a_prompt_served_from_the_cache_is_saved_too(tmp_path: Path) -> None:
    costs = CacheCosts(min_saved_s=0, min_saved_tokens=32, measure=False)
    _, states, run = with_states(tmp_path, 2, costs=costs)
    run.submit("first", [*DOC, 40])  # 30 tokens before its last: too short to save
    run.until_idle()
    assert not states.states
    run.submit("next", [*DOC, 40, 41, 42, 43, 44, 7])  # 34 from the cache, 36 in all
    run.until_idle()
    assert run.done("next")["cached_tokens"] == 34
    # What a state before its last token saves is all 35 tokens, not the one read here.
    assert [*DOC, 40, 41, 42, 43, 44] in [s.tokens for s in states.states]


class ReasoningChat(Recurrent):
    """A template whose generation prompt opens a reasoning block (tokens 90 91, as Qwen3.5's
    `<|im_start|>assistant\\n<think>\\n`) and whose history shows an answer without it."""

    def render_chat(
        self,
        messages: Sequence[dict[str, Any]],
        tools: list[dict[str, Any]] | None = None,
        parallel: bool = True,
        variables: dict[str, Any] | None = None,
    ) -> tuple[str, bool]:
        turns = " ".join(str(m["content"]) for m in messages)
        return turns + " 90 91", True

    def turn_markers(self, variables: Mapping[str, Any] | None = None) -> TurnMarkers:
        return TurnMarkers(opening=" 90 91")


def chat(run: Run, request_id: str, *contents: list[int]) -> None:
    messages = [{"role": "user", "content": " ".join(map(str, c))} for c in contents]
    run.scheduler.submit(
        {
            "type": "generate",
            "id": request_id,
            "mode": "chat",
            "messages": messages,
            "params": {"max_tokens": 4},
        }
    )
    run.until_idle()


def test_a_chat_is_saved_where_its_history_ends_and_the_next_turn_starts_there(
    tmp_path: Path,
) -> None:
    engine = ReasoningChat(n_seq_max=2)
    states = StateStore("model|ctx=64", ram_bytes=1 << 20, disk_dir=tmp_path, disk_bytes=1 << 20)
    run = Run(engine=engine, slots=1, states=states)
    chat(run, "first", DOC)
    assert DOC in [s.tokens for s in states.states]  # not [*DOC, 90]: the history's end
    assert run.text("first") == "<92><93><94><95>"

    # The next turn shows the answer without the opened block: neither the finished
    # sequence nor a state before the last prompt token is a prefix of it.
    answer = [92, 93, 94, 95]
    chat(run, "next", DOC, answer, [7, 8])
    assert run.done("next")["cached_tokens"] == len(DOC)
    assert [*DOC, *answer, 7, 8] in [s.tokens for s in states.states]
    # A retry reads the generation prompt again, from the same state.
    chat(run, "retry", DOC, answer, [7, 8])
    assert run.done("retry")["cached_tokens"] == len(DOC) + 6
    assert run.text("retry") == run.text("next") == "<92><93><94><95>"


def test_a_prompt_that_does_not_end_with_the_generation_prompt_is_saved_before_its_last_token(
    tmp_path: Path,
) -> None:
    class Prefill(ReasoningChat):
        def turn_markers(self, variables: Mapping[str, Any] | None = None) -> TurnMarkers:
            return TurnMarkers(opening=" 89 90 91")  # what render_chat writes does not end so

    states = StateStore("model|ctx=64", ram_bytes=1 << 20, disk_dir=tmp_path, disk_bytes=1 << 20)
    run = Run(engine=Prefill(n_seq_max=2), slots=1, states=states)
    chat(run, "first", DOC)
    assert [*DOC, 90] in [s.tokens for s in states.states]


def test_a_prefix_two_prompts_share_is_saved_for_the_prompts_after_them(tmp_path: Path) -> None:
    costs = CacheCosts(min_saved_s=0, min_saved_tokens=8, measure=False)
    _, states, run = with_states(tmp_path, 2, costs=costs)
    system = list(range(100, 140))  # a system prompt and tools every conversation starts with
    run.submit("a", [*system, 50, 51, 52])
    run.until_idle()
    assert system not in [s.tokens for s in states.states]  # nobody shared it yet
    run.submit("b", [*system, 60, 61])
    run.until_idle()
    assert run.done("b")["cached_tokens"] == 0
    assert system in [s.tokens for s in states.states]  # where b parted from a
    run.submit("c", [*system, 70, 71, 72])
    run.until_idle()
    assert run.done("c")["cached_tokens"] == len(system)
    assert run.text("c") == "<73><74><75><76>"
    # c parted from the others where it started, and the end of its prompt is too close to
    # that state to pay for a stop (a pass over the weights): it saved nothing more.
    assert [s.tokens for s in states.states if s.tokens[40:41] == [70]] == []
    assert [s.tokens for s in states.states].count(system) == 1


class RoleChat(Recurrent):
    """A template that opens a system turn with token 70, a user's with 80, and the answer
    with 90 91."""

    def render_chat(
        self,
        messages: Sequence[dict[str, Any]],
        tools: list[dict[str, Any]] | None = None,
        parallel: bool = True,
        variables: dict[str, Any] | None = None,
    ) -> tuple[str, bool]:
        opens = {"system": "70", "user": "80", "assistant": "85"}
        turns = " ".join(f"{opens[m['role']]} {m['content']}" for m in messages)
        return turns + " 90 91", False

    def turn_markers(self, variables: Mapping[str, Any] | None = None) -> TurnMarkers:
        return TurnMarkers(opening=" 90 91", user_start=" 80")


def test_a_chat_is_saved_where_its_user_turn_starts_and_close_stops_are_one(
    tmp_path: Path,
) -> None:
    costs = CacheCosts(min_saved_s=0, min_saved_tokens=8, measure=False)
    states = StateStore("model|ctx=64", ram_bytes=1 << 20, disk_dir=tmp_path, disk_bytes=1 << 20)
    engine = RoleChat(n_seq_max=2)
    run = Run(engine=engine, slots=1, states=states, costs=costs)

    def ask(request_id: str, question: list[int]) -> None:
        messages = [
            {"role": "system", "content": " ".join(map(str, DOC))},
            {"role": "user", "content": " ".join(map(str, question))},
        ]
        frame = {"type": "generate", "id": request_id, "mode": "chat", "messages": messages}
        run.scheduler.submit({**frame, "params": {"max_tokens": 4}})
        run.until_idle()

    ask("first", [1, 2, 3])
    # Its user turn starts after 31 tokens and its history ends 4 later: one stop, the
    # first (a pass over the weights each), and the prompt read in two pieces.
    assert [s.tokens for s in states.states] == [[70, *DOC]]
    assert [[len(e.tokens) for e in step] for step in engine.steps[:3]] == [[16], [15], [6]]
    ask("next conversation", [4, 5])
    assert run.done("next conversation")["cached_tokens"] == 31
    assert run.text("next conversation") == "<92><93><94><95>"


class ChatMLLike(RoleChat):
    """RoleChat whose history shows an answer after the generation prompt, as ChatML's
    does: a next turn extends the last sequence whole."""

    def render_chat(
        self,
        messages: Sequence[dict[str, Any]],
        tools: list[dict[str, Any]] | None = None,
        parallel: bool = True,
        variables: dict[str, Any] | None = None,
    ) -> tuple[str, bool]:
        opens = {"system": "70", "user": "80", "assistant": "90 91"}
        turns = " ".join(f"{opens[m['role']]} {m['content']}" for m in messages)
        return turns + " 90 91", False


def test_a_next_turn_that_extends_the_last_sequence_is_not_stopped_behind_it(
    tmp_path: Path,
) -> None:
    """The next turn takes the finished sequence over, past its first user turn's start:
    no stop is planned where it already stands (it never moved again, a request without
    an answer)."""
    costs = CacheCosts(min_saved_s=0, min_saved_tokens=8, measure=False)
    states = StateStore("model|ctx=64", ram_bytes=1 << 20, disk_dir=tmp_path, disk_bytes=1 << 20)
    run = Run(engine=ChatMLLike(n_seq_max=2), slots=1, states=states, costs=costs)
    system = {"role": "system", "content": " ".join(map(str, DOC))}
    first = [system, {"role": "user", "content": "1 2 3"}]
    frame = {"type": "generate", "mode": "chat", "params": {"max_tokens": 4}}
    run.scheduler.submit({**frame, "id": "first", "messages": first})
    run.until_idle()
    assert run.text("first") == "<92><93><94><95>"
    answer = {"role": "assistant", "content": "92 93 94 95"}
    turn = [*first, answer, {"role": "user", "content": "7 8"}]
    run.scheduler.submit({**frame, "id": "next", "messages": turn})
    run.until_idle()
    assert run.done("next")["cached_tokens"] == 40  # the first prompt and 3 answer tokens
    assert run.text("next") == "<92><93><94><95>"
