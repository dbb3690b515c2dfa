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

from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from functools import partial

from appliance.tiers.policy import fmt_bytes
from appliance.tiers.tier_state import (
    Budgets,
    ModelState,
    Move,
    Tier,
    apply,
    fmt_duration,
    holds_warm,
    hot_use,
    pin_allows,
    rank,
    value,
)

__all__ = ["NoRoom", "PlanError", "plan_idle", "plan_pins", "plan_promotion"]


class PlanError(Exception):
    """A plan was asked for something it cannot do (unknown or busy target)."""


class NoRoom(PlanError):
    """The target cannot fit, even after every allowed eviction; the message says why.
    `transient`: models busy serving hold the room, so it may fit once they finish."""

    def __init__(self, message: str, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


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
        used = sum(hot_use(m).get(device, 0) for m in self.state.values() if m.tier == "hot")
        return self.budgets.hot.get(device, 0) - used

    def warm_free(self) -> int:
        return self.budgets.warm - sum(m.warm_bytes for m in self.state.values() if holds_warm(m))

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
                if m.name != t.name and holds_warm(m) and (m.busy or m.pin is not None)
            ]
            busy = any(m.busy for m in self.state.values() if m.name != t.name and holds_warm(m))
            raise NoRoom(
                f"{what}: needs {fmt_bytes(need)} of host RAM, warm budget "
                f"{fmt_bytes(budget)}, {fmt_bytes(free)} free; could not make room: "
                f"{', '.join(blockers) or 'nothing else can be moved'}",
                transient=busy,
            )

    def check_hot_budget(self, t: ModelState) -> None:
        """NoRoom when the target could never fit: on its device, or (a GPU model) in the
        host RAM it also holds."""
        for dev, need in hot_use(t).items():
            where = _where(t, dev)
            if dev not in self.budgets.hot:
                raise NoRoom(
                    f"cannot load {t.name} on {t.device}: needs {fmt_bytes(need)}{where}, and "
                    f"{dev} has no hot budget"
                )
            budget = self.budgets.hot[dev]
            if need > budget:
                raise NoRoom(
                    f"cannot load {t.name} on {t.device}: needs {fmt_bytes(need)}{where}, more "
                    f"than the whole budget of {fmt_bytes(budget)}"
                )

    def reserve_hot(self, t: ModelState) -> None:
        """Demote the cheapest hot models holding room where the target needs it: on its
        device first, then (a GPU model) in host RAM, where CPU models and other GPU
        models' host shares count."""
        self.check_hot_budget(t)
        for dev, need in hot_use(t).items():
            budget, free = self.budgets.hot[dev], self.hot_free(dev)
            holders = [
                m
                for m in self.state.values()
                if m.tier == "hot" and m.name != t.name and hot_use(m).get(dev, 0) > 0
            ]
            cands = sorted((m for m in holders if not m.busy and m.pin != "hot"), key=self.key)
            chosen = _pick(cands, partial(_held_on, dev), need - free)
            where = _where(t, dev)
            if chosen is None:
                blockers = [_describe_blocker(m) for m in holders if m.busy or m.pin == "hot"]
                raise NoRoom(
                    f"cannot load {t.name} on {t.device}: needs {fmt_bytes(need)}{where}, "
                    f"budget {fmt_bytes(budget)}, {fmt_bytes(free)} free; could not make room: "
                    f"{', '.join(blockers) or 'nothing else can be moved'}",
                    transient=any(m.busy for m in holders),
                )
            reason = f"evicted to make room for {t.name}: needs {fmt_bytes(need)}"
            reason += f"{where or f' on {dev}'}, {fmt_bytes(free)} free"
            # The most valuable victims get the warm room first.
            for c in sorted(chosen, key=self.key, reverse=True):
                self.demote_hot(c, reason)


def _held_on(dev: str, m: ModelState) -> int:
    return hot_use(m).get(dev, 0)


def _where(t: ModelState, dev: str) -> str:
    """'' for the target's own device; the host RAM a GPU model also needs, said so."""
    return "" if dev == t.device else f" of host RAM ({dev})"


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
    if rank(t.tier) <= rank(dst):
        return []
    if t.busy:
        raise PlanError(f"{t.name} is busy")
    p.keep.add(t.name)
    if dst == "warm":
        p.reserve_warm(t, f"cannot make {t.name} warm")
    else:
        p.check_hot_budget(t)  # before any eviction for its warm room
        if t.pin == "warm" and not holds_warm(t):
            what = f"cannot load {t.name} on {t.device} (pinned warm, it keeps its host RAM)"
            p.reserve_warm(t, what)
        p.reserve_hot(t)
    return [*p.moves(), Move(t.name, t.tier, dst, reason)]


def plan_idle(models: Sequence[ModelState], budgets: Budgets, now: float) -> list[Move]:
    """Demotions after idle time, with reasons such as "idle 5m".

    Warm models go cold after ``warm_keep_alive_s`` warm and idle (counted from when they
    became warm, or their last request if later): the warm tier's own time, as the
    setting says, not from the last request (``keep_alive`` 8 s and ``warm_keep_alive``
    8 s sent a model from hot straight to cold after 8 s). Hot models idle longer than
    ``hot_keep_alive_s`` go warm when warm has room (cheaper idle warm models may be sent
    cold for it), else cold; straight to cold when they are idle past both keep-alives
    (a daemon that was not watching). Busy models and pins are respected.
    """
    p = _Planner(models, budgets, now)

    def idle(m: ModelState) -> float:
        return max(0.0, now - m.last_used)

    def warm_idle(m: ModelState) -> float:
        return max(0.0, now - max(m.last_used, m.warm_since))

    for m in sorted(models, key=p.key):
        if (
            m.tier == "warm"
            and not m.busy
            and pin_allows(m, "cold")
            and warm_idle(m) > m.warm_keep_alive_s
        ):
            p.move(m, "cold", f"idle {fmt_duration(idle(m))}")
    expired = [
        m
        for m in models
        if m.tier == "hot" and not m.busy and pin_allows(m, "warm") and idle(m) > m.hot_keep_alive_s
    ]
    for m in sorted(expired, key=p.key, reverse=True):
        to_cold = pin_allows(m, "cold") and idle(m) > m.hot_keep_alive_s + m.warm_keep_alive_s
        p.demote_hot(m, f"idle {fmt_duration(idle(m))}", allow_warm=not to_cold)
    return p.moves()


def plan_over_budget(models: Sequence[ModelState], budgets: Budgets, now: float) -> list[Move]:
    """Demotions that bring each tier back within a budget lowered below its use: the
    least valuable idle, unpinned models first. Busy and pinned models stay; what they
    hold over the budget shows as negative free room until they can move."""
    p = _Planner(models, budgets, now)
    for dev, budget in budgets.hot.items():
        short = -p.hot_free(dev)
        if short <= 0:
            continue
        cands = sorted(
            (
                m
                for m in p.state.values()
                if m.tier == "hot" and hot_use(m).get(dev, 0) > 0 and not m.busy and m.pin != "hot"
            ),
            key=p.key,
        )
        reason = f"over the hot budget of {dev}, lowered to {fmt_bytes(budget)}"
        for m in _pick(cands, partial(_held_on, dev), short) or cands:
            p.demote_hot(m, reason)
    short = -p.warm_free()
    if short > 0:
        cands = sorted(
            (
                m
                for m in p.state.values()
                if m.tier == "warm" and m.pin is None and not m.busy and m.name not in p.moved
            ),
            key=p.key,
        )
        reason = f"over the warm budget, lowered to {fmt_bytes(budgets.warm)}"
        for m in _pick(cands, lambda m: m.warm_bytes, short) or cands:
            p.move(m, "cold", reason)
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
    below = [m for m in models if m.pin is not None and rank(m.tier) > rank(m.pin)]
    below.sort(key=lambda m: (rank(m.pin or "hot"), -value(m, now), m.name))
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
