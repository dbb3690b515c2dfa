"""Aggregate tokens/s, appliance vs llama-server, run at the same time on pinned cores.

On a shared box the speed drifts by ±15% within minutes, so rounds run one after the
other give ratios from 0.83× to 1.14× for the same code. Here both servers get the same
load at the same moment, each engine pinned to its own core (swapped every round), so
the drift hits both alike; per-round ratios then stay within a few percent. Needs a
free core per engine (e.g. 1 thread each on 2 cores); the clients and our daemon's API
process float over both.

    .venv/bin/python bench/simultaneous.py --llama-server-bin DIR [--levels 4,8] [--rounds 6]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
from pathlib import Path

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from vs_llama_server import make_model, start_llama_server, wait_up

from appliance.bench import BenchConfig, LevelStats, run_bench_sync
from tests.daemon import start_daemon


def pin(pid: int, core: int) -> None:
    """Every thread of `pid` onto one core."""
    for task in os.listdir(f"/proc/{pid}/task"):
        os.sched_setaffinity(int(task), {core})


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--llama-server-bin", required=True, help="folder with llama-server")
    ap.add_argument("--model", help="a GGUF to use instead of the generated 700M Q4_K_M")
    ap.add_argument("--cache", default=str(Path.home() / ".cache" / "appliance-bench"))
    ap.add_argument("--levels", default="4,8")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument(
        "--max-tokens-spread",
        type=int,
        default=0,
        help="requests ask for 0..N more tokens (answers end at different steps)",
    )
    ap.add_argument("--requests", type=int, default=None, help="per level (default 2 x level)")
    ap.add_argument("--slots", type=int, default=4)
    ap.add_argument("--context", type=int, default=2048, help="per slot")
    ap.add_argument("--no-repack", action="store_true", help="both without repacked kernels")
    args = ap.parse_args()
    if (os.cpu_count() or 1) < 2:
        print("needs two cores: one per engine", file=sys.stderr)
        return 2
    levels = tuple(int(x) for x in args.levels.split(","))
    model = Path(args.model) if args.model else make_model(Path(args.cache))
    work = Path(tempfile.mkdtemp(prefix="bench-simultaneous-"))
    catalog = work / "models.toml"
    catalog.write_text(
        f'[models.bench]\nsource = "{model}"\ncontext = {args.context}\n'
        f'keep_alive = "forever"\nparallel = {args.slots}\nmax_queue = 64\n'
    )
    env = {"APPLIANCE_THREADS": "1"}
    if args.no_repack:
        env["APPLIANCE_WEIGHT_REPACK"] = "false"
    ours = start_daemon(work / "home", catalog, env=env)
    peer, peer_url = start_llama_server(
        args.llama_server_bin,
        model,
        1,
        args.context * args.slots,
        work,
        *("-np", str(args.slots), "--alias", "bench"),
        *(["--no-repack"] if args.no_repack else []),
    )
    targets = {"appliance": ours.v1, "llama-server": peer_url + "/v1"}
    ratios: dict[int, list[float]] = {lv: [] for lv in levels}
    try:
        wait_up(peer_url, peer)
        warm = {"model": "bench", "prompt": "hi", "max_tokens": 8}
        httpx.post(ours.v1 + "/completions", json=warm, timeout=600).raise_for_status()
        daemon = psutil.Process(ours.proc.pid)
        worker = max(daemon.children(recursive=True), key=lambda p: p.memory_info().rss)
        for r in range(args.rounds):
            core = r % 2
            pin(worker.pid, core)
            pin(peer.pid, 1 - core)
            for level in levels:
                out: dict[str, LevelStats] = {}

                def run(name: str, level: int = level, out: dict[str, LevelStats] = out) -> None:
                    cfg = BenchConfig(
                        base_url=targets[name],
                        model="bench",
                        concurrency=(level,),
                        requests_per_level=args.requests,
                        max_tokens=args.max_tokens,
                        max_tokens_spread=args.max_tokens_spread,
                        warmup=0,
                    )
                    out[name] = run_bench_sync(cfg).levels[0]

                threads = [threading.Thread(target=run, args=(name,)) for name in targets]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                a, b = out["appliance"], out["llama-server"]
                ratio = a.aggregate_tok_s / b.aggregate_tok_s
                ratios[level].append(ratio)
                print(
                    f"round {r + 1} (ours on core {core}) {level} streams: "
                    f"ours {a.aggregate_tok_s:.2f}, llama-server {b.aggregate_tok_s:.2f} tok/s, "
                    f"ratio {ratio:.3f}, errors {a.errors}/{b.errors}",
                    flush=True,
                )
        for level, values in ratios.items():
            print(
                f"{level} streams: median ratio {statistics.median(values):.3f} "
                f"(per round {', '.join(f'{v:.3f}' for v in values)})"
            )
    finally:
        ours.stop()
        peer.terminate()
        peer.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
