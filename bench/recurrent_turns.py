"""Conversations on a recurrent or hybrid model: appliance vs llama.cpp's llama-server.

Such a model's state cannot be cut back to a prefix, so a prompt cache serves a prompt
only from a state saved exactly where the prompt still matches. Agents meet two cases:

- the next turn of a conversation, when the template's generation prompt opens a
  reasoning block its history does not show (Qwen3.5's: the next turn parts from the
  last prompt just before it), and
- new conversations on the same system prompt and tools.

Both servers serve the same random-weight Mamba (or Jamba) GGUF with a Qwen3.5-style
template, the same threads, slots and per-sequence context. Each round uses a fresh
system prompt; rounds alternate which server goes first. It prints, per server, the
median time to the first streamed token of the first turn (cold), of the later turns,
of the first conversation on a system prompt and of the ones after the second, and the
ratios appliance / llama-server.

    bin=$(PYTHON=.venv/bin/python ../shared/tools/build-llama-server.sh)
    .venv/bin/python bench/recurrent_turns.py --llama-server-bin "$bin"
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from batching import document
from vs_llama_server import start_llama_server, wait_up

from appliance.tiny_model import TinyModelSpec, write_tiny_hybrid_gguf, write_tiny_mamba_gguf
from tests.daemon import start_daemon

# Qwen3.5's way: the generation prompt opens a reasoning block, the history shows none.
OPENS_THINK = """{%- for m in messages %}<|im_start|>{{ m.role }}
{{ m.content }}<|im_end|>
{% endfor %}{%- if add_generation_prompt %}<|im_start|>assistant
<think>
{% endif %}"""

CLIENT = httpx.Client(timeout=600)


def make_model(cache: Path, arch: str, n_embd: int, n_layer: int) -> Path:
    path = cache / f"bench-{arch}-{n_embd}x{n_layer}.gguf"
    if not path.exists():
        cache.mkdir(parents=True, exist_ok=True)
        spec = TinyModelSpec(
            n_embd=n_embd,
            n_layer=n_layer,
            n_head=8,
            n_head_kv=4,
            n_ff=4 * n_embd,
            n_ctx_train=16384,
        )
        writer = write_tiny_mamba_gguf if arch == "mamba" else write_tiny_hybrid_gguf
        writer(path, spec=spec)
    return path


def first_token_s(base: str, messages: list[dict[str, str]]) -> float:
    """Seconds to the first streamed token (text or reasoning) of a chat answer."""
    body: dict[str, Any] = {
        "model": "bench",
        "messages": messages,
        "max_tokens": 2,
        "temperature": 0,
        "stream": True,
    }
    started = time.monotonic()
    with CLIENT.stream("POST", base + "/chat/completions", json=body) as r:
        if r.status_code != 200:
            raise RuntimeError(f"{base}: {r.status_code} {r.read().decode()[:300]}")
        for line in r.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            for choice in chunk.get("choices") or []:
                delta = choice.get("delta") or {}
                if delta.get("content") or delta.get("reasoning_content"):
                    return time.monotonic() - started
    raise RuntimeError(f"{base}: no token streamed")


def one_round(base: str, system: str, turns: int, conversations: int) -> dict[str, list[float]]:
    """One conversation of `turns` turns, then `conversations` more on the same system
    prompt (one question each); the seconds to each first token."""
    out: dict[str, list[float]] = {"first turn": [], "later turns": []}
    messages = [{"role": "system", "content": system}]
    for t in range(turns):
        messages.append({"role": "user", "content": f"Question {t}: what does part {t} say?"})
        out["first turn" if t == 0 else "later turns"].append(first_token_s(base, messages))
        # The client keeps the answer, not the reasoning the template dropped.
        messages.append({"role": "assistant", "content": f"Part {t} says a few things."})
    out["second conversation"] = []
    out["conversations after"] = []
    for c in range(conversations):
        question = [{"role": "system", "content": system}]
        question.append({"role": "user", "content": f"{'ABCDEFGH'[c % 8]}: a new question?"})
        key = "second conversation" if c == 0 else "conversations after"
        out[key].append(first_token_s(base, question))
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--llama-server-bin", required=True, help="folder with llama-server")
    ap.add_argument("--arch", choices=("mamba", "jamba"), default="mamba")
    ap.add_argument("--n-embd", type=int, default=768)
    ap.add_argument("--n-layer", type=int, default=24)
    ap.add_argument("--cache", default=str(Path.home() / ".cache" / "appliance-bench"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--context", type=int, default=4096, help="per sequence")
    ap.add_argument("--slots", type=int, default=4)
    ap.add_argument("--system-words", type=int, default=200)
    ap.add_argument("--turns", type=int, default=4)
    ap.add_argument("--conversations", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args()

    model = make_model(Path(args.cache), args.arch, args.n_embd, args.n_layer)
    work = Path(tempfile.mkdtemp(prefix="bench-recurrent-"))
    template = work / "opens-think.jinja"
    template.write_text(OPENS_THINK)
    catalog = work / "models.toml"
    catalog.write_text(
        f'[models.bench]\nsource = "{model}"\ncontext = {args.context}\n'
        f'keep_alive = "forever"\nparallel = {args.slots}\nchat_template = "{template}"\n'
    )
    ours = start_daemon(work / "home", catalog, env={"APPLIANCE_THREADS": str(args.threads)})
    peer, peer_url = start_llama_server(
        args.llama_server_bin,
        model,
        args.threads,
        args.context * args.slots,
        work,
        *("-np", str(args.slots), "--alias", "bench", "--jinja"),
        *("--chat-template-file", str(template)),
    )
    targets = {"appliance": ours.v1, "llama-server": peer_url + "/v1"}
    figures: dict[str, dict[str, list[float]]] = {name: {} for name in targets}
    try:
        wait_up(peer_url, peer)
        for base in targets.values():  # loaded and warm, off the clock
            first_token_s(base, [{"role": "user", "content": "hi"}])
        for r in range(args.rounds):
            order = list(targets) if r % 2 == 0 else list(reversed(targets))
            system = document(secrets.token_hex(4), args.system_words)
            for name in order:
                got = one_round(targets[name], system, args.turns, args.conversations)
                for key, values in got.items():
                    figures[name].setdefault(key, []).extend(values)
                print(f"round {r + 1} {name}: {got}", file=sys.stderr)
    finally:
        peer.terminate()
        peer.wait()
        ours.stop()

    medians = {n: {k: statistics.median(v) for k, v in f.items()} for n, f in figures.items()}
    shape = f"{args.arch} {args.n_embd}x{args.n_layer}"
    print(f"{shape}, {args.threads} thread(s), {args.rounds} rounds")
    print(f"{'first token, s (median)':28} {'appliance':>10} {'llama-server':>13} {'ratio':>7}")
    for key in medians["appliance"]:
        a, b = medians["appliance"][key], medians["llama-server"][key]
        print(f"{key:28} {a:10.3f} {b:13.3f} {a / b:7.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"medians": medians, "figures": figures}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
