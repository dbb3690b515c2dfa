"""The Anthropic Messages API as a thin translation over the chat pipeline (pure).

A Messages body becomes a chat completions body: `system` -> a system message (a
`system` message among the turns -> a system message there), content blocks ->
messages (`tool_use` blocks -> the assistant's tool calls, `thinking` blocks -> its
`reasoning_content`, `tool_result` blocks -> `tool` messages), `tools` (`input_schema`)
-> function tools, `tool_choice` any/tool/none -> required/named/none, `stop_sequences`
-> `stop`. The answer's chat deltas become content blocks (thinking,
text, tool_use) and, when streaming, Anthropic's events (message_start,
content_block_start/delta/stop, message_delta, message_stop). Usage splits the prompt
as Anthropic does: `input_tokens` not read from the prompt cache,
`cache_read_input_tokens` read from it.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from appliance.api.errors import APIError, invalid_request

Event = tuple[str, dict[str, Any]]  # (event name, data)

STOP_REASONS = {"length": "max_tokens", "tool_calls": "tool_use", "stop": "end_turn"}


def _text(content: Any, param: str) -> str:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise invalid_request(f"'{param}' must be a string or a list of blocks", param)
    out = []
    for i, block in enumerate(content):
        if not isinstance(block, dict) or block.get("type") != "text":
            kind = block.get("type") if isinstance(block, dict) else block
            raise invalid_request(f"'{param}[{i}]': only text blocks here, got {kind!r}", param)
        out.append(str(block.get("text") or ""))
    return "".join(out)


def _messages(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not value:
        raise invalid_request("'messages' must be a non-empty list", "messages")
    out: list[dict[str, Any]] = []
    for i, msg in enumerate(value):
        param = f"messages[{i}]"
        if not isinstance(msg, dict) or msg.get("role") not in ("user", "assistant", "system"):
            raise invalid_request(
                f"'{param}.role' must be 'user', 'assistant' or 'system'", f"{param}.role"
            )
        role, content = msg["role"], msg.get("content")
        if role == "system":
            # A mid-conversation system message (Claude Code sends one after the first user
            # turn): instructions from here on, a system turn where it stands.
            out.append({"role": "system", "content": _text(content, f"{param}.content")})
            continue
        if isinstance(content, str):
            out.append({"role": role, "content": content})
            continue
        if not isinstance(content, list):
            raise invalid_request(
                f"'{param}.content' must be a string or blocks", f"{param}.content"
            )
        texts: list[str] = []
        calls: list[dict[str, Any]] = []
        thinking: list[str] = []
        for j, block in enumerate(content):
            bparam = f"{param}.content[{j}]"
            kind = block.get("type") if isinstance(block, dict) else None
            if kind == "text":
                texts.append(str(block.get("text") or ""))
            elif kind == "tool_use" and role == "assistant":
                calls.append(
                    {
                        "id": str(block.get("id") or f"toolu_{uuid.uuid4().hex[:24]}"),
                        "type": "function",
                        "function": {
                            "name": block.get("name"),
                            "arguments": json.dumps(block.get("input") or {}),
                        },
                    }
                )
            elif kind == "tool_result" and role == "user":
                result = block.get("content")
                text = result if isinstance(result, str) else _text(result or [], bparam)
                if block.get("is_error"):
                    text = f"Error: {text}"
                out.append(
                    {"role": "tool", "tool_call_id": str(block.get("tool_use_id")), "content": text}
                )
            elif kind == "thinking" and role == "assistant":
                # The model's reasoning goes back to its template as `reasoning_content`:
                # templates keep it where it matters (a tool-use loop) and drop it elsewhere.
                thinking.append(str(block.get("thinking") or ""))
            elif kind in ("thinking", "redacted_thinking"):
                continue  # redacted (encrypted) reasoning means nothing to a local model
            elif kind in ("image", "document"):
                raise invalid_request(
                    f"'{bparam}': {kind} input is not supported by this server", bparam
                )
            else:
                raise invalid_request(f"'{bparam}': unsupported block type {kind!r}", bparam)
        reasoning = "".join(thinking)
        if texts or calls or reasoning:
            item: dict[str, Any] = {
                "role": role,
                "content": "".join(texts) or (None if calls else ""),
            }
            if calls:
                item["tool_calls"] = calls
            if reasoning:
                item["reasoning_content"] = reasoning
            out.append(item)
    return out


def _tool_choice(value: Any) -> tuple[Any, bool | None]:
    if value is None:
        return None, None
    if not isinstance(value, dict):
        raise invalid_request(
            '\'tool_choice\' must be an object such as {"type": "auto"}', "tool_choice"
        )
    kind = value.get("type")
    disable = value.get("disable_parallel_tool_use")
    # Unset: the chat default (several calls with auto, one with any or a named tool).
    parallel = None if disable is None else not bool(disable)
    if kind == "auto":
        return "auto", parallel
    if kind == "any":
        return "required", parallel
    if kind == "none":
        return "none", parallel
    if kind == "tool":
        return {"type": "function", "function": {"name": value.get("name")}}, parallel
    raise invalid_request(
        f"'tool_choice.type' must be auto, any, tool or none, got {kind!r}", "tool_choice.type"
    )


def to_chat_body(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise invalid_request("the request body must be a JSON object")
    if body.get("max_tokens") is None:
        raise invalid_request("'max_tokens' is required", "max_tokens")
    if body.get("thread") not in (None, False):
        # The SDKs' message threads (the server keeps the history) are not kept here: this
        # error code makes them send the whole conversation instead.
        raise APIError(
            400,
            "'thread' is not supported here: send the whole conversation in 'messages'",
            param="thread",
            details={"error_code": "thread_unsupported_request", "unsupported": []},
        )
    messages: list[dict[str, Any]] = []
    system = body.get("system")
    if system:
        messages.append({"role": "system", "content": _text(system, "system")})
    messages += _messages(body.get("messages"))
    chat: dict[str, Any] = {"messages": messages, "max_tokens": body["max_tokens"]}
    if body.get("model") is not None:
        chat["model"] = body["model"]
    for key in ("temperature", "top_p", "top_k"):
        if body.get(key) is not None:
            chat[key] = body[key]
    if body.get("stop_sequences"):
        chat["stop"] = body["stop_sequences"]
    thinking = body.get("thinking")
    kind = thinking.get("type") if isinstance(thinking, dict) else None
    if kind in ("enabled", "disabled", "adaptive"):
        # Qwen3's template variable: "disabled" closes the reasoning block before the answer.
        chat["chat_template_kwargs"] = {"enable_thinking": kind != "disabled"}
    tools = body.get("tools")
    if tools:
        if not isinstance(tools, list):
            raise invalid_request("'tools' must be a list", "tools")
        chat["tools"] = []
        for i, tool in enumerate(tools):
            if not isinstance(tool, dict) or "name" not in tool:
                raise invalid_request(f"'tools[{i}]' must be a tool with a name", f"tools[{i}]")
            if tool.get("type") not in (None, "custom"):
                raise invalid_request(
                    f"'tools[{i}]' is Anthropic's {tool['type']!r} tool, which runs on "
                    "Anthropic's side or needs its schema: only custom tools (a name and an "
                    "input_schema) are served here",
                    f"tools[{i}].type",
                )
            fn = {
                "name": tool["name"],
                "parameters": tool.get("input_schema") or {"type": "object"},
            }
            if tool.get("description"):
                fn["description"] = tool["description"]
            chat["tools"].append({"type": "function", "function": fn})
    choice, parallel = _tool_choice(body.get("tool_choice"))
    if choice is not None:
        chat["tool_choice"] = choice
    if parallel is not None:
        chat["parallel_tool_calls"] = parallel
    schema = _output_schema(body)
    if schema is not None:
        chat["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "output", "schema": schema, "strict": True},
        }
    if body.get("stream"):
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    return chat


def _output_schema(body: dict[str, Any]) -> dict[str, Any] | None:
    """Structured output's JSON schema: `output_config.format` (the SDK's `messages.parse`)
    or the older beta `output_format`, both `{"type": "json_schema", "schema": ...}`."""
    config = body.get("output_config")
    fmt = config.get("format") if isinstance(config, dict) else None
    param = "output_config.format"
    if fmt is None:
        fmt, param = body.get("output_format"), "output_format"
    if fmt is None:
        return None
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
        raise invalid_request(f'\'{param}\' must be {{"type": "json_schema", ...}}', param)
    schema = fmt.get("schema")
    if not isinstance(schema, dict):
        raise invalid_request(f"'{param}.schema' must be a JSON schema object", param)
    return schema


class MessageBuilder:
    """Content blocks from the chat deltas, and the stream events that announce them."""

    def __init__(self, model: str, input_tokens: int, max_tokens: int | None = None) -> None:
        self.id = f"msg_{uuid.uuid4().hex[:24]}"
        self.model = model
        self.input_tokens = input_tokens  # the whole prompt
        self.max_tokens = max_tokens  # the request's: an answer cut short of it hit the context
        # Of which read from the prompt cache: known once the worker admits the request
        # (before message_start when streaming), or at the end.
        self.cached_tokens = 0
        self.blocks: list[dict[str, Any]] = []
        self._open: str | None = None  # "thinking" | "text"
        self._calls: dict[int, dict[str, Any]] = {}
        self._args: dict[int, str] = {}
        self.stop_sequence: str | None = None  # the stop string that ended the answer

    def start(self) -> list[Event]:
        message = {**self.message("", 0), "content": [], "stop_reason": None}
        return [("message_start", {"type": "message_start", "message": message})]

    def _close(self) -> list[Event]:
        if self._open is None:
            return []
        index = len(self.blocks) - 1
        events: list[Event] = []
        if self._open == "thinking":
            # Anthropic's clients expect a thinking block's signature before it closes; a
            # local model's reasoning has none (empty, as llama-server sends it).
            delta = {"type": "signature_delta", "signature": ""}
            events.append(
                (
                    "content_block_delta",
                    {"type": "content_block_delta", "index": index, "delta": delta},
                )
            )
        self._open = None
        events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
        return events

    def _begin(self, kind: str) -> list[Event]:
        if self._open == kind:
            return []
        events = self._close()
        block: dict[str, Any] = (
            {"type": "text", "text": ""}
            if kind == "text"
            else {"type": "thinking", "thinking": "", "signature": ""}
        )
        self.blocks.append(block)
        self._open = kind
        start = {
            "type": "content_block_start",
            "index": len(self.blocks) - 1,
            "content_block": dict(block),
        }
        return [*events, ("content_block_start", start)]

    def feed(self, delta: dict[str, Any]) -> list[Event]:
        events: list[Event] = []
        if delta.get("reasoning_content"):
            events += self._begin("thinking")
            self.blocks[-1]["thinking"] += delta["reasoning_content"]
            events.append(
                (
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": len(self.blocks) - 1,
                        "delta": {"type": "thinking_delta", "thinking": delta["reasoning_content"]},
                    },
                )
            )
        if delta.get("content"):
            events += self._begin("text")
            self.blocks[-1]["text"] += delta["content"]
            events.append(
                (
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": len(self.blocks) - 1,
                        "delta": {"type": "text_delta", "text": delta["content"]},
                    },
                )
            )
        for call in delta.get("tool_calls") or ():
            index = call["index"]
            if index not in self._calls:
                events += self._close()
                block = {
                    "type": "tool_use",
                    "id": call["id"],
                    "name": call["function"]["name"],
                    "input": {},
                }
                self.blocks.append(block)
                self._calls[index] = block
                self._args[index] = ""
                events.append(
                    (
                        "content_block_start",
                        {
                            "type": "content_block_start",
                            "index": len(self.blocks) - 1,
                            "content_block": dict(block),
                        },
                    )
                )
                self._open = "tool_use"
            piece = call["function"].get("arguments") or ""
            if piece:
                self._args[index] += piece
                events.append(
                    (
                        "content_block_delta",
                        {
                            "type": "content_block_delta",
                            "index": self.blocks.index(self._calls[index]),
                            "delta": {"type": "input_json_delta", "partial_json": piece},
                        },
                    )
                )
        return events

    def usage(self, output_tokens: int) -> dict[str, int]:
        """Anthropic's usage: `input_tokens` are the prompt tokens not read from the cache,
        `cache_read_input_tokens` those that were (the three add up to the prompt)."""
        cached = min(self.cached_tokens, self.input_tokens)
        return {
            "input_tokens": self.input_tokens - cached,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": cached,
            "output_tokens": output_tokens,
        }

    def finish(
        self,
        finish_reason: str,
        output_tokens: int,
        cached_tokens: int = 0,
        stop_sequence: str | None = None,
    ) -> list[Event]:
        events = self._close()
        self.cached_tokens = cached_tokens
        for index, block in self._calls.items():
            try:
                block["input"] = json.loads(self._args[index] or "{}")
            except json.JSONDecodeError:
                block["input"] = {}
        self.stop_reason = STOP_REASONS.get(finish_reason, "end_turn")
        if self.stop_reason == "max_tokens" and output_tokens < (self.max_tokens or 0):
            # Cut at the context's end, as Anthropic says it: Claude Code then reports the
            # context window (it said the answer "exceeded the 32000 output token maximum").
            self.stop_reason = "model_context_window_exceeded"
        self.stop_sequence = stop_sequence if self.stop_reason == "end_turn" else None
        if self.stop_sequence is not None:
            self.stop_reason = "stop_sequence"  # one of the request's stop_sequences matched
        self.output_tokens = output_tokens
        events.append(
            (
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {
                        "stop_reason": self.stop_reason,
                        "stop_sequence": self.stop_sequence,
                    },
                    # Cumulative, as Anthropic sends it (message_start had the same split).
                    "usage": self.usage(output_tokens),
                },
            )
        )
        events.append(("message_stop", {"type": "message_stop"}))
        return events

    def message(
        self, stop_reason: str | None = None, output_tokens: int | None = None
    ) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": self.blocks,
            "stop_reason": stop_reason
            if stop_reason is not None
            else getattr(self, "stop_reason", None),
            "stop_sequence": self.stop_sequence,
            "usage": self.usage(
                output_tokens if output_tokens is not None else getattr(self, "output_tokens", 0)
            ),
        }
