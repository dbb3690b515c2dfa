"""How a model is served once hot: context, slots, queue bound, attention kernels.

Pure policy over the catalog entry, the daemon's settings and the model's header:
models.toml wins, then settings, then a default chosen from the model itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from appliance.catalog import CatalogEntry
from appliance.settings import Settings
from appliance.tiers.estimate import ModelShape, auto_slots

MIN_CONTEXT = 16


class ModelHeader(ModelShape, Protocol):
    """The header fields serving needs (`GGUFInfo` has them all)."""

    @property
    def context_length(self) -> int | None: ...
    @property
    def is_embedding(self) -> bool: ...


@dataclass(frozen=True)
class Serving:
    n_ctx: int  # per sequence
    embedding: bool
    slots: int  # sequences decoded together
    max_queue: int  # requests waiting past the slots before a 429
    flash_attn: str  # auto | on | off
    deterministic: bool  # every request computed as if alone
    kv_unified: bool  # one KV pool shared by the slots, not a stream per slot
    threads: int | None  # None: the engine's default
    slots_auto: bool = False  # slots chosen here (not set): fewer are fine when memory is short


def serving_for(entry: CatalogEntry | None, settings: Settings, info: ModelHeader) -> Serving:
    n_ctx = (entry.context if entry and entry.context else None) or settings.default_context
    if info.context_length:
        n_ctx = min(n_ctx, info.context_length)
    n_ctx = max(n_ctx, MIN_CONTEXT)

    kind = entry.kind if entry else "auto"
    embedding = kind == "embedding" or (kind == "auto" and info.is_embedding)

    slots_auto = False
    if embedding:
        slots = 1
    elif entry is not None and entry.parallel is not None:
        slots = entry.parallel
    elif settings.parallel is not None:
        slots = settings.parallel
    else:
        slots, slots_auto = auto_slots(info, n_ctx), True

    if entry is not None and entry.max_queue is not None:
        max_queue = entry.max_queue
    elif settings.max_queue is not None:
        max_queue = settings.max_queue
    else:
        # Deep, as Ollama's 512 and llama-server's unbounded one: a batch client's
        # threads (DSPy's batch, eval harnesses) wait their turn rather than fail on 429s
        # their retries do not outlast (24 threads on 2 slots and 8 places: 5 of 24 failed).
        max_queue = max(64, 16 * slots)

    flash_attn = entry.flash_attn if entry and entry.flash_attn else settings.flash_attn
    return Serving(
        n_ctx=n_ctx,
        embedding=embedding,
        slots=slots,
        max_queue=max_queue,
        flash_attn=flash_attn,
        deterministic=bool(entry.deterministic) if entry else False,
        kv_unified=bool(entry.kv_unified) if entry else False,
        threads=entry.threads if entry and entry.threads else settings.threads,
        slots_auto=slots_auto,
    )
