"""Decode speed of the ONNX engine vs the llama.cpp engine, on one architecture and weights.

One daemon serves a pair made by tools/make_bench_pair.py (SmolLM2-135M-Instruct's
architecture, ~135M parameters): the INT4 ONNX folder (onnxruntime-genai) and the
Q4_0 GGUF(s) (llama.cpp), each with the same threads, per-sequence context and slots.
Both are loaded and warmed first; then, per round and per level (1 and 4 concurrent
streams), every model in turn (the order rotates each round) gets N concurrent
streaming /v1/completions of exactly `--max-tokens` tokens (temperature 0,
`ignore_eos`; a fresh nonce per request so no prompt cache helps). Per model and
level it takes the aggregate tokens/s (completion tokens / wall time of the N
requests) and the TTFT p50 of the N, and reports their medians over the rounds and
the ratios ONNX / GGUF.

    .venv-fixtures/bin/python tools/make_bench_pair.py        # once (~1 min)
    .venv/bin/python bench/onnx_vs_gguf.py                    # --rounds 5 --json out.json

`--gguf` picks which GGUFs of the pair run (default: gguf-q4_0.gguf, whose tied
embedding / LM head llama.cpp keeps at Q8_0, and gguf-q4_0-pure.gguf, all Q4_0 like the
ONNX build's INT4 LM head); `--pair DIR` another pair folder; `--threads` (default 1);
`--no-repack` serves the GGUFs without llama.cpp's repacked CPU kernels from the start
(where they fault, the daemon falls back to that by itself after one crashed load; the
summary's `gguf_weight_repack` says which ran). Each cell also records the CPU time of
the model's worker and of the rest of the machine, to tell a slow engine from a busy box.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from appliance.bench import DEFAULT_PROMPT, RequestResult, level_stats, one_request
from tests.daemon import start_daemon

DEFAULT_PAIR = Path.home() / ".cache" / "appliance-bench" / "pair"


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_s() -> float:
    """CPU seconds spent busy by the whole machine (all cores) so far."""
    parts = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = parts[3] + parts[4]  # idle + iowait
    return (sum(parts[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


async def one_level(
    client: httpx.AsyncClient, url: str, model: str, n: int, max_tokens: int
) -> tuple[list[RequestResult], float]:
    """N concurrent streaming completions; their results and the wall time of all N."""
    run = secrets.token_hex(4)

    def body(i: int) -> dict[str, Any]:
        return {
            "model": model,
            "prompt": f"[run {run} request {i}] {DEFAULT_PROMPT}",
            "max_tokens": max_tokens,
            "temperature": 0,
            "stream": True,
            "stream_options": {"include_usage": True},
            "ignore_eos": True,
        }

    t0 = time.perf_counter()
    results = await asyncio.gather(*(one_request(client, url, body(i), 600) for i in range(n)))
    return list(results), time.perf_counter() - t0


async def bench(
    args: argparse.Namespace, base: str, models: list[str], pids: dict[str, int]
) -> dict[str, Any]:
    """Rounds of every level for every model. Besides the speeds, each cell records the CPU
    time its worker used (`worker_cores`: cores it kept busy on average; tokens per worker
    CPU-second) and how busy the rest of the machine was meanwhile (`other_cores`: the
    daemon, this client and anything else running on the box), to tell a slow engine from
    a contended cell on a shared machine."""
    levels = tuple(int(x) for x in args.levels.split(","))
    limits = httpx.Limits(max_connections=max(levels) + 4)
    keys = ("agg", "ttft_p50", "stream", "tok_per_cpu_s", "worker_cores", "other_cores")
    per: dict[str, dict[int, dict[str, list[float]]]] = {
        m: {c: {k: [] for k in keys} for c in levels} for m in models
    }
    errors: dict[str, list[str]] = {m: [] for m in models}
    short: dict[str, int] = {m: 0 for m in models}
    async with httpx.AsyncClient(timeout=600, limits=limits, trust_env=False) as client:
        url = base + "/completions"
        for m in models:  # warm-up: both engines past their first requests
            for n in levels:
                await one_level(client, url, m, n, 16)
        for r in range(args.rounds):
            order = models[r % len(models) :] + models[: r % len(models)]
            print(f"round {r + 1}: {' then '.join(order)}", file=sys.stderr)
            for level in levels:
                for m in order:
                    w0, b0 = cpu_s(pids[m]), machine_busy_s()
                    results, wall = await one_level(client, url, m, level, args.max_tokens)
                    worker, busy = cpu_s(pids[m]) - w0, machine_busy_s() - b0
                    st = level_stats(level, results, wall, args.max_tokens)
                    errors[m].extend(st.error_samples)
                    short[m] += st.short_requests
                    if st.errors:
                        print(f"  {m}: {st.errors} errors: {st.error_samples}", file=sys.stderr)
                        continue
                    cell = per[m][level]
                    cell["agg"].append(st.aggregate_tok_s)
                    if st.ttft_ms.p50 is not None:
                        cell["ttft_p50"].append(st.ttft_ms.p50)
                    if st.stream_tok_s is not None:
                        cell["stream"].append(st.stream_tok_s)
                    cell["worker_cores"].append(worker / wall)
                    cell["other_cores"].append((busy - worker) / wall)
                    if worker > 0:
                        cell["tok_per_cpu_s"].append(st.completion_tokens / worker)
                    print(
                        f"  {level} stream(s) {m:22s} {st.aggregate_tok_s:7.2f} tok/s  "
                        f"TTFT p50 {st.ttft_ms.p50:7.1f} ms  ({st.completion_tokens} tokens "
                        f"in {wall:.2f} s; worker {worker / wall:.2f} cores, the rest "
                        f"{(busy - worker) / wall:.2f})",
                        file=sys.stderr,
                    )
    return {"per": per, "errors": errors, "short_requests": short}


def med(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pair", type=Path, default=DEFAULT_PAIR, help="tools/make_bench_pair.py out")
    ap.add_argument("--onnx", default="onnx-int4", help="ONNX folder in the pair")
    ap.add_argument("--gguf", default="gguf-q4_0.gguf,gguf-q4_0-pure.gguf", help="GGUFs in it")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--context", type=int, default=2048, help="per sequence")
    ap.add_argument("--slots", type=int, default=4)
    ap.add_argument("--levels", default="1,4")
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument(
        "--no-repack",
        action="store_true",
        help="GGUFs without llama.cpp's repacked CPU kernels (for CPUs that fault in them)",
    )
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args()

    pair = args.pair.expanduser()
    sources = {"onnx-int4": pair / args.onnx}
    for g in filter(None, args.gguf.split(",")):
        if (pair / g).exists():
            sources[Path(g).stem] = pair / g
    missing = [str(p) for p in sources.values() if not p.exists()]
    if missing:
        print(f"missing {missing}: run tools/make_bench_pair.py first", file=sys.stderr)
        return 1
    work = Path(tempfile.mkdtemp(prefix="bench-onnx-gguf-"))
    catalog = work / "models.toml"
    catalog.write_text(
        "".join(
            f'[models."{name}"]\nsource = "{src}"\ncontext = {args.context}\n'
            f'keep_alive = "forever"\nparallel = {args.slots}\nmax_queue = 64\n'
            + ("n_gpu_layers = 0\n" if src.suffix == ".gguf" else "")
            + "\n"
            for name, src in sources.items()
        )
    )
    models = list(sources)
    t0 = time.monotonic()
    env = {"APPLIANCE_THREADS": str(args.threads)}
    if args.no_repack:
        env["APPLIANCE_WEIGHT_REPACK"] = "false"
    ours = start_daemon(work / "home", catalog, env=env)
    print(f"daemon up in {time.monotonic() - t0:.1f} s (log {ours.log_path})", file=sys.stderr)
    loads: dict[str, dict[str, Any]] = {}
    try:
        for m in models:
            t0 = time.monotonic()
            r = httpx.post(f"{ours.url}/admin/models/{m}/load", timeout=600)
            r.raise_for_status()
            wall = time.monotonic() - t0
            info = ours.model(m)
            loads[m] = {"load_call_s": round(wall, 2), "info": info}
            print(f"loaded {m} in {wall:.1f} s", file=sys.stderr)
        pids = {m: int(loads[m]["info"]["pid"]) for m in models}
        out = asyncio.run(bench(args, ours.v1, models, pids))
        for m in models:  # still hot (none was evicted by loading the others)?
            info = ours.model(m)
            loads[m]["after"] = info
            pid = _find(info, "pid")
            loads[m]["worker_rss_mib"] = rss_mib(pid) if isinstance(pid, int) else None
    finally:
        ours.stop()
        # The llama.cpp engine writes its saved prompt states to the store at shutdown
        # (~4 MB per request here, never reusable: every prompt has its own nonce).
        shutil.rmtree(work / "home" / "data" / "store" / "cache", ignore_errors=True)

    fell_back = "illegal instruction in llama.cpp's repacked CPU kernels" in ours.log()
    per = out["per"]
    levels = tuple(int(x) for x in args.levels.split(","))
    summary: dict[str, Any] = {
        "pair": str(pair),
        "models": {m: str(s) for m, s in sources.items()},
        "sizes_bytes": {
            m: (s.stat().st_size if s.is_file() else sum(p.stat().st_size for p in s.rglob("*")))
            for m, s in sources.items()
        },
        "threads": args.threads,
        "context_per_slot": args.context,
        "slots": args.slots,
        "max_tokens": args.max_tokens,
        "rounds": args.rounds,
        "gguf_weight_repack": not (args.no_repack or fell_back),
        "errors": out["errors"],
        "short_requests": out["short_requests"],
        "aggregate_tok_s_median": {m: {c: med(per[m][c]["agg"]) for c in levels} for m in models},
        "per_stream_tok_s_median": {
            m: {c: med(per[m][c]["stream"]) for c in levels} for m in models
        },
        "ttft_ms_p50_median": {m: {c: med(per[m][c]["ttft_p50"]) for c in levels} for m in models},
        "tok_per_worker_cpu_s_median": {
            m: {c: med(per[m][c]["tok_per_cpu_s"]) for c in levels} for m in models
        },
        "worker_cores_median": {
            m: {c: med(per[m][c]["worker_cores"]) for c in levels} for m in models
        },
        "other_cores_median": {
            m: {c: med(per[m][c]["other_cores"]) for c in levels} for m in models
        },
        "samples": {m: {c: per[m][c] for c in levels} for m in models},
        "load": {
            m: {
                "load_call_s": v["load_call_s"],
                "worker_rss_mib": v.get("worker_rss_mib"),
                "engine_load_s": _find(v["info"], "load_s"),
                "tier_after": _find(v.get("after", {}), "tier"),
            }
            for m, v in loads.items()
        },
    }
    ratios: dict[str, dict[str, float | None]] = {}
    onnx = "onnx-int4"
    for g in models[1:]:
        row: dict[str, float | None] = {}
        for c in levels:
            a, b = med(per[onnx][c]["agg"]), med(per[g][c]["agg"])
            row[f"aggregate_tok_s_{c}"] = a / b if a and b else None
            ta, tb = med(per[onnx][c]["ttft_p50"]), med(per[g][c]["ttft_p50"])
            row[f"ttft_p50_{c}"] = ta / tb if ta and tb else None
            ca, cb = med(per[onnx][c]["tok_per_cpu_s"]), med(per[g][c]["tok_per_cpu_s"])
            row[f"tok_per_worker_cpu_s_{c}"] = ca / cb if ca and cb else None
        ratios[f"onnx-int4 / {g}"] = row
    summary["ratios"] = ratios

    print()
    cols = ("agg tok/s", "per-stream", "TTFT p50 ms", "tok/cpu-s", "worker cores", "rest")
    print(f"{'model':22s} {'streams':>7s} " + " ".join(f"{c:>12s}" for c in cols))
    for m in models:
        for c in levels:
            row_values = [
                summary[k][m][c]
                for k in (
                    "aggregate_tok_s_median",
                    "per_stream_tok_s_median",
                    "ttft_ms_p50_median",
                    "tok_per_worker_cpu_s_median",
                    "worker_cores_median",
                    "other_cores_median",
                )
            ]
            print(f"{m:22s} {c:7d} " + " ".join(f"{_f(v):>12s}" for v in row_values))
    for name, row in ratios.items():
        print(f"{name}: " + ", ".join(f"{k} {_f(v, 3)}" for k, v in row.items()))
    print(json.dumps(summary, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))
    return 0


def _f(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _find(obj: Any, key: str) -> Any:
    """The first value of `key` anywhere in a nested JSON object."""
    if isinstance(obj, dict):
        if key in obj:
            return obj[key]
        for v in obj.values():
            found = _find(v, key)
            if found is not None:
                return found
    elif isinstance(obj, list):
        for v in obj:
            found = _find(v, key)
            if found is not None:
                return found
    return None


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
