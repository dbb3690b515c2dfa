"""How often a temperature-0 answer repeats itself exactly, per flash-attention mode.

For each `flash_attn` mode the daemon serves the same prompt `--runs` times in four
conditions and counts the distinct answers (1 = perfectly repeatable):

- `deterministic`: `"deterministic": true`, one request at a time;
- `deterministic_under_load`: the same while other streams run;
- `default_alone`: the default mode, one at a time (the prompt cache hits from the 2nd run);
- `default_under_load`: the default mode while other streams run (batched with them).

    .venv/bin/python bench/repeatability.py [--model X.gguf] [--gpu-layers 99]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from vs_llama_server import add_model_arguments, make_model

from tests.daemon import start_daemon

PROMPT = (
    "Write a long, detailed essay about the history of the printing press: its precursors "
    "in China and Korea, Gutenberg's workshop in Mainz, and its effects on science."
)


def answer(client: httpx.Client, base: str, extra: dict[str, Any], max_tokens: int) -> str:
    body = {
        "model": "bench",
        "prompt": PROMPT,
        "max_tokens": max_tokens,
        "temperature": 0,
        "ignore_eos": True,
        **extra,
    }
    r = client.post(base + "/completions", json=body, timeout=600)
    r.raise_for_status()
    return str(r.json()["choices"][0]["text"])


def measure(base: str, runs: int, max_tokens: int) -> dict[str, int]:
    client = httpx.Client()
    stop = threading.Event()

    def noise(i: int) -> None:
        n = 0
        while not stop.is_set():
            body = {
                "model": "bench",
                "prompt": f"noise {i} {n} " + PROMPT,
                "max_tokens": 16,
                "temperature": 0.8,
            }
            httpx.post(base + "/completions", json=body, timeout=600)
            n += 1

    out: dict[str, int] = {}
    det = {"deterministic": True}
    out["deterministic"] = len({answer(client, base, det, max_tokens) for _ in range(runs)})
    out["default_alone"] = len({answer(client, base, {}, max_tokens) for _ in range(runs)})
    with ThreadPoolExecutor(3) as pool:
        loads = [pool.submit(noise, i) for i in range(3)]
        try:
            under = [answer(client, base, {}, max_tokens) for _ in range(runs)]
            det_under = [answer(client, base, det, max_tokens) for _ in range(runs)]
        finally:
            stop.set()
        for f in loads:
            f.result()
    out["default_under_load"] = len(set(under))
    out["deterministic_under_load"] = len(set(det_under))
    alone = answer(client, base, det, max_tokens)
    out["deterministic_same_alone_and_under_load"] = int(set(det_under) == {alone})
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    add_model_arguments(ap)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--modes", default="off,on")
    ap.add_argument("--no-repack", action="store_true", help="weight_repack = false")
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args()
    model = Path(args.model) if args.model else make_model(Path(args.cache))
    results: dict[str, dict[str, int]] = {}
    for mode in args.modes.split(","):
        work = Path(tempfile.mkdtemp(prefix="bench-repeat-"))
        catalog = work / "models.toml"
        catalog.write_text(
            f'[models.bench]\nsource = "{model}"\ncontext = 2048\nparallel = 4\n'
            f'keep_alive = "forever"\nflash_attn = "{mode}"\nn_gpu_layers = {args.gpu_layers}\n'
        )
        env = {"APPLIANCE_THREADS": str(args.threads)}
        if args.no_repack:
            env["APPLIANCE_WEIGHT_REPACK"] = "false"
        d = start_daemon(work / "home", catalog, env=env)
        try:
            results[f"flash_attn={mode}"] = measure(d.v1, args.runs, args.max_tokens)
            print(mode, results[f"flash_attn={mode}"], file=sys.stderr)
        finally:
            d.stop()
    summary = {"model": str(model), "runs": args.runs, "distinct_answers": results}
    print(json.dumps(summary, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
