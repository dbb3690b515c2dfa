"""Ollama's request and answer shapes for its generating routes, apart from I/O.

Tools that speak Ollama's API (Open WebUI's Ollama connection, Continue, Zed,
LangChain's ChatOllama, Home Assistant, the `ollama` clients) send `options` instead of
top-level sampling fields, tool calls whose arguments are objects, `format` as "json"
or a schema, and read NDJSON lines with nanosecond durations. A request is read into
the OpenAI body the shared pipeline validates (with Ollama's defaults where the client
gave none) and the answer is written back in Ollama's shape.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from appliance.api.errors import invalid_request

__all__ = [
    "OLLAMA_DEFAULTS",
    "chat_messages",
    "created_at",
    "done_fields",
    "ollama_tool_calls",
    "sampling_fields",
]

# Ollama's runtime defaults (api/types.go DefaultOptions), where a model file sets none.
OLLAMA_DEFAULTS: dict[str, Any] = {
    "temperature": 0.8,
    "top_k": 40,
    "top_p": 0.9,
    "repeat_penalty": 1.1,
    "repeat_last_n": 64,
}
# options -> the OpenAI / llama-server field of the same meaning.
_OPTION_FIELDS = {
    "temperature": "temperature",
    "top_k": "top_k",
    "top_p": "top_p",
    "min_p": "min_p",
    "typical_p": "typical_p",
    "seed": "seed",
    "stop": "stop",
    "repeat_penalty": "repeat_penalty",
    "repeat_last_n": "repeat_last_n",
    "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty",
    "mirostat": "mirostat",
    "mirostat_tau": "mirostat_tau",
    "mirostat_eta": "mirostat_eta",
}


def created_at() -> str:
    """Now, as Ollama writes it (RFC 3339 with nanoseconds' room, UTC)."""
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def sampling_fields(body: Mapping[str, Any]) -> dict[str, Any]:
    """`options`, `format`, `logprobs` and `top_logprobs` as OpenAI body fields."""
    options = body.get("options") or {}
    if not isinstance(options, dict):
        raise invalid_request("'options' must be an object.", "options")
    out: dict[str, Any] = dict(OLLAMA_DEFAULTS)
    for key, field in _OPTION_FIELDS.items():
        if options.get(key) is not None:
            out[field] = options[key]
    if out.get("seed") is not None and isinstance(out["seed"], int) and out["seed"] < 0:
        del out["seed"]  # Ollama's -1: a random seed
    predict = options.get("num_predict")
    if predict is None or predict in (-1, -2):
        out["max_tokens"] = -1  # until the model ends or the context is full
    else:
        out["max_tokens"] = predict
    fmt = body.get("format")
    if fmt == "json":
        out["response_format"] = {"type": "json_object"}
    elif isinstance(fmt, dict):
        out["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "format", "schema": fmt, "strict": True},
        }
    elif fmt not in (None, ""):
        raise invalid_request("'format' must be \"json\" or a JSON schema object.", "format")
    if body.get("logprobs"):
        out["logprobs"] = True
        top = body.get("top_logprobs")
        if top is not None:
            out["top_logprobs"] = top
    return out


def chat_messages(messages: Any) -> list[dict[str, Any]]:
    """Ollama's messages as OpenAI's: tool calls get ids, their arguments JSON text, and a
    tool message (`tool_name`) answers the earliest unanswered call of that name."""
    if not isinstance(messages, list):
        raise invalid_request("'messages' must be a list of messages.", "messages")
    out: list[dict[str, Any]] = []
    unanswered: list[tuple[str, str]] = []  # (call id, tool name), oldest first
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            raise invalid_request(f"'messages[{i}]' must be an object.", "messages")
        if m.get("images"):
            raise invalid_request(
                "Images are not supported: this server's models read text only.", "messages"
            )
        role = m.get("role")
        msg: dict[str, Any] = {"role": role, "content": m.get("content") or ""}
        if role == "assistant":
            if m.get("thinking"):
                msg["reasoning_content"] = m["thinking"]
            calls = []
            for call in m.get("tool_calls") or []:
                fn = (call or {}).get("function") or {}
                call_id = f"call_{uuid.uuid4().hex[:12]}"
                arguments = fn.get("arguments")
                text = arguments if isinstance(arguments, str) else json.dumps(arguments or {})
                calls.append(
                    {
                        "id": call_id,
                        "type": "function",
                        "function": {"name": fn.get("name"), "arguments": text},
                    }
                )
                unanswered.append((call_id, str(fn.get("name"))))
            if calls:
                msg["tool_calls"] = calls
        elif role == "tool":
            name = m.get("tool_name") or m.get("name")
            match = next((c for c in unanswered if c[1] == name), None)
            match = match or (unanswered[0] if unanswered else None)
            if match is not None:
                unanswered.remove(match)
                msg["tool_call_id"] = match[0]
            else:
                msg["tool_call_id"] = f"call_{uuid.uuid4().hex[:12]}"
            if name:
                msg["name"] = name
        out.append(msg)
    return out


def ollama_tool_calls(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """OpenAI tool calls as Ollama's: arguments as an object."""
    out = []
    for i, call in enumerate(calls):
        fn = call["function"]
        try:
            arguments = json.loads(fn.get("arguments") or "{}")
        except json.JSONDecodeError:
            arguments = {}
        out.append({"function": {"index": i, "name": fn["name"], "arguments": arguments}})
    return out


def done_fields(done: Mapping[str, Any], total_s: float, load_s: float) -> dict[str, Any]:
    """The final line's counts and durations (nanoseconds), from the worker's done frame."""

    def ns(seconds: float) -> int:
        return int(max(seconds, 0.0) * 1e9)

    reason = str(done.get("finish_reason") or "stop")
    return {
        "done": True,
        "done_reason": "length" if reason == "length" else "stop",
        "total_duration": ns(total_s),
        "load_duration": ns(load_s),
        "prompt_eval_count": int(done.get("prompt_tokens", 0)),
        "prompt_eval_duration": ns(float(done.get("prompt_s", 0.0))),
        "eval_count": int(done.get("completion_tokens", 0)),
        "eval_duration": ns(float(done.get("decode_s", 0.0))),
    }
