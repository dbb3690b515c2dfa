"""The Responses API's answer, built from the chat pipeline's deltas (pure, no I/O).

The answer's deltas (`ChatOutput`) become the output items (reasoning, message, function
calls) and, when streaming, the typed events (`response.created`,
`response.output_text.delta`, `response.function_call_arguments.delta`, and
`response.completed`, or `response.incomplete` when max_output_tokens cut it, ...). The
request side is `responses_request`: a Responses body is translated to a chat body.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from appliance.api.logprobs import chat_logprobs
from appliance.api.responses_tools import namespaces

Item = dict[str, Any]


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def _reasoning(body: dict[str, Any]) -> dict[str, Any]:
    """The request's reasoning settings, echoed as OpenAI echoes them (effort and summary;
    a model here reasons as its template lets it, whatever the effort)."""
    asked = body.get("reasoning")
    asked = asked if isinstance(asked, dict) else {}
    return {"effort": asked.get("effort"), "summary": asked.get("summary")}


class ResponseBuilder:
    """Output items from the chat deltas, and the events that announce them.

    With `logprobs`, the tokens' logprobs (`add_logprobs`, as the worker sends them) go
    with the text they made: onto the output_text part and its delta event. Tokens that
    made reasoning or a call are dropped; those that made nothing yet (text held back
    by the parser, a character's first bytes) wait for the next text, or, at the end of
    the message, join its part without a delta (a character cut by max_output_tokens):
    the part has every token of the message, as chat's logprobs."""

    def __init__(
        self, body: dict[str, Any], model: str, response_id: str, logprobs: bool = False
    ) -> None:
        self.body = body
        self.model = model
        self.id = response_id
        self.created_at = int(time.time())
        self.items: list[Item] = []
        self._open: dict[str, Item] = {}  # "message" / "reasoning" item being written
        self._calls: dict[int, Item] = {}
        self.seq = 0
        self.logprobs = logprobs
        self._pending: list[dict[str, Any]] = []  # logprobs of tokens not yet in a delta
        self._namespaces = namespaces(body.get("tools"))

    def add_logprobs(self, entries: list[dict[str, Any]] | None) -> None:
        if self.logprobs and entries:
            self._pending += entries

    def event(self, kind: str, **fields: Any) -> dict[str, Any]:
        self.seq += 1
        return {"type": kind, "sequence_number": self.seq, **fields}

    def _index(self, item: Item) -> int:
        return self.items.index(item)

    def _start(self, kind: str) -> tuple[Item, list[dict[str, Any]]]:
        events: list[dict[str, Any]] = []
        for other in [k for k in self._open if k != kind]:
            events += self._close(other)
        item = self._open.get(kind)
        if item is not None:
            return item, events
        if kind == "message":
            item = {
                "type": "message",
                "id": new_id("msg"),
                "status": "in_progress",
                "role": "assistant",
                "content": [],
            }
        else:
            item = {"type": "reasoning", "id": new_id("rs"), "summary": []}
        self.items.append(item)
        self._open[kind] = item
        events.append(
            self.event(
                "response.output_item.added",
                output_index=self._index(item),
                item=dict(item, content=[]) if kind == "message" else dict(item),
            )
        )
        if kind == "message":
            part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            item["content"].append(part)
            events.append(
                self.event(
                    "response.content_part.added",
                    item_id=item["id"],
                    output_index=self._index(item),
                    content_index=0,
                    part=dict(part, logprobs=[]),
                )
            )
        else:
            item["summary"].append({"type": "summary_text", "text": ""})
        return item, events

    def _close(self, kind: str, status: str = "completed") -> list[dict[str, Any]]:
        item = self._open.pop(kind)
        index = self._index(item)
        events = []
        if kind == "message":
            part = item["content"][0]
            item["status"] = status
            events.append(
                self.event(
                    "response.output_text.done",
                    item_id=item["id"],
                    output_index=index,
                    content_index=0,
                    text=part["text"],
                    logprobs=part["logprobs"],
                )
            )
            events.append(
                self.event(
                    "response.content_part.done",
                    item_id=item["id"],
                    output_index=index,
                    content_index=0,
                    part=part,
                )
            )
        else:
            events.append(
                self.event(
                    "response.reasoning_summary_text.done",
                    item_id=item["id"],
                    output_index=index,
                    summary_index=0,
                    text=item["summary"][0]["text"],
                )
            )
        events.append(self.event("response.output_item.done", output_index=index, item=item))
        return events

    def feed(self, delta: dict[str, Any]) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        if delta.get("reasoning_content") or delta.get("tool_calls"):
            self._pending = []  # these tokens made no output_text
        if delta.get("reasoning_content"):
            item, events = self._start("reasoning")
            item["summary"][0]["text"] += delta["reasoning_content"]
            events.append(
                self.event(
                    "response.reasoning_summary_text.delta",
                    item_id=item["id"],
                    output_index=self._index(item),
                    summary_index=0,
                    delta=delta["reasoning_content"],
                )
            )
        if delta.get("content"):
            item, more = self._start("message")
            events += more
            logprobs = chat_logprobs(self._pending)["content"]
            self._pending = []
            item["content"][0]["text"] += delta["content"]
            item["content"][0]["logprobs"] += logprobs
            events.append(
                self.event(
                    "response.output_text.delta",
                    item_id=item["id"],
                    output_index=self._index(item),
                    content_index=0,
                    delta=delta["content"],
                    logprobs=logprobs,
                )
            )
        for call in delta.get("tool_calls") or ():
            events += self._call(call)
        return events

    def _call(self, call: dict[str, Any]) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        item = self._calls.get(call["index"])
        if item is None:
            for kind in list(self._open):
                events += self._close(kind)
            item = {
                "type": "function_call",
                "id": new_id("fc"),
                "call_id": call["id"],
                "name": call["function"]["name"],
                "arguments": "",
                "status": "in_progress",
            }
            namespace = self._namespaces.get(item["name"])
            if namespace is not None:
                item["namespace"] = namespace
            self.items.append(item)
            self._calls[call["index"]] = item
            events.append(
                self.event(
                    "response.output_item.added", output_index=self._index(item), item=dict(item)
                )
            )
        piece = call["function"].get("arguments") or ""
        if piece:
            item["arguments"] += piece
            events.append(
                self.event(
                    "response.function_call_arguments.delta",
                    item_id=item["id"],
                    output_index=self._index(item),
                    delta=piece,
                )
            )
        return events

    def finish(self, finish_reason: str, usage: dict[str, Any]) -> list[dict[str, Any]]:
        """Close the items; the one being written when max_output_tokens cut the answer
        (finish_reason "length") is "incomplete", as is the response."""
        self.status = "incomplete" if finish_reason == "length" else "completed"
        last = self.items[-1] if self.items else None

        def status_of(item: Item) -> str:
            return "incomplete" if self.status == "incomplete" and item is last else "completed"

        if "message" in self._open:
            self._open["message"]["content"][0]["logprobs"] += chat_logprobs(self._pending)[
                "content"
            ]
        events: list[dict[str, Any]] = []
        for kind in list(self._open):
            events += self._close(kind, status_of(self._open[kind]))
        for item in self._calls.values():
            item["status"] = status_of(item)
            index = self._index(item)
            events.append(
                self.event(
                    "response.function_call_arguments.done",
                    item_id=item["id"],
                    output_index=index,
                    arguments=item["arguments"],
                )
            )
            events.append(self.event("response.output_item.done", output_index=index, item=item))
        self.usage = {
            "input_tokens": usage.get("prompt_tokens", 0),
            "input_tokens_details": {
                "cached_tokens": (usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0)
            },
            "output_tokens": usage.get("completion_tokens", 0),
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": usage.get("total_tokens", 0),
        }
        # As OpenAI: "response.incomplete" ends a cut answer. (openai-python's
        # `responses.stream()` then has no `get_final_response()`, as with OpenAI; its
        # events, and `create(stream=True)`'s, carry the response.)
        events.append(self.event(f"response.{self.status}", response=self.response()))
        return events

    def response(self, status: str | None = None) -> dict[str, Any]:
        body = self.body
        status = status or getattr(self, "status", "in_progress")
        return {
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "error": None,
            "incomplete_details": {"reason": "max_output_tokens"}
            if status == "incomplete"
            else None,
            "instructions": body.get("instructions"),
            "max_output_tokens": body.get("max_output_tokens"),
            # Echoed: it bounds hosted tools' calls, and no hosted tool runs here.
            "max_tool_calls": body.get("max_tool_calls"),
            "model": self.model,
            "output": self.items if status != "in_progress" else [],
            "parallel_tool_calls": _parallel(body),
            "previous_response_id": body.get("previous_response_id"),
            "reasoning": _reasoning(body),
            "store": bool(body.get("store", True)),
            "temperature": body.get("temperature", 1.0),
            "text": body.get("text") or {"format": {"type": "text"}},
            "tool_choice": body.get("tool_choice", "auto"),
            "tools": body.get("tools") or [],
            "top_p": body.get("top_p", 1.0),
            "top_logprobs": body.get("top_logprobs"),
            "truncation": "auto" if body.get("truncation") == "auto" else "disabled",
            "usage": getattr(self, "usage", None) if status != "in_progress" else None,
            "metadata": body.get("metadata") or {},
        }

    def as_history(self) -> list[dict[str, Any]]:
        """This answer as chat messages, for a later `previous_response_id`."""
        content = "".join(i["content"][0]["text"] for i in self.items if i["type"] == "message")
        calls = [
            {
                "id": i["call_id"],
                "type": "function",
                "function": {"name": i["name"], "arguments": i["arguments"]},
            }
            for i in self.items
            if i["type"] == "function_call"
        ]
        msg: dict[str, Any] = {"role": "assistant", "content": content or (None if calls else "")}
        if calls:
            msg["tool_calls"] = calls
        reasoning = "".join(i["summary"][0]["text"] for i in self.items if i["type"] == "reasoning")
        if reasoning:
            msg["reasoning_content"] = reasoning
        return [msg]


def _parallel(body: dict[str, Any]) -> bool:
    """Whether several calls are allowed, as the chat pipeline applies it: unset, a forced
    tool_choice ("required" or a function) makes one call, else several."""
    value = body.get("parallel_tool_calls")
    if value is not None:
        return bool(value)
    choice = body.get("tool_choice", "auto")
    return not (choice == "required" or isinstance(choice, dict))
