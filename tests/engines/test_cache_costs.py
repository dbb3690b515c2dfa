"""Saving and restoring states pays on a slow prefill, not on a fast one."""

from __future__ import annotations

from appliance.engines.cache_costs import CacheCosts


def test_unknown_speeds_count_as_a_slow_box() -> None:
    costs = CacheCosts()
    assert costs.worth_saving(64)
    assert not costs.worth_saving(63)  # short prompts are always cheap to read again
    assert costs.worth_restoring(100 << 20, 64)


def test_cpu_speeds_keep_documents() -> None:
    costs = CacheCosts()
    costs.saw_prefill(512, 8.0)  # 64 tokens/s
    costs.saw_restore(40 << 20, 0.04)  # 1 GB/s
    assert costs.worth_saving(200)
    assert costs.worth_restoring(36 << 20, 800)


def test_gpu_speeds_read_short_documents_again() -> None:
    costs = CacheCosts()
    costs.saw_prefill(4096, 0.2)  # about 20k tokens/s
    costs.saw_restore(36 << 20, 0.2)  # read from disk and checked: 190 MB/s
    assert not costs.worth_saving(190)
    assert costs.worth_saving(4096)
    assert not costs.worth_restoring(36 << 20, 800)  # 0.2 s against 0.04 s of prefill
    costs.saw_restore(36 << 20, 0.01)
    costs.saw_restore(36 << 20, 0.01)
    costs.saw_restore(36 << 20, 0.01)
    assert costs.worth_restoring(36 << 20, 800)  # from RAM: faster than reading again


def test_decode_only_steps_do_not_count_as_prefill() -> None:
    costs = CacheCosts()
    costs.saw_prefill(4, 0.01)
    assert costs.prefill_tps is None
