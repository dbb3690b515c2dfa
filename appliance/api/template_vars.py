"""A chat request's own chat-template variables.

`chat_template_kwargs` (llama-server's and vLLM's field) reaches the template as is:
Qwen3's `{"enable_thinking": false}` closes the reasoning block before the answer, so a
model that would think answers at once. OpenAI's `reasoning_effort` is the template's
`reasoning_effort` (gpt-oss's "Reasoning: low"), and "none" also turns Qwen3's thinking
off; `enable_thinking` at the body's top level (as Qwen's own API takes it) is the same
switch. Ollama's `think`, Anthropic's `thinking` and the Responses API's
`reasoning.effort` map onto the same two variables. The names the prompt is built from (`messages`,
`tools`, ...) cannot be set: a 400 names them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from appliance.api.errors import invalid_request

__all__ = ["EFFORTS", "template_vars"]

EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh")
RESERVED = frozenset(
    {"messages", "tools", "add_generation_prompt", "bos_token", "eos_token", "documents"}
)
MAX_BYTES = 16384


def template_vars(body: Mapping[str, Any]) -> dict[str, Any]:
    """The template variables a chat body asks for ({} for none)."""
    out: dict[str, Any] = {}
    effort = body.get("reasoning_effort")
    if effort is not None:
        if effort not in EFFORTS:
            shown = json.dumps(effort)[:40]
            raise invalid_request(
                f"'reasoning_effort' must be one of {', '.join(EFFORTS)}, got {shown}",
                "reasoning_effort",
            )
        out["reasoning_effort"] = effort
        if effort == "none":
            out["enable_thinking"] = False
    enable = body.get("enable_thinking")  # Qwen's own API takes it at the top level
    if enable is not None:
        if not isinstance(enable, bool):
            raise invalid_request("'enable_thinking' must be true or false", "enable_thinking")
        out["enable_thinking"] = enable
    kwargs = body.get("chat_template_kwargs")
    if kwargs is None:
        return out
    if not isinstance(kwargs, dict):
        raise invalid_request(
            "'chat_template_kwargs' must be an object of template variables",
            "chat_template_kwargs",
        )
    for key in kwargs:
        param = f"chat_template_kwargs.{key}"
        if not isinstance(key, str) or not key.isidentifier():
            raise invalid_request(f"'{param}' is not a template variable name", param)
        if key in RESERVED:
            raise invalid_request(
                f"'{param}': the prompt is built from '{key}', it cannot be set", param
            )
    if len(json.dumps(kwargs)) > MAX_BYTES:
        raise invalid_request(
            f"'chat_template_kwargs' is over {MAX_BYTES} bytes", "chat_template_kwargs"
        )
    return {**out, **kwargs}
