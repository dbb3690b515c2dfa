"""Single-stream decode tokens/s through the API: appliance vs llama.cpp's llama-server.

Both serve the same generated ~700M-parameter Q4_K_M model with the same threads
and context; `appliance bench` measures each, alternating A and B rounds, and the
medians are compared as a ratio (target >= 0.97).

    .venv/bin/python bench/vs_llama_server.py \
        --llama-server-bin "$(../shared/tools/build-llama-server.sh)"
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from appliance.bench import BenchConfig, run_bench_sync
from appliance.tiny_model import BENCH_700M, quantize_gguf, write_tiny_gguf
from tests.daemon import free_port, start_daemon


def make_model(cache: Path) -> Path:
    out = cache / "bench-700m-q4_k_m.gguf"
    if out.exists():
        return out
    cache.mkdir(parents=True, exist_ok=True)
    f32 = cache / "bench-700m-f32.gguf"
    print("writing the F32 model…", file=sys.stderr)
    write_tiny_gguf(f32, BENCH_700M)
    print("quantizing to Q4_K_M…", file=sys.stderr)
    quantize_gguf(f32, out, "Q4_K_M")
    f32.unlink()
    return out


def add_model_arguments(ap: argparse.ArgumentParser) -> None:
    """The model and engine options the bench scripts share."""
    ap.add_argument("--model", help="a GGUF to use instead of the generated 700M Q4_K_M")
    ap.add_argument("--cache", default=str(Path.home() / ".cache" / "appliance-bench"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--gpu-layers", type=int, default=0)


def start_llama_server(
    bin_dir: str, model: Path, threads: int, context: int, work: Path, *extra: str
) -> tuple[subprocess.Popen[bytes], str]:
    """llama-server on a free loopback port (`context` in all, split over its `-np` slots),
    its log in `work`; returns the process and its base URL."""
    port = free_port()
    cmd = [
        str(Path(bin_dir) / "llama-server"),
        "-m",
        str(model),
        "-t",
        str(threads),
        "-tb",
        str(threads),
        "-c",
        str(context),
        "--port",
        str(port),
        "--host",
        "127.0.0.1",
        "--no-webui",
        *extra,
    ]
    log = (work / "llama-server.log").open("wb")
    peer = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log)
    return peer, f"http://127.0.0.1:{port}"


def wait_up(url: str, proc: subprocess.Popen[bytes], timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url} exited with {proc.returncode}")
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} did not come up")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--llama-server-bin", required=True, help="folder with llama-server")
    ap.add_argument("--cache", default=os.path.expanduser("~/.cache/appliance-bench"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--context", type=int, default=2048)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--requests", type=int, default=3)
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args()

    model = make_model(Path(args.cache))
    work = Path(tempfile.mkdtemp(prefix="bench-"))
    catalog = work / "models.toml"
    catalog.write_text(
        f'[models.bench]\nsource = "{model}"\ncontext = {args.context}\nkeep_alive = "forever"\n'
    )
    ours = start_daemon(work / "home", catalog, env={"APPLIANCE_THREADS": str(args.threads)})
    peer, peer_url = start_llama_server(
        args.llama_server_bin, model, args.threads, args.context, work, "-np", "1"
    )
    try:
        wait_up(peer_url, peer)
        results: dict[str, list[float]] = {"appliance": [], "llama-server": []}
        ttft: dict[str, list[float]] = {"appliance": [], "llama-server": []}
        targets = {"appliance": ours.v1, "llama-server": peer_url + "/v1"}
        for r in range(args.rounds):
            order = list(targets) if r % 2 == 0 else list(reversed(targets))
            for name in order:
                report = run_bench_sync(
                    BenchConfig(
                        base_url=targets[name],
                        model="bench",
                        concurrency=(1,),
                        requests_per_level=args.requests,
                        max_tokens=args.max_tokens,
                        eos_token_id=None,
                        warmup=1,
                    )
                )
                level = report.levels[0]
                assert level.errors == 0, level
                results[name].append(level.stream_tok_s)
                ttft[name].append(level.ttft_ms.p50)
                print(
                    f"round {r + 1} {name:13s} {level.stream_tok_s:7.2f} tok/s  "
                    f"TTFT p50 {level.ttft_ms.p50:7.1f} ms",
                    file=sys.stderr,
                )
        med = {k: statistics.median(v) for k, v in results.items()}
        summary = {
            "model": str(model),
            "threads": args.threads,
            "context": args.context,
            "max_tokens": args.max_tokens,
            "rounds": args.rounds,
            "decode_tok_s_median": med,
            "ttft_ms_median": {k: statistics.median(v) for k, v in ttft.items()},
            "ratio_appliance_over_llama_server": med["appliance"] / med["llama-server"],
            "all": results,
        }
        print(json.dumps(summary, indent=2))
        if args.json:
            Path(args.json).write_text(json.dumps(summary, indent=2))
    finally:
        ours.stop()
        peer.terminate()
        peer.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
