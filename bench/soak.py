"""Soak: thousands of mixed requests against a real daemon, and its memory over time.

Chat (streamed and not, with tools), completions, embeddings, and the bad ones: malformed
JSON, unknown models, absurd parameters, prompts over the context, clients that go away
mid-stream. Every request must get an answer (no hang, no 5xx from a bad body); the
daemon's and its workers' resident memory is sampled after a warm-up and at the end.

    .venv/bin/python bench/soak.py --requests 3000 --concurrency 8
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from appliance.tiny_model import TinyModelSpec, write_tiny_gguf
from tests.daemon import Daemon, start_daemon

TOOL = {
    "type": "function",
    "function": {
        "name": "f",
        "parameters": {
            "type": "object",
            "properties": {"x": {"type": "integer"}},
            "required": ["x"],
        },
    },
}


def rss(pid: int) -> dict[str, int]:
    """Resident bytes of the daemon and of each of its children (the workers)."""
    proc = psutil.Process(pid)
    out = {"daemon": proc.memory_info().rss}
    for child in proc.children(recursive=True):
        try:
            out[f"worker {child.pid}"] = child.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return out


def one(base: str, kind: str, rng: random.Random) -> str:
    """Send one request of `kind`; return how it ended (status or 'cut')."""
    chat = base + "/v1/chat/completions"
    user = [{"role": "user", "content": f"hello {rng.random()}"}]
    with httpx.Client(timeout=60) as c:
        if kind == "chat":
            r = c.post(chat, json={"model": "tiny", "messages": user, "max_tokens": 8})
        elif kind == "stream":
            body = {"model": "tiny", "messages": user, "max_tokens": 8, "stream": True}
            with c.stream("POST", chat, json=body) as r:
                last = ""
                for line in r.iter_lines():
                    last = line or last
                return f"{r.status_code}{'' if last == 'data: [DONE]' else ' unfinished'}"
        elif kind == "tools":
            body = {
                "model": "qwen",
                "messages": user,
                "tools": [TOOL],
                "tool_choice": "required",
                "parallel_tool_calls": False,
                "max_tokens": 80,
            }
            r = c.post(chat, json=body)
        elif kind == "completion":
            r = c.post(
                base + "/v1/completions", json={"model": "tiny", "prompt": "x", "max_tokens": 6}
            )
        elif kind == "embed":
            r = c.post(base + "/v1/embeddings", json={"model": "embed", "input": ["a", "b c"]})
        elif kind == "bad_json":
            r = c.post(
                chat,
                content=b'{"model": "tiny", "messages": [',
                headers={"content-type": "application/json"},
            )
        elif kind == "unknown_model":
            r = c.post(chat, json={"model": "nope", "messages": user})
        elif kind == "absurd":
            r = c.post(
                chat,
                json={"model": "tiny", "messages": user, "max_tokens": 10**12, "temperature": -3},
            )
        elif kind == "too_long":
            r = c.post(
                chat,
                json={"model": "tiny", "messages": [{"role": "user", "content": "word " * 3000}]},
            )
        elif kind == "disconnect":
            body = {
                "model": "tiny",
                "messages": user,
                "max_tokens": 2000,
                "stream": True,
                "ignore_eos": True,
            }
            with c.stream("POST", chat, json=body) as r:
                for i, _ in enumerate(r.iter_lines()):
                    if i >= 3:
                        return "cut"
            return str(r.status_code)
        else:
            raise ValueError(kind)
        return str(r.status_code)


KINDS = {
    "chat": 20,
    "stream": 20,
    "tools": 8,
    "completion": 10,
    "embed": 10,
    "bad_json": 6,
    "unknown_model": 6,
    "absurd": 6,
    "too_long": 6,
    "disconnect": 8,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        models = home / "models"
        models.mkdir()
        tiny = write_tiny_gguf(models / "tiny.gguf")
        embed = write_tiny_gguf(
            models / "embed.gguf", TinyModelSpec(embedding=True, chat_template=None)
        )
        template = (
            Path(__file__).resolve().parents[1]
            / "tests/fixtures/chat_templates/Qwen-Qwen2.5-7B-Instruct.jinja"
        ).read_text()
        qwen = write_tiny_gguf(models / "qwen.gguf", TinyModelSpec(chat_template=template))
        catalog = home / "models.toml"
        catalog.write_text(
            f'[models.tiny]\nsource = "{tiny}"\ncontext = 512\nparallel = 4\n'
            'keep_alive = "forever"\n'
            f'[models.embed]\nsource = "{embed}"\nkind = "embedding"\nkeep_alive = "forever"\n'
            f'[models.qwen]\nsource = "{qwen}"\ncontext = 1024\nkeep_alive = "forever"\n'
        )
        daemon: Daemon = start_daemon(home / "home", catalog)
        try:
            kinds = [k for k, w in KINDS.items() for _ in range(w)]
            plan = [rng.choice(kinds) for _ in range(args.requests)]
            warm = min(300, args.requests // 5)
            outcomes: Counter[str] = Counter()
            started = time.monotonic()
            with ThreadPoolExecutor(args.concurrency) as pool:
                for kind, result in zip(
                    plan[:warm],
                    pool.map(lambda k: (k, one(daemon.url, k, random.Random())), plan[:warm]),
                    strict=True,
                ):
                    outcomes[f"{kind} {result[1]}"] += 1
                after_warmup = rss(daemon.proc.pid)
                results = list(
                    pool.map(lambda k: (k, one(daemon.url, k, random.Random())), plan[warm:])
                )
            for kind, result in results:
                outcomes[f"{kind} {result}"] += 1
            elapsed = time.monotonic() - started
            time.sleep(2)
            at_end = rss(daemon.proc.pid)
            health = httpx.get(daemon.url + "/health", timeout=10).json()
        finally:
            daemon.stop()
    growth = {k: at_end.get(k, 0) - v for k, v in after_warmup.items()}
    figures: dict[str, Any] = {
        "requests": args.requests,
        "seconds": round(elapsed, 1),
        "outcomes": dict(sorted(outcomes.items())),
        "rss_after_warmup_mib": {k: round(v / 2**20, 1) for k, v in after_warmup.items()},
        "rss_at_end_mib": {k: round(v / 2**20, 1) for k, v in at_end.items()},
        "growth_mib": {k: round(v / 2**20, 1) for k, v in growth.items()},
        "health_at_end": health.get("status"),
    }
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    bad = [k for k in outcomes if k.split()[1].startswith("5") or "unfinished" in k]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
