"""The TUI's plain data: samples, history, events and the "n/a" formatting."""

from __future__ import annotations

import time
from typing import Any

from tui.state import (
    LiveState,
    fmt_bytes,
    fmt_ms,
    fmt_pct,
    fmt_rate,
    guess_format,
    guess_quant,
)


def test_unknown_values_read_n_a() -> None:
    assert fmt_bytes(None) == fmt_pct(None) == fmt_rate(None) == fmt_ms(None) == "n/a"
    assert fmt_bytes(True) == "n/a"  # a bool is not a size
    assert fmt_bytes(592800) == "579 KiB"
    assert fmt_bytes(3 << 30) == "3.0 GiB"
    assert fmt_ms(120.4) == "120 ms" and fmt_ms(12_500) == "12.5 s"


def test_a_sample_feeds_host_gpus_models_and_budgets() -> None:
    state = LiveState()
    state.add_sample(
        {
            "kind": "sample",
            "host": {"cpu_pct": 50.0, "ram_used": 2, "ram_total": 8},
            "gpus": [
                {"utilization_pct": 10.0, "used_bytes": 1, "total_bytes": 4},
                {"utilization_pct": None, "used_bytes": None, "total_bytes": None},
            ],
            "models": {"m": {"tokens_per_s": 12.5, "ttft_s": 0.25, "queue_depth": 3}},
            "tiers": {"warm": {"budget": 10, "used": 5, "free": 5}},
        }
    )
    assert state.cpu_pct() == 50.0 and state.ram_pct() == 25.0
    assert list(state.series["gpu0"]) == [10.0] and list(state.series["gpu0.mem"]) == [25.0]
    assert "gpu1" not in state.series  # unknown values are not plotted as zero
    rates = state.rates_of("m")
    assert (rates.tokens_per_s, rates.ttft_ms, rates.queue_depth) == (12.5, 250.0, 3)
    assert state.budgets == {"warm": {"budget": 10, "used": 5, "free": 5}}
    # Without telemetry for a model, its queue comes from /admin/models.
    state.models = [{"name": "x", "queue_depth": 4}]
    assert state.rates_of("x").queue_depth == 4 and state.rates_of("x").tokens_per_s is None


def test_history_fills_the_sparklines() -> None:
    state = LiveState()
    state.load_history(
        {
            "latest": {
                "host": {"ram_total": 100},
                "gpus": [{"device": "cuda:0", "total_bytes": 10}],
            },
            "history": {
                "time": [1, 2, 3],
                "host": {"cpu_pct": [1.0, None, 3.0], "ram_used": [10, 20, 30]},
                "gpus": {"cuda:0": {"utilization_pct": [5, 6, 7], "used_bytes": [1, 2, None]}},
                "models": {"m": {"tokens_per_s": [0.0, 4.0, None]}},
            },
        }
    )
    assert list(state.series["cpu"]) == [1.0, 3.0]
    assert list(state.series["ram"]) == [10.0, 20.0, 30.0]
    assert list(state.series["gpu0"]) == [5, 6, 7]
    assert list(state.series["gpu0.mem"]) == [10.0, 20.0]
    assert list(state.series["model:m"]) == [0.0, 4.0]


def test_events_are_deduplicated_and_kept_in_order() -> None:
    state = LiveState()
    a = {"time": 1.0, "model": "m", "kind": "move", "message": "cold → hot"}
    b = {"time": 2.0, "model": "m", "kind": "crash", "message": "died"}
    assert state.add_events([a, {"kind": "hello"}, {"kind": "pull_progress"}]) == [a]
    assert state.add_events([a, b]) == [b]  # history and stream overlap
    assert state.events_since(0) == [a, b] and state.events_since(1) == [b]
    assert state.events_since(2) == []


def test_format_and_quantization_from_file_names() -> None:
    cases = {
        "hf://org/tiny-GGUF/*q4_k_m.gguf": ("gguf", "Q4_K_M"),
        "hf://Qwen/Qwen3-0.6B-GGUF/Qwen3-0.6B-Q8_0.gguf@abc": ("gguf", "Q8_0"),
        "hf://o/r/model-IQ2_XS.gguf": ("gguf", "IQ2_XS"),
        "hf://o/r/gemma-3-1b-it-UD-Q4_K_XL.gguf": ("gguf", "Q4_K_XL"),
        "hf://o/r/Llama-3.2-1B-Instruct-Q4_0_4_4.gguf": ("gguf", "Q4_0_4_4"),
        "hf://o/r/model.int4.onnx": ("onnx", "INT4"),
        "/models/tiny.gguf": ("gguf", None),
        None: (None, None),
    }
    for source, expected in cases.items():
        assert (guess_format(source), guess_quant(source)) == expected, source


def _progress(label: str, status: str, downloaded: int = 0, started: float = 1.0) -> dict[str, Any]:
    data = {"status": status, "downloaded": downloaded, "total": 100, "started": started}
    return {
        "model": label,
        "kind": "pull_progress",
        "message": status,
        "data": {**data, "ref": "r"},
    }


def test_every_pull_is_kept_from_its_events_and_the_list() -> None:
    """The TUI knew only the pulls it started: every pull's progress events and GET
    /admin/pulls now say what runs, how far, and how each ended."""
    state = LiveState()
    assert state.take_pull_event(_progress("a", "downloading", 10))
    assert not state.take_pull_event(_progress("a", "downloading", 10))  # nothing new
    assert state.pulls["a"]["downloaded"] == 10 and state.pulls["a"]["outcome"] is None
    assert state.pulls["a"]["ref"] == "r" and state.pulls["a"]["started"] == 1.0
    assert state.take_pull_event(_progress("a", "cancelled", 40))
    assert state.pulls["a"]["outcome"] == "cancelled" and state.running_pulls() == []
    assert state.take_pull_event(_progress("a", "resolving", started=2.0))  # pulled again
    assert [e["started"] for e in state.running_pulls()] == [2.0]
    # The list: a pull started before the TUI looked is added; one that ended unseen (not
    # listed, and no event since the list was asked for) is dropped.
    asked = time.monotonic()
    listed = {"model": "b", "ref": "hf://o/b/x.gguf", "status": "downloading", "downloaded": 5,
              "total": 100, "started": 3.0, "message": ""}  # fmt: skip
    state.set_pulls([listed], asked)
    assert set(state.pulls) == {"b"} and state.pulls["b"]["downloaded"] == 5
    # An event newer than the list asked for wins over the list's older figures.
    asked = time.monotonic()
    state.take_pull_event(_progress("b", "downloading", 50, started=3.0))
    state.set_pulls([listed], asked)
    assert state.pulls["b"]["downloaded"] == 50
    asked = time.monotonic()
    assert state.take_pull_event(_progress("c", "downloading", 1, started=4.0))
    state.set_pulls([], asked)  # "b" ended unseen; "c" began after the list was asked for
    assert set(state.pulls) == {"c"}
    assert not state.take_pull_event({"model": "d", "kind": "pull_progress", "message": "x"})
