"""``GET /openapi.json``: an OpenAPI 3.1 description of the /v1, /admin and Ollama's /api
routes.

Written by hand rather than generated: the handlers parse their bodies themselves
(`schemas.py`), so there is nothing to introspect, and a client generator or a
fuzzer (schemathesis) gets the request and response shapes clients rely on.
`tests/api/test_hardening.py` checks every route of the app is described.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from appliance import __version__

__all__ = ["openapi_document", "openapi_json"]

JSON = "application/json"
SSE = "text/event-stream"
NDJSON = "application/x-ndjson"


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json_body(schema: dict[str, Any], description: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"required": True, "content": {JSON: {"schema": schema}}}
    if description:
        body["description"] = description
    return body


def _ok(schema: dict[str, Any], description: str = "OK", stream: bool = False) -> dict[str, Any]:
    content: dict[str, Any] = {JSON: {"schema": schema}}
    if stream:
        content[SSE] = {
            "schema": {
                "type": "string",
                "description": "server-sent events: `data: <chunk JSON>` lines, "
                "`data: [DONE]` at the end; an error mid-stream is `data: <ErrorResponse>`",
            }
        }
    return {"200": {"description": description, "content": content}}


def _errors(*statuses: int) -> dict[str, Any]:
    texts = {
        400: "invalid request (the parameter is named in error.param)",
        401: "missing or wrong API key",
        403: "forbidden (outside the allowed folders)",
        404: "unknown model or route",
        409: "conflict with the model's state",
        413: "request body too large",
        421: "Host header not allowed (DNS rebinding protection)",
        429: "the model's queue is full (Retry-After)",
        500: "engine or internal failure",
        501: "not supported by this model (infill without FIM tokens)",
        503: "unavailable: loading, out of memory or shutting down (Retry-After)",
        504: "past request_timeout",
        507: "not enough disk space",
    }
    return _error_responses(statuses, texts, "ErrorResponse")


def _error_responses(
    statuses: tuple[int, ...], texts: dict[int, str], schema: str
) -> dict[str, Any]:
    """The error responses of an operation: those it names, and the three any route can
    give (a missing key, a refused Host, the daemon shutting down)."""
    return {
        str(s): {
            "description": texts[s],
            "content": {JSON: {"schema": _ref(schema)}},
        }
        for s in (*statuses, 401, 421, 503)
    }


def _op(
    summary: str,
    responses: dict[str, Any],
    *,
    body: dict[str, Any] | None = None,
    tag: str,
    errors: tuple[int, ...] = (400,),
    params: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "tags": [tag],
        "responses": {**responses, **_errors(*errors)},
    }
    if body is not None:
        op["requestBody"] = body
    if params:
        op["parameters"] = params
    return op


_NAME = {
    "name": "name",
    "in": "path",
    "required": True,
    "description": "model name or alias",
    "schema": {"type": "string"},
}

_RID = {
    "name": "response_id",
    "in": "path",
    "required": True,
    "description": "a stored response's id (resp_...)",
    "schema": {"type": "string"},
}

_RESPONSE_REQUEST: dict[str, Any] = {
    "type": "object",
    "required": ["input"],
    "properties": {
        "model": {"type": "string", "description": "default: the default chat model"},
        "input": {
            "oneOf": [
                {"type": "string"},
                {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "description": "a message (role, content), a function_call or a "
                        "function_call_output item",
                    },
                },
            ]
        },
        "instructions": {"type": ["string", "null"]},
        "previous_response_id": {"type": ["string", "null"]},
        "tools": {"type": "array", "items": {"type": "object"}},
        "tool_choice": {},
        "parallel_tool_calls": {"type": "boolean"},
        "text": {"type": "object", "description": "text.format: text | json_schema"},
        "max_output_tokens": {"type": ["integer", "null"], "minimum": 1},
        "temperature": {"type": ["number", "null"]},
        "top_p": {"type": ["number", "null"]},
        "top_logprobs": {"type": ["integer", "null"], "minimum": 0, "maximum": 20},
        "include": {
            "type": "array",
            "items": {"enum": ["message.output_text.logprobs", "reasoning.encrypted_content"]},
        },
        "stream": {"type": "boolean"},
        "store": {"type": "boolean", "description": "keep it for previous_response_id"},
    },
}

_RESPONSE: dict[str, Any] = {
    "type": "object",
    "required": ["id", "object", "created_at", "status", "model", "output"],
    "properties": {
        "id": {"type": "string"},
        "object": {"const": "response"},
        "created_at": {"type": "integer"},
        "status": {"enum": ["completed", "incomplete", "in_progress"]},
        "model": {"type": "string"},
        "output": {"type": "array", "items": {"type": "object"}},
        "usage": {"type": ["object", "null"]},
    },
}

_ANTHROPIC_VERSION: dict[str, Any] = {
    "name": "anthropic-version",
    "in": "header",
    "description": "any value (the anthropic SDK sends one): the answer in Anthropic's shape",
    "schema": {"type": "string"},
}

_ANTHROPIC_MODEL_QUERY: list[dict[str, Any]] = [
    {
        "name": "limit",
        "in": "query",
        "description": "with anthropic-version: models per page",
        "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 20},
    },
    {
        "name": "after_id",
        "in": "query",
        "description": "with anthropic-version: the page after this model",
        "schema": {"type": "string"},
    },
    {
        "name": "before_id",
        "in": "query",
        "description": "with anthropic-version: the page before this model",
        "schema": {"type": "string"},
    },
    {
        "name": "lifecycle",
        "in": "query",
        "description": "with anthropic-version: only models in these stages (all are active)",
        "schema": {"type": "array", "items": {"enum": ["active", "deprecated", "retired"]}},
    },
]

_INPUT_ITEM_QUERY: list[dict[str, Any]] = [
    {
        "name": "limit",
        "in": "query",
        "description": "items per page",
        "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20},
    },
    {
        "name": "order",
        "in": "query",
        "schema": {"enum": ["asc", "desc"], "default": "desc"},
    },
    {
        "name": "after",
        "in": "query",
        "description": "the id of the item the page starts after",
        "schema": {"type": "string"},
    },
    {
        "name": "include",
        "in": "query",
        "description": "accepted (openai-python's values); changes nothing here",
        "schema": {"type": "array", "items": {"type": "string"}},
    },
]

_INPUT_ITEM_LIST: dict[str, Any] = {
    "type": "object",
    "required": ["object", "data", "first_id", "last_id", "has_more"],
    "properties": {
        "object": {"const": "list"},
        "data": {
            "type": "array",
            "items": {
                "type": "object",
                "description": "an input item (message, function_call, function_call_output, "
                "reasoning) with its id and status",
            },
        },
        "first_id": {"type": ["string", "null"]},
        "last_id": {"type": ["string", "null"]},
        "has_more": {"type": "boolean"},
    },
}

_TOKEN_IDS: dict[str, Any] = {
    "type": "array",
    "items": {"type": "integer", "minimum": 0},
    "minItems": 1,
    "description": "token ids of the model's own vocabulary",
}

_SAMPLING: dict[str, Any] = {
    "max_tokens": {"type": ["integer", "null"], "minimum": -1, "description": "-1: no limit"},
    "n_predict": {"type": ["integer", "null"], "description": "llama-server's max_tokens"},
    "temperature": {"type": ["number", "null"], "minimum": 0, "maximum": 2},
    "top_p": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
    "top_k": {"type": ["integer", "null"], "minimum": 0},
    "min_p": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
    "stop": {
        "oneOf": [
            {"type": "string"},
            {"type": "array", "items": {"type": "string"}, "maxItems": 64},
            {"type": "null"},
        ]
    },
    "seed": {"type": ["integer", "null"]},
    "logit_bias": {
        "type": ["object", "null"],
        "additionalProperties": {"type": "number", "minimum": -100, "maximum": 100},
    },
    "presence_penalty": {"type": ["number", "null"], "minimum": -2, "maximum": 2},
    "frequency_penalty": {"type": ["number", "null"], "minimum": -2, "maximum": 2},
    "repeat_penalty": {"type": ["number", "null"]},
    "repeat_last_n": {
        "type": ["integer", "null"],
        "minimum": -1,
        "description": "tokens of prompt and answer the penalties count (64; -1 all; 0 none)",
    },
    "grammar": {"type": ["string", "null"], "description": "a GBNF grammar (llama-server)"},
    "json_schema": {"type": ["object", "null"], "description": "a JSON schema (llama-server)"},
    "n": {"type": ["integer", "null"], "minimum": 1, "maximum": 8, "description": "choices"},
    "stream": {"type": ["boolean", "null"]},
    "stream_options": {
        "type": ["object", "null"],
        "properties": {"include_usage": {"type": "boolean"}},
    },
    "ignore_eos": {"type": "boolean", "description": "generate to max_tokens (llama-server)"},
    "deterministic": {
        "type": "boolean",
        "description": "computed alone, so the same request gives the same tokens",
    },
    "user": {"type": "string"},
}

_SCHEMAS: dict[str, Any] = {
    "ErrorResponse": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["message", "type", "param", "code"],
                "properties": {
                    "message": {"type": "string"},
                    "type": {"type": "string"},
                    "param": {"type": ["string", "null"]},
                    "code": {"type": ["string", "null"]},
                },
            }
        },
    },
    "FunctionDefinition": {
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": {"type": "string"},
            "description": {"type": "string"},
            "parameters": {"type": "object", "description": "a JSON Schema object"},
            "strict": {"type": ["boolean", "null"]},
        },
    },
    "Tool": {
        "type": "object",
        "required": ["type", "function"],
        "properties": {
            "type": {"const": "function"},
            "function": _ref("FunctionDefinition"),
        },
    },
    "ToolChoice": {
        "oneOf": [
            {"enum": ["none", "auto", "required"]},
            {
                "type": "object",
                "required": ["type", "function"],
                "properties": {
                    "type": {"const": "function"},
                    "function": {
                        "type": "object",
                        "required": ["name"],
                        "properties": {"name": {"type": "string"}},
                    },
                },
            },
        ]
    },
    "ToolCall": {
        "type": "object",
        "required": ["id", "type", "function"],
        "properties": {
            "index": {"type": "integer", "description": "in streamed deltas"},
            "id": {"type": "string"},
            "type": {"const": "function"},
            "function": {
                "type": "object",
                "required": ["name", "arguments"],
                "properties": {
                    "name": {"type": "string"},
                    "arguments": {"type": "string", "description": "JSON text"},
                },
            },
        },
    },
    "ContentPart": {
        "type": "object",
        "required": ["type"],
        "properties": {"type": {"const": "text"}, "text": {"type": "string"}},
    },
    "ChatMessage": {
        "type": "object",
        "required": ["role"],
        "properties": {
            "role": {"enum": ["system", "developer", "user", "assistant", "tool", "function"]},
            "content": {
                "oneOf": [
                    {"type": "string"},
                    {"type": "array", "items": _ref("ContentPart")},
                    {"type": "null"},
                ]
            },
            "name": {"type": "string"},
            "tool_calls": {"type": "array", "items": _ref("ToolCall")},
            "tool_call_id": {"type": "string"},
            "reasoning_content": {"type": ["string", "null"]},
        },
    },
    "ResponseFormat": {
        "type": "object",
        "required": ["type"],
        "properties": {
            "type": {"enum": ["text", "json_object", "json_schema"]},
            "json_schema": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "schema": {"type": "object"},
                    "strict": {"type": ["boolean", "null"]},
                },
            },
        },
    },
    "ChatCompletionRequest": {
        "type": "object",
        "required": ["model", "messages"],
        "examples": [
            {
                "model": "qwen2.5-0.5b-instruct",
                "messages": [{"role": "user", "content": "Hello"}],
                "max_tokens": 16,
            }
        ],
        "properties": {
            "model": {"type": "string"},
            "messages": {"type": "array", "minItems": 1, "items": _ref("ChatMessage")},
            **_SAMPLING,
            "max_completion_tokens": {"type": ["integer", "null"], "minimum": 1},
            "response_format": _ref("ResponseFormat"),
            "tools": {"type": "array", "items": _ref("Tool")},
            "tool_choice": _ref("ToolChoice"),
            "parallel_tool_calls": {"type": "boolean"},
            "functions": {
                "type": "array",
                "items": _ref("FunctionDefinition"),
                "deprecated": True,
            },
            "function_call": {
                "oneOf": [
                    {"enum": ["none", "auto"]},
                    {"type": "object", "properties": {"name": {"type": "string"}}},
                ],
                "deprecated": True,
            },
        },
    },
    "Usage": {
        "type": "object",
        "required": ["prompt_tokens", "completion_tokens", "total_tokens"],
        "properties": {
            "prompt_tokens": {"type": "integer"},
            "completion_tokens": {"type": "integer"},
            "total_tokens": {"type": "integer"},
            "prompt_tokens_details": {
                "type": "object",
                "properties": {"cached_tokens": {"type": "integer"}},
            },
        },
    },
    "AssistantMessage": {
        "type": "object",
        "required": ["role", "content"],
        "properties": {
            "role": {"const": "assistant"},
            "content": {"type": ["string", "null"]},
            "reasoning_content": {"type": ["string", "null"]},
            "reasoning": {"type": ["string", "null"]},
            "tool_calls": {"type": "array", "items": _ref("ToolCall")},
        },
    },
    "FinishReason": {"enum": ["stop", "length", "tool_calls"]},
    "ChatCompletion": {
        "type": "object",
        "required": ["id", "object", "created", "model", "choices", "usage"],
        "properties": {
            "id": {"type": "string"},
            "object": {"const": "chat.completion"},
            "created": {"type": "integer"},
            "model": {"type": "string"},
            "choices": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["index", "message", "finish_reason"],
                    "properties": {
                        "index": {"type": "integer"},
                        "message": _ref("AssistantMessage"),
                        "logprobs": {"type": "null"},
                        "finish_reason": _ref("FinishReason"),
                        "warnings": {"type": "array", "items": {"type": "string"}},
                    },
                },
            },
            "usage": _ref("Usage"),
        },
    },
    "ChatCompletionChunk": {
        "type": "object",
        "required": ["id", "object", "created", "model", "choices"],
        "properties": {
            "id": {"type": "string"},
            "object": {"const": "chat.completion.chunk"},
            "created": {"type": "integer"},
            "model": {"type": "string"},
            "choices": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "index": {"type": "integer"},
                        "delta": {
                            "type": "object",
                            "properties": {
                                "role": {"const": "assistant"},
                                "content": {"type": ["string", "null"]},
                                "reasoning_content": {"type": "string"},
                                "tool_calls": {"type": "array", "items": _ref("ToolCall")},
                            },
                        },
                        "finish_reason": {
                            "oneOf": [_ref("FinishReason"), {"type": "null"}],
                        },
                    },
                },
            },
            "usage": _ref("Usage"),
        },
    },
    "CompletionRequest": {
        "type": "object",
        "required": ["model", "prompt"],
        "examples": [{"model": "qwen2.5-0.5b-instruct", "prompt": "Once upon", "max_tokens": 8}],
        "properties": {
            "model": {"type": "string"},
            "prompt": {
                "description": "One prompt, or a batch of up to 8 (choice p * n + j "
                "completes prompt p); a prompt is text or the model's own token ids.",
                "oneOf": [
                    {"type": "string"},
                    _TOKEN_IDS,
                    {
                        "type": "array",
                        "items": {"oneOf": [{"type": "string"}, _TOKEN_IDS]},
                        "minItems": 1,
                        "maxItems": 8,
                    },
                ],
            },
            "n": {
                "type": ["integer", "null"],
                "minimum": 1,
                "maximum": 8,
                "description": "Choices per prompt; prompts × n is at most 8.",
            },
            "echo": {
                "type": "boolean",
                "description": "The prompt comes back before the completion; with logprobs its "
                "tokens are scored too (the first has none), and with max_tokens 0 only the "
                "prompt is scored.",
            },
            "response_format": _ref("ResponseFormat"),
            **_SAMPLING,
        },
    },
    "Completion": {
        "type": "object",
        "required": ["id", "object", "created", "model", "choices"],
        "properties": {
            "id": {"type": "string"},
            "object": {"const": "text_completion"},
            "created": {"type": "integer"},
            "model": {"type": "string"},
            "choices": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["index", "text", "finish_reason"],
                    "properties": {
                        "index": {"type": "integer"},
                        "text": {"type": "string"},
                        "logprobs": {"type": "null"},
                        "finish_reason": {"enum": ["stop", "length", None]},
                    },
                },
            },
            "usage": _ref("Usage"),
        },
    },
    "EmbeddingRequest": {
        "type": "object",
        "required": ["model", "input"],
        "examples": [{"model": "nomic-embed-text-v1.5", "input": ["a sentence", "another one"]}],
        "properties": {
            "model": {"type": "string"},
            "input": {
                "oneOf": [
                    {"type": "string"},
                    {"type": "array", "items": {"type": "string"}, "minItems": 1},
                    _TOKEN_IDS,
                    {"type": "array", "items": _TOKEN_IDS, "minItems": 1},
                ]
            },
            "encoding_format": {"enum": ["float", "base64"]},
            "dimensions": {"type": "integer", "minimum": 1},
            "user": {"type": "string"},
        },
    },
    "EmbeddingList": {
        "type": "object",
        "required": ["object", "data", "model", "usage"],
        "properties": {
            "object": {"const": "list"},
            "data": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["object", "index", "embedding"],
                    "properties": {
                        "object": {"const": "embedding"},
                        "index": {"type": "integer"},
                        "embedding": {
                            "oneOf": [
                                {"type": "array", "items": {"type": "number"}},
                                {"type": "string", "description": "base64 float32"},
                            ]
                        },
                    },
                },
            },
            "model": {"type": "string"},
            "usage": {
                "type": "object",
                "properties": {
                    "prompt_tokens": {"type": "integer"},
                    "total_tokens": {"type": "integer"},
                },
            },
        },
    },
    "Model": {
        "type": "object",
        "required": ["id", "object", "created", "owned_by"],
        "properties": {
            "id": {"type": "string"},
            "object": {"const": "model"},
            "created": {"type": "integer"},
            "owned_by": {"type": "string"},
            "meta": {
                "type": "object",
                "description": "state, tier, pin, kind, format, provider, aliases, ...",
            },
        },
    },
    "ModelList": {
        "type": "object",
        "required": ["object", "data"],
        "properties": {
            "object": {"const": "list"},
            "data": {"type": "array", "items": _ref("Model")},
        },
    },
    "AnthropicModel": {
        "type": "object",
        "required": ["type", "id", "display_name", "created_at"],
        "properties": {
            "type": {"const": "model"},
            "id": {"type": "string"},
            "display_name": {"type": "string"},
            "created_at": {"type": "string", "format": "date-time"},
            "lifecycle": {"const": "active"},
        },
    },
    "AnthropicModelList": {
        "type": "object",
        "required": ["data", "has_more", "first_id", "last_id"],
        "properties": {
            "data": {"type": "array", "items": _ref("AnthropicModel")},
            "has_more": {"type": "boolean", "description": "more in the page's direction"},
            "first_id": {"type": ["string", "null"]},
            "last_id": {"type": ["string", "null"]},
        },
    },
    "AdminModel": {
        "type": "object",
        "description": "one model as the admin API shows it (name, tier, state, pin, ...)",
        "required": ["name", "tier", "state"],
        "properties": {
            "name": {"type": "string"},
            "tier": {"enum": ["hot", "warm", "cold", "remote"]},
            "state": {"type": "string"},
            "pin": {"type": ["string", "null"]},
            "kind": {"type": "string"},
            "aliases": {"type": "array", "items": {"type": "string"}},
        },
        "additionalProperties": True,
    },
    "AdminModelList": {
        "type": "object",
        "required": ["models"],
        "properties": {"models": {"type": "array", "items": _ref("AdminModel")}},
    },
    "TierRequest": {
        "type": "object",
        "required": ["tier"],
        "properties": {"tier": {"enum": ["hot", "warm", "cold"]}},
    },
    "PinRequest": {
        "type": "object",
        "required": ["tier"],
        "properties": {"tier": {"enum": ["hot", "warm"]}},
    },
    "PullRequest": {
        "type": "object",
        "required": ["model"],
        "properties": {
            "model": {
                "type": "string",
                "description": "a catalog name, or hf://org/repo[/file.gguf|/folder][@revision]",
            },
            "name": {"type": "string", "description": "store name for an hf:// reference"},
        },
    },
    "PullEvent": {
        "type": "object",
        "description": "progress ({status, downloaded, total, message, model: the pull's "
        "label, started}), then success (model: the stored name) or an error",
        "properties": {
            "status": {
                "type": "string",
                "description": "resolving, downloading, verifying, done, error, cancelled, "
                "interrupted (the daemon stopped: it resumes the pull when it starts); "
                "success last",
            },
            "downloaded": {"type": ["integer", "null"]},
            "total": {"type": ["integer", "null"]},
            "message": {"type": "string"},
            "started": {"type": ["number", "null"], "description": "the pull's start (Unix)"},
            "model": {"type": "string"},
            "sha256": {"type": "string"},
            "size": {"type": "integer"},
            "revision": {"type": ["string", "null"]},
        },
    },
    "Pull": {
        "type": "object",
        "description": "a pull in flight",
        "required": ["model", "ref", "status", "downloaded", "started"],
        "properties": {
            "model": {
                "type": "string",
                "description": "its label: the model name, or the hf:// reference of a pull "
                "without one (what DELETE /admin/pull/{name} takes and its events name)",
            },
            "ref": {"type": "string", "description": "hf://org/repo/file@revision"},
            "name": {"type": ["string", "null"], "description": "the store name asked for"},
            "status": {
                "type": "string",
                "description": "starting, resolving, downloading, verifying, done, error, "
                "or cancelling (stopped at its next chunk)",
            },
            "downloaded": {"type": "integer"},
            "total": {"type": ["integer", "null"], "description": "null until resolved"},
            "filename": {"type": ["string", "null"]},
            "message": {"type": "string"},
            "started": {"type": "number", "description": "Unix time"},
            "updated": {"type": "number", "description": "Unix time of the last progress"},
            "rate_bytes_per_s": {"type": ["number", "null"], "description": "last 10 s"},
            "eta_s": {"type": ["number", "null"]},
        },
    },
    "PullList": {
        "type": "object",
        "required": ["pulls"],
        "properties": {"pulls": {"type": "array", "items": _ref("Pull")}},
    },
    "ImportRequest": {
        "type": "object",
        "required": ["path"],
        "properties": {
            "path": {
                "type": "string",
                "description": "absolute path of a GGUF file or model folder, inside import_dirs",
            },
            "name": {"type": ["string", "null"]},
        },
    },
    "StoredModel": {
        "type": "object",
        "required": ["model", "sha256", "size"],
        "properties": {
            "model": {"type": "string"},
            "sha256": {"type": "string"},
            "size": {"type": "integer"},
        },
    },
    "Budgets": {
        "type": "object",
        "description": "bytes per tier: budget, used, free (hot per device)",
        "additionalProperties": True,
    },
    "BudgetsRequest": {
        "type": "object",
        "properties": {
            "warm": {"type": ["string", "integer"]},
            "cold": {"type": ["string", "integer"]},
            "hot": {"type": "object", "additionalProperties": {"type": ["string", "integer"]}},
        },
    },
    "Object": {"type": "object", "additionalProperties": True},
}


def _paths() -> dict[str, Any]:
    obj = _ref("Object")
    admin_model = _ok(_ref("AdminModel"))
    return {
        "/health": {
            "get": {
                "summary": "ready / loading / degraded, with reasons (no API key needed)",
                "tags": ["service"],
                "security": [],
                "responses": {**_ok(obj), **_errors()},
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics",
                "tags": ["service"],
                "responses": {
                    "200": {
                        "description": "text exposition format",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    **_errors(),
                },
            }
        },
        "/openapi.json": {
            "get": {
                "summary": "this document",
                "tags": ["service"],
                "responses": {**_ok(obj), **_errors()},
            }
        },
        "/v1/models": {
            "get": _op(
                "list the models (in Anthropic's shape, paged, with an anthropic-version)",
                _ok({"oneOf": [_ref("ModelList"), _ref("AnthropicModelList")]}),
                tag="openai",
                params=[_ANTHROPIC_VERSION, *_ANTHROPIC_MODEL_QUERY],
            )
        },
        "/v1/models/{model}": {
            "get": _op(
                "one model (in Anthropic's shape with an anthropic-version)",
                _ok({"oneOf": [_ref("Model"), _ref("AnthropicModel")]}),
                tag="openai",
                errors=(404,),
                params=[{**_NAME, "name": "model"}, _ANTHROPIC_VERSION],
            )
        },
        "/v1/chat/completions": {
            "post": _op(
                "chat completion (tools, tool_choice, reasoning split; SSE when stream)",
                _ok(_ref("ChatCompletion"), stream=True),
                body=_json_body(_ref("ChatCompletionRequest")),
                tag="openai",
                errors=(400, 404, 413, 429, 500, 504),
            )
        },
        "/v1/completions": {
            "post": _op(
                "text completion (SSE when stream)",
                _ok(_ref("Completion"), stream=True),
                body=_json_body(_ref("CompletionRequest")),
                tag="openai",
                errors=(400, 404, 413, 429, 500, 504),
            )
        },
        "/v1/embeddings": {
            "post": _op(
                "embeddings",
                _ok(_ref("EmbeddingList")),
                body=_json_body(_ref("EmbeddingRequest")),
                tag="openai",
                errors=(400, 404, 413, 429, 500),
            )
        },
        "/v1/responses": {
            "post": _op(
                "a response (the Responses API over the chat pipeline)",
                _ok(_RESPONSE, stream=True),
                body=_json_body(_RESPONSE_REQUEST),
                tag="openai",
                errors=(400, 404, 413, 429, 500),
            )
        },
        "/v1/messages": {
            "post": _op(
                "an Anthropic Messages API answer (over the chat pipeline)",
                _ok(obj, stream=True),
                body=_json_body(
                    obj,
                    "Anthropic Messages request: model, max_tokens, messages, "
                    "system, tools, tool_choice, stop_sequences, stream",
                ),
                tag="anthropic",
                errors=(400, 404, 413, 429, 500),
            )
        },
        "/v1/messages/count_tokens": {
            "post": _op(
                "the prompt's tokens",
                _ok(obj),
                body=_json_body(obj),
                tag="anthropic",
                errors=(400, 404),
            )
        },
        "/v1/responses/{response_id}": {
            "get": _op(
                "a stored response", _ok(_RESPONSE), tag="openai", errors=(404,), params=[_RID]
            ),
            "delete": _op(
                "forget a stored response", _ok(obj), tag="openai", errors=(404,), params=[_RID]
            ),
        },
        "/v1/responses/{response_id}/input_items": {
            "get": _op(
                "a stored response's input items (its own input, not earlier turns')",
                _ok(_INPUT_ITEM_LIST),
                tag="openai",
                errors=(400, 404),
                params=[_RID, *_INPUT_ITEM_QUERY],
            )
        },
        "/admin/models": {
            "get": _op("models, tiers and states", _ok(_ref("AdminModelList")), tag="admin")
        },
        "/admin/models/{name}": {
            "get": _op("one model", admin_model, tag="admin", errors=(404,), params=[_NAME]),
            "delete": _op(
                "delete from the store", _ok(obj), tag="admin", errors=(404, 409), params=[_NAME]
            ),
        },
        "/admin/models/{name}/load": {
            "post": _op(
                "load now", admin_model, tag="admin", errors=(404, 409, 500), params=[_NAME]
            )
        },
        "/admin/models/{name}/unload": {
            "post": _op("unload now", admin_model, tag="admin", errors=(404, 409), params=[_NAME])
        },
        "/admin/models/{name}/inspect": {
            "get": _op(
                "metadata and memory estimate",
                _ok(obj),
                tag="admin",
                errors=(404,),
                params=[
                    _NAME,
                    {"name": "context", "in": "query", "schema": {"type": "integer"}},
                ],
            )
        },
        "/admin/models/{name}/tier": {
            "post": _op(
                "move to a tier",
                admin_model,
                body=_json_body(_ref("TierRequest")),
                tag="admin",
                errors=(400, 404, 409),
                params=[_NAME],
            )
        },
        "/admin/models/{name}/pin": {
            "post": _op(
                "pin at a tier",
                admin_model,
                body=_json_body(_ref("PinRequest")),
                tag="admin",
                errors=(400, 404),
                params=[_NAME],
            ),
            "delete": _op("unpin", admin_model, tag="admin", errors=(404, 409), params=[_NAME]),
        },
        "/admin/pull": {
            "post": _op(
                "pull a catalog model or hf:// reference; progress as SSE",
                {
                    "200": {
                        "description": "SSE of PullEvent; the last is success or an error",
                        "content": {SSE: {"schema": _ref("PullEvent")}},
                    }
                },
                body=_json_body(_ref("PullRequest")),
                tag="admin",
                errors=(400, 404),
            )
        },
        "/admin/pulls": {
            "get": _op(
                "the pulls in flight, however started: progress, rate, since when",
                _ok(_ref("PullList")),
                tag="admin",
                errors=(),
            )
        },
        "/admin/pull/{name}": {
            "delete": _op(
                "stop a pull in flight (its partial download is kept)",
                _ok(obj),
                tag="admin",
                errors=(404,),
                params=[_NAME],
            )
        },
        "/admin/import": {
            "post": _op(
                "import a local file or folder from import_dirs",
                _ok(_ref("StoredModel")),
                body=_json_body(_ref("ImportRequest")),
                tag="admin",
                errors=(400, 403, 507),
            )
        },
        "/admin/events": {"get": _op("recent events", _ok(obj), tag="admin", errors=())},
        "/admin/events/stream": {
            "get": _op(
                "events as SSE",
                {"200": {"description": "SSE", "content": {SSE: {"schema": obj}}}},
                tag="admin",
                errors=(),
            )
        },
        "/admin/hardware": {"get": _op("devices and engines", _ok(obj), tag="admin", errors=())},
        "/admin/budgets": {
            "get": _op("tier budgets and use", _ok(_ref("Budgets")), tag="admin", errors=()),
            "post": _op(
                "set budgets for this run",
                _ok(_ref("Budgets")),
                body=_json_body(_ref("BudgetsRequest")),
                tag="admin",
            ),
        },
        "/admin/store": {"get": _op("stored models", _ok(obj), tag="admin", errors=(500,))},
        "/admin/telemetry": {
            "get": _op(
                "latest sample and history",
                _ok(obj),
                tag="admin",
                errors=(400,),
                params=[{"name": "seconds", "in": "query", "schema": {"type": "number"}}],
            )
        },
        **_llama_server_paths(obj),
        **_ollama_generating_paths(obj),
        **_ollama_paths(),
        "/admin/telemetry/stream": {
            "get": _op(
                "a sample a second and every event, as SSE",
                {"200": {"description": "SSE", "content": {SSE: {"schema": obj}}}},
                tag="admin",
                errors=(),
            )
        },
    }


def _llama_server_paths(obj: dict[str, Any]) -> dict[str, Any]:
    """llama-server's native routes (its field names and answers, `llama_native.py`)."""
    native = {
        "/completion": ("completion in llama-server's shape (SSE when stream)", True),
        "/infill": ("fill-in-the-middle completion for code models (llama-server's)", True),
        "/tokenize": ("text to token ids, optionally with pieces", False),
        "/detokenize": ("token ids to text", False),
        "/apply-template": ("the chat prompt the model's template makes of messages", False),
    }
    paths: dict[str, Any] = {
        path: {
            "post": _op(
                summary,
                _ok(obj, stream=stream),
                body=_json_body(obj),
                tag="llama-server",
                errors=(400, 404, 413, 429, 500, 501, 504) if stream else (400, 404, 413),
            )
        }
        for path, (summary, stream) in native.items()
    }
    model = [{"name": "model", "in": "query", "schema": {"type": "string"}}]
    for path, summary in (("/props", "server properties"), ("/slots", "slots and their state")):
        paths[path] = {"get": _op(summary, _ok(obj), tag="llama-server", params=model)}
    return paths


def _ollama_generating_paths(obj: dict[str, Any]) -> dict[str, Any]:
    """Ollama's generating routes (`ollama_routes.py`): NDJSON lines unless "stream":
    false (then one object), the last with "done": true."""
    summaries = {
        "/api/chat": "chat in Ollama's shape",
        "/api/generate": "generate in Ollama's shape (templated, raw, or FIM with suffix)",
        "/api/embed": "embeddings of one input or several",
        "/api/embeddings": "the embedding of one prompt (Ollama's older route)",
    }
    return {
        path: {
            "post": _ollama_op(
                summary,
                obj,
                body=obj,
                errors=(400, 404, 413, 429, 500, 501, 504),
                content_type=JSON if path.startswith("/api/embed") else NDJSON,
            )
        }
        for path, summary in summaries.items()
    }


def _ollama_errors(*statuses: int) -> dict[str, Any]:
    """Errors of Ollama's routes, in its shape `{"error": "message"}`."""
    texts = {
        400: "invalid request",
        401: "missing or wrong API key",
        404: "unknown model",
        409: "the model is serving, loading or pulling",
        413: "request body too large",
        429: "the model's queue is full (Retry-After)",
        421: "Host header not allowed (DNS rebinding protection)",
        500: "the model's file cannot be read, or an internal failure",
        501: "not supported by this server (models are imported with `appliance import`)",
        502: "the download did not match its sha256",
        503: "the hub cannot be reached, or shutting down",
        504: "past request_timeout",
        507: "not enough disk space",
    }
    return _error_responses(statuses, texts, "OllamaError")


def _ollama_op(
    summary: str,
    schema: dict[str, Any] | None,
    *,
    body: dict[str, Any] | None = None,
    errors: tuple[int, ...] = (),
    content_type: str = JSON,
) -> dict[str, Any]:
    ok: dict[str, Any] = {"description": "OK"}
    if schema is not None:
        ok["content"] = {content_type: {"schema": schema}}
    op: dict[str, Any] = {
        "summary": summary,
        "tags": ["ollama"],
        "responses": {"200": ok, **_ollama_errors(*errors)},
    }
    if body is not None:
        op["requestBody"] = _json_body(body)
    return op


def _ollama_paths() -> dict[str, Any]:
    """Ollama's native API: the routes that manage models (`ollama_model_routes.py`)."""
    unsupported = _ollama_op(
        "not supported here: 501 (models are imported with `appliance import`)",
        None,
        body=_ref("Object"),
        errors=(501,),
    )
    pull_ok = {
        "allOf": [_ref("OllamaProgress")],
        "description": "NDJSON: one OllamaProgress per line (pulling manifest, pulling "
        "<digest> with total and completed, verifying sha256 digest, writing manifest, "
        "success); an error mid-stream is a line {error}. With stream false, one object.",
    }
    return {
        "/": {
            "get": _ollama_op(
                'Ollama\'s probe: 200 "Ollama is running"',
                {"type": "string"},
                content_type="text/plain",
            )
        },
        "/api/version": {
            "get": _ollama_op("the Ollama version this server answers as", _ref("OllamaVersion"))
        },
        "/api/tags": {"get": _ollama_op("every model a request can name", _ref("OllamaTags"))},
        "/api/show": {
            "post": _ollama_op(
                "one model: details, template, GGUF metadata, capabilities",
                _ref("OllamaShow"),
                body=_ref("OllamaModelRequest"),
                errors=(400, 404, 500),
            )
        },
        "/api/ps": {"get": _ollama_op("the loaded (hot) models", _ref("OllamaPs"))},
        "/api/pull": {
            "post": _ollama_op(
                "pull a catalog model or an hf:// reference; progress as NDJSON",
                pull_ok,
                body=_ref("OllamaPullRequest"),
                errors=(400, 404, 502, 507),
                content_type=NDJSON,
            )
        },
        "/api/delete": {
            "delete": _ollama_op(
                "delete a model from the store (an empty 200)",
                None,
                body=_ref("OllamaModelRequest"),
                errors=(400, 404, 409),
            )
        },
        "/api/copy": {"post": unsupported},
        "/api/create": {"post": unsupported},
        "/api/push": {"post": unsupported},
        "/api/blobs/{digest}": {
            "post": {
                **unsupported,
                "parameters": [
                    {"name": "digest", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
            }
        },
    }


_OLLAMA_DETAILS = {
    "type": "object",
    "properties": {
        "parent_model": {"type": "string"},
        "format": {"type": "string", "description": "gguf | onnx; empty until pulled"},
        "family": {"type": "string", "description": "general.architecture"},
        "families": {"type": "array", "items": {"type": "string"}},
        "parameter_size": {"type": "string", "description": "e.g. 135M, 7.6B"},
        "quantization_level": {"type": "string", "description": "e.g. Q4_K_M, F16"},
    },
}
_OLLAMA_MODEL = {
    "type": "object",
    "required": ["name", "model", "modified_at", "size", "digest", "details"],
    "properties": {
        "name": {"type": "string", "description": "NAME:latest (a name without a tag)"},
        "model": {"type": "string"},
        "modified_at": {"type": "string", "format": "date-time"},
        "size": {"type": "integer", "description": "bytes; 0 while not pulled"},
        "digest": {"type": "string", "description": "sha256 hex of a stored model, else empty"},
        "details": _ref("OllamaDetails"),
    },
}
_OLLAMA_SCHEMAS: dict[str, Any] = {
    "OllamaError": {
        "type": "object",
        "required": ["error"],
        "properties": {"error": {"type": "string"}},
    },
    "OllamaVersion": {"type": "object", "properties": {"version": {"type": "string"}}},
    "OllamaDetails": _OLLAMA_DETAILS,
    "OllamaModel": _OLLAMA_MODEL,
    "OllamaTags": {
        "type": "object",
        "properties": {"models": {"type": "array", "items": _ref("OllamaModel")}},
    },
    "OllamaModelRequest": {
        "type": "object",
        "properties": {
            "model": {"type": "string"},
            "name": {"type": "string", "description": "the older name of `model`"},
            "verbose": {"type": "boolean", "description": "accepted; arrays stay empty"},
        },
    },
    "OllamaShow": {
        "type": "object",
        "properties": {
            "modelfile": {"type": "string"},
            "parameters": {"type": "string", "description": "num_ctx: the context served"},
            "template": {"type": "string", "description": "the Jinja chat template"},
            "details": _ref("OllamaDetails"),
            "model_info": {"type": "object", "additionalProperties": True},
            "capabilities": {
                "type": "array",
                "items": {"enum": ["completion", "tools", "thinking", "embedding"]},
            },
            "modified_at": {"type": "string", "format": "date-time"},
        },
    },
    "OllamaPs": {
        "type": "object",
        "properties": {
            "models": {
                "type": "array",
                "items": {
                    "allOf": [
                        _ref("OllamaModel"),
                        {
                            "type": "object",
                            "properties": {
                                "expires_at": {"type": "string", "format": "date-time"},
                                "size_vram": {"type": "integer"},
                                "context_length": {"type": "integer"},
                            },
                        },
                    ]
                },
            }
        },
    },
    "OllamaPullRequest": {
        "type": "object",
        "required": ["model"],
        "properties": {
            "model": {"type": "string", "description": "a catalog model or hf://org/repo/file"},
            "insecure": {"type": "boolean", "description": "accepted, ignored"},
            "stream": {"type": "boolean", "default": True},
        },
    },
    "OllamaProgress": {
        "type": "object",
        "properties": {
            "status": {"type": "string"},
            "digest": {"type": "string"},
            "total": {"type": "integer"},
            "completed": {"type": "integer"},
            "error": {"type": "string"},
        },
    },
}


def openapi_document(server_url: str | None = None) -> dict[str, Any]:
    """The whole OpenAPI 3.1 document."""
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "appliance",
            "version": __version__,
            "description": "A self-hosted inference daemon: the OpenAI API under /v1, "
            "model management under /admin, Ollama's API under /api. Errors are "
            "{error: {message, type, param, code}}; on /api, Ollama's {error: message}.",
        },
        "paths": _paths(),
        "components": {
            "schemas": {**_SCHEMAS, **_OLLAMA_SCHEMAS},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
        "tags": [
            {"name": "openai", "description": "OpenAI-compatible API"},
            {"name": "admin", "description": "models, tiers, store, events"},
            {"name": "llama-server", "description": "llama-server's native routes"},
            {"name": "ollama", "description": "Ollama's API under /api (and its probe GET /)"},
            {"name": "service", "description": "health, metrics, this document"},
        ],
    }
    if server_url:
        doc["servers"] = [{"url": server_url}]
    return doc


async def openapi_json(request: Request) -> Response:
    return JSONResponse(openapi_document(str(request.base_url).rstrip("/")))
