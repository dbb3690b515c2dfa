"""Moves between tiers other than a load: demotions (idle, over budget, on request,
unload) and promotions to warm, carried out as `tiers.plan` decides them, each an event
with its reason and timing. A load to hot is `tiers.loading`, which makes room here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING

from appliance.store.model_folder import weights_file
from appliance.tiers.errors import ModelConflict, ModelError, ModelUnavailable
from appliance.tiers.plan import NoRoom, plan_idle, plan_over_budget, plan_promotion
from appliance.tiers.tier_state import Move, usage
from appliance.tiers.warm import WarmHold, drop_page_cache

if TYPE_CHECKING:
    from appliance.tiers.manager import ModelManager

log = logging.getLogger("appliance.manager")

TIER_ORDER = {"hot": 0, "warm": 1, "cold": 2, "remote": 3}


async def apply_move(manager: ModelManager, move: Move, *, locked: bool = False) -> None:
    """Carry out one demotion or a promotion to warm; loads to hot go through `load`."""
    slot = manager.slot(move.model)
    lock = contextlib.nullcontext() if locked else slot.lock
    started = time.monotonic()
    async with lock:
        if move.src == "hot" and slot.worker is not None:
            worker, slot.worker = slot.worker, None
            await worker.stop()  # sends "shutdown": the process ends, its memory returns
            slot.state = "unloaded"
            slot.loaded_at = None
        path = manager.files.local_file(slot.name)
        if move.dst == "warm":
            slot.warm_since = time.monotonic()
        if move.dst == "warm" and path is not None:
            if slot.hold is None:
                slot.hold = WarmHold(weights_file(path))
            hold = slot.hold
            await asyncio.to_thread(hold.warm)
            locked_pages = await asyncio.to_thread(hold.lock)
            if not locked_pages:
                log.info(
                    "%s: pages kept in the page cache without mlock (%s)",
                    slot.name,
                    hold.lock_error,
                )
        elif move.dst == "cold":
            if slot.hold is not None:
                hold, slot.hold = slot.hold, None
                await asyncio.to_thread(hold.release, True)
            elif path is not None and path.exists():
                await asyncio.to_thread(drop_page_cache, path)
    seconds = time.monotonic() - started
    manager.emit(
        move.model,
        "move",
        f"{move.src} → {move.dst}: {move.reason} ({seconds:.2f} s)",
        src=move.src,
        dst=move.dst,
        reason=move.reason,
        seconds=round(seconds, 3),
    )


async def set_tier(
    manager: ModelManager,
    name: str,
    dst: str,
    reason: str = "operator request",
    *,
    param: str = "tier",
) -> None:
    """Move a model to `dst` on request: promote (making room) or demote (pins allowing).
    `param`: what a refusal names, the request's field that asked for the move."""
    if dst == "hot":
        await manager.load(name, reason=reason)
        return
    slot = manager.slot(name)
    async with slot.lock:
        if manager.tier_of(slot) == "remote":
            await manager.files.ensure(slot)
        current = manager.tier_of(slot)
        if current == dst:
            return
        now = time.monotonic()
        if TIER_ORDER[dst] > TIER_ORDER[current]:
            pin = manager.pin_of(slot)
            if pin is not None and TIER_ORDER[dst] > TIER_ORDER[pin]:
                raise ModelConflict(
                    f"model '{name}' is pinned {pin}; unpin it before moving it to {dst}",
                    code="pinned",
                    param=param,
                )
            if slot.active:
                raise ModelConflict(
                    f"model '{name}' is serving {slot.active} request(s); "
                    "try again when it is idle",
                    code="busy",
                    param=param,
                )
            async with manager.placement_lock:
                if dst == "warm" and not warm_has_room(manager, name, now):
                    dst, reason = "cold", f"{reason} (no room in warm)"
                await apply_move(
                    manager,
                    Move(name, current, dst, reason),  # type: ignore[arg-type]
                    locked=True,
                )
            return
        async with manager.placement_lock:
            try:
                moves = plan_promotion(
                    manager.states(now, name),
                    name,
                    dst,  # type: ignore[arg-type]
                    manager.plan_budgets(),
                    now,
                    reason,
                )
            except NoRoom as exc:
                raise no_room(manager, name, exc) from exc
            for move in moves:
                await apply_move(manager, move, locked=move.model == name)


def warm_has_room(manager: ModelManager, name: str, now: float) -> bool:
    """Whether `name`'s file fits in the warm budget beside the models already warm."""
    states = manager.states(now)
    me = next((s for s in states if s.name == name), None)
    if me is None or me.pin == "warm":
        return True  # a model pinned warm keeps its warm room even while hot
    return me.warm_bytes <= usage(states, manager.plan_budgets()).warm.free


def no_room(manager: ModelManager, name: str, exc: NoRoom) -> ModelError:
    """The refusal of a move the budgets have no room for, said as an event too."""
    manager.emit(name, "load_failed", str(exc))
    # Room held by requests being served comes back when they end: worth a retry.
    # Room that is not there at all (over the budget, pinned models) does not.
    wait = 5 if exc.transient else None
    return ModelUnavailable(str(exc), code="insufficient_memory", param=None, retry_after=wait)


async def idle_loop(manager: ModelManager) -> None:
    while True:
        await asyncio.sleep(1.0)
        try:
            await demote_idle(manager)
        except Exception:  # the loop must survive anything one move does
            log.exception("idle demotion failed")


async def fit_budgets(manager: ModelManager) -> None:
    """After budgets were lowered: demote what no longer fits (idle, unpinned models)."""
    async with manager.placement_lock:
        now = time.monotonic()
        for move in plan_over_budget(manager.states(now), manager.plan_budgets(), now):
            if manager.slot(move.model).busy:
                break  # a request came meanwhile: what is left shows as over budget
            await apply_move(manager, move)


async def demote_idle(manager: ModelManager) -> None:
    async with manager.placement_lock:
        now = time.monotonic()
        for move in plan_idle(manager.states(now), manager.plan_budgets(), now):
            if manager.slot(move.model).busy:
                # A request arrived since the plan; later moves may have counted on this
                # one (room in warm), so stop here and plan afresh on the next tick.
                break
            await apply_move(manager, move)


async def unload(manager: ModelManager, name: str, reason: str) -> bool:
    """Stop the model's worker: hot → warm (its pages stay in RAM for a fast reload)."""
    slot = manager.slot(name)
    if slot.worker is None:
        return False
    if manager.pin_of(slot) == "hot":
        raise ModelConflict(f"model '{name}' is pinned hot; unpin it first", code="pinned")
    await manager.set_tier(name, "warm", reason, param="model")  # the model is all it names
    return True
