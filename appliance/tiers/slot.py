"""One known model's runtime record: its tier's holder (worker or warm hold), its use,
its failures and its measured footprint. The manager keeps one per model name."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from appliance.catalog import CatalogEntry
from appliance.engines.supervisor import WorkerProcess
from appliance.tiers.policy import Placement
from appliance.tiers.warm import WarmHold


@dataclass
class Slot:
    name: str
    entry: CatalogEntry | None
    state: str = "unloaded"  # unloaded | pulling | loading | ready | failed | moving
    worker: WorkerProcess | None = None
    hold: WarmHold | None = None  # set while the model is warm
    warm_since: float = 0.0  # when it last became warm (monotonic)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    last_used: float = 0.0
    active: int = 0
    uses: float = 0.0
    uses_at: float = 0.0
    failures: int = 0
    next_start_at: float = 0.0
    last_error: str | None = None
    info: dict[str, Any] = field(default_factory=dict)
    placement: Placement | None = None
    device: str = "cpu"
    hot_bytes: int | None = None  # measured (when hot) or estimated for the next load
    hot_bytes_measured: bool = False
    host_bytes: int = 0  # host RAM a model on a GPU holds besides its VRAM (`hot_bytes`)
    reload_s: float | None = None
    requests_total: int = 0
    weight_repack: bool = True  # False after llama.cpp's repacked kernels hit SIGILL here
    loaded_at: float | None = None
    # A keep-alive a request set (Ollama's `keep_alive`), over the catalog's and settings'.
    keep_alive_override: float | None = None

    @property
    def busy(self) -> bool:
        return self.active > 0 or self.lock.locked() or self.state in ("loading", "pulling")
