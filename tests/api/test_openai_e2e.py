"""The real daemon and the real engine, driven by the official openai client."""

from __future__ import annotations

import base64
import json
import math
import struct
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import END_THINK_ID, THINK_ID
from tests.daemon import Daemon, free_port, start_daemon


@pytest.fixture(scope="module")
def client(daemon: Daemon) -> openai.OpenAI:
    return openai.OpenAI(base_url=daemon.v1, api_key="unused", max_retries=0, timeout=120)


USER = [{"role": "user", "content": "hello world, say something"}]


def test_models_lists_catalog_with_state(client: openai.OpenAI) -> None:
    models = {m.id: m for m in client.models.list().data}
    assert {"tiny", "tiny-embed", "think", "broken"} <= set(models)
    meta = models["tiny"].model_extra["meta"]  # type: ignore[index]
    assert meta["aliases"] == ["tiny-alias"]
    assert meta["tier"] in ("cold", "hot")
    assert client.models.retrieve("tiny-alias").id == "tiny"


def test_models_on_this_box_are_listed_first_with_when_they_came(
    tmp_path: Path, models_dir: Path
) -> None:
    """A UI that takes the first model gets one that answers now (also offline), not a
    catalog model that is pulled on first use; `created` is when it came onto the box."""
    remote = (
        '[models.far]\nsource = "hf://org/repo/far.gguf"\n'
        'revision = "0123456789abcdef0123456789abcdef01234567"\n'
    )
    catalog = tmp_path / "models.toml"
    catalog.write_text(remote + f'[models.near]\nsource = "{models_dir / "tiny.gguf"}"\n')
    d = start_daemon(tmp_path / "home", catalog)
    try:
        listed = openai.OpenAI(base_url=d.v1, api_key="x").models.list().data
        assert [m.id for m in listed] == ["near", "far"]
        assert listed[0].created == int((models_dir / "tiny.gguf").stat().st_mtime)
        assert listed[1].created == 0  # not on this box yet
    finally:
        d.stop()


def test_without_model_a_default_not_on_this_box_yields_to_the_loaded_model(
    tmp_path: Path, models_dir: Path
) -> None:
    """The catalog's default is pulled on first use; offline that fails (503). A request
    without `model` is then answered by the model loaded here, as LM Studio does."""
    catalog = tmp_path / "models.toml"
    catalog.write_text(
        '[models.far]\nsource = "hf://org/repo/far.gguf"\ndefault = true\n'
        'revision = "0123456789abcdef0123456789abcdef01234567"\n'
        f'[models.near]\nsource = "{models_dir / "tiny.gguf"}"\n'
    )
    dead_hub = {"HF_ENDPOINT": f"http://127.0.0.1:{free_port()}"}
    d = start_daemon(tmp_path / "home", catalog, env=dead_hub)
    try:
        body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
        r = httpx.post(d.v1 + "/chat/completions", json=body, timeout=60)
        assert r.status_code == 503, r.text  # nothing loaded: the default, which cannot pull
        d.post("/admin/models/near/load").raise_for_status()
        r = httpx.post(d.v1 + "/chat/completions", json=body, timeout=60)
        assert r.status_code == 200 and r.json()["model"] == "near", r.text
    finally:
        d.stop()


def test_chat_runs_to_max_tokens_with_usage(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(
        model="tiny", messages=USER, max_tokens=12, extra_body={"ignore_eos": True}
    )
    assert r.object == "chat.completion"
    assert r.model == "tiny"
    assert r.choices[0].finish_reason == "length"
    assert r.choices[0].message.role == "assistant"
    assert r.usage is not None
    assert r.usage.completion_tokens == 12
    assert r.usage.prompt_tokens > 5
    assert r.usage.total_tokens == r.usage.prompt_tokens + 12


def test_llama_server_length_settings_are_honoured(client: openai.OpenAI) -> None:
    """`n_predict` (llama-server's own name) limits the answer; `max_tokens: -1` runs to
    the context's end (512 tokens here) and says `length`, as llama-server does."""
    r = client.completions.create(
        model="tiny", prompt="The quick brown fox", extra_body={"n_predict": 4, "ignore_eos": True}
    )
    assert r.usage is not None and r.usage.completion_tokens == 4
    r = client.completions.create(
        model="tiny", prompt="The quick brown fox", max_tokens=-1, extra_body={"ignore_eos": True}
    )
    assert r.choices[0].finish_reason == "length"
    assert r.usage is not None and r.usage.total_tokens == 512


def test_alias_resolves_to_model(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(model="tiny-alias", messages=USER, max_tokens=2)
    assert r.model == "tiny"


def test_stream_matches_non_stream_and_reports_usage(client: openai.OpenAI) -> None:
    args = {
        "model": "tiny",
        "messages": USER,
        "max_tokens": 16,
        "temperature": 0.0,
        "extra_body": {"ignore_eos": True},
    }
    whole = client.chat.completions.create(**args)  # type: ignore[call-overload]
    chunks = list(
        client.chat.completions.create(stream=True, stream_options={"include_usage": True}, **args)
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "length" and all(f is None for f in finishes[:-1])
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 16
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[0].choices[0].delta.content == ""  # before text, as OpenAI's


def test_an_empty_answer_still_opens_with_the_role(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model="tiny", messages=USER, max_tokens=8, stream=True, logit_bias={"4": 100}
        )
    )  # EOS (id 4) first: no text at all
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    assert deltas[0].role == "assistant" and deltas[0].content == ""
    assert [c.choices[0].finish_reason for c in chunks][-1] == "stop"


def test_seed_makes_sampling_repeatable(client: openai.OpenAI) -> None:
    args = {
        "model": "tiny",
        "messages": USER,
        "max_tokens": 16,
        "temperature": 1.0,
        "seed": 1234,
        "extra_body": {"ignore_eos": True},
    }
    a = client.chat.completions.create(**args)  # type: ignore[call-overload]
    b = client.chat.completions.create(**args)  # type: ignore[call-overload]
    assert a.choices[0].message.content == b.choices[0].message.content


def test_completions_stream_and_echo(client: openai.OpenAI) -> None:
    r = client.completions.create(
        model="tiny", prompt="the water", max_tokens=8, echo=True, extra_body={"ignore_eos": True}
    )
    assert r.choices[0].text.startswith("the water")
    assert r.usage is not None and r.usage.completion_tokens == 8
    chunks = list(
        client.completions.create(
            model="tiny",
            prompt="the water",
            max_tokens=8,
            stream=True,
            extra_body={"ignore_eos": True},
        )
    )
    assert chunks[-1].choices[0].finish_reason == "length"


def test_stop_string_cuts_output_before_it(client: openai.OpenAI) -> None:
    args = {
        "model": "tiny",
        "prompt": "one two",
        "max_tokens": 24,
        "temperature": 0.0,
        "extra_body": {"ignore_eos": True},
    }
    full = client.completions.create(**args).choices[0].text  # type: ignore[call-overload]
    assert len(full) > 6
    stop = full[3:6]
    cut = client.completions.create(stop=[stop], **args)  # type: ignore[call-overload]
    assert cut.choices[0].text == full[: full.index(stop)]
    assert cut.choices[0].finish_reason == "stop"
    streamed = client.completions.create(stop=[stop], stream=True, **args)  # type: ignore[call-overload]
    assert "".join(c.choices[0].text for c in streamed) == full[: full.index(stop)]


def test_logit_bias_forces_a_token(client: openai.OpenAI) -> None:
    r = client.completions.create(
        model="tiny", prompt="x", max_tokens=5, logit_bias={str(THINK_ID): 100}
    )
    assert r.choices[0].text == "<think>" * 5


def test_a_logit_bias_for_a_token_the_model_lacks_is_refused(client: openai.OpenAI) -> None:
    """It was dropped without a word: a bias meant for another model's vocabulary."""
    with pytest.raises(openai.BadRequestError) as refused:
        client.completions.create(model="tiny", prompt="x", max_tokens=2, logit_bias={"99999": 5})
    body = refused.value.body
    assert isinstance(body, dict) and body["param"] == "logit_bias", body
    assert "99999" in body["message"] and "vocabulary" in body["message"]


def test_eos_ends_generation_with_stop(client: openai.OpenAI) -> None:
    r = client.completions.create(model="tiny", prompt="x", max_tokens=5, logit_bias={"4": 100})
    assert r.choices[0].finish_reason == "stop"
    assert r.choices[0].text == ""


def test_json_object_response_format(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(
        model="tiny",
        messages=USER,
        max_tokens=200,
        temperature=0.0,
        response_format={"type": "json_object"},
    )
    assert r.choices[0].finish_reason == "stop"
    assert isinstance(json.loads(r.choices[0].message.content or ""), dict)


def test_llama_server_grammar_and_schema_fields_constrain_the_answer(client: openai.OpenAI) -> None:
    """llama-server's `grammar` (GBNF), a top-level `json_schema`, and `schema` beside
    `json_object` were ignored: a 200 with free text. They now hold the answer."""
    yes_no = 'root ::= "yes" | "no"'
    for _ in range(3):
        r = client.chat.completions.create(
            model="tiny", messages=USER, max_tokens=8, extra_body={"grammar": yes_no}
        )
        assert r.choices[0].message.content in ("yes", "no")
        assert r.choices[0].finish_reason == "stop"
    c = client.completions.create(
        model="tiny", prompt="x", max_tokens=8, extra_body={"grammar": yes_no}
    )
    assert c.choices[0].text in ("yes", "no")
    schema = {
        "type": "object",
        "properties": {"n": {"type": "integer"}},
        "required": ["n"],
        "additionalProperties": False,
    }
    for extra in (
        {"json_schema": schema},
        {"response_format": {"type": "json_object", "schema": schema}},
    ):
        r = client.chat.completions.create(
            model="tiny", messages=USER, max_tokens=40, temperature=0, extra_body=extra
        )
        answer = json.loads(r.choices[0].message.content or "")
        assert list(answer) == ["n"] and isinstance(answer["n"], int), answer


def test_a_grammar_llama_cpp_cannot_parse_is_a_400_and_the_model_keeps_serving(
    client: openai.OpenAI,
) -> None:
    """llama.cpp gives no sampler for a grammar it cannot parse (a null that would crash
    the worker at the first token if chained); the 400 says why, in llama.cpp's words."""
    for bad, why in (
        ('root ::= "yes', "unexpected end of input"),
        ("root ::= undefined-rule", "Undefined rule identifier 'undefined-rule'"),
        ('root ::= root "a"', "left recursion"),
    ):
        with pytest.raises(openai.BadRequestError) as refused:
            client.chat.completions.create(
                model="tiny", messages=USER, max_tokens=4, extra_body={"grammar": bad}
            )
        body = refused.value.body
        assert isinstance(body, dict) and body["param"] == "grammar", body
        assert body["code"] == "invalid_grammar" and why in body["message"], body
    r = client.chat.completions.create(model="tiny", messages=USER, max_tokens=2)
    assert r.choices[0].finish_reason in ("length", "stop")


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "string", "minLength": 100_000},
        {"type": "array", "minItems": 1_000_000_000, "items": {"type": "integer"}},
        {"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"},
    ],
)
def test_a_schema_no_grammar_can_follow_is_a_400_not_a_crashed_engine(
    client: openai.OpenAI, schema: dict[str, Any]
) -> None:
    """These grammars made llama.cpp return no sampler: chained, the worker crashed
    (SIGSEGV) with every other request on the model. Now a 400 names the parameter."""
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(
            model="tiny",
            messages=USER,
            max_tokens=2,
            response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": schema}},
        )
    body = refused.value.body
    assert isinstance(body, dict) and body["code"] == "invalid_json_schema", body
    tool = {
        "type": "function",
        "function": {
            "name": "f",
            "parameters": {  # the definitions stay at the root, where "#/$defs/..." points
                "type": "object",
                "properties": {"a": {k: v for k, v in schema.items() if k != "$defs"}},
                "required": ["a"],
                **({"$defs": schema["$defs"]} if "$defs" in schema else {}),
            },
        },
    }
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(
            model="tiny", messages=USER, max_tokens=2, tools=[tool], tool_choice="required"
        )
    body = refused.value.body
    assert isinstance(body, dict) and body["param"] == "tools", body
    r = client.chat.completions.create(model="tiny", messages=USER, max_tokens=2)
    assert r.choices[0].finish_reason in ("length", "stop")


def test_a_schema_whose_values_never_end_is_a_400_and_optional_recursion_is_served(
    client: openai.OpenAI,
) -> None:
    """A node that must hold a node (its definitions inside the property that uses
    them) has no value that ends: the model nested until max_tokens. It is a $ref
    cycle, refused like the others; with the recursion optional it is served."""
    node = {
        "type": "object",
        "properties": {"x": {"$ref": "#/properties/a/$defs/n"}},
        "required": ["x"],
    }
    endless = {
        "type": "object",
        "properties": {"a": {"$defs": {"n": node}, "$ref": "#/properties/a/$defs/n"}},
        "required": ["a"],
    }
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(
            model="tiny",
            messages=USER,
            max_tokens=30,
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "x", "schema": endless},
            },
        )
    body = refused.value.body
    assert isinstance(body, dict) and body["code"] == "invalid_json_schema", body
    assert body["param"] == "response_format" and "$ref cycle" in body["message"], body
    # (a shorter one: the tiny model's context holds the tools' description)
    itself = {"type": "object", "properties": {"x": {"$ref": "#"}}, "required": ["x"]}
    tool = {"type": "function", "function": {"name": "f", "parameters": itself}}
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(
            model="tiny", messages=USER, max_tokens=2, tools=[tool], tool_choice="required"
        )
    body = refused.value.body
    assert isinstance(body, dict) and body["param"] == "tools", body
    assert body["code"] == "invalid_tool_schema" and "$ref cycle" in body["message"], body
    node.pop("required")
    r = client.chat.completions.create(
        model="tiny",
        messages=USER,
        max_tokens=60,
        temperature=0,
        response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": endless}},
    )
    if r.choices[0].finish_reason == "stop":
        assert isinstance(json.loads(r.choices[0].message.content or ""), dict)


def test_json_schema_response_format(client: openai.OpenAI) -> None:
    schema = {
        "type": "object",
        "properties": {"ok": {"type": "boolean"}},
        "required": ["ok"],
        "additionalProperties": False,
    }
    r = client.chat.completions.create(
        model="tiny",
        messages=USER,
        max_tokens=200,
        temperature=0.0,
        response_format={"type": "json_schema", "json_schema": {"name": "t", "schema": schema}},
    )
    value = json.loads(r.choices[0].message.content or "")
    assert isinstance(value["ok"], bool) and set(value) == {"ok"}


def test_json_schema_strings_hold_no_raw_control_characters(client: openai.OpenAI) -> None:
    """Strict JSON strings: llama-cpp-python's schema converter lets raw newlines and other
    control characters into strings, and the answer then does not load (a user saw it with
    SmolLM2 writing a poem's lines). A random model at temperature 1 writes them often."""
    schema = {
        "type": "object",
        "properties": {"title": {"type": "string", "maxLength": 24}},
        "required": ["title"],
        "additionalProperties": False,
    }
    for seed in range(8):
        r = client.chat.completions.create(
            model="tiny",
            messages=USER,
            max_tokens=120,
            temperature=1.0,
            seed=seed,
            response_format={"type": "json_schema", "json_schema": {"name": "t", "schema": schema}},
        )
        text = r.choices[0].message.content or ""
        assert r.choices[0].finish_reason == "stop", (seed, text)
        value = json.loads(text)  # strict: a raw control character in a string fails
        # (Not its length: a random model's stray UTF-8 bytes come back as several U+FFFD.)
        assert set(value) == {"title"} and isinstance(value["title"], str), (seed, text)


def test_reasoning_split_when_template_opens_think(client: openai.OpenAI) -> None:
    # The template opens <think>; forcing </think> first makes everything after it the answer.
    bias = {str(END_THINK_ID): 100}
    r = client.chat.completions.create(model="think", messages=USER, max_tokens=3, logit_bias=bias)
    message = r.choices[0].message
    assert message.model_extra["reasoning_content"] == ""  # type: ignore[index]
    assert message.content == "</think></think>"  # literal text after the close is content
    chunks = list(
        client.chat.completions.create(
            model="think", messages=USER, max_tokens=3, logit_bias=bias, stream=True
        )
    )
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert content == "</think></think>"


def test_reasoning_never_leaks_into_content(client: openai.OpenAI) -> None:
    # With no </think>, all output is reasoning: nothing of it reaches content.
    bias = {str(THINK_ID): 100}
    r = client.chat.completions.create(model="think", messages=USER, max_tokens=4, logit_bias=bias)
    assert r.choices[0].message.content == ""
    assert r.choices[0].message.model_extra["reasoning_content"] == "<think>" * 4  # type: ignore[index]
    chunks = list(
        client.chat.completions.create(
            model="think", messages=USER, max_tokens=4, logit_bias=bias, stream=True
        )
    )
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    assert "".join(d.content or "" for d in deltas) == ""
    assert (
        "".join((d.model_extra or {}).get("reasoning_content") or "" for d in deltas)
        == "<think>" * 4
    )


def test_embeddings_are_normalised(client: openai.OpenAI) -> None:
    r = client.embeddings.create(model="tiny-embed", input=["the water", "hello world"])
    assert [d.index for d in r.data] == [0, 1]
    for d in r.data:
        assert len(d.embedding) == 64
        assert math.isclose(math.fsum(x * x for x in d.embedding), 1.0, rel_tol=1e-4)
    assert r.data[0].embedding != r.data[1].embedding
    assert r.usage.prompt_tokens > 0


def test_embeddings_base64_and_dimensions(client: openai.OpenAI) -> None:
    raw = client.embeddings.with_raw_response.create(
        model="tiny-embed", input="water", encoding_format="base64", dimensions=16
    )
    body = json.loads(raw.text)
    packed = base64.b64decode(body["data"][0]["embedding"])
    short = struct.unpack(f"<{len(packed) // 4}f", packed)
    assert len(short) == 16
    # Normalised again, as OpenAI's: cut alone it was shorter than 1, so dot products of
    # shortened embeddings ranked by length.
    assert math.isclose(math.fsum(x * x for x in short), 1.0, rel_tol=1e-4)
    whole = client.embeddings.create(model="tiny-embed", input="water").data[0].embedding
    scale = short[0] / whole[0]
    assert list(short) == pytest.approx([x * scale for x in whole[:16]], rel=1e-3)


def test_embedding_model_refuses_chat_and_chat_model_refuses_embeddings(
    client: openai.OpenAI,
) -> None:
    with pytest.raises(openai.BadRequestError, match="embedding model"):
        client.chat.completions.create(model="tiny-embed", messages=USER, max_tokens=2)
    with pytest.raises(openai.BadRequestError, match="not an embedding model"):
        client.embeddings.create(model="tiny", input="x")


def test_unknown_model_is_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="no-such-model", messages=USER)
    assert info.value.body["code"] == "model_not_found"  # type: ignore[index]


def test_prompt_over_context_is_400_with_counts(client: openai.OpenAI) -> None:
    long = "water " * 700
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": long}])
    body = info.value.body
    assert body["code"] == "context_length_exceeded"  # type: ignore[index]
    assert "512" in body["message"]  # type: ignore[index]
    # The model keeps serving.
    assert client.chat.completions.create(model="tiny", messages=USER, max_tokens=2).choices


def test_broken_gguf_is_refused_and_daemon_keeps_serving(
    client: openai.OpenAI, daemon: Daemon
) -> None:
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model="broken", messages=USER, max_tokens=2)
    assert "GGUF" in info.value.body["message"]  # type: ignore[index]
    health = daemon.get("/health").json()
    assert health["status"] == "degraded"
    assert any("broken" in r for r in health["reasons"])
    assert client.chat.completions.create(model="tiny", messages=USER, max_tokens=2).choices


def test_hostile_chat_template_is_refused(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="hostile", messages=USER, max_tokens=2)
    assert info.value.body["code"] == "invalid_chat_template"  # type: ignore[index]
    # Plain completions on the same model still work: only the template was refused.
    assert client.completions.create(model="hostile", prompt="x", max_tokens=2).choices


def test_a_request_without_model_uses_the_default_and_names_match_ignoring_case(
    daemon: Daemon,
) -> None:
    body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    r = httpx.post(daemon.v1 + "/chat/completions", json=body, timeout=60)
    assert r.status_code == 200, r.text
    assert r.json()["model"] == "tiny"  # the catalog's default chat model
    r = httpx.post(daemon.v1 + "/completions", json={"prompt": "x", "max_tokens": 2}, timeout=60)
    assert r.status_code == 200 and r.json()["model"] == "tiny"
    r = httpx.post(daemon.v1 + "/embeddings", json={"input": "x"}, timeout=60)
    assert r.status_code == 200 and r.json()["model"] == "tiny-embed"
    shout = {**body, "model": "TINY-Alias"}
    r = httpx.post(daemon.v1 + "/chat/completions", json=shout, timeout=60)
    assert r.status_code == 200 and r.json()["model"] == "tiny"
    # Ollama's default tag, as its users type it.
    tagged = {**body, "model": "tiny:latest"}
    r = httpx.post(daemon.v1 + "/chat/completions", json=tagged, timeout=60)
    assert r.status_code == 200 and r.json()["model"] == "tiny"
    r = httpx.post(daemon.v1 + "/chat/completions", json={**body, "model": "nope:latest"})
    assert r.status_code == 404 and "'nope:latest'" in r.json()["error"]["message"]


def test_chat_logprobs_are_the_greedy_tokens_at_temperature_zero(client: openai.OpenAI) -> None:
    kw: dict[str, Any] = {
        "model": "tiny",
        "messages": USER,
        "max_tokens": 10,
        "temperature": 0,
        "logprobs": True,
        "top_logprobs": 3,
        # Deterministic: computed alone and without the prefix cache, so the streamed
        # request below gets bit-identical logits (a cached prefix may round otherwise).
        "extra_body": {"ignore_eos": True, "deterministic": True},
    }
    r = client.chat.completions.create(**kw)
    lp = r.choices[0].logprobs
    assert lp is not None and lp.content is not None and len(lp.content) == 10
    for entry in lp.content:
        assert entry.logprob <= 0.0
        assert len(entry.top_logprobs) == 3
        best = entry.top_logprobs[0]
        assert (best.token, best.logprob) == (entry.token, entry.logprob)  # greedy = top-1
        assert [t.logprob for t in entry.top_logprobs] == sorted(
            (t.logprob for t in entry.top_logprobs), reverse=True
        )
        assert sum(math.exp(t.logprob) for t in entry.top_logprobs) <= 1.0 + 1e-6
    streamed = []
    for chunk in client.chat.completions.create(**kw, stream=True):
        for c in chunk.choices:
            if c.logprobs is not None and c.logprobs.content:
                streamed.extend(c.logprobs.content)
    assert [(e.token, round(e.logprob, 4)) for e in streamed] == [
        (e.token, round(e.logprob, 4)) for e in lp.content
    ]
    plain = client.chat.completions.create(model="tiny", messages=USER, max_tokens=2)
    assert plain.choices[0].logprobs is None


def test_completion_logprobs_arrays(client: openai.OpenAI) -> None:
    r = client.completions.create(
        model="tiny",
        prompt="once",
        max_tokens=6,
        temperature=0,
        logprobs=2,
        echo=True,
        extra_body={"ignore_eos": True},
    )
    lp = r.choices[0].logprobs
    assert lp is not None and lp.tokens is not None and lp.text_offset is not None
    # Echoed, the prompt's tokens come first: BOS (no text, no score), then " on", "c",
    # "e" at their places in "once" (the SentencePiece space belongs to no character).
    assert lp.tokens[:4] == ["", " on", "c", "e"] and lp.text_offset[:4] == [0, 0, 2, 3]
    assert len(lp.tokens) == 4 + 6 and lp.text_offset[4] == len("once")
    assert lp.text_offset == sorted(lp.text_offset)
    assert lp.top_logprobs is not None and all(len(t or {}) <= 2 for t in lp.top_logprobs)
    assert lp.token_logprobs is not None and lp.token_logprobs[0] is None
    assert all(x is not None and x <= 0 for x in lp.token_logprobs[1:])


def test_n_choices_streamed_and_not(client: openai.OpenAI) -> None:
    kw: dict[str, Any] = {
        "model": "tiny",
        "messages": USER,
        "max_tokens": 6,
        "temperature": 1.0,
        "seed": 11,
        "n": 3,
        # deterministic: batching and cached prefixes cannot round a sample otherwise
        "extra_body": {"ignore_eos": True, "deterministic": True},
    }
    r = client.chat.completions.create(**kw)
    assert [c.index for c in r.choices] == [0, 1, 2]
    texts = [c.message.content for c in r.choices]
    assert len(set(texts)) > 1  # seeds differ per choice
    assert r.usage is not None and r.usage.completion_tokens == 18
    again = client.chat.completions.create(**kw)
    assert [c.message.content for c in again.choices] == texts  # and the request repeats
    streamed: dict[int, str] = {}
    finishes: dict[int, str] = {}
    usage = None
    for chunk in client.chat.completions.create(
        **kw, stream=True, stream_options={"include_usage": True}
    ):
        if chunk.usage is not None:
            usage = chunk.usage
        for c in chunk.choices:
            streamed[c.index] = streamed.get(c.index, "") + (c.delta.content or "")
            if c.finish_reason:
                finishes[c.index] = c.finish_reason
    assert [streamed[i] for i in range(3)] == texts
    assert finishes == {0: "length", 1: "length", 2: "length"}
    assert usage is not None and usage.completion_tokens == 18
    with pytest.raises(openai.BadRequestError, match="from 1 to 8"):
        client.chat.completions.create(model="tiny", messages=USER, n=9)


def test_token_id_inputs_of_the_models_own_vocabulary(client: openai.OpenAI) -> None:
    ids = [300, 301, 302, 303]  # word pieces of the tiny models' vocabulary
    by_ids = client.completions.create(model="tiny", prompt=ids, max_tokens=3, temperature=0)
    assert by_ids.usage is not None and by_ids.usage.prompt_tokens == len(ids)
    emb = client.embeddings.create(model="tiny-embed", input=[ids, ids[:2]])
    assert len(emb.data) == 2 and len(emb.data[0].embedding) > 8
    with pytest.raises(openai.BadRequestError, match="check_embedding_ctx_length=False"):
        client.embeddings.create(model="tiny-embed", input=[[100_000, 5]])
    with pytest.raises(openai.BadRequestError, match="another tokenizer"):
        client.completions.create(model="tiny", prompt=[10**9], max_tokens=1)


def test_penalties_count_the_prompt_as_llama_server_does(client: openai.OpenAI) -> None:
    """The penalties look back `repeat_last_n` tokens (64) of prompt and answer, as
    llama-server and llama-cpp-python count them: a token the prompt repeats is
    penalised from the first one generated. Token 300 is made the likeliest by a bias;
    sixty of it in the prompt outweigh the bias under the penalties, unless
    `repeat_last_n` is 0."""
    prompt = [300] * 60 + [301]

    def first(**extra: object) -> str:
        r = client.completions.create(
            model="tiny",
            prompt=prompt,
            max_tokens=1,
            temperature=0,
            logit_bias={"300": 30},
            extra_body={"ignore_eos": True, **extra},
        )
        return r.choices[0].text

    alone = first()
    penalised = first(presence_penalty=2, frequency_penalty=2)
    unlooked = first(presence_penalty=2, frequency_penalty=2, repeat_last_n=0)
    assert alone == unlooked
    assert penalised != alone


def test_llama_server_samplers_change_the_draw(client: openai.OpenAI) -> None:
    """typical_p, top_n_sigma, XTC, dynamic temperature and Mirostat were ignored: the
    same seed gave the same text whatever they said. DRY is taken (it changes nothing on
    a text that repeats no sequence)."""

    def text(**extra: object) -> str:
        r = client.completions.create(
            model="tiny",
            prompt="once upon a time",
            max_tokens=24,
            temperature=1.0,
            seed=7,
            extra_body={"ignore_eos": True, **extra},
        )
        assert r.usage is not None and r.usage.completion_tokens == 24
        return r.choices[0].text

    plain = text()
    assert text() == plain
    assert text(typical_p=1.0, mirostat=0, xtc_probability=0) == plain  # all off
    for extra in (
        {"typical_p": 0.2},
        {"top_n_sigma": 0.3},
        {"xtc_probability": 1.0, "xtc_threshold": 0.001},
        {"dynatemp_range": 0.9, "dynatemp_exponent": 2.0},
        {"mirostat": 2, "mirostat_tau": 0.5},
        {"mirostat": 1, "mirostat_tau": 0.5},
    ):
        assert text(**extra) != plain, extra
    text(dry_multiplier=0.8, dry_allowed_length=1, dry_sequence_breakers=["\n"])


def test_completions_batch_of_prompts_with_n_choices(client: openai.OpenAI) -> None:
    """Choice p * n + j completes prompt p; a batch gives what its prompts give alone.
    Deterministic, so that batching and cached prefixes cannot round a sample otherwise."""
    kw: dict[str, Any] = {
        "model": "tiny",
        "max_tokens": 5,
        "temperature": 1.0,
        "seed": 5,
        "extra_body": {"ignore_eos": True, "deterministic": True},
    }
    prompts = ["the water", "once upon"]
    r = client.completions.create(prompt=prompts, n=2, **kw)
    assert [c.index for c in r.choices] == [0, 1, 2, 3]
    texts = [c.text for c in r.choices]
    assert texts[0] != texts[1]  # seed + j per choice
    alone = [client.completions.create(prompt=p, n=2, **kw) for p in prompts]
    assert [c.text for a in alone for c in a.choices] == texts
    single = [client.completions.create(prompt=p, **kw).usage for p in prompts]
    assert r.usage is not None and all(u is not None for u in single)
    assert r.usage.prompt_tokens == sum(u.prompt_tokens for u in single if u)  # once per prompt
    assert r.usage.completion_tokens == 4 * 5
    streamed: dict[int, str] = {}
    finishes: dict[int, str | None] = {}
    usage = None
    for chunk in client.completions.create(
        prompt=prompts, n=2, stream=True, stream_options={"include_usage": True}, **kw
    ):
        if chunk.usage is not None:
            usage = chunk.usage
        for c in chunk.choices:
            streamed[c.index] = streamed.get(c.index, "") + c.text
            if c.finish_reason:
                finishes[c.index] = c.finish_reason
    assert [streamed[i] for i in range(4)] == texts
    assert finishes == {i: "length" for i in range(4)}
    assert usage is not None and usage.total_tokens == r.usage.total_tokens
    ids = client.completions.create(prompt=[[300, 301], [302, 303, 304]], **kw)
    assert len(ids.choices) == 2 and ids.usage is not None and ids.usage.prompt_tokens == 5
    with pytest.raises(openai.BadRequestError, match="at most 8"):
        client.completions.create(prompt=prompts, n=5, **kw)


def test_echo_with_logprobs_scores_the_prompt_as_eval_harnesses_ask(
    client: openai.OpenAI,
) -> None:
    """lm-evaluation-harness's loglikelihood call: the prompt as token ids, echo, logprobs,
    one token (or none). A prompt token's score equals the logprob the same token gets
    when generated after the tokens before it."""
    kw: dict[str, Any] = {
        "model": "tiny",
        "temperature": 0,
        "logprobs": 1,
        "extra_body": {"deterministic": True},
    }
    context = [300, 301, 302, 303]
    # The next token forced to 305: its logprob is reported from the raw distribution.
    first = client.completions.create(
        prompt=context, max_tokens=1, logit_bias={"305": 100}, **kw
    ).choices[0]
    assert first.logprobs is not None and first.logprobs.token_logprobs is not None
    (generated,) = first.logprobs.token_logprobs
    scored = client.completions.create(
        prompt=[*context, 305], max_tokens=0, echo=True, **kw
    ).choices[0]
    lp = scored.logprobs
    assert lp is not None and lp.token_logprobs is not None and lp.tokens is not None
    assert len(lp.tokens) == len(context) + 1 and lp.token_logprobs[0] is None
    assert all(x is not None and x <= 0 for x in lp.token_logprobs[1:])
    assert lp.tokens[-1] == first.text
    assert lp.token_logprobs[-1] == pytest.approx(generated, abs=1e-4)
    echoed = "".join(lp.tokens[: len(context)])
    assert scored.text == echoed + first.text  # token ids echo as the text they spell
    # Scoring only (max_tokens 0), the prompt as text: the text comes back as sent.
    only = client.completions.create(prompt="the water is", max_tokens=0, echo=True, **kw)
    choice = only.choices[0]
    assert choice.text == "the water is" and choice.finish_reason == "length"
    assert only.usage is not None and only.usage.completion_tokens == 0
    assert choice.logprobs is not None and choice.logprobs.text_offset is not None
    assert choice.logprobs.text_offset == sorted(choice.logprobs.text_offset)
    # Streamed: the echo comes first, with the prompt's scores.
    chunks = list(
        client.completions.create(prompt=context, max_tokens=2, echo=True, stream=True, **kw)
    )
    head = chunks[0].choices[0]
    assert head.text == echoed and head.logprobs is not None
    assert head.logprobs.token_logprobs == lp.token_logprobs[: len(context)]
    with pytest.raises(openai.BadRequestError, match="at least 1"):
        client.completions.create(model="tiny", prompt="x", max_tokens=0)
