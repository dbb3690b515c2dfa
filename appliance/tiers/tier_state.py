"""The state the tier planner works on, as plain data: each model's tier and footprint, the
budgets, the bytes used against them, the rules a state must keep, and each model's value
(what keeping it where it is saves). Pure: `now` is passed in; `tiers.plan` turns a state
into moves.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from appliance.tiers.policy import fmt_bytes

Tier = Literal["hot", "warm", "cold", "remote"]
Pin = Literal["hot", "warm"]
TIERS: tuple[Tier, ...] = ("hot", "warm", "cold", "remote")
_RANK: dict[str, int] = {t: i for i, t in enumerate(TIERS)}
HOST = "cpu"  # the device whose hot budget is the host's RAM


@dataclass(frozen=True)
class ModelState:
    name: str
    tier: Tier
    device: str  # device it runs on when hot ("cpu", "cuda:0", ...)
    hot_bytes: int  # memory it needs/holds on `device` when hot (measured or estimated)
    warm_bytes: int  # host RAM its weights take when warm (the file size)
    # Host RAM it also holds when hot on a GPU (its worker's runtime, the layers left on the
    # CPU, its saved prompt states), counted on the HOST's hot budget. 0 for a CPU model,
    # whose `hot_bytes` are already host RAM.
    host_bytes: int = 0
    pin: Pin | None = None  # never demoted below its pin
    busy: bool = False  # serving, loading or being moved: never moved by a plan
    last_used: float = 0.0  # seconds (monotonic) of the last request
    warm_since: float = 0.0  # seconds (monotonic) it became warm; its warm time counts from
    uses: float = 0.0  # request frequency (e.g. a decayed count)
    reload_s: float = 1.0  # measured or estimated seconds to bring it back hot
    hot_keep_alive_s: float = 300.0  # idle time before hot -> warm (inf = never)
    warm_keep_alive_s: float = 3600.0  # idle time before warm -> cold (inf = never)


@dataclass(frozen=True)
class Budgets:
    hot: Mapping[str, int]  # bytes per device; a device missing here has no budget
    warm: int  # bytes of host RAM for warm weights


@dataclass(frozen=True)
class Move:
    model: str
    src: Tier
    dst: Tier
    reason: str


@dataclass(frozen=True)
class Room:
    budget: int
    used: int

    @property
    def free(self) -> int:
        return self.budget - self.used

    def to_dict(self) -> dict[str, int]:
        return {"budget": self.budget, "used": self.used, "free": self.free}


@dataclass(frozen=True)
class Usage:
    hot: dict[str, Room]  # per device: every budgeted device, plus any device with a hot model
    warm: Room

    def to_dict(self) -> dict[str, object]:
        return {
            "hot": {dev: room.to_dict() for dev, room in self.hot.items()},
            "warm": self.warm.to_dict(),
        }


# --- value and formatting ------------------------------------------------------------------

_RECENCY_S = 60.0


def value(m: ModelState, now: float) -> float:
    """How valuable it is to keep ``m`` where it is; the lowest value is evicted first.

    ``value = max(reload_s, 0.01) * (1 + uses) / (60 + idle)``, with
    ``idle = max(0, now - last_used)`` in seconds.

    ``(1 + uses) / (60 + idle)`` estimates the request rate from frequency and
    recency: many uses keep a model valuable, but the estimate falls as it stays
    idle (a model used 10 times and idle 10 minutes is worth about as much as one
    used once a minute ago). The 60 s offset keeps the first idle seconds from
    dominating. Multiplied by the reload cost it is the expected reload time saved
    per second by keeping the model: slow-to-reload models are kept longer. Size
    is not part of the value; that only as many victims as needed are taken keeps
    small cheap models from being evicted for nothing.
    """
    idle = max(0.0, now - m.last_used)
    return max(m.reload_s, 0.01) * (1.0 + max(m.uses, 0.0)) / (_RECENCY_S + idle)


def fmt_duration(seconds: float) -> str:
    """Short human durations: "90s", "5m", "1h", "1h30m", "3d"."""
    if math.isinf(seconds) or math.isnan(seconds):
        return "forever"
    s = max(0, int(seconds))
    if s < 120:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 48 * 3600:
        h, m = divmod(s // 60, 60)
        return f"{h}h" if m == 0 else f"{h}h{m}m"
    return f"{s // 86400}d"


# --- usage and invariants ----------------------------------------------------------------


def rank(t: str) -> int:
    return _RANK[t]


def holds_warm(m: ModelState) -> bool:
    """Counts against the warm budget: warm, or hot and pinned warm (room held)."""
    return m.tier == "warm" or (m.tier == "hot" and m.pin == "warm")


def pin_allows(m: ModelState, dst: Tier) -> bool:
    return m.pin is None or rank(dst) <= rank(m.pin)


def hot_use(m: ModelState) -> dict[str, int]:
    """Bytes per device that `m` holds when hot: its device's and, on a GPU, the host's."""
    use = {m.device: m.hot_bytes}
    if m.device != HOST and m.host_bytes > 0:
        use[HOST] = m.host_bytes
    return use


def usage(models: Iterable[ModelState], budgets: Budgets) -> Usage:
    """Bytes used and free per hot device and for warm.

    A device with hot models but no budget appears with a budget of 0.
    """
    hot_used: dict[str, int] = dict.fromkeys(budgets.hot, 0)
    warm_used = 0
    for m in models:
        if m.tier == "hot":
            for dev, n in hot_use(m).items():
                hot_used[dev] = hot_used.get(dev, 0) + n
        if holds_warm(m):
            warm_used += m.warm_bytes
    return Usage(
        hot={dev: Room(budgets.hot.get(dev, 0), used) for dev, used in hot_used.items()},
        warm=Room(budgets.warm, warm_used),
    )


def check_invariants(models: Sequence[ModelState], budgets: Budgets) -> list[str]:
    """The rules a state breaks, as text: budgets exceeded, pinned models below their pin."""
    problems: list[str] = []
    seen: set[str] = set()
    for m in models:
        if m.name in seen:
            problems.append(f"{m.name} appears twice")
        seen.add(m.name)
    u = usage(models, budgets)
    for dev, room in u.hot.items():
        if dev not in budgets.hot:
            names = ", ".join(m.name for m in models if m.tier == "hot" and dev in hot_use(m))
            problems.append(f"{names} hot on {dev}, which has no hot budget")
        elif room.used > room.budget:
            problems.append(
                f"hot budget on {dev} exceeded: {fmt_bytes(room.used)} used of "
                f"{fmt_bytes(room.budget)}"
            )
    if u.warm.used > u.warm.budget:
        problems.append(
            f"warm budget exceeded: {fmt_bytes(u.warm.used)} used of {fmt_bytes(u.warm.budget)}"
        )
    for m in models:
        if m.pin is not None and rank(m.tier) > rank(m.pin):
            problems.append(f"{m.name} is pinned {m.pin} but is {m.tier}")
    return problems


def apply(models: Sequence[ModelState], moves: Iterable[Move]) -> list[ModelState]:
    """The states after the moves, in the same order as ``models``."""
    out = list(models)
    index = {m.name: i for i, m in enumerate(out)}
    for mv in moves:
        i = index.get(mv.model)
        if i is None:
            raise ValueError(f"move of unknown model {mv.model}")
        if out[i].tier != mv.src:
            raise ValueError(f"move of {mv.model} from {mv.src}, but it is {out[i].tier}")
        out[i] = replace(out[i], tier=mv.dst)
    return out
