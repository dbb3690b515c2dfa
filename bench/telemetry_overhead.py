"""Serving throughput with the telemetry sampler on (1 Hz) and off, side by side.

Two daemons serve the same model (the ~700M Q4_K_M bench model, one thread); rounds
of `appliance bench` alternate between them and the medians are compared.

    .venv/bin/python bench/telemetry_overhead.py --rounds 6
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from vs_llama_server import make_model

from appliance.bench import BenchConfig, run_bench_sync
from tests.daemon import start_daemon


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cache", default=os.path.expanduser("~/.cache/appliance-bench"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--json")
    args = ap.parse_args()
    model = make_model(Path(args.cache))
    work = Path(tempfile.mkdtemp(prefix="telemetry-overhead-"))
    catalog = work / "models.toml"
    catalog.write_text(
        f'[models.bench]\nsource = "{model}"\ncontext = 2048\nkeep_alive = "forever"\n'
    )
    daemons = {
        name: start_daemon(
            work / name,
            catalog,
            env={"APPLIANCE_THREADS": str(args.threads), "APPLIANCE_TELEMETRY_INTERVAL": interval},
        )
        for name, interval in (("sampler on", "1s"), ("sampler off", "0"))
    }
    rates: dict[str, list[float]] = {name: [] for name in daemons}
    try:
        for r in range(args.rounds):
            order = list(daemons) if r % 2 == 0 else list(reversed(daemons))
            for name in order:
                report = run_bench_sync(
                    BenchConfig(
                        base_url=daemons[name].v1,
                        model="bench",
                        concurrency=(1,),
                        requests_per_level=3,
                        max_tokens=args.max_tokens,
                        warmup=1,
                    )
                )
                level = report.levels[0]
                assert level.errors == 0 and level.stream_tok_s is not None, level
                rates[name].append(level.stream_tok_s)
                print(f"round {r + 1} {name:11s} {level.stream_tok_s:6.2f} tok/s", file=sys.stderr)
    finally:
        for d in daemons.values():
            d.stop()
    med = {k: statistics.median(v) for k, v in rates.items()}
    summary = {
        "decode_tok_s_median": med,
        "ratio_on_over_off": med["sampler on"] / med["sampler off"],
        "all": rates,
    }
    print(json.dumps(summary, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
