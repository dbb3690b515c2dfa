from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from appliance import bench
from appliance.bench import (
    BenchConfig,
    BenchReport,
    Percentiles,
    SSEParser,
    format_table,
    percentile,
    run_bench_sync,
)

try:
    from tests.openai_stub import free_port, serve_openai_stub
except ImportError:  # tests/ is not a package: pytest put tests/ itself on sys.path
    from openai_stub import free_port, serve_openai_stub  # type: ignore[no-redef]


def _ordered(p: Percentiles) -> bool:
    assert p.p50 is not None and p.p90 is not None and p.p99 is not None
    return bool(p.p50 <= p.p90 <= p.p99)


def test_bench_levels_against_stub(tmp_path: Path) -> None:
    with serve_openai_stub(delay_s=0.004, eos_token_id=4) as stub:
        cfg = BenchConfig(
            base_url=stub.base_url, model=stub.model, concurrency=(1, 2), max_tokens=12
        )
        report = run_bench_sync(cfg)
        bodies = stub.bodies("/v1/completions")

    assert report.eos_token_id == 4 and report.eos_source == "discovered"
    # 1 warmup + 3 (level 1) + 4 (level 2)
    assert len(bodies) == 1 + 3 + 4
    for body in bodies:
        assert body["ignore_eos"] is True
        assert body["logit_bias"] == {"4": -100}
        assert body["stream"] is True
        assert body["stream_options"] == {"include_usage": True}
        assert body["temperature"] == 0
        assert body["max_tokens"] == 12
    assert len({b["prompt"] for b in bodies}) == len(bodies)  # prompts vary by default

    assert [lv.concurrency for lv in report.levels] == [1, 2]
    assert [lv.requests for lv in report.levels] == [3, 4]
    for lv in report.levels:
        assert lv.errors == 0
        assert lv.short_requests == 0
        assert lv.completion_tokens == lv.requests * 12
        assert _ordered(lv.ttft_ms) and _ordered(lv.itl_ms) and _ordered(lv.e2e_ms)
        assert lv.aggregate_tok_s > 0
        assert lv.stream_tok_s is not None and lv.stream_tok_s > 0
        assert lv.itl_ms.p50 is not None and lv.itl_ms.p50 >= 1.0  # the stub's 4 ms gaps

    data = report.to_json()
    text = json.dumps(data)
    assert json.loads(text) == data
    assert BenchReport.from_json(json.loads(text)) == report

    table = format_table(report)
    lines = table.splitlines()
    header = next(line for line in lines if "ttft_p50" in line)
    rows = [line.split() for line in lines[lines.index(header) + 1 :][:2]]
    assert [r[0] for r in rows] == ["1", "2"]
    assert all(len(r) == len(header.split()) for r in rows)


def test_bench_spreads_max_tokens_the_same_way_on_every_server() -> None:
    runs = []
    for _ in range(2):
        with serve_openai_stub(delay_s=0.001, eos_token_id=4) as stub:
            cfg = BenchConfig(
                base_url=stub.base_url,
                model=stub.model,
                concurrency=(2,),
                max_tokens=4,
                max_tokens_spread=6,
            )
            report = run_bench_sync(cfg)
            runs.append(sorted(b["max_tokens"] for b in stub.bodies("/v1/completions")))
        (level,) = report.levels
        assert level.errors == 0 and level.short_requests == 0
    assert runs[0] == runs[1]  # the same requests ask for the same lengths on each server
    assert all(4 <= n <= 10 for n in runs[0]) and len(set(runs[0])) > 2
    with pytest.raises(ValueError, match="spread"):
        BenchConfig(base_url="http://x", model="m", max_tokens_spread=-1)


def test_bench_chat_endpoint_and_explicit_eos() -> None:
    with serve_openai_stub(eos_token_id=None) as stub:
        cfg = BenchConfig(
            base_url=stub.base_url,
            model=stub.model,
            endpoint="chat",
            max_tokens=20,
            eos_token_id=7,
            requests_per_level=2,
            warmup=0,
            vary_prompt=False,
        )
        report = run_bench_sync(cfg)
        bodies = stub.bodies("/v1/chat/completions")
    assert len(bodies) == 2
    assert all(b["logit_bias"] == {"7": -100} and b["ignore_eos"] is True for b in bodies)
    assert bodies[0]["messages"] == [{"role": "user", "content": bench.DEFAULT_PROMPT}]
    assert report.eos_source == "config"
    (lv,) = report.levels
    assert lv.errors == 0 and lv.completion_tokens == 40


def test_bench_without_eos_meta_notes_it() -> None:
    with serve_openai_stub(eos_token_id=None) as stub:
        report = run_bench_sync(
            BenchConfig(base_url=stub.base_url, model=stub.model, max_tokens=6, warmup=0)
        )
        bodies = stub.bodies("/v1/completions")
    assert all("logit_bias" not in b and b["ignore_eos"] is True for b in bodies)
    assert report.eos_token_id is None and report.eos_source == "unknown"
    assert any("eos_token_id unknown" in n for n in report.notes)
    assert report.levels[0].errors == 0


def test_bench_counts_errors() -> None:
    with serve_openai_stub(mode="sse_error") as stub:
        report = run_bench_sync(
            BenchConfig(base_url=stub.base_url, model=stub.model, max_tokens=8, warmup=0)
        )
    (lv,) = report.levels
    assert lv.errors == lv.requests == 3
    assert lv.error_samples == ["stream error: stub failed mid-stream"]
    assert lv.ttft_ms.p50 is None
    assert "error (concurrency 1)" in format_table(report)


def _args(**overrides: object) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    argv = ["--model", "stub-model"]
    for key, value in overrides.items():
        argv += [f"--{key.replace('_', '-')}", str(value)]
    return parser.parse_args(argv)


def test_run_from_args_ok_writes_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "report.json"
    with serve_openai_stub() as stub:
        args = _args(base_url=stub.base_url, concurrency="1,2", max_tokens=5, json=out)
        assert args.concurrency == (1, 2)
        assert bench.run_from_args(args) == 0
    captured = capsys.readouterr()
    assert "ttft_p50" in captured.out and captured.err == ""
    report = BenchReport.from_json(json.loads(out.read_text()))
    assert [lv.concurrency for lv in report.levels] == [1, 2]


def test_run_from_args_unreachable(capsys: pytest.CaptureFixture[str]) -> None:
    args = _args(base_url=f"http://127.0.0.1:{free_port()}/v1")
    assert bench.run_from_args(args) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot reach")


def test_run_from_args_unreachable_with_explicit_eos(capsys: pytest.CaptureFixture[str]) -> None:
    args = _args(base_url=f"http://127.0.0.1:{free_port()}/v1", eos_token_id=2)
    assert bench.run_from_args(args) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot reach")


def test_run_from_args_all_requests_fail(capsys: pytest.CaptureFixture[str]) -> None:
    with serve_openai_stub(mode="error400") as stub:
        assert bench.run_from_args(_args(base_url=stub.base_url)) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0] == "error: all 3 requests failed: HTTP 400: stub rejected the request"


def test_percentile_and_parser_helpers() -> None:
    xs = [1.0, 2.0, 3.0, 4.0]
    assert percentile(xs, 50) == 2.5
    assert percentile(xs, 0) == 1.0 and percentile(xs, 100) == 4.0
    assert percentile([5.0], 99) == 5.0

    p = SSEParser()
    events = []
    for line in [": comment", "event: error", 'data: {"a":', "data: 1}", "", "data:[DONE]", ""]:
        events += p.feed(line)
    assert [(e.event, e.data) for e in events] == [("error", '{"a":\n1}'), ("", "[DONE]")]
    # No blank lines between events: still split into one event per data line.
    p2 = SSEParser()
    for line in ['data: {"x": 1}', 'data: {"x": 2}']:
        assert p2.feed(line) == []
    assert [e.data for e in p2.flush()] == ['{"x": 1}', '{"x": 2}']

    with pytest.raises(argparse.ArgumentTypeError):
        bench.parse_concurrency("1,0")
    with pytest.raises(ValueError):
        BenchConfig(base_url="http://x", model="m", concurrency=())
