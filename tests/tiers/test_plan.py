"""The tier policy over plain data: hand-written rules, then randomized sequences."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import pytest

from appliance.tiers.plan import (
    NoRoom,
    PlanError,
    plan_idle,
    plan_over_budget,
    plan_pins,
    plan_promotion,
)
from appliance.tiers.policy import GiB
from appliance.tiers.tier_state import (
    TIERS,
    Budgets,
    ModelState,
    Move,
    Pin,
    Tier,
    apply,
    check_invariants,
    fmt_duration,
    hot_use,
    usage,
    value,
)

NOW = 10_000.0
INF = math.inf


def ms(name: str, tier: Tier, hot: float = 1, warm: float | None = None, **kw: Any) -> ModelState:
    """A model of ``hot`` GiB when hot and ``warm`` GiB (default: the same) when warm."""
    kw.setdefault("device", "cpu")
    kw.setdefault("last_used", NOW - 10)
    return ModelState(
        name=name,
        tier=tier,
        hot_bytes=int(hot * GiB),
        warm_bytes=int((hot if warm is None else warm) * GiB),
        **kw,
    )


def budgets(warm: float = 0, **hot: float) -> Budgets:
    return Budgets(
        hot={dev.replace("_", ":"): int(b * GiB) for dev, b in hot.items()}, warm=int(warm * GiB)
    )


def tiers(models: Sequence[ModelState]) -> dict[str, str]:
    return {m.name: m.tier for m in models}


def moved(moves: Sequence[Move]) -> list[tuple[str, str, str]]:
    return [(m.model, m.src, m.dst) for m in moves]


def promote(
    models: list[ModelState], target: str, dst: Tier, b: Budgets
) -> tuple[list[Move], list[ModelState]]:
    moves = plan_promotion(models, target, dst, b, NOW)
    after = apply(models, moves)
    assert check_invariants(after, b) == []
    return moves, after


# --- value ---------------------------------------------------------------------------------


def test_value_weighs_recency_frequency_and_reload_cost() -> None:
    base = ms("a", "hot", last_used=NOW - 60, uses=3, reload_s=5)
    assert value(replace(base, last_used=NOW - 10), NOW) > value(base, NOW)
    assert value(replace(base, uses=10), NOW) > value(base, NOW)
    assert value(replace(base, reload_s=30), NOW) > value(base, NOW)
    # The formula in the docstring.
    assert value(base, NOW) == pytest.approx(5 * 4 / (60 + 60))
    # A clock that went backwards counts as no idle time.
    assert value(replace(base, last_used=NOW + 5), NOW) == pytest.approx(5 * 4 / 60)


def test_fmt_duration() -> None:
    assert fmt_duration(90) == "90s"
    assert fmt_duration(301) == "5m"
    assert fmt_duration(3600) == "1h"
    assert fmt_duration(5400) == "1h30m"
    assert fmt_duration(3 * 86400) == "3d"
    assert fmt_duration(INF) == "forever"


# --- promotion to hot ----------------------------------------------------------------------


def test_fits_without_evicting() -> None:
    models = [ms("a", "hot"), ms("t", "cold", 2)]
    moves, after = promote(models, "t", "hot", budgets(cpu=4))
    assert moved(moves) == [("t", "cold", "hot")]
    assert moves[0].reason == "requested"
    assert tiers(after) == {"a": "hot", "t": "hot"}


def test_already_there_or_faster_is_nothing_to_do() -> None:
    models = [ms("a", "hot"), ms("w", "warm")]
    b = budgets(warm=4, cpu=4)
    assert plan_promotion(models, "a", "hot", b, NOW) == []
    assert plan_promotion(models, "a", "warm", b, NOW) == []
    assert plan_promotion(models, "w", "warm", b, NOW) == []
    with pytest.raises(ValueError):
        plan_promotion(models, "w", "cold", b, NOW)
    with pytest.raises(PlanError, match="unknown model nope"):
        plan_promotion(models, "nope", "hot", b, NOW)


def test_eviction_order_by_value() -> None:
    models = [
        ms("recent", "hot", last_used=NOW - 5),
        ms("old", "hot", last_used=NOW - 3000),
        ms("frequent-old", "hot", last_used=NOW - 3000, uses=100),
        ms("t", "cold"),
    ]
    moves, _ = promote(models, "t", "hot", budgets(cpu=3))
    assert moved(moves) == [("old", "hot", "cold"), ("t", "cold", "hot")]
    # Needing two slots takes the next cheapest too, cheapest first.
    models = [*models[:3], ms("t", "cold", 2)]
    moves, _ = promote(models, "t", "hot", budgets(cpu=3))
    assert [m.model for m in moves] == ["old", "recent", "t"]
    # A slow reload is worth keeping over a quick one of the same age.
    models = [
        ms("slow", "hot", reload_s=60, last_used=NOW - 100),
        ms("quick", "hot", reload_s=1, last_used=NOW - 100),
        ms("t", "cold"),
    ]
    moves, _ = promote(models, "t", "hot", budgets(cpu=2))
    assert [m.model for m in moves] == ["quick", "t"]


def test_evicts_only_as_many_as_needed() -> None:
    # The cheapest model is too small to matter once the big one has to go anyway.
    models = [
        ms("small-cheap", "hot", 1, last_used=NOW - 5000),
        ms("big", "hot", 3, last_used=NOW - 1000),
        ms("t", "cold", 4),
    ]
    moves, after = promote(models, "t", "hot", budgets(cpu=6))
    assert moved(moves) == [("big", "hot", "cold"), ("t", "cold", "hot")]
    assert after[0].tier == "hot"


def test_busy_is_never_evicted() -> None:
    models = [
        ms("busy-old", "hot", last_used=0, busy=True),
        ms("idle-new", "hot", last_used=NOW - 1),
        ms("t", "cold"),
    ]
    moves, _ = promote(models, "t", "hot", budgets(cpu=2))
    assert [m.model for m in moves] == ["idle-new", "t"]
    # A busy target is not moved either.
    with pytest.raises(PlanError, match="busy"):
        plan_promotion([*models[:2], ms("t", "cold", busy=True)], "t", "hot", budgets(cpu=9), NOW)


def test_pinned_hot_never_leaves_hot() -> None:
    models = [ms("pinned", "hot", pin="hot", last_used=0), ms("t", "cold")]
    with pytest.raises(NoRoom, match="pinned is pinned hot"):
        plan_promotion(models, "t", "hot", budgets(cpu=1), NOW)
    models.append(ms("other", "hot", last_used=NOW - 1))
    moves, _ = promote(models, "t", "hot", budgets(cpu=2))
    assert [m.model for m in moves] == ["other", "t"]


def test_pinned_warm_goes_warm_not_cold_even_when_warm_is_full() -> None:
    # A model pinned warm holds its warm room while hot: warm is "full" with it.
    models = [ms("pw", "hot", 2, pin="warm", last_used=0), ms("t", "cold", 2)]
    b = budgets(warm=2, cpu=2)
    assert usage(models, b).warm.free == 0
    moves, after = promote(models, "t", "hot", b)
    assert moved(moves) == [("pw", "hot", "warm"), ("t", "cold", "hot")]
    assert tiers(after) == {"pw": "warm", "t": "hot"}
    # Once warm it is never sent cold to make room in warm.
    with pytest.raises(NoRoom, match="pw is pinned warm"):
        plan_promotion([*after, ms("u", "cold", 1)], "u", "warm", b, NOW)


def test_cascade_hot_to_warm_to_cold() -> None:
    models = [
        ms("w-old", "warm", 2, last_used=NOW - 7000),
        ms("h", "hot", 2, last_used=NOW - 100),
        ms("t", "cold", 2),
    ]
    moves, after = promote(models, "t", "hot", budgets(warm=2, cpu=2))
    assert moved(moves) == [
        ("w-old", "warm", "cold"),
        ("h", "hot", "warm"),
        ("t", "cold", "hot"),
    ]
    assert moves[0].reason.startswith("evicted from warm to make room for h")
    assert tiers(after) == {"w-old": "cold", "h": "warm", "t": "hot"}


def test_cascade_does_not_evict_a_more_valuable_warm_model() -> None:
    models = [
        ms("w-precious", "warm", 2, last_used=NOW - 10, uses=100, reload_s=30),
        ms("h", "hot", 2, last_used=NOW - 5000),
        ms("t", "cold", 2),
    ]
    moves, _ = promote(models, "t", "hot", budgets(warm=2, cpu=2))
    assert moved(moves) == [("h", "hot", "cold"), ("t", "cold", "hot")]
    assert moves[0].reason.endswith("(no room in warm)")


def test_straight_to_cold_when_warm_is_full_of_pinned_or_busy() -> None:
    models = [
        ms("w-pinned", "warm", 1, pin="warm", last_used=0),
        ms("w-busy", "warm", 1, busy=True, last_used=0),
        ms("h", "hot", 1, last_used=NOW - 100),
        ms("t", "cold", 1),
    ]
    moves, after = promote(models, "t", "hot", budgets(warm=2, cpu=1))
    assert moved(moves) == [("h", "hot", "cold"), ("t", "cold", "hot")]
    assert tiers(after)["w-pinned"] == "warm" and tiers(after)["w-busy"] == "warm"


def test_warm_target_is_not_evicted_from_warm_to_make_room_for_its_victim() -> None:
    models = [ms("t", "warm", 2, last_used=0), ms("h", "hot", 2, last_used=NOW - 5)]
    moves, after = promote(models, "t", "hot", budgets(warm=2, cpu=2))
    assert moved(moves) == [("h", "hot", "cold"), ("t", "warm", "hot")]
    assert tiers(after) == {"t": "hot", "h": "cold"}


def test_no_room_message_names_numbers_and_blockers() -> None:
    models = [
        ms("model-b", "hot", 3, busy=True),
        ms("model-c", "hot", 3.5, pin="hot"),
        ms("model-d", "hot", 0.5),
        ms("model-a", "cold", 3.1),
    ]
    with pytest.raises(NoRoom) as e:
        plan_promotion(models, "model-a", "hot", budgets(cpu=8), NOW)
    assert str(e.value) == (
        "cannot load model-a on cpu: needs 3.10 GiB, budget 8.00 GiB, 1.00 GiB free; "
        "could not make room: model-b is busy, model-c is pinned hot"
    )


def test_target_bigger_than_the_budget() -> None:
    models = [ms("t", "cold", 9)]
    with pytest.raises(NoRoom, match=r"needs 9\.00 GiB, more than the whole budget of 8\.00 GiB"):
        plan_promotion(models, "t", "hot", budgets(warm=100, cpu=8), NOW)
    with pytest.raises(NoRoom, match=r"more than the whole warm budget of 4\.00 GiB"):
        plan_promotion(models, "t", "warm", budgets(warm=4, cpu=8), NOW)


def test_device_without_a_budget_is_refused() -> None:
    models = [ms("t", "cold", device="rocm:1")]
    with pytest.raises(NoRoom, match="rocm:1 has no hot budget"):
        plan_promotion(models, "t", "hot", budgets(cpu=64), NOW)


def test_per_device_budgets_are_independent() -> None:
    models = [
        ms("cpu-old", "hot", 4, last_used=0),
        ms("gpu0-old", "hot", 4, device="cuda:0", last_used=1),
        ms("gpu0-new", "hot", 4, device="cuda:0", last_used=NOW - 1),
        ms("t1", "cold", 4, device="cuda:1"),
        ms("t0", "cold", 4, device="cuda:0"),
    ]
    b = budgets(cpu=4, cuda_0=8, cuda_1=4)
    # cuda:1 has room: nothing elsewhere moves, however cheap.
    moves, _ = promote(models, "t1", "hot", b)
    assert moved(moves) == [("t1", "cold", "hot")]
    # cuda:0 is full: only a cuda:0 model is evicted, not the cheaper cpu one.
    moves, _ = promote(models, "t0", "hot", b)
    assert moved(moves) == [("gpu0-old", "hot", "cold"), ("t0", "cold", "hot")]
    u = usage(models, b)
    assert u.hot["cuda:0"].free == 0 and u.hot["cuda:1"].free == 4 * GiB
    assert u.to_dict()["warm"] == {"budget": 0, "used": 0, "free": 0}


def test_a_gpu_models_host_ram_counts_on_the_cpu_budget() -> None:
    models = [
        ms("cpu-cheap", "hot", 2, last_used=0),
        ms("cpu-dear", "hot", 2, last_used=NOW - 1),
        ms("gpu-on", "hot", 4, device="cuda:0", host_bytes=GiB),
        ms("t", "cold", 4, device="cuda:0", host_bytes=2 * GiB),
    ]
    b = budgets(cpu=6, cuda_0=8)
    u = usage(models, b)
    assert u.hot["cpu"].used == 5 * GiB and u.hot["cuda:0"].used == 4 * GiB
    # Room on cuda:0, but its 2 GiB of host RAM (prompt states, runtime) are not free:
    # the cheapest model holding host RAM goes, not the more valuable one.
    moves, after = promote(models, "t", "hot", b)
    assert moved(moves) == [("cpu-cheap", "hot", "cold"), ("t", "cold", "hot")]
    assert "of host RAM (cpu)" in moves[0].reason
    assert check_invariants(after, b) == []
    assert usage(after, b).hot["cpu"].used == 5 * GiB


def test_a_cpu_model_can_evict_a_gpu_models_host_share() -> None:
    models = [
        ms("gpu-old", "hot", 4, device="cuda:0", host_bytes=2 * GiB, last_used=0),
        ms("cpu-new", "hot", 2, last_used=NOW - 1),
        ms("t", "cold", 2),
    ]
    moves, after = promote(models, "t", "hot", budgets(cpu=4, cuda_0=8))
    assert moved(moves) == [("gpu-old", "hot", "cold"), ("t", "cold", "hot")]
    assert usage(after, budgets(cpu=4, cuda_0=8)).hot["cuda:0"].used == 0


def test_a_gpu_model_whose_host_share_cannot_fit_is_refused_with_the_numbers() -> None:
    with pytest.raises(NoRoom, match=r"needs 8\.00 GiB of host RAM \(cpu\), more than the whole"):
        plan_promotion(
            [ms("t", "cold", 1, device="cuda:0", host_bytes=8 * GiB)],
            "t",
            "hot",
            budgets(cpu=4, cuda_0=8),
            NOW,
        )
    busy = [
        ms("cpu-busy", "hot", 3, busy=True),
        ms("t", "cold", 1, device="cuda:0", host_bytes=2 * GiB),
    ]
    with pytest.raises(NoRoom, match=r"of host RAM \(cpu\), budget 4\.00 GiB.*cpu-busy is busy"):
        plan_promotion(busy, "t", "hot", budgets(cpu=4, cuda_0=8), NOW)


def test_pinned_warm_target_needs_warm_room_when_loaded_from_cold() -> None:
    models = [ms("w", "warm", 2, last_used=0), ms("t", "cold", 2, pin="warm")]
    moves, after = promote(models, "t", "hot", budgets(warm=2, cpu=4))
    assert moved(moves) == [("w", "warm", "cold"), ("t", "cold", "hot")]
    assert usage(after, budgets(warm=2, cpu=4)).warm.used == 2 * GiB
    # An unpinned target needs no warm room.
    models = [ms("w", "warm", 2, pin="warm"), ms("t", "cold", 2)]
    moves, _ = promote(models, "t", "hot", budgets(warm=2, cpu=4))
    assert moved(moves) == [("t", "cold", "hot")]
    models = [ms("w", "warm", 2, pin="warm"), ms("t", "cold", 2, pin="warm")]
    with pytest.raises(NoRoom, match=r"pinned warm.*could not make room: w is pinned warm"):
        plan_promotion(models, "t", "hot", budgets(warm=2, cpu=4), NOW)


# --- promotion to warm ---------------------------------------------------------------------


def test_promotion_to_warm() -> None:
    models = [
        ms("h", "hot", 4, last_used=0),
        ms("w-new", "warm", 2, last_used=NOW - 5),
        ms("w-old", "warm", 2, last_used=NOW - 500),
        ms("t", "remote", 2),
    ]
    moves, _ = promote(models, "t", "warm", budgets(warm=4, cpu=4))
    # Hot models are not in the warm budget and stay; the older warm one goes cold.
    assert moved(moves) == [("w-old", "warm", "cold"), ("t", "remote", "warm")]
    assert moves[0].reason.startswith("evicted from warm to make room for t: needs 2.00 GiB")
    with pytest.raises(NoRoom, match=r"warm budget 4\.00 GiB, 0 MiB free"):
        plan_promotion(
            [replace(m, busy=m.tier == "warm") for m in models], "t", "warm", budgets(4, cpu=4), NOW
        )


# --- idle ----------------------------------------------------------------------------------


def test_idle_demotions() -> None:
    models = [
        ms("h-idle", "hot", last_used=NOW - 301),
        ms("h-fresh", "hot", last_used=NOW - 299),
        ms("h-busy", "hot", last_used=0, busy=True),
        ms("h-forever", "hot", last_used=0, hot_keep_alive_s=INF),
        ms("w-idle", "warm", last_used=NOW - 3600 - 30),
        ms("w-forever", "warm", last_used=0, warm_keep_alive_s=INF),
        ms("h-90", "hot", last_used=NOW - 90, hot_keep_alive_s=60),
    ]
    b = budgets(warm=4, cpu=8)
    moves = plan_idle(models, b, NOW)
    assert {(m.model, m.src, m.dst, m.reason) for m in moves} == {
        ("w-idle", "warm", "cold", "idle 1h"),
        ("h-idle", "hot", "warm", "idle 5m"),
        ("h-90", "hot", "warm", "idle 90s"),
    }
    assert moves[0].model == "w-idle"  # room in warm is made before it is used
    assert check_invariants(apply(models, moves), b) == []


def test_idle_hot_goes_cold_when_warm_is_full_or_expired_too() -> None:
    b = budgets(warm=1, cpu=8)
    full = [ms("w-pinned", "warm", pin="warm"), ms("h", "hot", last_used=NOW - 400)]
    moves = plan_idle(full, b, NOW)
    assert [(m.model, m.dst, m.reason) for m in moves] == [
        ("h", "cold", "idle 6m (no room in warm)")
    ]
    # Idle past the warm keep-alive too: straight to cold.
    moves = plan_idle([ms("h", "hot", last_used=NOW - 7200)], b, NOW)
    assert [(m.model, m.dst, m.reason) for m in moves] == [("h", "cold", "idle 2h")]
    # Making room in warm by sending a less valuable idle warm model cold is fine.
    models = [ms("w", "warm", last_used=NOW - 3000), ms("h", "hot", last_used=NOW - 400)]
    moves = plan_idle(models, b, NOW)
    assert moved(moves) == [("w", "warm", "cold"), ("h", "hot", "warm")]


def test_idle_respects_pins() -> None:
    models = [
        ms("ph", "hot", pin="hot", last_used=0),
        ms("pw-hot", "hot", pin="warm", last_used=0),
        ms("pw-warm", "warm", pin="warm", last_used=0),
    ]
    b = budgets(warm=2, cpu=8)
    moves = plan_idle(models, b, NOW)
    assert moved(moves) == [("pw-hot", "hot", "warm")]
    assert check_invariants(apply(models, moves), b) == []


# --- pins ----------------------------------------------------------------------------------


def test_plan_pins_hot_first_and_skips_what_cannot_fit() -> None:
    models = [
        ms("pw", "cold", 2, pin="warm"),
        ms("ph", "cold", 2, pin="hot"),
        ms("ph-big", "cold", 9, pin="hot"),
        ms("ph-gpu", "remote", 1, pin="hot", device="cuda:0"),
        ms("plain", "warm", 2, last_used=0),
    ]
    b = budgets(warm=2, cpu=4)
    moves, problems = plan_pins(models, b, NOW)
    assert moved(moves) == [
        ("ph", "cold", "hot"),
        ("plain", "warm", "cold"),
        ("pw", "cold", "warm"),
    ]
    assert [m.reason for m in moves if m.model != "plain"] == ["pinned hot", "pinned warm"]
    assert len(problems) == 2
    assert any("ph-big" in p and "more than the whole budget" in p for p in problems)
    assert any("ph-gpu" in p and "cuda:0 has no hot budget" in p for p in problems)
    after = apply(models, moves)
    assert sorted(check_invariants(after, b)) == [
        "ph-big is pinned hot but is cold",
        "ph-gpu is pinned hot but is remote",
    ]


# --- apply and invariants ------------------------------------------------------------------


def test_apply_is_pure_and_checks_sources() -> None:
    models = [ms("a", "cold")]
    after = apply(models, [Move("a", "cold", "hot", "x")])
    assert models[0].tier == "cold" and after[0].tier == "hot"
    with pytest.raises(ValueError, match="it is cold"):
        apply(models, [Move("a", "warm", "hot", "x")])
    with pytest.raises(ValueError, match="unknown"):
        apply(models, [Move("b", "warm", "hot", "x")])


def test_check_invariants_reports_violations() -> None:
    models = [
        ms("a", "hot", 5),
        ms("b", "warm", 3),
        ms("c", "cold", pin="warm"),
        ms("d", "hot", device="cuda:3"),
    ]
    assert check_invariants(models, budgets(warm=2, cpu=4)) == [
        "hot budget on cpu exceeded: 5.00 GiB used of 4.00 GiB",
        "d hot on cuda:3, which has no hot budget",
        "warm budget exceeded: 3.00 GiB used of 2.00 GiB",
        "c is pinned warm but is cold",
    ]
    assert check_invariants(models[:2], budgets(warm=3, cpu=5)) == []


# --- randomized sequences ------------------------------------------------------------------

HALF = GiB // 2
DEVICES = ("cpu", "cuda:0", "rocm:1")


def random_world(rng: random.Random) -> tuple[list[ModelState], Budgets]:
    hot = {d: rng.randint(0, 16) * HALF for d in DEVICES if d == "cpu" or rng.random() < 0.7}
    b = Budgets(hot=hot, warm=rng.randint(0, 16) * HALF)
    models: list[ModelState] = []
    for i in range(rng.randint(1, 7)):
        size = rng.randint(1, 8) * HALF
        base = ModelState(
            name=f"m{i}",
            tier="cold",
            device=rng.choice(["cpu", "cpu", "cuda:0", "rocm:1"]),
            hot_bytes=size + rng.randint(0, 2) * HALF,
            warm_bytes=size,
            host_bytes=rng.choice([0, 0, HALF, 2 * HALF]),  # on the cpu budget for a GPU model
            pin=rng.choice([None, None, None, "hot", "warm"]),
            busy=rng.random() < 0.15,
            last_used=NOW - rng.choice([0, 10, 100, 400, 2000, 5000]),
            uses=rng.choice([0, 1, 5, 20]),
            reload_s=rng.choice([0.5, 2, 10, 30]),
            hot_keep_alive_s=rng.choice([60, 300, INF]),
            warm_keep_alive_s=rng.choice([600, 3600, INF]),
        )
        desired = rng.choice(TIERS)
        # Place it in the fastest tier from `desired` down that keeps the state valid.
        for tier in TIERS[TIERS.index(desired) :]:
            pin = base.pin if base.pin and TIERS.index(tier) <= TIERS.index(base.pin) else None
            m = replace(base, tier=tier, pin=pin)
            if check_invariants([*models, m], b) == []:
                models.append(m)
                break
    return models, b


def can_fit(models: Sequence[ModelState], t: ModelState, dst: Tier, b: Budgets) -> bool:
    """Whether `t` fits in `dst` once every model that may move has moved."""
    u = usage(models, b)
    others = [m for m in models if m.name != t.name and not m.busy]
    ok = True
    if dst == "hot":
        for dev, need in hot_use(t).items():  # its device, and the host for a GPU model
            if dev not in b.hot:
                return False
            movable = sum(
                hot_use(m).get(dev, 0) for m in others if m.tier == "hot" and m.pin != "hot"
            )
            ok = ok and need <= u.hot[dev].free + movable
    if dst == "warm" or (t.pin == "warm" and t.tier in ("cold", "remote")):
        movable = sum(m.warm_bytes for m in others if m.tier == "warm" and m.pin is None)
        ok = ok and t.warm_bytes <= u.warm.free + movable
    return ok


def check_plan(models: list[ModelState], moves: list[Move], b: Budgets, target: str | None) -> None:
    by_name = {m.name: m for m in models}
    state = models
    for mv in moves:
        m = by_name[mv.model]
        assert not m.busy, f"busy {m.name} moved: {mv}"
        assert mv.dst != "remote"
        if mv.model != target:
            assert TIERS.index(mv.dst) > TIERS.index(mv.src), f"not a demotion: {mv}"
        if m.pin is not None:
            assert TIERS.index(mv.dst) <= TIERS.index(m.pin), f"pin broken: {mv}"
        state = apply(state, [mv])
        # Never over a budget, not even halfway through the plan; no pin newly broken.
        broken = set(check_invariants(state, b)) - set(check_invariants(models, b))
        assert not broken, (broken, moves)


def run_sequence(rng: random.Random, steps: int) -> None:
    models, b = random_world(rng)
    now = NOW
    assert check_invariants(models, b) == []
    for _ in range(steps):
        assert check_invariants(models, b) == []
        op = rng.random()
        if op < 0.55:
            t = rng.choice(models)
            dst: Tier = rng.choice(["hot", "hot", "warm"])
            if TIERS.index(t.tier) <= TIERS.index(dst):
                assert plan_promotion(models, t.name, dst, b, now) == []
                continue
            try:
                moves = plan_promotion(models, t.name, dst, b, now)
            except NoRoom as e:
                assert not t.busy
                assert not can_fit(models, t, dst, b), f"NoRoom but it fits: {e}"
                continue
            except PlanError:
                assert t.busy
                continue
            assert not t.busy
            assert can_fit(models, t, dst, b)
            assert moves[-1] == Move(t.name, t.tier, dst, "requested")
            assert len({mv.model for mv in moves}) == len(moves)
            check_plan(models, moves, b, t.name)
            victims = [by for by in models if any(mv.model == by.name for mv in moves[:-1])]
            if dst == "hot":
                hot_victims = [v for v in victims if v.tier == "hot"]
                need = hot_use(t)
                assert all(set(hot_use(v)) & set(need) for v in hot_victims)
                if len(need) == 1:  # one device to make room on (else two rounds of picks)
                    [(dev, n)] = need.items()
                    short = n - usage(models, b).hot[dev].free
                    freed = sum(hot_use(v)[dev] for v in hot_victims)
                    # Only as many as needed: each victim was necessary.
                    assert all(freed - hot_use(v)[dev] < short for v in hot_victims)
            else:
                assert all(v.tier == "warm" for v in victims)
                short = t.warm_bytes - usage(models, b).warm.free
                freed = sum(v.warm_bytes for v in victims)
                assert all(freed - v.warm_bytes < short for v in victims)
            models = apply(models, moves)
            models = [
                replace(m, last_used=now, uses=m.uses + 1) if m.name == t.name else m
                for m in models
            ]
        elif op < 0.7:
            i = rng.randrange(len(models))
            models[i] = replace(models[i], busy=rng.random() < 0.25)
        elif op < 0.95:
            now += rng.choice([1, 30, 200, 400, 2000, 5000])
            moves = plan_idle(models, b, now)
            assert len({mv.model for mv in moves}) == len(moves)
            check_plan(models, moves, b, None)
            models = apply(models, moves)
            for m in models:
                if m.busy:
                    continue
                idle = now - m.last_used
                if m.tier == "hot" and m.pin != "hot":
                    assert idle <= m.hot_keep_alive_s, f"{m.name} left hot after idle {idle}"
                if m.tier == "warm" and m.pin is None:
                    assert idle <= m.warm_keep_alive_s, f"{m.name} left warm after idle {idle}"
        else:
            # A pin added at run time (models.toml reloaded), brought up by plan_pins.
            i = rng.randrange(len(models))
            pin: Pin = rng.choice(["hot", "warm"])
            t = replace(models[i], pin=pin)
            if any("budget" in p for p in check_invariants([*models[:i], t, *models[i + 1 :]], b)):
                continue  # pinned warm while hot holds warm room, and there is none
            models[i] = t
            below = TIERS.index(t.tier) > TIERS.index(pin)
            moves, problems = plan_pins(models, b, now)
            fits = not t.busy and can_fit(models, t, pin, b)
            if not below:
                assert (moves, problems) == ([], [])
            elif fits:
                assert problems == [] and moves[-1] == Move(t.name, t.tier, pin, f"pinned {pin}")
            else:
                assert moves == [] and len(problems) == 1 and t.name in problems[0]
            check_plan(models, moves, b, t.name)
            models = apply(models, moves)
            if problems:
                models[i] = replace(models[i], pin=None)


def test_randomized_sequences_seeded() -> None:
    for seed in range(150):
        run_sequence(random.Random(seed), 30)


try:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
except ImportError:  # pragma: no cover - hypothesis is a dev extra
    pass
else:

    @settings(
        max_examples=300,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(st.randoms(use_true_random=False))
    def test_randomized_sequences_hypothesis(rng: random.Random) -> None:
        run_sequence(rng, 25)


def test_warm_keep_alive_is_the_warm_tiers_own_time() -> None:
    """keep_alive 8 s then warm_keep_alive 8 s: warm from 8 s idle to 16 s, cold after
    (it went from hot straight to cold at 8 s: warm time counted from the last request)."""
    b = budgets(cpu=4, warm=4)
    keep = {"hot_keep_alive_s": 8.0, "warm_keep_alive_s": 8.0}
    assert moved(plan_idle([ms("m", "hot", last_used=NOW - 9, **keep)], b, NOW)) == [
        ("m", "hot", "warm")
    ]
    warm = {"last_used": NOW - 15, "warm_since": NOW - 7, **keep}  # went warm at 8 s idle
    assert plan_idle([ms("m", "warm", **warm)], b, NOW) == []
    later = {"last_used": NOW - 17, "warm_since": NOW - 9, **keep}
    assert moved(plan_idle([ms("m", "warm", **later)], b, NOW)) == [("m", "warm", "cold")]
    # A daemon that did not watch for a while: idle past both, straight to cold.
    assert moved(plan_idle([ms("m", "hot", last_used=NOW - 17, **keep)], b, NOW)) == [
        ("m", "hot", "cold")
    ]


def test_a_lowered_budget_demotes_the_least_valuable_idle_models() -> None:
    """Lowering a budget below its use demoted nothing until the next load (ps showed
    FREE -280 MiB). Now the cheapest idle, unpinned models go; busy and pinned ones stay."""
    b = budgets(cpu=2.5, warm=1)
    models = [
        ms("old", "hot", last_used=NOW - 900),
        ms("new", "hot", last_used=NOW - 5),
        ms("busy", "hot", busy=True, last_used=0),
        ms("pinned", "warm", pin="warm", warm=0.5),
        ms("w", "warm", warm=0.5, last_used=NOW - 100),
    ]
    moves = plan_over_budget(models, b, NOW)
    assert moved(moves) == [("old", "hot", "cold")]  # 3 GiB hot in 2.5: one must go
    assert moves[0].reason.startswith("over the hot budget of cpu, lowered to 2.50 GiB")
    # Warm lowered to 0.5 GiB: the unpinned warm model goes cold, the pinned one stays.
    assert moved(plan_over_budget(models, budgets(cpu=9, warm=0.5), NOW)) == [("w", "warm", "cold")]
    assert plan_over_budget(models, budgets(cpu=9, warm=4), NOW) == []  # within: nothing
