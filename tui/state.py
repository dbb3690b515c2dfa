"""What the TUI knows about the daemon: plain data fed by the API, read by the screens.

No Textual here: the connection loop writes into a `LiveState`, the screens render
from it, and tests can build one from fixed data. Unknown values stay None and are
shown as "n/a", never invented.
"""

from __future__ import annotations

import re
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

NA = "n/a"
HISTORY = 300  # samples kept per series: five minutes at one a second
TIERS = ("hot", "warm", "cold", "remote")


def first(d: Mapping[str, Any] | None, *keys: str) -> Any:
    """The first of `keys` that `d` has with a value other than None."""
    if not d:
        return None
    for key in keys:
        value = d.get(key)
        if value is not None:
            return value
    return None


def num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def fmt_bytes(n: Any) -> str:
    value = num(n)
    if value is None:
        return NA
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit in ("B", "KiB") else f"{value:.1f} {unit}"
        value /= 1024
    return NA  # pragma: no cover


def fmt_pct(p: Any) -> str:
    value = num(p)
    return NA if value is None else f"{value:.0f}%"


def fmt_rate(r: Any) -> str:
    value = num(r)
    return NA if value is None else f"{value:.1f}"


def fmt_ms(ms: Any) -> str:
    value = num(ms)
    if value is None:
        return NA
    return f"{value:.0f} ms" if value < 10_000 else f"{value / 1000:.1f} s"


def fmt_slots(busy: Any, slots: Any) -> str:
    """ "2/4": slots serving a request of the model's slots; n/a when not loaded."""
    total = num(slots)
    if not total:
        return NA
    return f"{num(busy) or 0:.0f}/{total:.0f}"


def fmt_time(t: Any) -> str:
    value = num(t)
    return "--:--:--" if value is None else time.strftime("%H:%M:%S", time.localtime(value))


_QUANT = re.compile(
    r"(?:^|[-_.*/])(i?q\d(?:_[a-z0-9]{1,2}){0,3}|bf16|fp16|f16|f32|fp8|int4|int8)(?=[-_.]|$)",
    re.IGNORECASE,
)


def guess_format(source: Any) -> str | None:
    """The model's format from its source (a path, a pattern or an hf:// reference)."""
    text = str(source or "").lower().split("@")[0]
    for suffix in ("gguf", "onnx", "safetensors"):
        if text.endswith("." + suffix):
            return suffix
    return None


def guess_quant(source: Any) -> str | None:
    """The quantization named in a file name, as the hubs name them: q4_k_m, iq2_xs, f16…"""
    name = str(source or "").split("@")[0].rsplit("/", 1)[-1]
    found = _QUANT.findall(name.rsplit(".", 1)[0])
    return found[-1].upper() if found else None


def event_key(ev: Mapping[str, Any]) -> tuple[Any, ...]:
    return (ev.get("time"), ev.get("model"), ev.get("kind"), ev.get("message"))


@dataclass
class ModelRates:
    """Live serving figures for one model, from telemetry; None when not known."""

    tokens_per_s: float | None = None
    ttft_ms: float | None = None
    queue_depth: float | None = None
    slots: float | None = None  # sequences decoded together (None: not loaded or not known)
    slots_busy: float | None = None


# A pull's last progress status -> how it ended (the daemon's "pull_progress" events).
PULL_OUTCOMES = {
    "done": "success",
    "error": "error",
    "cancelled": "cancelled",
    "interrupted": "interrupted",  # the daemon stopped: it resumes the pull when it starts
}
ENDED_PULLS_KEPT = 50


@dataclass
class LiveState:
    connected: bool | None = None  # None: not tried yet
    status: str = "connecting…"
    health: dict[str, Any] = field(default_factory=dict)
    models: list[dict[str, Any]] = field(default_factory=list)
    budgets: dict[str, Any] = field(default_factory=dict)
    telemetry: bool | None = None  # does the daemon stream telemetry? None: not known yet
    host: dict[str, Any] = field(default_factory=dict)
    gpus: list[dict[str, Any]] = field(default_factory=list)
    rates: dict[str, ModelRates] = field(default_factory=dict)
    series: dict[str, deque[float]] = field(default_factory=dict)
    events: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=2000))
    events_total: int = 0  # events ever added: views catch up from their own count
    last_moves: dict[str, dict[str, Any]] = field(default_factory=dict)  # model -> its move
    _event_keys: set[tuple[Any, ...]] = field(default_factory=set)
    # Every pull the daemon runs, however it started, by its label (the model name, or the
    # hf:// reference of a pull without one): model, ref, status, downloaded, total,
    # message, started (which tells one pull of a model from the next), outcome (None while
    # it runs, then one of PULL_OUTCOMES' values) and version (a change counter).
    pulls: dict[str, dict[str, Any]] = field(default_factory=dict)
    _pull_version: int = 0

    # -- models -----------------------------------------------------------------------------

    def model(self, name: str) -> dict[str, Any] | None:
        return next((m for m in self.models if m.get("name") == name), None)

    def chat_models(self) -> list[str]:
        return [str(m["name"]) for m in self.models if m.get("kind") != "embedding"]

    def rates_of(self, name: str) -> ModelRates:
        rates = self.rates.get(name)
        if rates is not None:
            return rates
        m = self.model(name) or {}
        return ModelRates(
            queue_depth=num(m.get("queue_depth")),
            slots=num(m.get("slots")),
            slots_busy=num(m.get("slots_busy")),
        )

    def health_reasons(self) -> list[str]:
        """Why the daemon is not ready (/health's reasons); none while it is."""
        if str(self.health.get("status") or "ready") == "ready":
            return []
        reasons = self.health.get("reasons")
        return [str(r) for r in reasons] if isinstance(reasons, list) else []

    def tier_counts(self) -> dict[str, int]:
        counts = dict.fromkeys(TIERS, 0)
        for m in self.models:
            tier = str(m.get("tier"))
            counts[tier] = counts.get(tier, 0) + 1
        return counts

    # -- telemetry --------------------------------------------------------------------------

    def push(self, key: str, value: Any) -> None:
        v = num(value)
        if v is None:
            return
        self.series.setdefault(key, deque(maxlen=HISTORY)).append(v)

    def add_sample(self, sample: Mapping[str, Any]) -> None:
        """Take one telemetry sample: host, GPUs, per model rates, tier budgets."""
        host = sample.get("host")
        if isinstance(host, dict):
            self.host = host
            self.push("cpu", self.cpu_pct())
            self.push("ram", self.ram_pct())
        gpus = sample.get("gpus")
        if isinstance(gpus, list):
            self.gpus = [g for g in gpus if isinstance(g, dict)]
            for i, gpu in enumerate(self.gpus):
                self.push(f"gpu{i}", gpu_util(gpu))
                self.push(f"gpu{i}.mem", gpu_mem_pct(gpu))
        models = sample.get("models")
        if isinstance(models, dict):
            rates: dict[str, ModelRates] = {}
            for name, m in models.items():
                if not isinstance(m, dict):
                    continue
                ttft = num(first(m, "ttft_ms"))
                if ttft is None and num(first(m, "ttft_s")) is not None:
                    ttft = float(m["ttft_s"]) * 1000
                rates[str(name)] = ModelRates(
                    tokens_per_s=num(first(m, "tokens_per_s", "generated_tokens_per_s", "tps")),
                    ttft_ms=ttft,
                    queue_depth=num(first(m, "queue_depth", "queue")),
                    slots=num(m.get("slots")) or None,
                    slots_busy=num(m.get("slots_busy")),
                )
                self.push(f"model:{name}", rates[str(name)].tokens_per_s)
            self.rates = rates
        tiers = sample.get("tiers")
        if isinstance(tiers, dict) and tiers:
            self.budgets = tiers

    def cpu_pct(self) -> float | None:
        return num(first(self.host, "cpu_pct", "cpu_percent"))

    def ram(self) -> tuple[float | None, float | None]:
        return (
            num(first(self.host, "ram_used", "ram_used_bytes", "memory_used")),
            num(first(self.host, "ram_total", "ram_total_bytes", "memory_total")),
        )

    def ram_pct(self) -> float | None:
        used, total = self.ram()
        return None if used is None or not total else 100 * used / total

    def load_history(self, payload: Mapping[str, Any]) -> None:
        """Fill the series from GET /admin/telemetry's columnar history (the last minutes)."""
        hist = payload.get("history")
        latest = payload.get("latest")
        if not isinstance(hist, dict):
            return
        latest = latest if isinstance(latest, dict) else {}

        def fill(key: str, values: Any, scale: float | None = 1.0) -> None:
            if not isinstance(values, list) or scale is None:
                return
            series: deque[float] = deque(maxlen=HISTORY)
            series.extend(float(v) * scale for v in values if num(v) is not None)
            self.series[key] = series

        def section(key: str) -> dict[str, Any]:
            value = hist.get(key)
            return value if isinstance(value, dict) else {}

        host = section("host")
        fill("cpu", host.get("cpu_pct"))
        total = num(first(latest.get("host"), "ram_total"))
        fill("ram", host.get("ram_used"), 100 / total if total else None)
        gpus = section("gpus")
        for i, gpu in enumerate(latest.get("gpus") or []):
            cols = gpus.get(str(gpu.get("device"))) if isinstance(gpu, dict) else None
            if not isinstance(cols, dict):
                continue
            fill(f"gpu{i}", cols.get("utilization_pct"))
            gpu_total = gpu_mem(gpu)[1]
            fill(f"gpu{i}.mem", cols.get("used_bytes"), 100 / gpu_total if gpu_total else None)
        models = section("models")
        for name, cols in models.items():
            if isinstance(cols, dict):
                fill(f"model:{name}", cols.get("tokens_per_s"))

    # -- pulls ------------------------------------------------------------------------------

    def _put_pull(self, label: str, entry: dict[str, Any]) -> None:
        self._pull_version += 1
        self.pulls[label] = {**entry, "version": self._pull_version, "seen": time.monotonic()}
        ended = [k for k, e in self.pulls.items() if e["outcome"] is not None]
        for key in ended[: max(0, len(ended) - ENDED_PULLS_KEPT)]:
            del self.pulls[key]

    def take_pull_event(self, ev: Mapping[str, Any]) -> bool:
        """Take a `pull_progress` event (from any pull); True when it changed something."""
        label, data = ev.get("model"), ev.get("data")
        if not label or not isinstance(data, dict):
            return False
        status = str(data.get("status") or "")
        before = self.pulls.get(str(label)) or {}
        entry = {
            "model": str(label),
            "ref": str(data.get("ref") or before.get("ref") or label),
            "status": status,
            "downloaded": num(data.get("downloaded")),
            "total": num(data.get("total")) or None,
            "message": str(data.get("note") or ""),
            "started": num(data.get("started")),
            "outcome": PULL_OUTCOMES.get(status),
        }
        if all(before.get(k) == v for k, v in entry.items()):
            return False
        self._put_pull(str(label), entry)
        return True

    def set_pulls(self, listing: Iterable[Mapping[str, Any]], asked_at: float) -> None:
        """Take GET /admin/pulls (asked for at `asked_at`, time.monotonic()): what runs now.
        A pull not in it that no event has mentioned since then ended unseen: dropped."""
        listed = set()
        for p in listing:
            label = str(p.get("model") or "")
            if not label:
                continue
            listed.add(label)
            before = self.pulls.get(label)
            started = num(p.get("started"))
            if before is not None and before["started"] == started and before["seen"] > asked_at:
                continue  # an event told more since the list was asked for
            status = str(p.get("status") or "")
            self._put_pull(
                label,
                {
                    "model": label,
                    "ref": str(p.get("ref") or label),
                    "status": status,
                    "downloaded": num(p.get("downloaded")),
                    "total": num(p.get("total")) or None,
                    "message": str(p.get("message") or ""),
                    "started": started,
                    "outcome": PULL_OUTCOMES.get(status),
                },
            )
        for label, entry in list(self.pulls.items()):
            if label not in listed and entry["outcome"] is None and entry["seen"] <= asked_at:
                del self.pulls[label]

    def running_pulls(self) -> list[dict[str, Any]]:
        return [e for e in self.pulls.values() if e["outcome"] is None]

    # -- events -----------------------------------------------------------------------------

    def add_events(self, events: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Add the events not seen yet (history and stream overlap); the new ones, in order."""
        new = []
        for ev in events:
            if ev.get("kind") in ("hello", "sample", "pull_progress"):
                continue
            key = event_key(ev)
            if key in self._event_keys:
                continue
            if len(self._event_keys) > 10_000:
                self._event_keys = {event_key(e) for e in self.events}
            self._event_keys.add(key)
            item = dict(ev)
            if item.get("kind") == "move" and item.get("model"):
                self.last_moves[str(item["model"])] = item
            self.events.append(item)
            self.events_total += 1
            new.append(item)
        return new

    def events_since(self, seen_total: int) -> list[dict[str, Any]]:
        """The events added after a view had seen `seen_total` (what is still kept of them)."""
        missing = self.events_total - seen_total
        if missing <= 0:
            return []
        return list(self.events)[-min(missing, len(self.events)) :]


def move_tiers(ev: Mapping[str, Any]) -> tuple[str, str] | None:
    """A move event's (from, to) tiers: its data, or its message ("hot → warm: …")."""
    data = ev.get("data")
    if isinstance(data, dict) and data.get("src") and data.get("dst"):
        return str(data["src"]), str(data["dst"])
    head = str(ev.get("message") or "").split(":", 1)[0]
    src, arrow, dst = head.partition(" → ")
    return (src.strip(), dst.strip()) if arrow else None


def is_demotion(ev: Mapping[str, Any]) -> bool:
    """A move down the tiers that the operator did not ask for (an eviction, an idle drop)."""
    tiers = move_tiers(ev)
    if ev.get("kind") != "move" or tiers is None:
        return False
    src, dst = tiers
    if src not in TIERS or dst not in TIERS or TIERS.index(dst) <= TIERS.index(src):
        return False
    data = ev.get("data")
    reason = data.get("reason") if isinstance(data, dict) else None
    return reason not in ("operator request", "admin request")


def gpu_util(gpu: Mapping[str, Any]) -> float | None:
    return num(first(gpu, "utilization_pct", "util_pct", "utilization", "gpu_util"))


def gpu_mem(gpu: Mapping[str, Any]) -> tuple[float | None, float | None]:
    return (
        num(first(gpu, "used_bytes", "memory_used", "mem_used")),
        num(first(gpu, "total_bytes", "memory_total", "mem_total")),
    )


def gpu_mem_pct(gpu: Mapping[str, Any]) -> float | None:
    used, total = gpu_mem(gpu)
    return None if used is None or not total else 100 * used / total
