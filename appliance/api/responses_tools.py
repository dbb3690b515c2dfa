"""The Responses API's tools as chat tools (pure, no I/O).

Function tools are chat's. A `namespace` (OpenAI's group of functions, which Codex
sends for its sub-agent tools) offers its functions by their own names, and a call
the model makes to one of them names the namespace (`function_call.namespace`), as the
client dispatches it. Tools that OpenAI runs itself and a model may do without (web
search, image generation, hosted tool search) cannot run here: they are not offered to
the model, which answers as one that chose not to use them, and a `tool_choice` that
demands one is refused. Every namespaced function is offered at once (`defer_loading`
is for OpenAI's tool search).
"""

from __future__ import annotations

from typing import Any

from appliance.api.errors import invalid_request

__all__ = ["UNSERVED_OPTIONAL", "chat_tool_choice", "chat_tools", "namespaces"]

# Hosted tools a model may always do without: offered by agents by default (Codex sends
# web_search), left out here rather than failing the request.
UNSERVED_OPTIONAL = frozenset(
    {
        "web_search",
        "web_search_preview",
        "web_search_2025_08_26",
        "web_search_preview_2025_03_11",
        "image_generation",
        "tool_search",
    }
)


def _function(tool: dict[str, Any]) -> dict[str, Any]:
    fn = {k: tool[k] for k in ("name", "description", "parameters", "strict") if k in tool}
    return {"type": "function", "function": fn}


def _flat(value: Any) -> list[tuple[str, dict[str, Any], str | None]]:
    """Each offered function with its param and its namespace (None at the top level)."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise invalid_request("'tools' must be a list", "tools")
    out: list[tuple[str, dict[str, Any], str | None]] = []
    for i, tool in enumerate(value):
        param = f"tools[{i}]"
        kind = tool.get("type") if isinstance(tool, dict) else None
        if kind == "function":
            out.append((param, tool, None))
        elif kind == "namespace":
            name = tool.get("name")
            inner = tool.get("tools")
            if not isinstance(name, str) or not name or not isinstance(inner, list):
                raise invalid_request(
                    f"'{param}': a namespace needs a 'name' and a list of 'tools'", param
                )
            for j, fn in enumerate(inner):
                if not isinstance(fn, dict) or fn.get("type") != "function":
                    raise invalid_request(
                        f"'{param}.tools[{j}]': only function tools are supported in a "
                        "namespace by this server",
                        f"{param}.tools[{j}]",
                    )
                out.append((f"{param}.tools[{j}]", fn, name))
        elif kind not in UNSERVED_OPTIONAL:
            raise invalid_request(
                f"'{param}': only function tools (and namespaces of them) are supported by "
                f"this server, not {kind!r}",
                param,
            )
    seen: set[Any] = set()
    for param, fn, _ in out:
        if fn.get("name") in seen:
            raise invalid_request(
                f"'{param}': the tool name {fn.get('name')!r} is given twice (namespaced "
                "functions are offered by their own names here)",
                param,
            )
        seen.add(fn.get("name"))
    return out


def chat_tools(value: Any) -> list[dict[str, Any]] | None:
    """The functions offered, as chat tools; None when there are none."""
    return [_function(fn) for _, fn, _ in _flat(value)] or None


def namespaces(value: Any) -> dict[str, str]:
    """Each namespaced function's name -> its namespace."""
    return {str(fn.get("name")): ns for _, fn, ns in _flat(value) if ns is not None}


def chat_tool_choice(value: Any) -> Any:
    if isinstance(value, dict) and value.get("type") == "function":
        return {"type": "function", "function": {"name": value.get("name")}}
    if isinstance(value, dict) and value.get("type") == "allowed_tools":
        # Responses: mode and tools at the top, each tool {"type": "function", "name"}.
        listed = value.get("tools")
        tools = [
            {"type": "function", "function": {"name": t.get("name")}} if isinstance(t, dict) else t
            for t in (listed if isinstance(listed, list) else [])
        ]
        mode = value.get("mode", "auto")
        return {"type": "allowed_tools", "allowed_tools": {"mode": mode, "tools": tools}}
    if isinstance(value, dict) and value.get("type") in UNSERVED_OPTIONAL:
        raise invalid_request(
            f"'tool_choice': {value.get('type')!r} is not served by this server", "tool_choice"
        )
    return value
