"""Continuous batching and the prompt cache: appliance vs llama.cpp's llama-server.

Both serve the same GGUF with the same threads, per-sequence context and slots
(llama-server: `-np SLOTS -c CONTEXT*SLOTS`). Rounds alternate which server goes
first; the medians are compared as ratios (appliance / llama-server):

- aggregate tokens/s at 1, 4 and 8 concurrent streams (each request streams exactly
  `--max-tokens` tokens, EOS banned), and TTFT p50 at 4 streams;
- TTFT of a long document asked again: right after, after 4 other users' requests,
  and (ours only) after a demote to cold and a reload; each as a fraction of the same
  server's cold TTFT for that document (a fresh nonce makes each round's document new).

    .venv/bin/python bench/batching.py --llama-server-bin "$(../shared/tools/build-llama-server.sh)"
    # on a GPU: --gpu-layers 99 (and a CUDA build of both)
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from vs_llama_server import make_model, start_llama_server, wait_up

from appliance.bench import BenchConfig, run_bench_sync
from tests.daemon import start_daemon

WORDS = (
    "the printing press changed how knowledge moved across Europe, and each city that "
    "gained a workshop saw more books, more readers and more arguments about both. "
)


def document(nonce: str, n_words: int) -> str:
    words = WORDS.split()
    body = " ".join(words[i % len(words)] for i in range(n_words))
    return f"[{nonce}] {body}"


# One client for every TTFT: a new client per request would add its own setup (tens of
# ms) to both servers' figures and flatten the ratios.
CLIENT = httpx.Client(timeout=600)


def ttft(base: str, model: str, prompt: str) -> float:
    """Seconds to the first streamed text of a completion of `prompt`."""
    body = {
        "model": model,
        "prompt": prompt,
        "max_tokens": 2,
        "temperature": 0,
        "stream": True,
    }
    started = time.monotonic()
    with CLIENT.stream("POST", base + "/completions", json=body) as r:
        r.raise_for_status()
        for line in r.iter_lines():
            if line.startswith("data:") and line != "data: [DONE]":
                data = json.loads(line[5:])
                if data.get("choices") and data["choices"][0].get("text"):
                    return time.monotonic() - started
    raise RuntimeError("no text streamed")


def other_users(base: str, model: str, n_words: int) -> None:
    def one(i: int) -> None:
        prompt = document(secrets.token_hex(4), n_words) + f" user {i}"
        body = {"model": model, "prompt": prompt, "max_tokens": 8, "temperature": 0}
        httpx.post(base + "/completions", json=body, timeout=600).raise_for_status()

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(one, range(4)))


def cache_round(
    name: str, base: str, model: str, doc_words: int, ours: Any | None
) -> dict[str, float]:
    doc = document(secrets.token_hex(6), doc_words)
    out = {"cold": ttft(base, model, doc + " Question one:")}
    out["again"] = ttft(base, model, doc + " Question two:")
    other_users(base, model, doc_words // 2)
    out["after_4_users"] = ttft(base, model, doc + " Question three:")
    if ours is not None:
        r = ours.post(f"/admin/models/{model}/tier", json={"tier": "cold"})
        r.raise_for_status()
        ours.post(f"/admin/models/{model}/load").raise_for_status()
        out["after_demote_promote"] = ttft(base, model, doc + " Question four:")
    print(f"  {name:13s} cache TTFT s: " + ", ".join(f"{k} {v:.3f}" for k, v in out.items()))
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--llama-server-bin", required=True, help="folder with llama-server")
    ap.add_argument("--model", help="a GGUF to use instead of the generated 700M Q4_K_M")
    ap.add_argument("--cache", default=str(Path.home() / ".cache" / "appliance-bench"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--gpu-layers", type=int, default=0)
    ap.add_argument("--context", type=int, default=2048, help="per sequence")
    ap.add_argument("--slots", type=int, default=4)
    ap.add_argument("--levels", default="1,4,8")
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--doc-words", type=int, default=400)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument(
        "--no-repack",
        action="store_true",
        help="both servers without llama.cpp's repacked CPU kernels (for CPUs that fault in them)",
    )
    ap.add_argument("--skip-cache", action="store_true", help="throughput rounds only")
    ap.add_argument("--json", help="write the figures here")
    ap.add_argument(
        "--variant-env",
        help="KEY=VALUE: also bench a second daemon of ours started with this variable",
    )
    ap.add_argument(
        "--variant-key",
        help="a models.toml line (e.g. 'kv_unified = true'): also bench a second daemon of "
        "ours whose model has it",
    )
    args = ap.parse_args()
    levels = tuple(int(x) for x in args.levels.split(","))

    model = Path(args.model) if args.model else make_model(Path(args.cache))
    work = Path(tempfile.mkdtemp(prefix="bench-batching-"))
    catalog = work / "models.toml"
    entry = (
        f'[models.bench]\nsource = "{model}"\ncontext = {args.context}\n'
        f'keep_alive = "forever"\nparallel = {args.slots}\nmax_queue = 64\n'
        f"n_gpu_layers = {args.gpu_layers}\n"
    )
    catalog.write_text(entry)
    env = {"APPLIANCE_THREADS": str(args.threads)}
    if args.no_repack:
        env["APPLIANCE_WEIGHT_REPACK"] = "false"
    ours = start_daemon(work / "home", catalog, env=env)
    peer, peer_url = start_llama_server(
        args.llama_server_bin,
        model,
        args.threads,
        args.context * args.slots,
        work,
        *("-np", str(args.slots), "-ngl", str(args.gpu_layers), "--alias", "bench"),
        *(["--no-repack"] if args.no_repack else []),
    )
    targets = {"appliance": ours.v1, "llama-server": peer_url + "/v1"}
    variant = None
    if args.variant_env or args.variant_key:
        key, _, value = (args.variant_env or "").partition("=")
        variant_catalog = work / "variant.toml"
        variant_catalog.write_text(entry + (args.variant_key or "") + "\n")
        variant_env = {**env, key: value} if key else env
        variant = start_daemon(work / "home-variant", variant_catalog, env=variant_env)
        targets = {"appliance": ours.v1, "variant": variant.v1, "llama-server": peer_url + "/v1"}
    agg: dict[str, dict[int, list[float]]] = {k: {c: [] for c in levels} for k in targets}
    ttft4: dict[str, list[float]] = {k: [] for k in targets}
    errors: dict[str, int] = {k: 0 for k in targets}
    cache: dict[str, list[dict[str, float]]] = {k: [] for k in targets}
    try:
        wait_up(peer_url, peer)
        for daemon in (ours, variant):
            if daemon is not None:
                httpx.post(
                    daemon.v1 + "/completions",
                    json={"model": "bench", "prompt": "hi", "max_tokens": 8},
                    timeout=600,
                )
        for r in range(args.rounds):
            order = list(targets) if r % 2 == 0 else list(reversed(targets))
            print(f"round {r + 1}: {' then '.join(order)}", file=sys.stderr)
            for name in order:
                report = run_bench_sync(
                    BenchConfig(
                        base_url=targets[name],
                        model="bench",
                        concurrency=levels,
                        requests_per_level=None,
                        max_tokens=args.max_tokens,
                        eos_token_id=None,
                        warmup=1,
                    )
                )
                for level in report.levels:
                    agg[name][level.concurrency].append(level.aggregate_tok_s)
                    errors[name] += level.errors
                    if level.concurrency == 4 and level.ttft_ms.p50 is not None:
                        ttft4[name].append(level.ttft_ms.p50)
                print(
                    f"  {name:13s} aggregate tok/s: "
                    + ", ".join(
                        f"{lv.concurrency}: {lv.aggregate_tok_s:.2f}" for lv in report.levels
                    ),
                    file=sys.stderr,
                )
            for name in [] if args.skip_cache else order:
                cache[name].append(
                    cache_round(
                        name,
                        targets[name],
                        "bench",
                        args.doc_words,
                        {"appliance": ours, "variant": variant}.get(name),
                    )
                )

        def med(xs: list[float]) -> float | None:
            return statistics.median(xs) if xs else None

        summary: dict[str, Any] = {
            "model": str(model),
            "threads": args.threads,
            "gpu_layers": args.gpu_layers,
            "context_per_slot": args.context,
            "slots": args.slots,
            "max_tokens": args.max_tokens,
            "rounds": args.rounds,
            "no_repack": args.no_repack,
            "errors": errors,
            "aggregate_tok_s_median": {
                k: {c: med(v) for c, v in per.items()} for k, per in agg.items()
            },
            "ttft_ms_p50_at_4_median": {k: med(v) for k, v in ttft4.items()},
        }
        ratios: dict[str, float | None] = {}
        for c in levels:
            a, b = med(agg["appliance"][c]), med(agg["llama-server"][c])
            ratios[f"aggregate_tok_s_{c}"] = a / b if a and b else None
        a4, b4 = med(ttft4["appliance"]), med(ttft4["llama-server"])
        ratios["ttft_p50_at_4"] = a4 / b4 if a4 and b4 else None
        summary["ratios_appliance_over_llama_server"] = ratios
        if variant is not None:
            summary["ratios_variant_over_llama_server"] = {
                f"aggregate_tok_s_{c}": (
                    med(agg["variant"][c]) / b  # type: ignore[operator]
                    if med(agg["variant"][c]) and (b := med(agg["llama-server"][c]))
                    else None
                )
                for c in levels
            }
        fractions: dict[str, dict[str, float | None]] = {}
        for name, rounds in cache.items():
            if not rounds:
                continue
            keys = [k for k in rounds[0] if k != "cold"]
            fractions[name] = {k: med([rd[k] / rd["cold"] for rd in rounds]) for k in keys}
            fractions[name]["cold_s"] = med([rd["cold"] for rd in rounds])
        summary["repeat_document_ttft_over_cold"] = fractions
        print(json.dumps(summary, indent=2))
        if args.json:
            Path(args.json).write_text(json.dumps(summary, indent=2))
    finally:
        ours.stop()
        if variant is not None:
            variant.stop()
        peer.terminate()
        peer.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
