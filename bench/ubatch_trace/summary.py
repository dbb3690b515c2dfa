"""Micro-batches per process from a shim.c log: how many, of which shapes.

    python bench/ubatch_trace/summary.py /tmp/ub.log

A decode micro-batch carries one token per sequence; a prompt micro-batch more. Both
servers doing the same work in fewer micro-batches read the weights fewer times: on
this project's CPU box that count, unlike wall time, does not drift with the load.
"""

from __future__ import annotations

import collections
import sys


def main(path: str) -> None:
    by_pid: dict[str, list[tuple[int, int, int, float]]] = collections.defaultdict(list)
    with open(path) as log:
        for line in log:
            pid, _t, n, per_seq, seqs, ms = line.split()
            by_pid[pid].append((int(n), int(per_seq), int(seqs), float(ms)))
    for pid, ubatches in by_pid.items():
        decode = collections.Counter(n for n, per_seq, _, _ in ubatches if per_seq == 1)
        prompt = collections.Counter(f"{p}x{s}" for _, p, s, _ in ubatches if p > 1)
        tokens = sum(u[0] for u in ubatches)
        print(f"pid {pid}: {len(ubatches)} micro-batches, {tokens} tokens")
        print(f"  decode (rows: count): {dict(sorted(decode.items()))}")
        print(f"  prompt (tokens per sequence x sequences: count): {prompt.most_common(8)}")


if __name__ == "__main__":
    main(sys.argv[1])
