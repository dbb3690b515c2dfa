"""Pins: the tier a model is kept in (`hot` or `warm`), from models.toml or set at runtime.

Runtime pins are kept in the data folder across restarts and override the file's; setting
one brings the model up to it, and the daemon's start brings every pinned model up.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from appliance.tiers.errors import ModelError
from appliance.tiers.slot import Slot

if TYPE_CHECKING:
    from appliance.tiers.manager import ModelManager


class RuntimePins:
    """The pins set at runtime, over models.toml's, in `pins.json` of the data folder."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.pins: dict[str, str | None] = self._load()

    def _load(self) -> dict[str, str | None]:
        """The pins set at runtime. (Files written before unpins stopped being kept hold
        nulls: those are dropped, so models.toml's pins hold again.)"""
        try:
            raw = json.loads(self.path.read_text())
            return {str(k): v for k, v in raw.items() if v in ("hot", "warm")}
        except (OSError, ValueError, AttributeError):
            return {}

    def pin_of(self, slot: Slot) -> str | None:
        if slot.name in self.pins:
            return self.pins[slot.name]
        return slot.entry.pin if slot.entry is not None else None

    def set(self, name: str, pin: str | None, configured: str | None) -> None:
        """Pin (None unpins) and write the pins down, replacing the file atomically. An
        unpin of a model models.toml pins is held (until the restart) as a None."""
        self.pins[name] = pin
        if pin is None and configured is None:
            del self.pins[name]
        kept = {n: p for n, p in self.pins.items() if p is not None}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name("pins.json.tmp")
        tmp.write_text(json.dumps(kept, indent=1))
        os.replace(tmp, self.path)


async def set_pin(manager: ModelManager, name: str, pin: str | None) -> None:
    """Pin at runtime (kept across restarts in the data folder); None unpins.

    Unpinning a model that models.toml pins holds until the daemon restarts, and says
    so: kept, it overrode the file for good, unseen (a later pin there was ignored)."""
    entry = manager.slot(name).entry
    configured = entry.pin if entry is not None else None
    manager.runtime_pins.set(name, pin, configured)
    if pin is None and configured is not None:
        message = (
            f"unpinned until the daemon restarts: models.toml pins it {configured} "
            "(remove the pin there to unpin it for good)"
        )
    else:
        message = f"pinned {pin}" if pin else "unpinned"
    manager.emit(name, "pin", message)
    if pin == "hot":
        await manager.load(name, reason="pinned hot")
    elif pin == "warm" and manager.tier_of(manager.slot(name)) in ("cold", "remote"):
        await manager.set_tier(name, "warm", "pinned warm")


async def preload_pins(manager: ModelManager) -> None:
    """Bring pinned models up to their pin at start: hot pins first, then warm."""
    pinned = [(manager.pin_of(manager.slot(n)), n) for n in manager.known_names()]
    for pin, name in sorted((p, n) for p, n in pinned if p in ("hot", "warm")):
        try:
            if pin == "hot":
                await manager.load(name, reason="pinned hot: preloaded at start")
            else:
                await manager.set_tier(name, "warm", "pinned warm: preloaded at start")
        except ModelError as exc:
            manager.emit(name, "error", f"pin {pin} not honoured at start: {exc.message}")
