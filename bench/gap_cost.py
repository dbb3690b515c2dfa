"""What a gap between decoding sequences costs llama.cpp with a KV stream per slot, and
what a throwaway row for the idle stream costs instead (sets `GAP_FILL_CPU`/`_GPU`).

Times one decode step (a token for each listed sequence, 200 tokens in) per layout:
rows 0,1,2,3 are one micro-batch; 0,2,3 are two (a pass over the weights more); the
scheduler pads the second into the first when that is cheaper.

    .venv/bin/python bench/gap_cost.py [--model GGUF] [--gpu-layers 99] [--rounds 15]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from vs_llama_server import add_model_arguments, make_model

from appliance.engines.engine import BatchEntry
from appliance.engines.llamacpp import EngineConfig, LlamaEngine

LAYOUTS = {
    "0,1,2,3 (one micro-batch)": [0, 1, 2, 3],
    "0,2,3 (two)": [0, 2, 3],
    "0,1,2 (one)": [0, 1, 2],
    "0,3 (two)": [0, 3],
    "0,1 (one)": [0, 1],
    "0": [0],
}


def main() -> int:
    ap = argparse.ArgumentParser()
    add_model_arguments(ap)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--no-repack", action="store_true")
    args = ap.parse_args()
    model = Path(args.model) if args.model else make_model(Path(args.cache))
    cfg = EngineConfig(
        str(model),
        n_ctx=2048,
        n_threads=args.threads,
        n_gpu_layers=args.gpu_layers,
        n_slots=4,
        weight_repack=not args.no_repack,
    )
    engine = LlamaEngine(cfg)
    rng = random.Random(0)
    for seq in range(4):
        engine.decode([BatchEntry(seq, [rng.randrange(300, 3000) for _ in range(200)], 0, False)])

    def step(ids: list[int]) -> float:
        started = time.perf_counter()
        engine.decode([BatchEntry(s, [rng.randrange(300, 3000)], 200, True) for s in ids])
        took = time.perf_counter() - started
        for s in ids:
            engine.seq_truncate(s, 200)
        return took

    times: dict[str, list[float]] = {name: [] for name in LAYOUTS}
    for _ in range(args.rounds):  # layouts alternate within each round
        for name, ids in LAYOUTS.items():
            times[name].append(step(ids))
    med = {name: statistics.median(t) * 1000 for name, t in times.items()}
    for name, ms in med.items():
        print(f"{name:28s} {ms:8.1f} ms")
    gap = med["0,2,3 (two)"] - med["0,1,2 (one)"]
    row = med["0,1,2,3 (one micro-batch)"] - med["0,1,2 (one)"]
    print(f"a gap costs {gap:.1f} ms, a row {row:.1f} ms: pad up to {int(gap // max(row, 1e-3))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
