"""Serving settings: models.toml over settings over what the model itself suggests."""

from __future__ import annotations

from dataclasses import dataclass

from appliance.catalog import CatalogEntry, LocalSource
from appliance.settings import Settings
from appliance.tiers.estimate import auto_slots
from appliance.tiers.serving import serving_for

GiB = 1 << 30


@dataclass(frozen=True)
class Header:
    tensor_bytes: int = 4 * GiB
    block_tensor_bytes: int = 4 * GiB
    block_count: int | None = 32
    embedding_length: int | None = 4096
    head_count: int | None = 32
    head_count_kv: int | None = 8
    key_length: int | None = 128
    value_length: int | None = 128
    vocab_size: int | None = 32000
    context_length: int | None = 32768
    is_embedding: bool = False
    kv_layers: int | None = None
    recurrent_state_bytes: int = 0


def entry(**kw: object) -> CatalogEntry:
    return CatalogEntry(name="m", source=LocalSource(path="/m.gguf"), **kw)  # type: ignore[arg-type]


def test_defaults_come_from_settings_and_the_model() -> None:
    s = serving_for(None, Settings(), Header())
    assert s.n_ctx == 4096 and not s.embedding
    assert s.slots == 4  # 512 MiB of KV per slot: the extra slots weigh less than the weights
    assert s.max_queue == 64 and s.flash_attn == "auto" and not s.deterministic
    assert s.slots_auto  # chosen here: fewer are fine when memory is short
    assert not serving_for(entry(parallel=4), Settings(), Header()).slots_auto


def test_long_contexts_get_fewer_slots_rather_than_an_oom() -> None:
    s = serving_for(entry(context=32768), Settings(), Header())
    assert s.n_ctx == 32768
    assert s.slots == 2  # 4 GiB of KV per slot: one more slot is as much as the weights
    assert auto_slots(Header(), 131072) == 1


def test_catalog_wins_over_settings() -> None:
    settings = Settings(parallel=2, max_queue=3, flash_attn="off")
    assert serving_for(None, settings, Header()).slots == 2
    s = serving_for(
        entry(parallel=6, max_queue=0, flash_attn="on", deterministic=True, kv_unified=True),
        settings,
        Header(),
    )
    assert (s.slots, s.max_queue, s.flash_attn, s.deterministic) == (6, 0, "on", True)
    assert s.kv_unified and not serving_for(None, settings, Header()).kv_unified


def test_context_is_capped_at_the_trained_one_and_embeddings_get_one_slot() -> None:
    assert serving_for(entry(context=1 << 20), Settings(), Header()).n_ctx == 32768
    s = serving_for(None, Settings(), Header(is_embedding=True))
    assert s.embedding and s.slots == 1
    assert serving_for(entry(kind="chat"), Settings(), Header(is_embedding=True)).slots == 4
