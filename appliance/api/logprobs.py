"""Log probabilities in the two OpenAI shapes: chat's `logprobs.content` list and the
legacy completions' parallel arrays. The worker sends one entry per generated token
(its text, logprob, bytes and the likeliest alternatives); the end-of-sequence token
has none, as in OpenAI's answers."""

from __future__ import annotations

from typing import Any

Entry = dict[str, Any]


def chat_logprobs(entries: list[Entry]) -> dict[str, Any]:
    return {
        "content": [
            {
                "token": e["token"],
                "logprob": e["logprob"],
                "bytes": e["bytes"],
                "top_logprobs": [
                    {"token": t["token"], "logprob": t["logprob"], "bytes": t["bytes"]}
                    for t in e.get("top_logprobs", [])
                ],
            }
            for e in entries
        ],
        "refusal": None,
    }


def completion_logprobs(entries: list[Entry], start: int = 0) -> dict[str, Any]:
    """`start`: the text offset of the first token (the prompt's length when echoed)."""
    offsets = []
    at = start
    for e in entries:
        offsets.append(at)
        at += len(e["token"])
    return {
        "tokens": [e["token"] for e in entries],
        "token_logprobs": [e["logprob"] for e in entries],
        "top_logprobs": [
            {t["token"]: t["logprob"] for t in e.get("top_logprobs", [])} for e in entries
        ],
        "text_offset": offsets,
    }
