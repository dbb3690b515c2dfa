"""Hypothesis over every request parser: any JSON value, and any near-valid body with
fields of the wrong shape, ends as a parsed request or a 4xx `APIError` naming a
parameter; nothing else is ever raised (a 500 from a body is a bug)."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appliance.api import anthropic, responses_request
from appliance.api.errors import APIError
from appliance.api.schemas import (
    parse_chat_request,
    parse_completion_request,
    parse_embedding_request,
)

LIMITS = {"default_max_tokens": 256, "max_tokens_limit": 4096}

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)

CHAT_KEYS = [
    "model",
    "messages",
    "max_tokens",
    "temperature",
    "top_p",
    "top_k",
    "stop",
    "seed",
    "logit_bias",
    "response_format",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "functions",
    "function_call",
    "logprobs",
    "top_logprobs",
    "stream",
    "stream_options",
    "n",
]
message = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "assistant", "tool", "system", "bogus"])},
    optional={
        "content": json_values,
        "tool_calls": json_values,
        "tool_call_id": json_values,
        "name": json_values,
    },
)


def near_valid(keys: list[str], base: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(st.sampled_from(keys), json_values, max_size=6).map(
        lambda extra: {**base, **extra}
    )


def only_api_errors(parse: Any, body: Any) -> None:
    try:
        parse(body)
    except APIError as exc:
        assert 400 <= exc.status < 500, exc
        assert exc.message


FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.one_of(json_values, near_valid(CHAT_KEYS, {"model": "m"})), st.lists(message, max_size=3))
def test_chat_parser(body: Any, messages: list[dict[str, Any]]) -> None:
    if isinstance(body, dict) and messages and "messages" not in body:
        body = {**body, "messages": messages}
    only_api_errors(lambda b: parse_chat_request(b, **LIMITS), body)


@FUZZ
@given(
    st.one_of(
        json_values,
        near_valid(
            ["model", "prompt", "max_tokens", "logprobs", "echo", "suffix", "best_of", "stop"],
            {"prompt": "x"},
        ),
    )
)
def test_completion_parser(body: Any) -> None:
    only_api_errors(lambda b: parse_completion_request(b, **LIMITS), body)


@FUZZ
@given(
    st.one_of(
        json_values, near_valid(["model", "input", "encoding_format", "dimensions"], {"input": "x"})
    )
)
def test_embedding_parser(body: Any) -> None:
    only_api_errors(parse_embedding_request, body)


@FUZZ
@given(
    st.one_of(
        json_values,
        near_valid(
            [
                "model",
                "input",
                "instructions",
                "tools",
                "tool_choice",
                "text",
                "max_output_tokens",
                "stream",
            ],
            {"input": "hi"},
        ),
    )
)
def test_responses_translation(body: Any) -> None:
    def parse(b: Any) -> None:
        parse_chat_request(responses_request.to_chat_body(b, []), **LIMITS)

    only_api_errors(parse, body)


@FUZZ
@given(
    st.one_of(
        json_values,
        near_valid(
            ["model", "messages", "system", "tools", "tool_choice", "stop_sequences", "stream"],
            {"max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]},
        ),
    )
)
def test_anthropic_translation(body: Any) -> None:
    def parse(b: Any) -> None:
        parse_chat_request(anthropic.to_chat_body(b), **LIMITS)

    only_api_errors(parse, body)
