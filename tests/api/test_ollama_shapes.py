"""Ollama's fields read into the OpenAI body the pipeline validates, and back."""

from __future__ import annotations

import json

import pytest

from appliance.api.errors import APIError
from appliance.api.ollama import chat_messages, done_fields, ollama_tool_calls, sampling_fields


def test_options_and_format_become_sampling_fields_with_ollamas_defaults() -> None:
    bare = sampling_fields({})
    assert (bare["temperature"], bare["top_k"], bare["top_p"], bare["repeat_penalty"]) == (
        0.8,
        40,
        0.9,
        1.1,
    )
    assert bare["max_tokens"] == -1 and "seed" not in bare
    given = sampling_fields(
        {"options": {"temperature": 0, "num_predict": 7, "seed": -1, "stop": ["x"]}}
    )
    assert given["temperature"] == 0 and given["max_tokens"] == 7 and given["stop"] == ["x"]
    assert "seed" not in given  # Ollama's -1: a random seed
    assert sampling_fields({"options": {"num_predict": -2}})["max_tokens"] == -1
    assert sampling_fields({"format": "json"})["response_format"] == {"type": "json_object"}
    schema = {"type": "object"}
    fmt = sampling_fields({"format": schema})["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["schema"] == schema
    for bad in ({"format": "xml"}, {"options": [1]}):
        with pytest.raises(APIError):
            sampling_fields(bad)


def test_tool_results_answer_the_earliest_call_of_their_tool() -> None:
    calls = [
        {"function": {"name": "a", "arguments": {"x": 1}}},
        {"function": {"name": "b", "arguments": {}}},
    ]
    out = chat_messages(
        [
            {"role": "assistant", "content": "", "tool_calls": calls, "thinking": "plan"},
            {"role": "tool", "content": "B", "tool_name": "b"},
            {"role": "tool", "content": "A"},  # no name: the oldest unanswered call
        ]
    )
    ids = [c["id"] for c in out[0]["tool_calls"]]
    assert json.loads(out[0]["tool_calls"][0]["function"]["arguments"]) == {"x": 1}
    assert out[0]["reasoning_content"] == "plan"
    assert out[1]["tool_call_id"] == ids[1] and out[2]["tool_call_id"] == ids[0]


def test_calls_and_counts_go_back_in_ollamas_shape() -> None:
    openai_calls = [
        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"q": "x"}'}}
    ]
    assert ollama_tool_calls(openai_calls) == [
        {"function": {"index": 0, "name": "f", "arguments": {"q": "x"}}}
    ]
    done = {"finish_reason": "stop", "prompt_tokens": 9, "completion_tokens": 3, "decode_s": 0.5}
    fields = done_fields(done, total_s=1.0, load_s=0.25)
    assert fields["done_reason"] == "stop" and fields["eval_duration"] == 500_000_000
    assert fields["total_duration"] == 1_000_000_000 and fields["prompt_eval_count"] == 9
