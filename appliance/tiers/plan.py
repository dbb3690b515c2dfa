"""The tier policy: which model sits in which tier, as pure functions over plain data.

Tiers, fastest first:

- ``hot``: loaded in an engine worker (VRAM on a GPU device, RAM for a CPU engine);
  counted against the hot budget of its ``device``.
- ``warm``: weights resident in host RAM (page cache), no engine; counted against
  the warm budget.
- ``cold``: a file in the local store.
- ``remote``: not pulled yet. The policy never moves anything to remote.

Nothing here does I/O or reads a clock: ``now`` is passed in, the state is a list
of `ModelState`, and a plan is a list of `Move` that the manager carries out in
order (`apply` gives the states after it, for tests and dry runs).

Rules kept by every plan:

- A busy model (serving, loading, being moved) is never moved.
- A pinned model is never demoted below its pin. A model pinned ``warm`` holds its
  warm room (``warm_bytes``) while it is hot too, so it can always fall back to
  warm without evicting anything; a model pinned ``hot`` holds no warm room.
- No budget is exceeded, neither at the end of a plan nor after any of its moves
  (given a state that was within budget): evictions come first (warm to cold, then
  hot to warm or cold), the promoted model last.
- Victims are taken cheapest `value` first, and only as many as needed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from appliance.tiers.policy import GiB, fmt_bytes

__all__ = [
    "TIERS",
    "Budgets",
    "GiB",
    "ModelState",
    "Move",
    "NoRoom",
    "Pin",
    "PlanError",
    "Room",
    "Tier",
    "Usage",
    "apply",
    "check_invariants",
    "fmt_duration",
    "plan_idle",
    "plan_pins",
    "plan_promotion",
    "usage",
    "value",
]

Tier = Literal["hot", "warm", "cold", "remote"]
Pin = Literal["hot", "warm"]
TIERS: tuple[Tier, ...] = ("hot", "warm", "cold", "remote")
_RANK: dict[str, int] = {t: i for i, t in enumerate(TIERS)}


@dataclass(frozen=True)
class ModelState:
    name: str
    tier: Tier
    device: str  # device it runs on when hot ("cpu", "cuda:0", ...)
    hot_bytes: int  # memory it needs/holds on `device` when hot (measured or estimated)
    warm_bytes: int  # host RAM its weights take when warm (the file size)
    pin: Pin | None = None  # never demoted below its pin
    busy: bool = False  # serving, loading or being moved: never moved by a plan
    last_used: float = 0.0  # seconds (monotonic) of the last request
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


class PlanError(Exception):
    """A plan was asked for something it cannot do (unknown or busy target)."""


class NoRoom(PlanError):
    """The target cannot fit, even after every allowed eviction; the message says why."""


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


# --- budgets and invariants ----------------------------------------------------------------


def _rank(t: str) -> int:
    return _RANK[t]


def _holds_warm(m: ModelState) -> bool:
    """Counts against the warm budget: warm, or hot and pinned warm (room held)."""
    return m.tier == "warm" or (m.tier == "hot" and m.pin == "warm")


def _pin_allows(m: ModelState, dst: Tier) -> bool:
    return m.pin is None or _rank(dst) <= _rank(m.pin)


def usage(models: Iterable[ModelState], budgets: Budgets) -> Usage:
    """Bytes used and free per hot device and for warm.

    A device with hot models but no budget appears with a budget of 0.
    """
    hot_used: dict[str, int] = dict.fromkeys(budgets.hot, 0)
    warm_used = 0
    for m in models:
        if m.tier == "hot":
            hot_used[m.device] = hot_used.get(m.device, 0) + m.hot_bytes
        if _holds_warm(m):
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
            names = ", ".join(m.name for m in models if m.tier == "hot" and m.device == dev)
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
        if m.pin is not None and _rank(m.tier) > _rank(m.pin):
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


# --- planning ------------------------------------------------------------------------------


def _pick(
    candidates: Sequence[ModelState], size: Callable[[ModelState], int], short: int
) -> list[ModelState] | None:
    """Victims from ``candidates`` (cheapest first) freeing at least ``short`` bytes.

    Greedy in the given order, then the most valuable picks that turn out not to be
    needed are dropped again, so every victim left is necessary. None: not enough.
    """
    if short <= 0:
        return []
    chosen: list[ModelState] = []
    got = 0
    for c in candidates:
        if got >= short:
            break
        chosen.append(c)
        got += size(c)
    if got < short:
        return None
    for c in reversed(list(chosen)):
        if got - size(c) >= short:
            chosen.remove(c)
            got -= size(c)
    return chosen


def _describe_blocker(m: ModelState) -> str:
    if m.busy:
        return f"{m.name} is busy"
    return f"{m.name} is pinned {m.pin}"


class _Planner:
    """A state being changed by a plan, with the moves so far (evictions only)."""

    def __init__(self, models: Iterable[ModelState], budgets: Budgets, now: float) -> None:
        self.budgets = budgets
        self.now = now
        self.state: dict[str, ModelState] = {}
        for m in models:
            if m.name in self.state:
                raise ValueError(f"model {m.name} appears twice")
            self.state[m.name] = m
        self.to_cold: list[Move] = []  # warm -> cold, carried out first
        self.demoted: list[tuple[ModelState, Move]] = []  # hot -> warm/cold, then
        self.moved: set[str] = set()
        self.keep: set[str] = set()  # never a victim (the target)

    def key(self, m: ModelState) -> tuple[float, float, str]:
        return (value(m, self.now), m.last_used, m.name)

    def hot_free(self, device: str) -> int:
        used = sum(
            m.hot_bytes for m in self.state.values() if m.tier == "hot" and m.device == device
        )
        return self.budgets.hot.get(device, 0) - used

    def warm_free(self) -> int:
        return self.budgets.warm - sum(m.warm_bytes for m in self.state.values() if _holds_warm(m))

    def move(self, m: ModelState, dst: Tier, reason: str) -> None:
        mv = Move(m.name, m.tier, dst, reason)
        if m.tier == "warm":
            self.to_cold.append(mv)
        else:
            self.demoted.append((m, mv))
        self.state[m.name] = replace(m, tier=dst)
        self.moved.add(m.name)

    def moves(self) -> list[Move]:
        hot = sorted(self.demoted, key=lambda d: self.key(d[0]))
        return [*self.to_cold, *(mv for _, mv in hot)]

    def make_warm_room(self, need: int, for_model: ModelState, below_value: float | None) -> bool:
        """Demote warm models to cold until ``need`` bytes are free in warm.

        Only unpinned, idle models not touched by this plan, and (when
        ``below_value`` is given) only those worth less than that. False, and
        nothing moved, when that is not enough.
        """
        free = self.warm_free()
        if need <= free:
            return True
        cands = sorted(
            (
                m
                for m in self.state.values()
                if m.tier == "warm"
                and m.pin is None
                and not m.busy
                and m.name != for_model.name
                and m.name not in self.moved
                and m.name not in self.keep
                and (below_value is None or value(m, self.now) < below_value)
            ),
            key=self.key,
        )
        chosen = _pick(cands, lambda m: m.warm_bytes, need - free)
        if chosen is None:
            return False
        reason = (
            f"evicted from warm to make room for {for_model.name}: needs "
            f"{fmt_bytes(need)} of host RAM, {fmt_bytes(free)} free"
        )
        for c in chosen:
            self.move(c, "cold", reason)
        return True

    def demote_hot(self, m: ModelState, reason: str, *, allow_warm: bool = True) -> None:
        """Hot -> warm when warm has (or can be made) room, else -> cold. Pins kept."""
        if m.pin == "warm":  # its warm room is held while it is hot
            self.move(m, "warm", reason)
            return
        if allow_warm and self.make_warm_room(m.warm_bytes, m, below_value=value(m, self.now)):
            self.move(m, "warm", reason)
            return
        self.move(m, "cold", f"{reason} (no room in warm)" if allow_warm else reason)

    def reserve_warm(self, t: ModelState, what: str) -> None:
        need, budget = t.warm_bytes, self.budgets.warm
        if need > budget:
            raise NoRoom(
                f"{what}: needs {fmt_bytes(need)} of host RAM, more than the whole warm "
                f"budget of {fmt_bytes(budget)}"
            )
        free = self.warm_free()
        if not self.make_warm_room(need, t, below_value=None):
            blockers = [
                _describe_blocker(m)
                for m in self.state.values()
                if m.name != t.name and _holds_warm(m) and (m.busy or m.pin is not None)
            ]
            raise NoRoom(
                f"{what}: needs {fmt_bytes(need)} of host RAM, warm budget "
                f"{fmt_bytes(budget)}, {fmt_bytes(free)} free; could not make room: "
                f"{', '.join(blockers) or 'nothing else can be moved'}"
            )

    def check_hot_budget(self, t: ModelState) -> int:
        """The hot budget of the target's device; NoRoom when it could never fit."""
        dev, need = t.device, t.hot_bytes
        if dev not in self.budgets.hot:
            raise NoRoom(
                f"cannot load {t.name} on {dev}: needs {fmt_bytes(need)}, and {dev} has no "
                "hot budget"
            )
        budget = self.budgets.hot[dev]
        if need > budget:
            raise NoRoom(
                f"cannot load {t.name} on {dev}: needs {fmt_bytes(need)}, more than the whole "
                f"budget of {fmt_bytes(budget)}"
            )
        return budget

    def reserve_hot(self, t: ModelState) -> None:
        dev, need = t.device, t.hot_bytes
        what = f"cannot load {t.name} on {dev}"
        budget = self.check_hot_budget(t)
        free = self.hot_free(dev)
        on_dev = [
            m
            for m in self.state.values()
            if m.tier == "hot" and m.device == dev and m.name != t.name
        ]
        cands = sorted((m for m in on_dev if not m.busy and m.pin != "hot"), key=self.key)
        chosen = _pick(cands, lambda m: m.hot_bytes, need - free)
        if chosen is None:
            blockers = [_describe_blocker(m) for m in on_dev if m.busy or m.pin == "hot"]
            raise NoRoom(
                f"{what}: needs {fmt_bytes(need)}, budget {fmt_bytes(budget)}, "
                f"{fmt_bytes(free)} free; could not make room: "
                f"{', '.join(blockers) or 'nothing else can be moved'}"
            )
        reason = f"evicted to make room for {t.name}: needs {fmt_bytes(need)} on {dev}, "
        reason += f"{fmt_bytes(free)} free"
        # The most valuable victims get the warm room first.
        for c in sorted(chosen, key=self.key, reverse=True):
            self.demote_hot(c, reason)


def plan_promotion(
    models: Sequence[ModelState],
    target: str,
    dst: Tier,
    budgets: Budgets,
    now: float,
    reason: str = "requested",
) -> list[Move]:
    """The moves that put ``target`` into ``dst`` ("hot" or "warm"): evictions, then its own.

    Victims share the target's budget (its device for hot, warm for warm), are not
    busy and their pin allows the demotion; cheapest `value` first, only as many as
    needed. A hot victim goes to warm when warm has room (evicting cheaper warm
    models to cold for it if need be), else straight to cold. Promoting to hot needs
    no warm room, except for a model pinned warm coming from cold, which holds its
    warm room from then on. [] when the target is already in ``dst`` or faster.

    Raises NoRoom when it cannot fit even after every allowed eviction, and
    PlanError for an unknown or busy target.
    """
    if dst not in ("hot", "warm"):
        raise ValueError(f"cannot promote to {dst}")
    p = _Planner(models, budgets, now)
    t = p.state.get(target)
    if t is None:
        raise PlanError(f"unknown model {target}")
    if _rank(t.tier) <= _rank(dst):
        return []
    if t.busy:
        raise PlanError(f"{t.name} is busy")
    p.keep.add(t.name)
    if dst == "warm":
        p.reserve_warm(t, f"cannot make {t.name} warm")
    else:
        p.check_hot_budget(t)
        if t.pin == "warm" and not _holds_warm(t):
            what = f"cannot load {t.name} on {t.device} (pinned warm, it keeps its host RAM)"
            p.reserve_warm(t, what)
        p.reserve_hot(t)
    return [*p.moves(), Move(t.name, t.tier, dst, reason)]


def plan_idle(models: Sequence[ModelState], budgets: Budgets, now: float) -> list[Move]:
    """Demotions after idle time, with reasons such as "idle 5m".

    Warm models idle longer than ``warm_keep_alive_s`` go cold. Hot models idle
    longer than ``hot_keep_alive_s`` go warm when warm has room (cheaper idle warm
    models may be sent cold for it), else cold; straight to cold when they are idle
    past their warm keep-alive too. Busy models and pins are respected.
    """
    p = _Planner(models, budgets, now)

    def idle(m: ModelState) -> float:
        return max(0.0, now - m.last_used)

    for m in sorted(models, key=p.key):
        if (
            m.tier == "warm"
            and not m.busy
            and _pin_allows(m, "cold")
            and idle(m) > m.warm_keep_alive_s
        ):
            p.move(m, "cold", f"idle {fmt_duration(idle(m))}")
    expired = [
        m
        for m in models
        if m.tier == "hot"
        and not m.busy
        and _pin_allows(m, "warm")
        and idle(m) > m.hot_keep_alive_s
    ]
    for m in sorted(expired, key=p.key, reverse=True):
        to_cold = _pin_allows(m, "cold") and idle(m) > m.warm_keep_alive_s
        p.demote_hot(m, f"idle {fmt_duration(idle(m))}", allow_warm=not to_cold)
    return p.moves()


def plan_pins(
    models: Sequence[ModelState], budgets: Budgets, now: float
) -> tuple[list[Move], list[str]]:
    """The promotions that bring pinned models up to their pin (hot pins first).

    Returns (moves, problems): a pinned model that cannot be brought up is skipped,
    with the reason in ``problems``; the others are still planned.
    """
    state = list(models)
    moves: list[Move] = []
    problems: list[str] = []
    below = [m for m in models if m.pin is not None and _rank(m.tier) > _rank(m.pin)]
    below.sort(key=lambda m: (_rank(m.pin or "hot"), -value(m, now), m.name))
    for m in below:
        assert m.pin is not None
        try:
            ms = plan_promotion(state, m.name, m.pin, budgets, now, reason=f"pinned {m.pin}")
        except PlanError as e:
            problems.append(f"{m.name} is pinned {m.pin} but stays {m.tier}: {e}")
            continue
        state = apply(state, ms)
        moves.extend(ms)
    return moves, problems
