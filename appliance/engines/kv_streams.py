"""The engine's sequences (KV streams): which one a request starts in, and what the idle
ones keep.

A request starts in the sequence holding the longest token prefix of its prompt: a cache
entry taken over or copied in the KV, or a state restored from the saved-state tiers,
whichever saves the most reading. A finished sequence stays in the KV as a cache entry
until its id or its cells are needed; then the entry of least value goes, its state
saved when reading it again would cost more than the copy.
"""

from __future__ import annotations

import sys
import time
import traceback
from collections.abc import Sequence as Tokens

from appliance.engines.cache_costs import CacheCosts
from appliance.engines.engine import BatchEngine
from appliance.engines.prefix_cache import MIN_USEFUL_PREFIX, CacheEntry, PrefixIndex
from appliance.engines.sequence import Sequence
from appliance.engines.state_store import StateStore


class NoFreeSequence(RuntimeError):
    """More active sequences than the engine holds (a scheduler bug, never a user's)."""


class KVStreams:
    def __init__(
        self,
        engine: BatchEngine,
        *,
        states: StateStore | None,
        costs: CacheCosts,
        cache_tokens: int,
    ) -> None:
        self.engine = engine
        self.states = states
        self.costs = costs
        self.cache_tokens = cache_tokens
        self.index = PrefixIndex()
        if states is not None:
            states.whole = not engine.can_truncate
        self.free_ids: list[int] = list(range(engine.n_seq_max - 1, -1, -1))

    # -- a request's sequence ----------------------------------------------------------------

    def place(self, seq: Sequence) -> None:
        """Give `seq` a sequence id, holding the longest cached prefix of its prompt."""
        engine = self.engine
        if seq.deterministic:  # computed as if alone: nothing cached stays in the KV
            for old in list(self.index.entries.values()):
                self.free_ids.append(self.evict(old))
            seq.seq_id = self.free_id()
            return
        if seq.prompt_logprobs is not None:
            seq.seq_id = self.free_id()  # every prompt token is read, to be scored
            return
        usable = len(seq.prompt) - 1  # the last prompt token is always evaluated
        entry, n = self.best(seq.prompt)
        if self.states is not None:
            saved, m = self.states.best(seq.prompt)
            m = min(m, usable)
            gain = m - n
            if (
                saved is not None
                and m >= MIN_USEFUL_PREFIX
                and gain > MIN_USEFUL_PREFIX
                and self.costs.worth_restoring(saved.size, gain)
            ):
                started = time.monotonic()
                data = self.states.load(saved)
                if data is not None and self._restore(seq, data, m):
                    self.costs.saw_restore(len(data), time.monotonic() - started)
                    return
                # The failed restore evicted entries for room (`entry` may be one): what
                # is cached now?
                entry, n = self.best(seq.prompt)
        if entry is not None and n > 0:
            entry.hits += 1
            entry.last_used = time.monotonic()
            if n >= len(entry.tokens) or not engine.prefix_copy or not self._can_free(entry.seq_id):
                # The new request extends the entry, or prefixes cannot be copied: take its
                # sequence over (what it held past the shared prefix is saved when worth it).
                self.index.remove(entry.seq_id)
                if len(entry.tokens) - n > MIN_USEFUL_PREFIX:  # a shorter tail never pays back
                    self.save(entry)
                if n < len(entry.tokens):
                    engine.seq_truncate(entry.seq_id, n)
                seq.seq_id = entry.seq_id
            else:
                seq.seq_id = self.free_id(keep=entry.seq_id)
                engine.seq_copy(entry.seq_id, seq.seq_id, n)
            seq.n_past = seq.cached_tokens = n
            return
        seq.seq_id = self.free_id()

    def best(self, prompt: Tokens[int]) -> tuple[CacheEntry | None, int]:
        """The cache entry a prompt can start from and the tokens it saves (never the
        prompt's last, which is read for its logits). A recurrent model's entry serves only
        a prompt that extends it whole: its state cannot be cut back to a shorter prefix."""
        if not self.engine.can_truncate:
            return self.index.best(prompt, whole=True)
        entry, n = self.index.best(prompt)
        return entry, min(n, len(prompt) - 1)

    def _restore(self, seq: Sequence, data: bytes, n: int) -> bool:
        for _ in range(2):
            seq_id = self.free_id()
            if self.engine.seq_restore(seq_id, data):
                if self.engine.can_truncate:  # else the state is all a prefix (`best`)
                    self.engine.seq_truncate(seq_id, n)
                seq.seq_id = seq_id
                seq.n_past = seq.cached_tokens = n
                return True
            self.free_ids.append(seq_id)
            victim = self.index.victim(time.monotonic())
            if victim is None:
                return False
            self.free_ids.append(self.evict(victim, save=False))
        return False

    def _can_free(self, keep: int) -> bool:
        return bool(self.free_ids) or any(e.seq_id != keep for e in self.index.entries.values())

    def free_id(self, keep: int | None = None) -> int:
        if self.free_ids:
            return self.free_ids.pop()
        victim = self.index.victim(time.monotonic(), keep=keep)
        if victim is None:
            raise NoFreeSequence("no free sequence: more active sequences than the engine holds")
        return self.evict(victim)

    # -- recurrent checkpoints --------------------------------------------------------------

    def plan_checkpoint(self, seq: Sequence) -> None:
        """Where a recurrent model's prompt is saved on the way, when reading that much
        again would cost more than the copy: its finished sequence serves only a prompt
        that extends it whole, and a state cannot be cut back to a prefix.

        - At a chat prompt's turn edges (`turn_marks`), or else before its last token:
          where its first user turn starts (a new conversation on the same system prompt
          and tools starts there) and where its history ends (the next turn starts there
          even when it does not extend the last one: templates drop a reasoning block,
          re-render a tool call's JSON; a retry reads only the generation prompt).
          llama-server keeps checkpoints for the same reasons.
        - Where it parts from every prompt cached or saved: a prefix other prompts share
          (a raw completion's, or a system prompt whose user turn the template does not
          mark), read once more here and by none of the prompts after it.
        """
        seq.checkpoints = []
        if (
            self.states is None
            or self.engine.can_truncate
            or seq.deterministic
            or seq.prompt_logprobs is not None
        ):
            return
        marks = seq.chat_marks or [len(seq.prompt) - 1]
        branch = self.shared_prefix(seq.prompt)
        ends = {m for m in marks if self.costs.worth_saving(m)}
        if (
            branch < len(seq.prompt) - 1
            and self.costs.worth_saving(branch)
            and branch - seq.n_past >= self.costs.min_saved_tokens  # not the next turn's
        ):
            ends.add(branch)
        # Each stop costs a pass over the weights: of two close ones, the first is enough
        # (from it, the tokens to the other are few to read again), and none close after
        # a saved state the request started from.
        held = seq.prompt[: seq.n_past]
        last = seq.n_past if held and self.states.holds(held) else 0
        for end in sorted(e for e in ends if e > seq.n_past):  # not behind where it stands
            if end - last >= self.costs.min_saved_tokens:
                seq.checkpoints.append(end)
                last = end

    def shared_prefix(self, prompt: Tokens[int]) -> int:
        """The most tokens `prompt` shares with a cache entry or a saved state."""
        _, n = self.index.best(prompt)
        return max(n, self.states.shared_prefix(prompt) if self.states is not None else 0)

    def checkpoint(self, seq: Sequence) -> None:
        """Save the state `plan_checkpoint` asked for, now that it is read."""
        seq.checkpoints.pop(0)
        if self.states is None:
            return
        try:
            self.states.put(seq.kv_tokens, self.engine.seq_save(seq.seq_id))
        except Exception:
            traceback.print_exc(file=sys.stderr)

    # -- when a request ends -----------------------------------------------------------------

    def keep(self, seq_id: int, tokens: Tokens[int]) -> None:
        """A finished sequence stays as a cache entry, within `cache_tokens` in all."""
        self.index.add(seq_id, tokens, time.monotonic())
        while self.index.cached_tokens() > self.cache_tokens and self.evict_least():
            pass

    def drop(self, seq_id: int) -> None:
        """A sequence whose KV cannot serve again is emptied and its id freed."""
        self.engine.seq_clear(seq_id)
        self.free_ids.append(seq_id)

    # -- room ----------------------------------------------------------------------------

    def evict(self, entry: CacheEntry, save: bool = True) -> int:
        """Drop a cache entry from the KV (its state saved first when worth it)."""
        self.index.remove(entry.seq_id)
        if save:
            self.save(entry)
        self.engine.seq_clear(entry.seq_id)
        return entry.seq_id

    def evict_least(self) -> bool:
        """Free the cells of the cache entry of least value; False when none is left."""
        victim = self.index.victim(time.monotonic())
        if victim is None:
            return False
        self.free_ids.append(self.evict(victim))
        return True

    def save(self, entry: CacheEntry) -> None:
        """Keep a cache entry's state in the saved-state tiers, when it is worth the copy."""
        if self.states is not None and self.costs.worth_saving(len(entry.tokens)):
            try:
                self.states.put(entry.tokens, self.engine.seq_save(entry.seq_id))
            except Exception:
                traceback.print_exc(file=sys.stderr)

    # -- idle streams ----------------------------------------------------------------------

    def idle(self) -> dict[int, int]:
        """Sequences no request runs in, with the tokens each holds."""
        held = {e.seq_id: len(e.tokens) for e in self.index.entries.values()}
        held.update((seq_id, 0) for seq_id in self.free_ids)
        return held

    def cut_back(self, seq_id: int, length: int) -> None:
        """Take an idle sequence back to `length` tokens (a step's throwaway pad); one that
        cannot be cut back loses its cache entry."""
        try:
            self.engine.seq_truncate(seq_id, length)
        except Exception:
            traceback.print_exc(file=sys.stderr)
            if self.index.remove(seq_id) is not None:
                self.free_ids.append(seq_id)
            self.engine.seq_clear(seq_id)

    def flush(self) -> None:
        """The engine is stopping: every cache entry's state goes to the saved-state tiers."""
        if self.states is None:
            return
        for entry in sorted(self.index.entries.values(), key=lambda e: -e.last_used):
            self.evict(entry)
        self.states.flush()
