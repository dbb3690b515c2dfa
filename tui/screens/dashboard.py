"""The dashboard: each model's tier, state and live rates; host and GPU gauges; tier budgets."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Sparkline, Static

from tui.screens.base import LiveScreen
from tui.state import (
    NA,
    LiveState,
    fmt_bytes,
    fmt_ms,
    fmt_pct,
    fmt_rate,
    fmt_slots,
    gpu_mem,
    gpu_util,
    num,
)
from tui.widgets.meter import Meter
from tui.widgets.tables import state_cell, sync_rows, tier_cell

NOT_SERVED = "-"  # a figure of a model with no engine worker (warm, cold, remote)
COLUMNS = ("model", "tier", "state", "tok/s", "TTFT", "slots", "queue", "reqs")


def _short_bytes(n: Any) -> str:
    text = fmt_bytes(n)
    return (
        text.replace(" GiB", "G")
        .replace(" MiB", "M")
        .replace(" KiB", "K")
        .replace(" TiB", "T")
        .replace(" B", "B")
    )


def _fraction(used: Any, total: Any) -> float | None:
    u, t = num(used), num(total)
    return None if u is None or not t else u / t


class GaugeRow(Horizontal):
    """A meter and, beside it, a sparkline of the same series over the last minutes."""

    DEFAULT_CSS = """
    GaugeRow { height: 1; }
    GaugeRow Meter { width: 1fr; }
    GaugeRow Sparkline { width: 12; height: 1; margin-left: 1; }
    """

    def __init__(self, label: str, key: str, id: str | None = None) -> None:
        super().__init__(id=id)
        self.label = label
        self.key = key

    def compose(self) -> ComposeResult:
        yield Meter(self.label, label_width=5)
        yield Sparkline([], id=f"spark-{self.key}".replace(".", "-"))

    def show(self, fraction: float | None, value: str, series: list[float]) -> None:
        self.query_one(Meter).set(fraction, value)
        spark = self.query_one(Sparkline)
        if list(spark.data or []) != series:
            spark.data = series


class DashboardScreen(LiveScreen):
    MODE = "dashboard"

    def compose_page(self) -> ComposeResult:
        yield Static(id="dash-health")  # why the daemon is degraded; hidden while ready
        table: DataTable[Any] = DataTable(id="dash-models", cursor_type="row", zebra_stripes=True)
        for column in COLUMNS:
            table.add_column(column, key=column)
        yield table
        with Horizontal(id="dash-panels"):
            with Vertical(id="host-panel") as host:
                host.border_title = "host"
                yield GaugeRow("CPU", "cpu", id="gauge-cpu")
                yield GaugeRow("RAM", "ram", id="gauge-ram")
                yield Vertical(id="gpu-rows")
            with Vertical(id="budget-panel") as budgets:
                budgets.border_title = "tier budgets"
                yield Vertical(id="budget-rows")

    def refresh_view(self, state: LiveState) -> None:
        self._health(state)
        self._models(state)
        self._host(state)
        self._gpus(state)
        self._budgets(state)

    def _health(self, state: LiveState) -> None:
        line = self.query_one("#dash-health", Static)
        reasons = state.health_reasons() if state.connected else []
        line.display = bool(reasons)
        if reasons:
            status = str(state.health.get("status"))
            line.update(Text(f"{status}: " + "; ".join(reasons), style="bold red"))

    def _models(self, state: LiveState) -> None:
        rows = []
        for m in state.models:
            name = str(m.get("name"))
            rates = state.rates_of(name)
            queue = rates.queue_depth
            served = m.get("tier") == "hot"  # no worker, no rate and no queue: "-", not 0
            rows.append(
                (
                    name,
                    (
                        name,
                        tier_cell(m.get("tier")),
                        state_cell(m.get("state")),
                        fmt_rate(rates.tokens_per_s) if served else NOT_SERVED,
                        fmt_ms(rates.ttft_ms),
                        fmt_slots(rates.slots_busy, rates.slots) if served else NOT_SERVED,
                        NOT_SERVED if not served else NA if queue is None else f"{queue:.0f}",
                        str(m.get("requests_total", NA)),
                    ),
                )
            )
        sync_rows(self.query_one("#dash-models", DataTable), rows)

    def _host(self, state: LiveState) -> None:
        cpu = state.cpu_pct()
        self.query_one("#gauge-cpu", GaugeRow).show(
            None if cpu is None else cpu / 100, fmt_pct(cpu), list(state.series.get("cpu", []))
        )
        used, total = state.ram()
        ram_text = NA if used is None else f"{_short_bytes(used)}/{_short_bytes(total)}"
        self.query_one("#gauge-ram", GaugeRow).show(
            _fraction(used, total), ram_text, list(state.series.get("ram", []))
        )

    def _gpus(self, state: LiveState) -> None:
        box = self.query_one("#gpu-rows", Vertical)
        wanted = len(state.gpus) * 2
        if not state.gpus:
            text = Text("GPU  none found" if state.telemetry else "GPU  n/a", style="dim")
            if box.query(".no-gpu"):
                box.query_one(".no-gpu", Static).update(text)
            else:
                box.remove_children()
                box.mount(Static(text, classes="no-gpu"))
            return
        if len(box.children) != wanted or box.query(".no-gpu"):
            box.remove_children()
            for i in range(len(state.gpus)):
                box.mount(GaugeRow(f"GPU{i}", f"gpu{i}", id=f"gauge-gpu{i}"))
                box.mount(GaugeRow(f"mem{i}", f"gpu{i}.mem", id=f"gauge-gpu{i}-mem"))
            self.call_after_refresh(self.show_state, state)
            return
        self._gpus_values(state)

    def _gpus_values(self, state: LiveState) -> None:
        for i, gpu in enumerate(state.gpus):
            rows = self.query(f"#gauge-gpu{i}")
            if not rows:
                return
            util = gpu_util(gpu)
            rows.first(GaugeRow).show(
                None if util is None else util / 100,
                fmt_pct(util),
                list(state.series.get(f"gpu{i}", [])),
            )
            used, total = gpu_mem(gpu)
            text = NA if used is None else f"{_short_bytes(used)}/{_short_bytes(total)}"
            self.query_one(f"#gauge-gpu{i}-mem", GaugeRow).show(
                _fraction(used, total), text, list(state.series.get(f"gpu{i}.mem", []))
            )

    def _budgets(self, state: LiveState) -> None:
        rows: list[tuple[str, dict[str, Any]]] = []
        hot = state.budgets.get("hot")
        if isinstance(hot, dict):
            rows += [(f"hot {device}", v) for device, v in hot.items() if isinstance(v, dict)]
        for tier in ("warm", "cold"):
            value = state.budgets.get(tier)
            if isinstance(value, dict):
                rows.append((tier, value))
        cache = state.budgets.get("prompt_cache")
        if isinstance(cache, dict):
            for tier, label in (("ram", "cache ram"), ("disk", "cache disk")):
                value = cache.get(tier)
                if isinstance(value, dict):  # always listed: rows never move under the user
                    rows.append((label, value))
        box = self.query_one("#budget-rows", Vertical)
        labels = [label for label, _ in rows]
        if not rows:
            if not box.query(".no-budgets"):
                box.remove_children()
                box.mount(Static(Text("n/a", style="dim"), classes="no-budgets"))
            return
        if [m.label for m in box.query(Meter)] != labels:
            box.remove_children()
            width = min(12, max(len(label) for label in labels) + 1)
            box.mount_all(Meter(label, label_width=width) for label in labels)
            self.call_after_refresh(self.show_state, state)
            return
        for meter, (_label, b) in zip(box.query(Meter), rows, strict=False):
            used, budget = b.get("used"), b.get("budget")
            text = NA if budget is None else f"{_short_bytes(used)}/{_short_bytes(budget)}"
            meter.set(_fraction(used, budget), text)
