import json
from typing import Any

import pytest

from appliance.api.errors import APIError
from appliance.api.schemas import (
    MAX_CONTENT_CHARS,
    ChatMessage,
    CompletionPrompt,
    ResponseFormat,
    SamplingParams,
    parse_chat_request,
    parse_completion_request,
    parse_embedding_request,
)

TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
LIMITS = {"default_max_tokens": 256, "max_tokens_limit": 4096}


def chat(**extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    body.update(extra)
    return body


def chat_error(body: Any) -> APIError:
    with pytest.raises(APIError) as info:
        parse_chat_request(body, **LIMITS)
    assert info.value.status == 400
    assert info.value.type == "invalid_request_error"
    return info.value


def test_minimal_chat_gets_defaults() -> None:
    req = parse_chat_request(chat(), **LIMITS)
    assert req.model == "m"
    assert req.messages == (ChatMessage("user", "hi"),)
    assert (req.stream, req.include_usage) == (False, False)
    assert req.params == SamplingParams(max_tokens=256)
    assert req.params.temperature == 1.0 and req.params.top_p == 1.0


def test_default_max_tokens_is_capped_by_the_limit() -> None:
    req = parse_chat_request(chat(), default_max_tokens=9999, max_tokens_limit=100)
    assert req.params.max_tokens == 100


def test_full_chat_request() -> None:
    body = chat(
        messages=[
            {"role": "system", "content": "be brief"},
            {"role": "developer", "content": "dev"},
            {
                "role": "user",
                "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
                "name": "bob",
            },
            {"role": "assistant", "content": None, "reasoning_content": "hmm"},
            {"role": "tool", "content": "42", "tool_call_id": "call_1"},
        ],
        stream=True,
        stream_options={"include_usage": True},
        max_tokens=10,
        max_completion_tokens=20,
        temperature=0,
        top_p=0.5,
        top_k=40,
        min_p=0.05,
        stop=["\n\n", "END"],
        seed=-1,
        logit_bias={"15": -100, "7": 2.5},
        presence_penalty=1,
        frequency_penalty=-0.5,
        repeat_penalty=1.1,
        response_format={"type": "json_object"},
        ignore_eos=True,
        n=1,
        user="someone",
        metadata={"x": 1},
        parallel_tool_calls=False,
    )
    req = parse_chat_request(body, **LIMITS)
    assert [m.role for m in req.messages] == ["system", "developer", "user", "assistant", "tool"]
    assert req.messages[2] == ChatMessage("user", "ab", name="bob")
    assert req.messages[3] == ChatMessage("assistant", "", reasoning_content="hmm")
    assert req.messages[4].tool_call_id == "call_1"
    assert (req.stream, req.include_usage) == (True, True)
    p = req.params
    assert p.max_tokens == 20
    assert (p.temperature, p.top_p, p.top_k, p.min_p) == (0.0, 0.5, 40, 0.05)
    assert p.stop == ("\n\n", "END")
    assert p.seed == -1
    assert p.logit_bias == {15: -100.0, 7: 2.5}
    assert (p.presence_penalty, p.frequency_penalty, p.repeat_penalty) == (1.0, -0.5, 1.1)
    assert p.response_format == ResponseFormat("json_object")
    assert p.ignore_eos is True


def test_stop_as_string_and_null() -> None:
    assert parse_chat_request(chat(stop="###"), **LIMITS).params.stop == ("###",)
    assert parse_chat_request(chat(stop=None), **LIMITS).params.stop == ()
    assert parse_chat_request(chat(stop=[]), **LIMITS).params.stop == ()


def test_llama_server_forms_of_the_sampling_settings() -> None:
    """What llama-server (and LM Studio) scripts send: -1 for no limit, `n_predict`, more
    than 4 stop strings, empty stop strings, top_p 0."""

    def params(**extra: Any) -> Any:
        return parse_chat_request(chat(**extra), **LIMITS).params

    assert params(max_tokens=-1).max_tokens == LIMITS["max_tokens_limit"]
    assert params(n_predict=4).max_tokens == 4
    assert params(n_predict=-1).max_tokens == LIMITS["max_tokens_limit"]
    assert params(n_predict=4, max_tokens=9).max_tokens == 9
    stops = ["\n\nUser:", "\nUser:", "<|im_end|>", "</s>", "###", "Paris"]
    assert params(stop=stops).stop == tuple(stops)
    assert params(stop="").stop == ()
    assert params(stop=["", "x"]).stop == ("x",)
    assert params(top_p=0).top_p == 0.0


def test_llama_server_forms_of_a_schema_and_a_grammar() -> None:
    schema = {"type": "object"}
    for body in (
        chat(json_schema=schema),
        chat(response_format={"type": "json_object", "schema": schema}),
        chat(response_format={"type": "json_schema", "schema": schema}),
    ):
        fmt = parse_chat_request(body, **LIMITS).params.response_format
        assert fmt == ResponseFormat("json_schema", schema), body
    p = parse_chat_request(chat(grammar='root ::= "a"'), **LIMITS).params
    assert p.grammar == 'root ::= "a"' and p.response_format is None
    assert parse_chat_request(chat(grammar=""), **LIMITS).params.grammar is None
    none_chosen = chat(
        grammar='root ::= "a"',
        tools=[{"type": "function", "function": {"name": "f"}}],
        tool_choice="none",
    )
    assert parse_chat_request(none_chosen, **LIMITS).params.grammar == 'root ::= "a"'


def test_llama_server_samplers_are_read_only_when_on() -> None:
    def samplers(**extra: Any) -> dict[str, Any]:
        return parse_chat_request(chat(**extra), **LIMITS).params.samplers

    assert samplers() == {}
    assert samplers(typical_p=1, mirostat=0, top_n_sigma=-1, dry_multiplier=0) == {}
    on = samplers(mirostat=2, mirostat_tau=3)
    assert (on["mirostat"], on["mirostat_tau"], on["mirostat_eta"]) == (2, 3, 0.1)
    assert on["typical_p"] == 1.0 and on["dry_multiplier"] == 0.0  # the others stay off
    dry = samplers(dry_multiplier=0.8)
    assert dry["dry_sequence_breakers"] == ["\n", ":", '"', "*"] and dry["dry_base"] == 1.75


def test_json_schema_response_format() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    body = chat(
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "thing", "schema": schema, "strict": True},
        }
    )
    fmt = parse_chat_request(body, **LIMITS).params.response_format
    assert fmt == ResponseFormat("json_schema", schema, "thing", True)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ([], None),
        ("x", None),
        (chat(model=""), "model"),
        (chat(model=3), "model"),
        ({"model": "m"}, "messages"),
        (chat(messages=[]), "messages"),
        (chat(messages="hi"), "messages"),
        (chat(messages=["hi"]), "messages[0]"),
        (chat(messages=[{"role": "robot", "content": "x"}]), "messages[0].role"),
        (chat(messages=[{"content": "x"}]), "messages[0].role"),
        (chat(messages=[{"role": "user"}]), "messages[0].content"),
        (chat(messages=[{"role": "user", "content": 5}]), "messages[0].content"),
        (
            chat(messages=[{"role": "user", "content": [{"type": "text", "text": 1}]}]),
            "messages[0].content[0].text",
        ),
        (chat(messages=[{"role": "user", "content": ["x"]}]), "messages[0].content[0]"),
        (chat(messages=[{"role": "user", "content": "x", "name": 1}]), "messages[0].name"),
        (
            chat(messages=[{"role": "assistant", "content": "x", "tool_calls": [{"id": "c"}]}]),
            "messages[0].tool_calls[0].function",
        ),
        (
            chat(messages=[{"role": "user", "content": "x", "tool_calls": [{"id": "c"}]}]),
            "messages[0].tool_calls",
        ),
        (chat(max_tokens=0), "max_tokens"),
        (chat(max_tokens=-5), "max_tokens"),
        (chat(n_predict=-2), "n_predict"),
        (chat(stop=["s"] * 65), "stop"),
        (chat(top_p=-0.1), "top_p"),
        (chat(max_tokens=4097), "max_tokens"),
        (chat(max_tokens=10**30), "max_tokens"),
        (chat(max_tokens=10.0), "max_tokens"),
        (chat(max_tokens=True), "max_tokens"),
        (chat(max_tokens="10"), "max_tokens"),
        (chat(max_tokens=5, max_completion_tokens=0), "max_completion_tokens"),
        (chat(temperature=2.5), "temperature"),
        (chat(temperature=-0.1), "temperature"),
        (chat(temperature=float("nan")), "temperature"),
        (chat(temperature=float("inf")), "temperature"),
        (chat(temperature=True), "temperature"),
        (chat(temperature="1"), "temperature"),
        (chat(top_p=1.01), "top_p"),
        (chat(top_p=float("nan")), "top_p"),
        (chat(top_k=-1), "top_k"),
        (chat(top_k=1.5), "top_k"),
        (chat(min_p=2), "min_p"),
        (chat(repeat_penalty=0), "repeat_penalty"),
        (chat(repeat_last_n=-2), "repeat_last_n"),
        (chat(mirostat=3), "mirostat"),
        (chat(typical_p=1.5), "typical_p"),
        (chat(xtc_probability="1"), "xtc_probability"),
        (chat(dry_multiplier=float("inf")), "dry_multiplier"),
        (chat(dry_allowed_length=1.5), "dry_allowed_length"),
        (chat(dry_sequence_breakers="\n"), "dry_sequence_breakers"),
        (chat(dry_sequence_breakers=[""]), "dry_sequence_breakers"),
        (chat(repeat_last_n=1.5), "repeat_last_n"),
        (chat(presence_penalty=3), "presence_penalty"),
        (chat(frequency_penalty=float("-inf")), "frequency_penalty"),
        (chat(stop=["a", 1]), "stop[1]"),
        (chat(stop=5), "stop"),
        (chat(seed=2**63), "seed"),
        (chat(seed=-(2**63) - 1), "seed"),
        (chat(seed=1.5), "seed"),
        (chat(seed=False), "seed"),
        (chat(logit_bias=[1]), "logit_bias"),
        (chat(logit_bias={"abc": 1}), "logit_bias"),
        (chat(logit_bias={"-1": 1}), "logit_bias"),
        (chat(logit_bias={"1": 101}), "logit_bias.1"),
        (chat(logit_bias={"1": float("nan")}), "logit_bias.1"),
        (chat(n=9), "n"),
        (chat(n=True), "n"),
        (chat(stream="yes"), "stream"),
        (chat(stream_options={"include_usage": True}), "stream_options"),
        (chat(stream=True, stream_options=[]), "stream_options"),
        (chat(stream=True, stream_options={"include_usage": 1}), "stream_options.include_usage"),
        (chat(response_format="json"), "response_format"),
        (chat(grammar=5), "grammar"),
        (chat(grammar="root ::= x", json_schema={"type": "object"}), "grammar"),
        (chat(grammar="root ::= x", response_format={"type": "json_object"}), "grammar"),
        (chat(json_schema={}, response_format={"type": "json_object"}), "json_schema"),
        (chat(json_schema=[1]), "json_schema"),
        (chat(response_format={"type": "json_object", "schema": 1}), "response_format.schema"),
        (
            chat(
                grammar="root ::= x",
                tools=[{"type": "function", "function": {"name": "f"}}],
            ),
            "grammar",
        ),
        (chat(response_format={"type": "xml"}), "response_format.type"),
        (chat(response_format={"type": "json_schema"}), "response_format.json_schema"),
        (
            chat(response_format={"type": "json_schema", "json_schema": {"name": "x"}}),
            "response_format.json_schema.schema",
        ),
        (
            chat(response_format={"type": "json_schema", "json_schema": {"schema": "x"}}),
            "response_format.json_schema.schema",
        ),
        (chat(tools={"name": "f"}), "tools"),
        (chat(tools=[{"type": "retrieval"}]), "tools[0].type"),
        (
            chat(tools=[{"type": "function", "function": {"name": "bad name"}}]),
            "tools[0].function.name",
        ),
        (
            chat(tools=[{"type": "function", "function": {"name": "f", "parameters": 3}}]),
            "tools[0].function.parameters",
        ),
        (chat(tools=[TOOL, TOOL]), "tools[1].function.name"),
        (chat(tools=[TOOL], functions=[{"name": "g"}]), "functions"),
        (chat(tool_choice="required"), "tool_choice"),
        (chat(tools=[TOOL], tool_choice="always"), "tool_choice"),
        (
            chat(tools=[TOOL], tool_choice={"type": "function", "function": {"name": "g"}}),
            "tool_choice",
        ),
        (chat(tools=[TOOL], parallel_tool_calls="yes"), "parallel_tool_calls"),
        (chat(top_logprobs=3), "top_logprobs"),
        (chat(logprobs=True, top_logprobs=21), "top_logprobs"),
        (chat(logprobs="yes"), "logprobs"),
        (chat(ignore_eos="no"), "ignore_eos"),
    ],
)
def test_bad_chat_requests_name_the_parameter(body: Any, param: str | None) -> None:
    err = chat_error(body)
    assert err.param == param, err.message
    assert err.message


def test_nan_from_json_is_refused() -> None:
    body = json.loads(
        '{"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": NaN}'
    )
    assert chat_error(body).param == "temperature"


def test_messages_for_unsupported_features_are_clear() -> None:
    assert "from 1 to 8" in chat_error(chat(n=0)).message
    assert parse_chat_request(chat(n=3), **LIMITS).n == 3
    assert "Only function tools" in chat_error(chat(tools=[{"type": "x"}])).message
    image = {"type": "image_url", "image_url": {"url": "data:..."}}
    err = chat_error(
        chat(messages=[{"role": "user", "content": [{"type": "text", "text": "x"}, image]}])
    )
    assert err.param == "messages[0].content[1]"
    assert "Image input is not supported" in err.message
    audio = {"type": "input_audio", "input_audio": {"data": "", "format": "wav"}}
    err = chat_error(chat(messages=[{"role": "user", "content": [audio]}]))
    assert "Audio input" in err.message
    assert "4096" in chat_error(chat(max_tokens=5000)).message


def test_harmless_tool_settings_are_accepted() -> None:
    req = parse_chat_request(chat(tools=[], tool_choice="none", logprobs=False), **LIMITS)
    assert req.model == "m" and not req.tools.active


def test_tools_choice_and_history_are_parsed() -> None:
    history = [
        {"role": "user", "content": "weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "18 C"},
    ]
    req = parse_chat_request(
        chat(
            messages=history,
            tools=[TOOL],
            tool_choice={"type": "function", "function": {"name": "get_weather"}},
            parallel_tool_calls=False,
        ),
        **LIMITS,
    )
    assert req.tools.active and req.tools.names() == {"get_weather"}
    assert (req.tools.choice.mode, req.tools.choice.name, req.tools.parallel) == (
        "named",
        "get_weather",
        False,
    )
    call = req.messages[1].tool_calls[0]
    assert call.for_template()["function"]["arguments"] == {"city": "Paris"}
    assert req.messages[2].tool_call_id == "call_1"
    legacy = parse_chat_request(
        chat(functions=[TOOL["function"]], function_call={"name": "get_weather"}), **LIMITS
    )
    assert legacy.tools.choice.mode == "named" and legacy.tools.specs[0].name == "get_weather"
    none = parse_chat_request(chat(tools=[TOOL], tool_choice="none"), **LIMITS)
    assert not none.tools.active


def test_content_length_cap() -> None:
    big = "x" * (MAX_CONTENT_CHARS // 2 + 1)
    messages = [{"role": "user", "content": big}, {"role": "user", "content": big}]
    err = chat_error(chat(messages=messages))
    assert err.param == "messages"


# --- completions ------------------------------------------------------------------------


def completion_error(body: Any) -> APIError:
    with pytest.raises(APIError) as info:
        parse_completion_request(body, **LIMITS)
    assert info.value.status == 400
    return info.value


def test_completion_request() -> None:
    req = parse_completion_request({"model": "m", "prompt": "Once"}, **LIMITS)
    assert (req.prompts, req.echo, req.stream, req.n) == (
        (CompletionPrompt("Once"),),
        False,
        False,
        1,
    )
    assert req.params.max_tokens == 256
    req = parse_completion_request(
        {
            "model": "m",
            "prompt": ["Once"],
            "echo": True,
            "stream": True,
            "stream_options": {"include_usage": True},
            "max_tokens": 7,
            "best_of": 1,
            "stop": "\n",
        },
        **LIMITS,
    )
    assert (req.prompts, req.echo, req.stream, req.include_usage) == (
        (CompletionPrompt("Once"),),
        True,
        True,
        True,
    )
    batch = parse_completion_request({"prompt": ["a", [7, 8]], "n": 4}, **LIMITS)
    assert batch.prompts == (CompletionPrompt("a"), CompletionPrompt("", (7, 8)))
    assert (batch.n, batch.choices) == (4, 8)
    assert (req.params.max_tokens, req.params.stop) == (7, ("\n",))


@pytest.mark.parametrize(
    ("body", "param", "words"),
    [
        ({"model": "m"}, "prompt", "required"),
        ({"model": "m", "prompt": [1, -2, 3]}, "prompt", "outside"),
        ({"model": "m", "prompt": [[1, 2], []]}, "prompt[1]", "non-empty list of token ids"),
        ({"model": "m", "prompt": [[1, 2], [-3]]}, "prompt[1]", "outside"),
        ({"model": "m", "prompt": "x", "max_tokens": 0}, "max_tokens", "at least 1"),
        ({"model": "m", "prompt": ["a"] * 9}, "prompt", "at most 8"),
        ({"model": "m", "prompt": []}, "prompt", "non-empty list"),
        ({"model": "m", "prompt": [5.5]}, "prompt[0]", "string"),
        ({"model": "m", "prompt": 5}, "prompt", "string"),
        ({"model": "m", "prompt": "x", "n": 9}, "n", "from 1 to 8"),
        ({"model": "m", "prompt": ["x", "y", "z"], "n": 3}, "n", "3 prompts × n=3"),
        ({"model": "m", "prompt": "x", "best_of": 3}, "best_of", "best_of=1"),
        ({"model": "m", "prompt": "x", "echo": "yes"}, "echo", "true or false"),
        ({"model": "m", "prompt": "x", "logprobs": 21}, "logprobs", "from 0 to 20"),
        ({"model": "m", "prompt": "x", "logprobs": True}, "logprobs", "integer"),
        ({"model": "m", "prompt": "x", "suffix": "y"}, "suffix", "not supported"),
        ({"model": "m", "prompt": "x", "max_tokens": 1.5}, "max_tokens", "integer"),
    ],
)
def test_bad_completion_requests(body: Any, param: str, words: str) -> None:
    err = completion_error(body)
    assert err.param == param
    assert words in err.message


def test_echo_goes_to_the_worker_when_only_it_can_answer() -> None:
    """The prompt's own text is echoed by the API; the worker echoes (and scores) it when
    logprobs are asked for, when it came as token ids, or when nothing is generated."""
    plain = parse_completion_request({"prompt": "x", "echo": True}, **LIMITS)
    assert plain.echo and not plain.params.echo
    scored = parse_completion_request(
        {"prompt": "x", "echo": True, "logprobs": 2, "max_tokens": 0}, **LIMITS
    )
    assert scored.params.echo and scored.params.prompt_logprobs == 2
    assert scored.params.max_tokens == 0
    ids = parse_completion_request({"prompt": [5, 6], "echo": True}, **LIMITS)
    assert ids.params.echo and ids.params.prompt_logprobs is None
    unechoed = parse_completion_request({"prompt": "x", "logprobs": 2}, **LIMITS)
    assert not unechoed.params.echo and unechoed.params.prompt_logprobs is None


def test_logprobs_settings() -> None:
    chat_req = parse_chat_request(chat(logprobs=True, top_logprobs=5), **LIMITS)
    assert chat_req.params.logprobs == 5
    assert parse_chat_request(chat(logprobs=True), **LIMITS).params.logprobs == 0
    assert parse_chat_request(chat(), **LIMITS).params.logprobs is None
    done = parse_completion_request({"model": "m", "prompt": "x", "logprobs": 0}, **LIMITS)
    assert done.params.logprobs == 0


def test_token_ids_are_taken_as_such() -> None:
    by_ids = CompletionPrompt("", (5, 6))
    assert parse_completion_request({"prompt": [5, 6]}, **LIMITS).prompts == (by_ids,)
    assert parse_completion_request({"prompt": [[5, 6]]}, **LIMITS).prompts == (by_ids,)
    assert parse_completion_request({"prompt": "x"}, **LIMITS).prompts[0].ids is None
    assert parse_embedding_request({"input": [1, 2]}).token_inputs == ((1, 2),)
    assert parse_embedding_request({"input": [[1], [2, 3]]}).token_inputs == ((1,), (2, 3))
    assert parse_embedding_request({"input": ["a"]}).token_inputs is None


def test_a_missing_model_means_the_default() -> None:
    assert parse_completion_request({"prompt": "x"}, **LIMITS).model == ""
    assert (
        parse_chat_request({"messages": [{"role": "user", "content": "x"}]}, **LIMITS).model == ""
    )


# --- embeddings -------------------------------------------------------------------------


def test_embedding_request() -> None:
    req = parse_embedding_request({"model": "e", "input": "hello"})
    assert (req.model, req.inputs, req.encoding_format, req.dimensions) == (
        "e",
        ("hello",),
        "float",
        None,
    )
    req = parse_embedding_request(
        {"model": "e", "input": ["a", "b"], "encoding_format": "base64", "dimensions": 64}
    )
    assert (req.inputs, req.encoding_format, req.dimensions) == (("a", "b"), "base64", 64)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "e"}, "input"),
        ({"model": "e", "input": ""}, "input"),
        ({"model": "e", "input": []}, "input"),
        ({"model": "e", "input": ["a", ""]}, "input[1]"),
        ({"model": "e", "input": ["a", None]}, "input[1]"),
        ({"model": "e", "input": [1, -2]}, "input"),
        ({"model": "e", "input": [[1, 2], []]}, "input[1]"),
        ({"model": "e", "input": 3}, "input"),
        ({"model": "e", "input": ["x"] * 2049}, "input"),
        ({"model": "e", "input": "x", "encoding_format": "int8"}, "encoding_format"),
        ({"model": "e", "input": "x", "dimensions": 0}, "dimensions"),
        ({"model": "e", "input": "x", "dimensions": True}, "dimensions"),
        ("x", None),
    ],
)
def test_bad_embedding_requests(body: Any, param: str | None) -> None:
    with pytest.raises(APIError) as info:
        parse_embedding_request(body)
    assert info.value.status == 400
    assert info.value.param == param


def test_embedding_input_cap_is_2048() -> None:
    assert len(parse_embedding_request({"model": "e", "input": ["x"] * 2048}).inputs) == 2048
