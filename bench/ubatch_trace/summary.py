"""Micro-batches per process from a shim.c log: how many, of which shapes, and how much
of the engine's busy time they took.

    python bench/ubatch_trace/summary.py /tmp/ub.log

A decode micro-batch carries one token per sequence; a prompt micro-batch more. Both
servers doing the same work in fewer micro-batches read the weights fewer times: on
this project's CPU box that count, unlike wall time, does not drift with the load.

Busy time is split into compute (inside the micro-batches) and the gaps between them
(scheduling, sampling, the server's own work) over each busy period: micro-batches less
than `SPLIT_S` apart.
"""

from __future__ import annotations

import collections
import itertools
import statistics
import sys

SPLIT_S = 0.5

Ubatch = tuple[float, int, int, int, float]  # start (s), tokens, per sequence, sequences, ms


def busy_split(ubatches: list[Ubatch]) -> tuple[float, float, list[float]]:
    """Compute seconds, gap seconds and every gap (s) inside busy periods."""
    rows = sorted(ubatches)
    compute = sum(u[4] for u in rows) / 1e3
    gaps = []
    for before, after in itertools.pairwise(rows):
        gap = after[0] - (before[0] + before[4] / 1e3)
        if gap <= SPLIT_S:
            gaps.append(max(gap, 0.0))
    return compute, sum(gaps), gaps


def main(path: str) -> None:
    by_pid: dict[str, list[Ubatch]] = collections.defaultdict(list)
    with open(path) as log:
        for line in log:
            pid, t, n, per_seq, seqs, ms = line.split()
            by_pid[pid].append((float(t), int(n), int(per_seq), int(seqs), float(ms)))
    for pid, ubatches in by_pid.items():
        decode = collections.Counter(n for _, n, per_seq, _, _ in ubatches if per_seq == 1)
        prompt = collections.Counter(f"{p}x{s}" for _, _, p, s, _ in ubatches if p > 1)
        tokens = sum(u[1] for u in ubatches)
        print(f"pid {pid}: {len(ubatches)} micro-batches, {tokens} tokens")
        print(f"  decode (rows: count): {dict(sorted(decode.items()))}")
        print(f"  prompt (tokens per sequence x sequences: count): {prompt.most_common(8)}")
        compute, gap, gaps = busy_split(ubatches)
        prompt_ms = [(u[4], u[1]) for u in ubatches if u[2] > 1]
        per_token = sum(ms for ms, _ in prompt_ms) / max(1, sum(n for _, n in prompt_ms))
        print(
            f"  busy: compute {compute:.2f} s, gaps {gap:.3f} s "
            f"({100 * gap / max(compute + gap, 1e-9):.1f}%), gap median "
            f"{1e3 * statistics.median(gaps) if gaps else 0:.2f} ms; "
            f"prompt {per_token:.2f} ms a token"
        )
        for rows in sorted(decode):
            times = [u[4] for u in ubatches if u[2] == 1 and u[1] == rows]
            print(f"  decode {rows} rows: median {statistics.median(times):.2f} ms")


if __name__ == "__main__":
    main(sys.argv[1])
