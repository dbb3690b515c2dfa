"""Typed, validated requests for the OpenAI routes.

Bodies are untrusted, already JSON-decoded values. Every problem raises a 400
:class:`~appliance.api.errors.APIError` whose ``param`` names the offending field
(``messages[2].content[0]``, ``response_format.json_schema.schema``). Unknown keys
are ignored, as OpenAI clients send extras; what this server does not do (``n``
above 8, image or audio content) is refused clearly instead.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, NoReturn, cast

from appliance.api.errors import invalid_request
from appliance.api.samplers import llama_samplers, sampler_order
from appliance.api.template_vars import template_vars
from appliance.api.tools import ToolCallIn, Tools, parse_tool_calls, parse_tools

__all__ = [
    "MAX_CONTENT_CHARS",
    "MAX_EMBEDDING_INPUTS",
    "MAX_LOGIT_BIAS",
    "MAX_STOP",
    "ChatMessage",
    "ChatRequest",
    "CompletionRequest",
    "EmbeddingRequest",
    "ResponseFormat",
    "Role",
    "SamplingParams",
    "parse_chat_request",
    "parse_completion_request",
    "parse_embedding_request",
]

Role = Literal["system", "user", "assistant", "tool", "developer"]
_ROLES: tuple[Role, ...] = ("system", "user", "assistant", "tool", "developer")

MAX_CONTENT_CHARS = 4 * 1024 * 1024
MAX_EMBEDDING_INPUTS = 2048
MAX_STOP = 64
MAX_LOGIT_BIAS = 1024
_MAX_MODEL_CHARS = 512
_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1
_INT32_MAX = 2**31 - 1


@dataclass(frozen=True)
class ResponseFormat:
    """``response_format``: free text, any JSON object, or JSON matching ``schema``."""

    type: Literal["text", "json_object", "json_schema"]
    schema: dict[str, Any] | None = None
    name: str | None = None
    strict: bool = False


@dataclass(frozen=True)
class SamplingParams:
    """Generation settings shared by chat and text completions."""

    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int | None = None
    min_p: float | None = None
    stop: tuple[str, ...] = ()
    seed: int | None = None
    logit_bias: dict[int, float] = field(default_factory=dict)
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    repeat_penalty: float | None = None
    repeat_last_n: int | None = None  # tokens the penalties look back (64; -1 all, 0 none)
    response_format: ResponseFormat | None = None
    grammar: str | None = None  # llama-server's GBNF grammar (llama.cpp models only)
    samplers: dict[str, Any] = field(default_factory=dict)  # llama-server's (`samplers.py`)
    sampler_order: tuple[str, ...] = ()  # llama-server's `samplers`: the draw, in order
    ignore_eos: bool = False
    deterministic: bool = False  # computed as if alone: same request, same tokens
    logprobs: int | None = None  # None: none; N: each token's logprob and the N likeliest
    echo: bool = False  # the worker sends the prompt's tokens back (completions' echo)
    prompt_logprobs: int | None = None  # with echo: the prompt's tokens scored too


@dataclass(frozen=True)
class ChatMessage:
    """One message; array content is flattened to its text."""

    role: Role
    content: str
    name: str | None = None
    reasoning_content: str | None = None
    tool_call_id: str | None = None
    tool_calls: tuple[ToolCallIn, ...] = ()


@dataclass(frozen=True)
class ChatRequest:
    model: str
    messages: tuple[ChatMessage, ...]
    stream: bool
    include_usage: bool
    params: SamplingParams
    tools: Tools = field(default_factory=Tools)
    n: int = 1  # choices, decoded together in the batch
    template_vars: Mapping[str, Any] = field(default_factory=dict)  # see template_vars.py


@dataclass(frozen=True)
class CompletionPrompt:
    text: str  # "" when the prompt came as token ids
    ids: tuple[int, ...] | None = None  # the prompt as the model's own token ids


@dataclass(frozen=True)
class CompletionRequest:
    model: str
    prompts: tuple[CompletionPrompt, ...]  # one, or a batch: choices for each, in order
    stream: bool
    include_usage: bool
    params: SamplingParams
    echo: bool = False
    n: int = 1  # choices per prompt

    @property
    def choices(self) -> int:
        return len(self.prompts) * self.n


@dataclass(frozen=True)
class EmbeddingRequest:
    model: str
    inputs: tuple[str, ...]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = None
    token_inputs: tuple[tuple[int, ...], ...] | None = None  # inputs as token ids


# --- primitives -------------------------------------------------------------------------


def _show(value: Any) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _fail(param: str, message: str) -> NoReturn:
    raise invalid_request(message, param=param)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _object(value: Any, param: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        _fail(param, f"'{param}' must be a JSON object, got {_show(value)}.")
    return cast(Mapping[str, Any], value)


def _body(body: Any) -> Mapping[str, Any]:
    if not isinstance(body, Mapping):
        raise invalid_request("The request body must be a JSON object, got " + _show(body) + ".")
    return cast(Mapping[str, Any], body)


def _bool(body: Mapping[str, Any], key: str, default: bool = False, param: str = "") -> bool:
    value = body.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        name = param or key
        _fail(name, f"'{name}' must be true or false, got {_show(value)}.")
    return value


def _string(value: Any, param: str, *, allow_empty: bool = True) -> str:
    if not isinstance(value, str):
        _fail(param, f"'{param}' must be a string, got {_show(value)}.")
    if not allow_empty and not value:
        _fail(param, f"'{param}' must not be empty.")
    return value


def _optional_string(body: Mapping[str, Any], key: str, param: str) -> str | None:
    value = body.get(key)
    return None if value is None else _string(value, param)


def _number(
    body: Mapping[str, Any],
    key: str,
    default: float,
    *,
    low: float,
    high: float,
    low_open: bool = False,
) -> float:
    value = body.get(key)
    if value is None:
        return default
    return _check_number(value, key, low=low, high=high, low_open=low_open)


def _optional_number(
    body: Mapping[str, Any], key: str, *, low: float, high: float, low_open: bool = False
) -> float | None:
    value = body.get(key)
    if value is None:
        return None
    return _check_number(value, key, low=low, high=high, low_open=low_open)


def _check_number(
    value: Any, param: str, *, low: float, high: float, low_open: bool = False
) -> float:
    if not _is_number(value):
        _fail(param, f"'{param}' must be a number, got {_show(value)}.")
    number = float(value)
    if not math.isfinite(number):
        _fail(param, f"'{param}' must be a finite number, got {_show(value)}.")
    too_low = number <= low if low_open else number < low
    if too_low or number > high:
        bracket = "(" if low_open else "["
        _fail(
            param,
            f"'{param}' must be in {bracket}{low:g}, {high:g}], got {_show(value)}.",
        )
    return number


def _model(body: Mapping[str, Any]) -> str:
    """The model named, or "" when none is: the server's default model is meant."""
    value = body.get("model")
    if value is None:
        return ""
    model = _string(value, "model", allow_empty=False)
    if len(model) > _MAX_MODEL_CHARS:
        _fail("model", f"'model' is longer than {_MAX_MODEL_CHARS} characters.")
    return model


# --- sampling ---------------------------------------------------------------------------


def _max_tokens(body: Mapping[str, Any], default: int, limit: int) -> int:
    """`max_completion_tokens`, else `max_tokens`, else llama-server's `n_predict`; -1 (as
    llama-server and LM Studio take it) means no limit but the context's end."""
    key = next(
        (
            k
            for k in ("max_completion_tokens", "max_tokens", "n_predict")
            if body.get(k) is not None
        ),
        None,
    )
    if key is None:
        return max(1, min(default, limit))
    value = body[key]
    if not _is_int(value):
        _fail(key, f"'{key}' must be an integer, got {_show(value)}.")
    if value == -1:
        return limit  # the worker cuts it at the context's end (finish_reason "length")
    if value < 1:
        _fail(key, f"'{key}' must be at least 1 (or -1 for no limit), got {value}.")
    if value > limit:
        _fail(
            key,
            f"'{key}' is too large: {value}. This server allows at most {limit} tokens.",
        )
    return cast(int, value)


def _stop(body: Mapping[str, Any]) -> tuple[str, ...]:
    """Stop sequences; empty ones stop nothing and are dropped (llama-server takes them).
    More than OpenAI's 4 are allowed: llama-server's clients (SillyTavern) send more."""
    value = body.get("stop")
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,) if value else ()
    if not isinstance(value, list):
        _fail("stop", f"'stop' must be a string or a list of strings, got {_show(value)}.")
    if len(value) > MAX_STOP:
        _fail("stop", f"'stop' has {len(value)} sequences; at most {MAX_STOP} are allowed.")
    return tuple(s for i, v in enumerate(value) if (s := _string(v, f"stop[{i}]")))


def _seed(body: Mapping[str, Any]) -> int | None:
    value = body.get("seed")
    if value is None:
        return None
    if not _is_int(value):
        _fail("seed", f"'seed' must be an integer, got {_show(value)}.")
    if not _INT64_MIN <= value <= _INT64_MAX:
        _fail("seed", "'seed' must fit in a signed 64-bit integer.")
    return cast(int, value)


def _logit_bias(body: Mapping[str, Any]) -> dict[int, float]:
    value = body.get("logit_bias")
    if value is None:
        return {}
    mapping = _object(value, "logit_bias")
    if len(mapping) > MAX_LOGIT_BIAS:
        _fail("logit_bias", f"'logit_bias' has more than {MAX_LOGIT_BIAS} entries.")
    out: dict[int, float] = {}
    for raw_key, bias in mapping.items():
        key: Any = raw_key
        if _is_int(key) and key >= 0:
            token = cast(int, key)
        elif isinstance(key, str) and key.isascii() and key.isdigit() and len(key) <= 12:
            token = int(key)
        else:
            _fail(
                "logit_bias",
                f"'logit_bias' keys must be token ids (non-negative integers), got {_show(key)}.",
            )
        out[token] = _check_number(bias, f"logit_bias.{key}", low=-100.0, high=100.0)
    return out


MAX_GRAMMAR_CHARS = 256 * 1024


def _grammar(body: Mapping[str, Any]) -> str | None:
    """llama-server's `grammar`: a GBNF grammar the answer follows (checked by the engine)."""
    value = body.get("grammar")
    if value is None or value == "":
        return None
    grammar = _string(value, "grammar")
    if len(grammar) > MAX_GRAMMAR_CHARS:
        _fail("grammar", f"'grammar' is longer than {MAX_GRAMMAR_CHARS} characters.")
    return grammar


def _response_format(body: Mapping[str, Any]) -> ResponseFormat | None:
    """`response_format`, or llama-server's forms of a schema: a top-level `json_schema`,
    and `schema` beside type `json_object` (or `json_schema` without its wrapper)."""
    top = body.get("json_schema")
    if top is not None:
        if body.get("response_format") is not None:
            _fail("json_schema", "Give either 'json_schema' or 'response_format', not both.")
        return ResponseFormat("json_schema", dict(_object(top, "json_schema")))
    value = body.get("response_format")
    if value is None:
        return None
    fmt = _object(value, "response_format")
    kind = fmt.get("type")
    if kind == "text":
        return ResponseFormat("text")
    bare = fmt.get("schema")
    if kind == "json_object" or (kind == "json_schema" and "json_schema" not in fmt and bare):
        if bare is None:
            return ResponseFormat("json_object")
        return ResponseFormat("json_schema", dict(_object(bare, "response_format.schema")))
    if kind == "json_schema":
        spec = _object(fmt.get("json_schema"), "response_format.json_schema")
        name = _optional_string(spec, "name", "response_format.json_schema.name")
        schema = spec.get("schema")
        if schema is None:
            _fail(
                "response_format.json_schema.schema",
                "'response_format.json_schema.schema' is required: give the JSON Schema "
                "the output must match.",
            )
        schema_obj = _object(schema, "response_format.json_schema.schema")
        strict = _bool(spec, "strict", param="response_format.json_schema.strict")
        return ResponseFormat("json_schema", dict(schema_obj), name, strict)
    _fail(
        "response_format.type",
        "'response_format.type' must be 'text', 'json_object' or 'json_schema', "
        f"got {_show(kind)}.",
    )


MAX_N = 8


def _refuse_outputs(body: Mapping[str, Any]) -> None:
    """What a chat request asks for that these models cannot give: audio answers and web
    search. Refused rather than answered with text alone, so the client knows."""
    modalities = body.get("modalities")
    if body.get("audio") is not None or (
        isinstance(modalities, list) and any(m != "text" for m in modalities)
    ):
        param = "audio" if body.get("audio") is not None else "modalities"
        _fail(param, "Audio output is not supported by this server: ask for text only.")
    if body.get("web_search_options") is not None:
        _fail("web_search_options", "Web search is not supported by this server.")


def _refuse_unsupported(body: Mapping[str, Any], max_n: int = 1) -> int:
    """`n`, when this route supports it (chat: up to MAX_N choices)."""
    n = body.get("n")
    if n is None:
        return 1
    if not (_is_int(n) and 1 <= n <= max_n):
        if max_n == 1:
            _fail("n", f"Only n=1 is supported by this server, got n={_show(n)}.")
        _fail("n", f"'n' must be an integer from 1 to {max_n}, got {_show(n)}.")
    return int(n)


def _stream(body: Mapping[str, Any]) -> tuple[bool, bool]:
    stream = _bool(body, "stream")
    options = body.get("stream_options")
    if options is None:
        return stream, False
    if not stream:
        _fail(
            "stream_options",
            "'stream_options' is only allowed when 'stream' is true.",
        )
    opts = _object(options, "stream_options")
    return stream, _bool(opts, "include_usage", param="stream_options.include_usage")


def _params(body: Mapping[str, Any], default_max_tokens: int, limit: int) -> SamplingParams:
    fmt = _response_format(body)
    grammar = _grammar(body)
    if grammar is not None and fmt is not None and fmt.type != "text":
        _fail("grammar", "Give either 'grammar' or a JSON schema ('response_format'), not both.")
    top_k = body.get("top_k")
    if top_k is not None and (not _is_int(top_k) or not 0 <= top_k <= _INT32_MAX):
        _fail("top_k", f"'top_k' must be a non-negative integer, got {_show(top_k)}.")
    repeat_penalty = _optional_number(body, "repeat_penalty", low=0.0, high=10.0, low_open=True)
    last_n = body.get("repeat_last_n")
    if last_n is not None and (not _is_int(last_n) or not -1 <= last_n <= _INT32_MAX):
        _fail("repeat_last_n", f"'repeat_last_n' must be an integer >= -1, got {_show(last_n)}.")
    return SamplingParams(
        max_tokens=_max_tokens(body, default_max_tokens, limit),
        temperature=_number(body, "temperature", 1.0, low=0.0, high=2.0),
        top_p=_number(body, "top_p", 1.0, low=0.0, high=1.0),  # 0: the likeliest token
        top_k=cast("int | None", top_k),
        min_p=_optional_number(body, "min_p", low=0.0, high=1.0),
        stop=_stop(body),
        seed=_seed(body),
        logit_bias=_logit_bias(body),
        presence_penalty=_number(body, "presence_penalty", 0.0, low=-2.0, high=2.0),
        frequency_penalty=_number(body, "frequency_penalty", 0.0, low=-2.0, high=2.0),
        repeat_penalty=repeat_penalty,
        repeat_last_n=cast("int | None", last_n),
        response_format=fmt,
        grammar=grammar,
        samplers=llama_samplers(body),
        sampler_order=sampler_order(body),
        ignore_eos=_bool(body, "ignore_eos"),
        deterministic=_bool(body, "deterministic"),
    )


# --- chat -------------------------------------------------------------------------------


def _content(value: Any, param: str, *, allow_null: bool) -> str:
    if value is None:
        if allow_null:
            return ""
        _fail(param, f"'{param}' is required.")
    if isinstance(value, str):
        return value
    if not isinstance(value, list):
        _fail(param, f"'{param}' must be a string or a list of content parts.")
    texts: list[str] = []
    for j, part in enumerate(value):
        part_param = f"{param}[{j}]"
        part_obj = _object(part, part_param)
        kind = part_obj.get("type")
        if kind == "text":
            texts.append(_string(part_obj.get("text"), f"{part_param}.text"))
        elif kind in ("image_url", "input_image", "image"):
            _fail(part_param, "Image input is not supported by this server: send text only.")
        elif kind in ("input_audio", "audio"):
            _fail(part_param, "Audio input is not supported by this server: send text only.")
        else:
            _fail(
                part_param,
                f"Unsupported content part type {_show(kind)}: only 'text' parts are supported.",
            )
    return "".join(texts)


def _message(value: Any, i: int) -> ChatMessage:
    param = f"messages[{i}]"
    msg = _object(value, param)
    role = msg.get("role")
    tool_call_id = _optional_string(msg, "tool_call_id", f"{param}.tool_call_id")
    if role == "function":
        # The legacy `functions` API's result turn ({"role": "function", "name", "content"})
        # answers the assistant's `function_call`, read as the tool call "call_0".
        role, tool_call_id = "tool", tool_call_id or "call_0"
    if role not in _ROLES:
        _fail(
            f"{param}.role",
            f"'{param}.role' must be one of {', '.join(_ROLES)} (or the legacy function); "
            f"got {_show(role)}.",
        )
    calls = msg.get("tool_calls", msg.get("function_call"))
    if calls and role != "assistant":
        _fail(f"{param}.tool_calls", "Only assistant messages carry 'tool_calls'.")
    tool_calls = parse_tool_calls(calls or None, f"{param}.tool_calls")
    content = _content(msg.get("content"), f"{param}.content", allow_null=role == "assistant")
    return ChatMessage(
        role=cast(Role, role),
        content=content,
        name=_optional_string(msg, "name", f"{param}.name"),
        reasoning_content=_optional_string(msg, "reasoning_content", f"{param}.reasoning_content"),
        tool_call_id=tool_call_id,
        tool_calls=tool_calls,
    )


def _messages(body: Mapping[str, Any]) -> tuple[ChatMessage, ...]:
    value = body.get("messages")
    if value is None:
        _fail("messages", "'messages' is required: give a list of chat messages.")
    if not isinstance(value, list):
        _fail("messages", f"'messages' must be a list of messages, got {_show(value)}.")
    if not value:
        _fail("messages", "'messages' must contain at least one message.")
    messages = tuple(_message(m, i) for i, m in enumerate(value))
    total = sum(len(m.content) + len(m.reasoning_content or "") for m in messages)
    if total > MAX_CONTENT_CHARS:
        _fail(
            "messages",
            f"The messages are too long: {total} characters, the limit is {MAX_CONTENT_CHARS}.",
        )
    return messages


MAX_TOP_LOGPROBS = 20


def _chat_logprobs(obj: Mapping[str, Any]) -> int | None:
    wanted = _bool(obj, "logprobs")
    top = obj.get("top_logprobs")
    if top is not None:
        if not _is_int(top) or not 0 <= top <= MAX_TOP_LOGPROBS:
            _fail(
                "top_logprobs",
                f"'top_logprobs' must be an integer from 0 to {MAX_TOP_LOGPROBS}, "
                f"got {_show(top)}.",
            )
        if not wanted:
            _fail("top_logprobs", "'top_logprobs' needs 'logprobs': true.")
    return int(top or 0) if wanted else None


def parse_chat_request(body: Any, *, default_max_tokens: int, max_tokens_limit: int) -> ChatRequest:
    """Validate a ``POST /v1/chat/completions`` body."""
    obj = _body(body)
    model = _model(obj)
    messages = _messages(obj)
    _refuse_outputs(obj)
    n = _refuse_unsupported(obj, MAX_N)
    stream, include_usage = _stream(obj)
    params = _params(obj, default_max_tokens, max_tokens_limit)
    params = dataclasses.replace(params, logprobs=_chat_logprobs(obj))
    # With tools and a response_format, as OpenAI: the model calls tools or answers in the
    # format ("auto"); a forced choice makes a call, the format is for a later answer.
    tools = parse_tools(obj)
    if params.grammar is not None and tools.active:
        _fail("grammar", "'grammar' cannot be used with tools: the tool calls have their own.")
    variables = template_vars(obj)
    return ChatRequest(model, messages, stream, include_usage, params, tools, n, variables)


# --- completions ------------------------------------------------------------------------


MAX_TOKEN_ID = 2**31 - 1


def token_ids(value: Any, param: str) -> tuple[int, ...] | None:
    """`value` as a list of token ids, or None when it is not one."""
    if not isinstance(value, list) or not value or not all(_is_int(t) for t in value):
        return None
    if any(not 0 <= t <= MAX_TOKEN_ID for t in value):
        _fail(param, f"'{param}' holds a token id outside 0..{MAX_TOKEN_ID}.")
    if len(value) > MAX_CONTENT_CHARS:
        _fail(param, f"'{param}' has {len(value)} tokens; the limit is {MAX_CONTENT_CHARS}.")
    return tuple(int(t) for t in value)


def _prompts(body: Mapping[str, Any]) -> tuple[CompletionPrompt, ...]:
    """`prompt` as one prompt or a batch: a string, token ids, or a list of either."""
    value = body.get("prompt")
    if value is None:
        _fail("prompt", "'prompt' is required.")
    ids = token_ids(value, "prompt")
    if ids is not None:
        return (CompletionPrompt("", ids),)
    if isinstance(value, str):
        items: list[Any] = [value]
    elif isinstance(value, list) and value:
        items = value
    else:
        _fail(
            "prompt",
            "'prompt' must be a string, a list of token ids, or a non-empty list of "
            f"either, got {_show(value)}.",
        )
    if len(items) > MAX_N:
        _fail(
            "prompt",
            f"'prompt' holds {len(items)} prompts; at most {MAX_N} are allowed in one request.",
        )
    prompts = []
    for i, item in enumerate(items):
        param = "prompt" if isinstance(value, str) else f"prompt[{i}]"
        if isinstance(item, list):
            ids = token_ids(item, param)
            if ids is None:
                _fail(param, f"'{param}' must be a string or a non-empty list of token ids.")
            prompts.append(CompletionPrompt("", ids))
        else:
            prompts.append(CompletionPrompt(_string(item, param)))
    total = sum(len(p.text) + len(p.ids or ()) for p in prompts)
    if total > MAX_CONTENT_CHARS:
        _fail(
            "prompt",
            f"The prompt is too long: {total} characters, the limit is {MAX_CONTENT_CHARS}.",
        )
    return tuple(prompts)


def parse_completion_request(
    body: Any, *, default_max_tokens: int, max_tokens_limit: int
) -> CompletionRequest:
    """Validate a ``POST /v1/completions`` body."""
    obj = _body(body)
    model = _model(obj)
    prompts = _prompts(obj)
    n = _refuse_unsupported(obj, MAX_N)
    if len(prompts) * n > MAX_N:
        _fail(
            "n",
            f"{len(prompts)} prompts × n={n} would make {len(prompts) * n} completions; "
            f"at most {MAX_N} are made in one request.",
        )
    best_of = obj.get("best_of")
    if best_of is not None and not (_is_int(best_of) and best_of == 1):
        _fail("best_of", f"Only best_of=1 is supported by this server, got {_show(best_of)}.")
    if obj.get("suffix"):
        _fail("suffix", "'suffix' (insertion) is not supported by this server.")
    stream, include_usage = _stream(obj)
    echo = _bool(obj, "echo")
    # OpenAI's legacy scoring call: echo the prompt with its logprobs, generate nothing.
    score_only = echo and _is_int(obj.get("max_tokens")) and obj.get("max_tokens") == 0
    params = _params(
        {**obj, "max_tokens": 1} if score_only else obj, default_max_tokens, max_tokens_limit
    )
    logprobs = obj.get("logprobs")
    if logprobs is not None and (not _is_int(logprobs) or not 0 <= logprobs <= MAX_TOP_LOGPROBS):
        _fail(
            "logprobs",
            f"'logprobs' must be an integer from 0 to {MAX_TOP_LOGPROBS} (the likeliest tokens "
            f"to list beside each one), got {_show(logprobs)}.",
        )
    # The worker echoes the prompt when only it knows it as text (token ids), when it is
    # scored, or when nothing is generated; otherwise the prompt's own text is echoed.
    by_worker = echo and (
        logprobs is not None or score_only or any(p.ids is not None for p in prompts)
    )
    params = dataclasses.replace(
        params,
        logprobs=logprobs,
        max_tokens=0 if score_only else params.max_tokens,
        echo=by_worker,
        prompt_logprobs=logprobs if by_worker else None,
    )
    return CompletionRequest(model, prompts, stream, include_usage, params, echo, n)


# --- embeddings -------------------------------------------------------------------------


def _inputs(body: Mapping[str, Any]) -> tuple[str, ...]:
    value = body.get("input")
    if value is None:
        _fail("input", "'input' is required: a string or a list of strings.")
    if isinstance(value, str):
        items: list[Any] = [value]
        single = True
    elif isinstance(value, list):
        items = value
        single = False
        if not items:
            _fail("input", "'input' must not be an empty list.")
        if any(_is_int(t) or isinstance(t, list) for t in items):
            _fail(
                "input",
                "Token arrays are not supported as 'input': send strings.",
            )
        if len(items) > MAX_EMBEDDING_INPUTS:
            _fail(
                "input",
                f"'input' has {len(items)} items; at most {MAX_EMBEDDING_INPUTS} are allowed.",
            )
    else:
        _fail("input", f"'input' must be a string or a list of strings, got {_show(value)}.")
    inputs = tuple(
        _string(t, "input" if single else f"input[{i}]", allow_empty=False)
        for i, t in enumerate(items)
    )
    total = sum(len(t) for t in inputs)
    if total > MAX_CONTENT_CHARS:
        _fail(
            "input",
            f"'input' is too long: {total} characters, the limit is {MAX_CONTENT_CHARS}.",
        )
    return inputs


def _token_inputs(body: Mapping[str, Any]) -> tuple[tuple[int, ...], ...] | None:
    value = body.get("input")
    single = token_ids(value, "input")
    if single is not None:
        return (single,)
    if not isinstance(value, list) or not value or not all(isinstance(v, list) for v in value):
        return None
    if len(value) > MAX_EMBEDDING_INPUTS:
        _fail(
            "input", f"'input' has {len(value)} items; at most {MAX_EMBEDDING_INPUTS} are allowed."
        )
    out = []
    for i, item in enumerate(value):
        ids = token_ids(item, f"input[{i}]")
        if ids is None:
            _fail(f"input[{i}]", f"'input[{i}]' must be a non-empty list of token ids.")
        out.append(ids)
    return tuple(out)


def parse_embedding_request(body: Any) -> EmbeddingRequest:
    """Validate a ``POST /v1/embeddings`` body."""
    obj = _body(body)
    model = _model(obj)
    ids = _token_inputs(obj)
    inputs = tuple("" for _ in ids) if ids is not None else _inputs(obj)
    encoding = obj.get("encoding_format")
    if encoding is None:
        encoding = "float"
    if encoding not in ("float", "base64"):
        _fail(
            "encoding_format",
            f"'encoding_format' must be 'float' or 'base64', got {_show(encoding)}.",
        )
    dimensions = obj.get("dimensions")
    if dimensions is not None and (not _is_int(dimensions) or dimensions < 1):
        _fail(
            "dimensions",
            f"'dimensions' must be a positive integer, got {_show(dimensions)}.",
        )
    return EmbeddingRequest(
        model,
        inputs,
        cast(Literal["float", "base64"], encoding),
        cast("int | None", dimensions),
        ids,
    )


def query_limit(value: str | None, maximum: int, default: int = 20) -> int:
    """A list route's `limit` query parameter: 1 to `maximum`, `default` when absent."""
    if value is None:
        return default
    try:
        limit = int(value)
    except ValueError:
        limit = 0
    if not 1 <= limit <= maximum:
        raise invalid_request(
            f"'limit' must be an integer from 1 to {maximum}, not {value!r}", "limit"
        )
    return limit
