"""A Responses API body as the chat completions body it means (pure, no I/O).

Instructions -> system message, input items -> messages, reasoning items -> the next
assistant turn's `reasoning_content`, function tools -> chat tools (`responses_tools`),
`text.format` -> `response_format`, `max_output_tokens` -> `max_tokens`, `top_logprobs`
or `include` `message.output_text.logprobs` -> `logprobs`, and this server's own
sampling settings (seed, top_k, min_p, ignore_eos, penalties, llama-server's samplers)
as they are; so validation, tools, grammars and parsing are the chat ones. The answer
goes back through `responses.ResponseBuilder`.
"""

from __future__ import annotations

import json
from typing import Any

from appliance.api.errors import invalid_request
from appliance.api.responses import new_id
from appliance.api.responses_tools import chat_tool_choice, chat_tools
from appliance.api.samplers import SAMPLER_KEYS
from appliance.api.template_vars import EFFORTS

__all__ = [
    "ACCEPTED_INCLUDES",
    "LISTED_INCLUDES",
    "LOGPROBS",
    "input_items",
    "input_messages",
    "to_chat_body",
]


def _text_of(content: Any, param: str) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise invalid_request(f"'{param}' must be a string or a list of content parts", param)
    texts = []
    for i, part in enumerate(content):
        if not isinstance(part, dict):
            raise invalid_request(f"'{param}[{i}]' must be an object", f"{param}[{i}]")
        kind = part.get("type")
        if kind in ("input_text", "output_text", "text"):
            texts.append(str(part.get("text") or ""))
        elif kind in ("input_image", "input_file", "input_audio"):
            raise invalid_request(
                f"'{param}[{i}]': {kind} is not supported by this server: send text",
                f"{param}[{i}]",
            )
        elif kind == "refusal":
            texts.append(str(part.get("refusal") or ""))
        else:
            raise invalid_request(f"'{param}[{i}]': unknown content part {kind!r}", f"{param}[{i}]")
    return "".join(texts)


def _reasoning_of(item: dict[str, Any]) -> str:
    """A reasoning item's text: its `content` (reasoning_text parts) or else its `summary`
    (where this server writes the model's reasoning)."""
    for key in ("content", "summary"):
        parts = item.get(key)
        if isinstance(parts, list):
            text = "".join(
                str(p.get("text") or "")
                for p in parts
                if isinstance(p, dict) and p.get("type") in ("reasoning_text", "summary_text")
            )
            if text:
                return text
    return ""  # encrypted_content only: nothing a local model can read


def input_messages(value: Any) -> list[dict[str, Any]]:
    """Input items as chat messages: function calls join the assistant turn before them,
    their outputs become `tool` messages, and a reasoning item becomes the
    `reasoning_content` of the assistant turn that follows it (the template decides
    where to show it; one that no assistant output follows is dropped)."""
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if not isinstance(value, list):
        raise invalid_request("'input' must be a string or a list of items", "input")
    messages: list[dict[str, Any]] = []
    reasoning = ""
    for i, item in enumerate(value):
        param = f"input[{i}]"
        if not isinstance(item, dict):
            raise invalid_request(f"'{param}' must be an object", param)
        kind = item.get("type", "message")
        if kind == "message":
            role = item.get("role")
            if role not in ("user", "assistant", "system", "developer"):
                raise invalid_request(
                    f"'{param}.role' must be user, assistant, system or developer", f"{param}.role"
                )
            message = {"role": role, "content": _text_of(item.get("content"), f"{param}.content")}
            if role == "assistant" and reasoning:
                message["reasoning_content"] = reasoning
            messages.append(message)
            reasoning = ""
        elif kind == "function_call":
            call = {
                "id": str(item.get("call_id") or item.get("id") or new_id("call")),
                "type": "function",
                "function": {"name": item.get("name"), "arguments": item.get("arguments") or "{}"},
            }
            last = messages[-1] if messages else None
            if (
                last is not None
                and last["role"] == "assistant"
                and not last.get("content")
                and not reasoning
            ):
                last.setdefault("tool_calls", []).append(call)
            else:
                message = {"role": "assistant", "content": None, "tool_calls": [call]}
                if reasoning:
                    message["reasoning_content"] = reasoning
                messages.append(message)
            reasoning = ""
        elif kind == "function_call_output":
            output = item.get("output")
            text = output if isinstance(output, str) else json.dumps(output)
            messages.append(
                {"role": "tool", "tool_call_id": str(item.get("call_id")), "content": text}
            )
            reasoning = ""
        elif kind == "reasoning":
            reasoning += _reasoning_of(item)
        else:
            raise invalid_request(
                f"'{param}.type' {kind!r} is not supported by this server", f"{param}.type"
            )
    return messages


# Each input item's id prefix when the client gave it none, as OpenAI's ids begin.
_ID_PREFIXES = {
    "message": "msg",
    "function_call": "fc",
    "function_call_output": "fco",
    "reasoning": "rs",
}


def input_items(value: Any) -> list[dict[str, Any]]:
    """The input (checked by `input_messages` first) as OpenAI lists a response's input
    items: each with an id (the client's, or a new one), a type and a status, and a
    message's text content as a list of parts (`input_text`, or `output_text` in an
    assistant's turn). The instructions are no item, nor are the turns of a
    `previous_response_id`: those are that response's input and output."""
    if isinstance(value, str):
        value = [{"type": "message", "role": "user", "content": value}]
    items: list[dict[str, Any]] = []
    for given in value:
        item = dict(given)
        kind = str(item.setdefault("type", "message"))
        if kind == "message" and not isinstance(item.get("content"), list):
            part = "output_text" if item.get("role") == "assistant" else "input_text"
            text: dict[str, Any] = {"type": part, "text": str(item.get("content") or "")}
            if part == "output_text":
                text["annotations"] = []
            item["content"] = [text]
        if not item.get("id"):
            item["id"] = new_id(_ID_PREFIXES.get(kind, "item"))
        item.setdefault("status", "completed")
        items.append(item)
    return items


def _format(text: Any) -> dict[str, Any] | None:
    fmt = text.get("format") if isinstance(text, dict) else None
    if not isinstance(fmt, dict) or fmt.get("type") in (None, "text"):
        return None
    if fmt.get("type") == "json_schema":
        spec = {k: fmt[k] for k in ("name", "schema", "strict") if k in fmt}
        return {"type": "json_schema", "json_schema": spec}
    return {"type": fmt.get("type")}


LOGPROBS = "message.output_text.logprobs"
# `include` values that change nothing here: reasoning is never encrypted (it comes back
# as summary text, which this server reads back from the input).
ACCEPTED_INCLUDES = frozenset({LOGPROBS, "reasoning.encrypted_content"})


# What a list of input items takes in `include` (the values of openai-python's
# ResponseIncludable): none changes the items here, which hold no hosted tools' results,
# images or logprobs.
LISTED_INCLUDES = frozenset(
    {
        "file_search_call.results",
        "web_search_call.results",
        "web_search_call.action.sources",
        "message.input_image.image_url",
        "computer_call_output.output.image_url",
        "code_interpreter_call.outputs",
        "reasoning.encrypted_content",
        LOGPROBS,
    }
)


def _include(value: Any) -> list[str]:
    """The `include` values, refused when this server cannot serve one (the others ask for
    the results of hosted tools or input images, which it refuses anyway): a 400 rather
    than an answer without what was asked for."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise invalid_request("'include' must be a list of strings", "include")
    for i, name in enumerate(value):
        if not isinstance(name, str) or name not in ACCEPTED_INCLUDES:
            raise invalid_request(
                f"'include[{i}]': {name!r} is not served by this server (it serves "
                f"{LOGPROBS!r} and accepts 'reasoning.encrypted_content')",
                f"include[{i}]",
            )
    return list(value)


EXTRA_SAMPLING = (
    "seed",
    "top_k",
    "min_p",
    "ignore_eos",
    "repeat_penalty",
    "repeat_last_n",
    "presence_penalty",
    "frequency_penalty",
    "deterministic",
    *SAMPLER_KEYS,
)


def to_chat_body(body: Any, history: list[dict[str, Any]]) -> dict[str, Any]:
    """The chat completions body a Responses body means; `history` is the conversation of
    the `previous_response_id` (its messages and its answer)."""
    if not isinstance(body, dict):
        raise invalid_request("the request body must be a JSON object")
    if "input" not in body:
        raise invalid_request("'input' is required: a string or a list of items", "input")
    # Kept elsewhere by OpenAI, nowhere here: answering without them would lose the
    # conversation or the prompt's instructions without a word.
    for key, what in (
        ("conversation", "Conversations (a conversation's items kept by the server)"),
        ("prompt", "Prompt templates ('prompt': {id, variables})"),
    ):
        if body.get(key) is not None:
            raise invalid_request(
                f"{what} are not supported by this server: send the items in 'input' (or "
                "chain responses with 'previous_response_id')",
                key,
            )
    messages: list[dict[str, Any]] = []
    instructions = body.get("instructions")
    if instructions is not None:
        if not isinstance(instructions, str):
            raise invalid_request("'instructions' must be a string", "instructions")
        messages.append({"role": "system", "content": instructions})
    messages += [m for m in history if m.get("role") != "system" or instructions is None]
    messages += input_messages(body["input"])
    chat: dict[str, Any] = {"messages": messages, "stream": bool(body.get("stream", False))}
    if body.get("model") is not None:
        chat["model"] = body["model"]
    for src, dst in (
        ("max_output_tokens", "max_tokens"),
        ("temperature", "temperature"),
        ("top_p", "top_p"),
        ("parallel_tool_calls", "parallel_tool_calls"),
    ):
        if body.get(src) is not None:
            chat[dst] = body[src]
    # The sampling settings this server takes beyond OpenAI's, as on chat completions.
    for key in EXTRA_SAMPLING:
        if body.get(key) is not None:
            chat[key] = body[key]
    reasoning = body.get("reasoning")
    effort = reasoning.get("effort") if isinstance(reasoning, dict) else None
    if effort in EFFORTS:  # the template's reasoning_effort ("none": no thinking)
        chat["reasoning_effort"] = effort
    tools = chat_tools(body.get("tools"))
    if tools:
        chat["tools"] = tools
    if body.get("tool_choice") is not None:
        chat["tool_choice"] = chat_tool_choice(body["tool_choice"])
    fmt = _format(body.get("text"))
    if fmt is not None:
        chat["response_format"] = fmt
    # Either one asks for logprobs; the chat parser checks top_logprobs (0..20).
    if LOGPROBS in _include(body.get("include")) or body.get("top_logprobs") is not None:
        chat["logprobs"] = True
        if body.get("top_logprobs") is not None:
            chat["top_logprobs"] = body["top_logprobs"]
    if body.get("stream"):
        chat["stream_options"] = {"include_usage": True}
    return chat
