"""Fixtures for the TUI tests: a real daemon with fixed budgets, and helpers to wait on the UI.

Budgets are fixed so that the dashboard looks the same on any box (snapshots).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import write_catalog
from tests.daemon import Daemon, start_daemon

FIXED_BUDGETS = {
    "APPLIANCE_HOT_BUDGET_CPU": "1GiB",
    "APPLIANCE_HOT_BUDGET_GPU": "1GiB",
    "APPLIANCE_WARM_BUDGET": "512MiB",
    "APPLIANCE_COLD_BUDGET": "2GiB",
}


def start_tui_daemon(
    home: Path, catalog: Path, env: dict[str, str] | None = None, port: int | None = None
) -> Daemon:
    """`start_daemon` with fixed budgets, on `port` when given (a restart on the same port)."""
    full_env = {**FIXED_BUDGETS, **(env or {})}
    return start_daemon(home, catalog, env=full_env, port=port)


@pytest.fixture
def tui_daemon(tmp_path: Path, models_dir: Path) -> Iterator[Daemon]:
    """A fresh daemon per test: the tests move models between tiers."""
    catalog = write_catalog(tmp_path / "catalog.toml", models_dir)
    d = start_tui_daemon(tmp_path / "home", catalog)
    yield d
    d.stop()


@pytest.fixture(scope="module")
def still_daemon(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> Iterator[Daemon]:
    """A daemon for tests that only look (snapshots): nothing moves on it."""
    home = tmp_path_factory.mktemp("still")
    catalog = write_catalog(home / "catalog.toml", models_dir)
    d = start_tui_daemon(home / "home", catalog)
    yield d
    d.stop()


async def wait_until(
    predicate: Callable[[], Any], timeout: float = 20.0, what: str = "condition"
) -> Any:
    """Let the app run until `predicate()` is truthy (checked every 50 ms)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout} s")
        await asyncio.sleep(0.05)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def cell(app: Any, table_id: str, row: str, column: str) -> str | None:
    """The text of one cell of a DataTable on the current screen (None when no such row)."""
    from rich.text import Text
    from textual.widgets import DataTable

    table = app.screen.query_one(table_id, DataTable)
    if row not in [k.value for k in table.rows]:
        return None
    value = table.get_cell(row, column)
    return value.plain if isinstance(value, Text) else str(value)


async def select_row(app: Any, table_id: str, row: str) -> None:
    """Put the cursor of a DataTable on the row `row`."""
    from textual.widgets import DataTable

    table = app.screen.query_one(table_id, DataTable)
    await wait_until(lambda: row in [k.value for k in table.rows], what=f"row {row}")
    table.move_cursor(row=table.get_row_index(row), animate=False)
