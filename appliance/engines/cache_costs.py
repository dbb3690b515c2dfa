"""Whether saving or restoring a sequence state pays, from speeds measured on this box.

Saving a state copies its KV cells out of the engine (on a GPU, many small copies
when the cells of concurrent sequences interleave) and stalls every sequence in the
batch meanwhile; restoring reads it back, from RAM or disk. On a CPU reading a
prompt costs far more than either; on a fast GPU a few hundred tokens are read again
faster than a state is restored. So both are decided from measured prefill speed and
measured state bytes per second, and a state is kept only when it would save at least
`min_saved_s` of prompt reading.
"""

from __future__ import annotations

from dataclasses import dataclass

MIN_SAVED_TOKENS = 64  # below this a prompt is always cheap to read again
DEFAULT_STATE_BPS = 1e9  # until a restore was measured
EMA = 0.3


def _ema(old: float | None, new: float) -> float:
    return new if old is None else (1 - EMA) * old + EMA * new


@dataclass
class CacheCosts:
    min_saved_s: float = 0.05
    min_saved_tokens: int = MIN_SAVED_TOKENS
    prefill_tps: float | None = None  # prompt tokens read per second
    restore_bps: float | None = None  # state bytes restored per second (read + load)
    measure: bool = True  # False: keep the speeds given (tests)

    def saw_prefill(self, tokens: int, seconds: float) -> None:
        if self.measure and tokens >= 32 and seconds > 0:
            self.prefill_tps = _ema(self.prefill_tps, tokens / seconds)

    def saw_restore(self, nbytes: int, seconds: float) -> None:
        if self.measure and nbytes > 0 and seconds > 0:
            self.restore_bps = _ema(self.restore_bps, nbytes / seconds)

    def prefill_s(self, tokens: int) -> float:
        """Seconds to read `tokens` prompt tokens; unknown speed counts as slow (a CPU)."""
        if self.prefill_tps is None:
            return float("inf")
        return tokens / self.prefill_tps

    def worth_saving(self, tokens: int) -> bool:
        return tokens >= self.min_saved_tokens and self.prefill_s(tokens) >= self.min_saved_s

    def worth_restoring(self, nbytes: int, tokens_gained: int) -> bool:
        restore_s = nbytes / (self.restore_bps or DEFAULT_STATE_BPS)
        return restore_s < self.prefill_s(tokens_gained)
