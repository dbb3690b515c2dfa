"""Time to first token from cold, warm and hot, through the API, on one model.

cold: the worker is stopped and the file's pages are dropped from the page cache
      (posix_fadvise DONTNEED, checked with mincore); the request loads from disk.
warm: the worker is stopped, the weights are held in RAM by the daemon.
hot:  the worker is loaded; only the prompt is processed.

Every request carries a fresh prompt of the same length, so no prompt cache helps.
States alternate within each round and medians are reported with the ratios.

    .venv/bin/python bench/tier_ttft.py --rounds 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from vs_llama_server import make_model

from appliance.tiers.warm import residency
from tests.daemon import Daemon, start_daemon


def ttft(d: Daemon) -> float:
    body = {
        "model": "bench",
        "stream": True,
        "max_tokens": 4,
        "ignore_eos": True,
        "messages": [{"role": "user", "content": f"[{uuid.uuid4().hex}] Say hello."}],
    }
    started = time.perf_counter()
    with httpx.stream("POST", d.v1 + "/chat/completions", json=body, timeout=600) as r:
        r.raise_for_status()
        for line in r.iter_lines():
            if line.startswith("data: ") and '"content":"' in line and '"content":""' not in line:
                return time.perf_counter() - started
    raise RuntimeError("no token came back")


def to_tier(d: Daemon, tier: str) -> None:
    r = httpx.post(f"{d.url}/admin/models/bench/tier", json={"tier": tier}, timeout=600)
    r.raise_for_status()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cache", default=os.path.expanduser("~/.cache/appliance-bench"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args()

    model = make_model(Path(args.cache))
    work = Path(tempfile.mkdtemp(prefix="tier-ttft-"))
    catalog = work / "models.toml"
    catalog.write_text(
        f'[models.bench]\nsource = "{model}"\ncontext = 2048\n'
        'keep_alive = "forever"\nwarm_keep_alive = "forever"\n'
    )
    d = start_daemon(work / "home", catalog, env={"APPLIANCE_THREADS": str(args.threads)})
    times: dict[str, list[float]] = {"cold": [], "warm": [], "hot": []}
    resident_when_cold: list[float] = []
    try:
        ttft(d)  # first load: measures the footprint; not counted
        for r in range(args.rounds):
            order = ["cold", "warm", "hot"] if r % 2 == 0 else ["hot", "warm", "cold"]
            for state in order:
                if state == "cold":
                    to_tier(d, "cold")
                    resident_when_cold.append(residency(model).fraction)
                elif state == "warm":
                    to_tier(d, "cold")
                    to_tier(d, "warm")
                else:
                    to_tier(d, "hot")
                times[state].append(ttft(d))
                print(
                    f"round {r + 1} {state:4s} TTFT {times[state][-1] * 1000:8.1f} ms",
                    file=sys.stderr,
                )
    finally:
        d.stop()
    med = {k: statistics.median(v) for k, v in times.items()}
    summary = {
        "model": str(model),
        "size_bytes": model.stat().st_size,
        "threads": args.threads,
        "rounds": args.rounds,
        "ttft_s_median": med,
        "cold_over_warm": med["cold"] / med["warm"],
        "warm_over_hot": med["warm"] / med["hot"],
        "resident_fraction_when_cold_max": max(resident_when_cold),
        "all": times,
    }
    print(json.dumps(summary, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
