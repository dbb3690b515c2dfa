"""Server-sent events framing for streamed OpenAI responses."""

from __future__ import annotations

import json
from typing import Any

from appliance.api.errors import APIError

__all__ = ["SSE_DONE", "sse_data", "sse_error"]

SSE_DONE = b"data: [DONE]\n\n"


def sse_data(obj: Any) -> bytes:
    """One ``data:`` event carrying ``obj`` as compact JSON (one line, UTF-8)."""
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return b"data: " + text.encode("utf-8") + b"\n\n"


def sse_error(err: APIError) -> bytes:
    """An error event mid-stream, in the OpenAI shape (the openai client raises it)."""
    return sse_data(err.to_body())
