"""The cold tier's use: each stored file once, and the partial downloads in tmp/."""

from __future__ import annotations

from pathlib import Path

from tests.tiers.test_corrupt_load import make_manager


def test_partials_count_as_cold_use(tmp_path: Path, tiny_gguf: Path) -> None:
    manager = make_manager(tmp_path)
    model = manager.store.import_file(tiny_gguf, "tiny")
    before = manager.budgets_view()["cold"]
    assert before["used"] == model.size
    (manager.store.root / "tmp" / ("a" * 64 + ".partial")).write_bytes(b"x" * 12345)
    after = manager.budgets_view()["cold"]
    assert after["used"] == model.size + 12345
    if before["free"] is not None:
        assert after["free"] == before["free"] - 12345


def test_one_file_under_two_names_counts_once(tmp_path: Path, tiny_gguf: Path) -> None:
    """Two names for one file share its blob on disk: cold use counted it twice (an
    operator's 87 MiB model under two names showed 178 MiB used)."""
    manager = make_manager(tmp_path)
    model = manager.store.import_file(tiny_gguf, "tiny")
    manager.store.import_file(tiny_gguf, "tiny-again")
    assert manager.budgets_view()["cold"]["used"] == model.size
