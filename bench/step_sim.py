"""The 4-stream bench level, simulated: our real `Scheduler` over a fake engine whose steps
sleep what llama.cpp's micro-batches cost on this box's CPU, so that step policies can be
compared without the box's ±15% drift (and in seconds instead of half an hour).

The engine cuts each step as llama.cpp does with a KV stream per slot (`split_equal`,
512-token micro-batches: a run of consecutive sequence ids, the same number of tokens
from each) and sleeps the sum of the micro-batches' costs, measured on the 700M Q4_K_M
bench model with 1 thread: 77 ms for one row, ~30 ms per further row up to 4, ~9.3 ms per
token up to 16 and ~7.6 ms per token beyond (bench/gap_cost.py; the issue 7 notes).

Clients work like `appliance bench`'s: each sends its requests one after the other, the
first ones `--stagger-ms` apart (new connections), every prompt starting with the same 18
tokens. Policies:
- `ours`: the scheduler as it is;
- `equal`: every unfinished prompt of a step in chunks of one length;
- `fifo`: prompts in arrival order, each as much as the budget leaves;
- `peer`: llama-server's shape: arrival order, 2048 tokens a step, no pads, no gathering.

    .venv/bin/python bench/step_sim.py --prompt-lens 120,182,300,450 --staggers 10,75
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from appliance.engines.engine import BatchEntry
from appliance.engines.protocol import Frame
from appliance.engines.scheduler import Scheduler
from appliance.engines.step_plan import equal_chunks, oldest_first
from tests.engines.fake_engine import FakeEngine

UBATCH = 512
SHARED_PREFIX = 18  # "[run abcd request " of the bench's prompts


def cost_ms(tokens: int) -> float:
    """One micro-batch of `tokens` tokens on the bench model (1 CPU thread)."""
    if tokens <= 4:
        return 77 + 30 * (tokens - 1)
    if tokens <= 16:
        return 168 + 9.3 * (tokens - 4)
    return 279 + 7.6 * (tokens - 16)


def micro_batches(counts: dict[int, int]) -> list[tuple[int, int]]:
    """(sequences, tokens each) of llama.cpp's split_equal over a step's tokens per id."""
    left = {i: n for i, n in counts.items() if n > 0}
    out = []
    while left:
        ids = sorted(left)
        run = [ids[0]]
        for i in ids[1:]:
            if i != run[-1] + 1:
                break
            run.append(i)
        each = min(min(left[i] for i in run), UBATCH // len(run))
        for i in run:
            left[i] -= each
            if not left[i]:
                del left[i]
        out.append((len(run), each))
    return out


class CostEngine(FakeEngine):
    n_ctx = 2048

    def __init__(self, n_batch: int, gap_fill_tokens: int, scale: float) -> None:
        super().__init__(
            n_seq_max=4,
            capacity=10**6,
            n_vocab=10**6,
            prefix_copy=False,
            gap_fill_tokens=gap_fill_tokens,
        )
        self.n_batch = n_batch
        self.scale = scale
        self.passes = 0

    def decode(self, entries: Sequence[BatchEntry]) -> list[int]:
        counts: dict[int, int] = {}
        for e in entries:
            counts[e.seq_id] = counts.get(e.seq_id, 0) + len(e.tokens)
        shapes = micro_batches(counts)
        self.passes += len(shapes)
        time.sleep(sum(cost_ms(n * k) for n, k in shapes) / 1000 / self.scale)
        self.steps.clear()
        return super().decode(entries)


PLANS: dict[str, Callable[[Sequence[int], int], list[int]] | None] = {
    "ours": None,
    "equal": equal_chunks,
    "fifo": oldest_first,
    "peer": oldest_first,
}


class PolicyScheduler(Scheduler):
    plan: Callable[[Sequence[int], int], list[int]] | None = None

    def _prompt_chunks(self, remaining: list[int], budget: int) -> list[int]:
        if self.plan is None:
            return super()._prompt_chunks(remaining, budget)
        return self.plan(remaining, budget)


def run_level(
    policy: str, prompt_len: int, stagger_ms: float, scale: float, clients: int = 4
) -> dict[str, Any]:
    peer = policy == "peer"
    engine = CostEngine(2048 if peer else 512, 0 if peer else 1, scale)
    sent: dict[str, float] = {}
    first: dict[str, float] = {}
    ended: dict[str, threading.Event] = {}
    lock = threading.Lock()

    def emit(frame: Frame) -> None:
        rid, now = str(frame.get("id")), time.monotonic()
        with lock:
            if frame.get("type") == "token":
                first.setdefault(rid, now)
            elif frame.get("type") in ("done", "error"):
                ended[rid].set()

    scheduler = PolicyScheduler(engine, emit, n_slots=4, gather_max_s=0.0 if peer else 0.1 / scale)
    scheduler.plan = PLANS[policy]
    loop = threading.Thread(target=scheduler.run, daemon=True)
    loop.start()
    counter = iter(range(1, 10**6))

    def client(c: int) -> None:
        time.sleep(c * stagger_ms / 1000 / scale)
        for _ in range(2):
            with lock:
                n = next(counter)
                rid = f"r{n}"
                ended[rid] = threading.Event()
            own = [10**5 + 1000 * n + j for j in range(prompt_len - SHARED_PREFIX)]
            prompt = list(range(2, 2 + SHARED_PREFIX)) + own
            sent[rid] = time.monotonic()
            scheduler.submit(
                {
                    "type": "generate",
                    "id": rid,
                    "prompt": " ".join(map(str, prompt)),
                    "params": {"max_tokens": 48},
                }
            )
            ended[rid].wait()

    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = (time.monotonic() - started) * scale
    scheduler.submit({"type": "shutdown"})
    loop.join()
    ttft = [(first[r] - sent[r]) * scale for r in sent]
    return {
        "ttft_p50_s": statistics.median(ttft),
        "ttft_mean_s": statistics.mean(ttft),
        "tok_s": len(sent) * 48 / wall,
        "passes": engine.passes,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--policies", default="ours,equal,peer")
    ap.add_argument("--prompt-lens", default="182")
    ap.add_argument("--staggers", default="75", help="ms between the first requests")
    ap.add_argument("--scale", type=float, default=8.0, help="run this many times faster")
    args = ap.parse_args()
    for prompt_len in (int(x) for x in args.prompt_lens.split(",")):
        for stagger in (float(x) for x in args.staggers.split(",")):
            cells = []
            for policy in args.policies.split(","):
                r = run_level(policy, prompt_len, stagger, args.scale)
                cells.append(
                    f"{policy}: TTFT p50 {r['ttft_p50_s']:5.2f} s mean {r['ttft_mean_s']:5.2f} s"
                    f", {r['tok_s']:5.2f} tok/s, {r['passes']} passes"
                )
            print(f"prompt {prompt_len} stagger {stagger:.0f} ms | " + " | ".join(cells))


if __name__ == "__main__":
    main()
