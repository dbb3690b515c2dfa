"""llama-server's request fields read into ours, and the FIM limits code editors use."""

from __future__ import annotations

import pytest

from appliance.api.errors import APIError
from appliance.api.llama_native import FimLimits, completion_body, select_fields, stop_type


def test_a_bare_prompt_gets_llama_server_defaults_and_no_token_limit() -> None:
    body = completion_body({"prompt": "x"}, max_tokens_limit=4096)
    assert body["max_tokens"] == -1  # n_predict's default: until the context's end
    assert (body["temperature"], body["top_k"], body["top_p"], body["min_p"]) == (
        0.8,
        40,
        0.95,
        0.05,
    )
    given = completion_body({"prompt": "x", "temperature": 0, "n_predict": 9}, 4096)
    assert given["temperature"] == 0 and given["max_tokens"] == 9
    assert completion_body({"prompt": "x", "n_predict": 10**6}, 4096)["max_tokens"] == -1


def test_llama_server_fields_are_translated_or_refused() -> None:
    body = completion_body(
        {"prompt": "x", "n_probs": 50, "n_cmpl": 2, "logit_bias": [[5, False], [6, 2.5]]}, 4096
    )
    assert body["logprobs"] == 20 and body["n"] == 2
    assert body["logit_bias"] == {"5": -100.0, "6": 2.5}
    assert "cache_prompt" not in completion_body({"prompt": "x", "cache_prompt": True}, 9)
    for bad in ({"lora": [{"id": 0, "scale": 1}]}, {"n_probs": "3"}):
        with pytest.raises(APIError):
            completion_body({"prompt": "x", **bad}, 4096)


def test_values_llama_server_takes_are_taken_as_llama_cpp_would_use_them() -> None:
    """Sliders past OpenAI's ranges, and the editors' n_predict 0 (read the context into
    the cache): llama-server answers them, so must this."""
    body = completion_body(
        {
            "prompt": "x",
            "n_predict": 0,
            "n_probs": -1,
            "temperature": 2.5,
            "top_p": 1.5,
            "presence_penalty": 5,
            "top_k": -5,
        },
        4096,
    )
    assert body["max_tokens"] == 1 and body["logprobs"] is None
    assert (body["temperature"], body["top_p"], body["presence_penalty"]) == (2.0, 1.0, 2.0)
    assert body["top_k"] == 0  # off, as llama.cpp takes a top_k <= 0
    assert FimLimits.of({"n_indent": -1, "t_max_predict_ms": -1}) == FimLimits()


def test_stop_types() -> None:
    assert stop_type({"finish_reason": "length"}) == ("limit", "")
    assert stop_type({"finish_reason": "stop", "stop_sequence": "###"}) == ("word", "###")
    assert stop_type({"finish_reason": "stop"}) == ("eos", "")
    assert stop_type({"finish_reason": "stop"}, cut=True) == ("limit", "")


def test_n_indent_cuts_the_first_line_indented_less_keeping_its_indentation() -> None:
    limits = FimLimits(n_indent=4)
    sent = []
    for piece in ["    a = 1", "\n", "    b", " = 2\n", " c"]:
        text, stop = limits.feed(piece, now=0.0)
        sent.append(text)
        if stop:
            break
    assert stop and "".join(sent) == "    a = 1\n    b = 2\n " and limits.cut


def test_the_time_limit_ends_the_answer_at_a_line_end_only() -> None:
    limits = FimLimits(t_max_ms=100)
    assert limits.feed("a", now=0.0) == ("a", False)
    assert limits.feed("b", now=0.5) == ("b", False)  # late, but the line is not done
    assert limits.feed("c\n", now=0.6) == ("c\n", True)
    early = FimLimits(t_max_ms=100)
    early.feed("a", now=0.0)
    assert early.feed("\n", now=0.05) == ("\n", False)


def test_response_fields_pick_and_unnest() -> None:
    result = {"content": "hi", "timings": {"predicted_n": 3}, "stop": True}
    assert select_fields(["content", "timings/predicted_n", "nope"], result) == {
        "content": "hi",
        "timings/predicted_n": 3,
    }
    assert select_fields(None, result) is result
    with pytest.raises(APIError):
        select_fields("content", result)
