"""Keep a DataTable in step with fresh rows without redrawing what did not change."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.text import Text
from textual.widgets import DataTable

TIER_STYLE = {"hot": "bold red", "warm": "yellow", "cold": "cyan", "remote": "dim"}
STATE_STYLE = {
    "ready": "green",
    "failed": "bold red",
    "loading": "yellow",
    "pulling": "yellow",
    "restarting": "yellow",
}


def tier_cell(tier: Any) -> Text:
    return Text(str(tier or "n/a"), style=TIER_STYLE.get(str(tier), ""))


def state_cell(state: Any) -> Text:
    return Text(str(state or "n/a"), style=STATE_STYLE.get(str(state), ""))


def sync_rows(table: DataTable[Any], rows: Sequence[tuple[str, Sequence[Any]]]) -> bool:
    """Make `table` show `rows` ((key, cells) in order); the cursor stays on its row's key.

    Returns whether anything changed.
    """
    keys = [key for key, _ in rows]
    current = [row_key.value for row_key in table.rows]
    if keys == current:
        changed = False
        columns = list(table.columns)
        for key, cells in rows:
            old = table.get_row(key)
            for column, (before, after) in zip(
                columns, zip(old, cells, strict=False), strict=False
            ):
                if before != after:  # the column grows to fit ("95.2" -> "95.2 s")
                    table.update_cell(key, column, after, update_width=True)
                    changed = True
        return changed
    selected = None
    if table.row_count and 0 <= table.cursor_row < table.row_count:
        selected = current[table.cursor_row]
    table.clear()
    for key, cells in rows:
        table.add_row(*cells, key=key)
    if selected in keys:
        table.move_cursor(row=keys.index(selected), animate=False)
    return True


def selected_key(table: DataTable[Any]) -> str | None:
    if not table.row_count or not 0 <= table.cursor_row < table.row_count:
        return None
    row_key = list(table.rows)[table.cursor_row]
    return None if row_key.value is None else str(row_key.value)
