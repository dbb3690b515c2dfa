"""ONNX models through the real daemon and the official `openai` client: an INT4 and an
FP32 onnxruntime-genai LLM and a sentence-transformers encoder, from the committed
tiny fixtures (tests/fixtures/onnx, made by tools/make_onnx_fixtures.py)."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import write_catalog
from tests.daemon import Daemon, start_daemon

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "onnx"
INT4 = FIXTURES / "tiny-chat-int4"
FP32 = FIXTURES / "tiny-chat-fp32"
ENCODER = FIXTURES / "tiny-encoder"


@pytest.fixture(scope="module")
def onnx_daemon(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> Iterator[Daemon]:
    home = tmp_path_factory.mktemp("onnx")
    extra = f'''
[models.onnx-int4]
source = "{INT4}"
context = 512
parallel = 4

[models.onnx-fp32]
source = "{FP32}"
context = 512
parallel = 1
max_queue = 0

[models.onnx-embed]
source = "{ENCODER}"
kind = "embedding"
'''
    d = start_daemon(home, write_catalog(home / "catalog.toml", models_dir, extra))
    yield d
    d.stop()


def client(d: Daemon) -> openai.OpenAI:
    return openai.OpenAI(base_url=d.v1, api_key="x", max_retries=0, timeout=120)


def chat(d: Daemon, model: str = "onnx-int4", **kw: Any) -> Any:
    kw.setdefault("max_tokens", 12)
    kw.setdefault("temperature", 0)
    kw.setdefault("messages", [{"role": "user", "content": "hello there"}])
    return client(d).chat.completions.create(model=model, **kw)


def test_chat_answers_with_usage_and_finish_reason(onnx_daemon: Daemon) -> None:
    r = chat(onnx_daemon)
    choice = r.choices[0]
    assert choice.finish_reason in ("length", "stop")
    assert isinstance(choice.message.content, str)
    assert r.usage.completion_tokens >= 1 and r.usage.prompt_tokens > 5
    if choice.finish_reason == "length":
        assert r.usage.completion_tokens == 12
    again = chat(onnx_daemon)  # greedy: the same answer
    assert again.choices[0].message.content == choice.message.content


def test_streaming_gives_the_same_text_as_not_streaming(onnx_daemon: Daemon) -> None:
    whole = chat(onnx_daemon, max_tokens=20).choices[0].message.content
    stream = chat(onnx_daemon, max_tokens=20, stream=True, stream_options={"include_usage": True})
    text, usage, finish = "", None, None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for c in chunk.choices:
            text += c.delta.content or ""
            finish = c.finish_reason or finish
    assert text == whole
    assert usage is not None and usage.completion_tokens >= 1
    assert finish in ("length", "stop")


def test_completions_and_stop_strings(onnx_daemon: Daemon) -> None:
    c = client(onnx_daemon)
    full = c.completions.create(model="onnx-int4", prompt="once upon", max_tokens=24, temperature=0)
    text = full.choices[0].text
    assert full.usage.completion_tokens >= 1
    cut_at = next((ch for ch in text[3:] if ch.strip()), None)
    if cut_at is None:
        pytest.skip("the tiny model answered only whitespace")
    stopped = c.completions.create(
        model="onnx-int4", prompt="once upon", max_tokens=24, temperature=0, stop=[cut_at]
    )
    assert stopped.choices[0].finish_reason == "stop"
    assert stopped.choices[0].text == text[: text.index(cut_at)]


def test_seeded_sampling_repeats(onnx_daemon: Daemon) -> None:
    kw: dict[str, Any] = {"max_tokens": 16, "temperature": 0.9, "seed": 1234}
    a = chat(onnx_daemon, **kw).choices[0].message.content
    b = chat(onnx_daemon, **kw).choices[0].message.content
    assert a == b


def test_json_schema_output_always_parses(onnx_daemon: Daemon) -> None:
    schema = {
        "type": "object",
        "properties": {"n": {"type": "integer"}, "ok": {"type": "boolean"}},
        "required": ["n", "ok"],
        "additionalProperties": False,
    }
    for seed in range(3):
        r = chat(
            onnx_daemon,
            max_tokens=120,
            temperature=0.8,
            seed=seed,
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "x", "schema": schema, "strict": True},
            },
        )
        data = json.loads(r.choices[0].message.content)
        assert set(data) == {"n", "ok"}
        assert isinstance(data["n"], int) and isinstance(data["ok"], bool)


def test_unsupported_parameters_and_bad_schemas_are_refused(onnx_daemon: Daemon) -> None:
    with pytest.raises(openai.BadRequestError, match="logit_bias"):
        chat(onnx_daemon, logit_bias={"5": 10})
    with pytest.raises(openai.BadRequestError, match="mirostat"):
        chat(onnx_daemon, extra_body={"mirostat": 2})
    with pytest.raises(openai.BadRequestError, match="GBNF"):
        chat(onnx_daemon, extra_body={"grammar": 'root ::= "yes" | "no"'})
    with pytest.raises(openai.BadRequestError, match="logprobs"):
        chat(onnx_daemon, logprobs=True)
    with pytest.raises(openai.BadRequestError, match="echo"):
        client(onnx_daemon).completions.create(
            model="onnx-int4", prompt=[5, 6, 7], echo=True, max_tokens=1
        )
    with pytest.raises(openai.BadRequestError, match="schema"):
        chat(
            onnx_daemon,
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "x", "schema": {"type": "no-such-type"}},
            },
        )
    long = "hello " * 2000
    with pytest.raises(openai.BadRequestError, match="maximum context length"):
        chat(onnx_daemon, messages=[{"role": "user", "content": long}])
    assert chat(onnx_daemon).choices[0].message.content is not None  # still serving


def test_concurrent_streams_all_complete(onnx_daemon: Daemon) -> None:
    def one(i: int) -> tuple[int, str | None]:
        r = chat(
            onnx_daemon,
            messages=[{"role": "user", "content": f"stream {i}"}],
            max_tokens=30,
            extra_body={"ignore_eos": True},
        )
        return r.usage.completion_tokens, r.choices[0].finish_reason

    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(one, range(6)))
    assert results == [(30, "length")] * 6
    model = onnx_daemon.model("onnx-int4")
    assert model["slots"] == 4


def test_cancelled_stream_frees_its_slot(onnx_daemon: Daemon) -> None:
    chat(onnx_daemon, model="onnx-fp32", max_tokens=1)
    body = {
        "model": "onnx-fp32",
        "messages": [{"role": "user", "content": "hello"}],
        "max_tokens": 400,
        "stream": True,
        "ignore_eos": True,
    }
    with httpx.stream("POST", onnx_daemon.v1 + "/chat/completions", json=body, timeout=60) as r:
        lines = r.iter_lines()
        for _ in range(4):
            next(lines)
    # One slot, no queue: the next request is admitted only once the stream has left.
    deadline = time.monotonic() + 10
    while True:
        try:
            r2 = chat(onnx_daemon, model="onnx-fp32", max_tokens=2)
            break
        except openai.RateLimitError:
            assert time.monotonic() < deadline, "the cancelled stream kept its slot"
            time.sleep(0.05)
    assert r2.usage.completion_tokens >= 1


def test_embeddings_are_pooled_and_normalised(onnx_daemon: Daemon) -> None:
    r = client(onnx_daemon).embeddings.create(
        model="onnx-embed", input=["a red fox", "a red fox", "tax law of 1994"]
    )
    vectors = [d.embedding for d in r.data]
    assert len(vectors) == 3 and len(vectors[0]) == len(vectors[2]) > 8
    for v in vectors:
        assert math.isclose(math.sqrt(sum(x * x for x in v)), 1.0, rel_tol=1e-4)
    assert vectors[0] == pytest.approx(vectors[1], abs=1e-6)
    assert vectors[0] != pytest.approx(vectors[2], abs=1e-3)
    assert r.usage.prompt_tokens > 3
    # Token ids of the encoder's own vocabulary embed as the text they spell.
    ids = client(onnx_daemon).embeddings.create(model="onnx-embed", input=[[5, 6, 7]])
    assert len(ids.data[0].embedding) == len(vectors[0])
    with pytest.raises(openai.BadRequestError, match="another tokenizer"):
        client(onnx_daemon).embeddings.create(model="onnx-embed", input=[[10**6]])


def test_models_list_and_inspect_say_format_precision_and_provider(onnx_daemon: Daemon) -> None:
    chat(onnx_daemon, max_tokens=1)
    m = onnx_daemon.model("onnx-int4")
    assert m["format"] == "onnx" and m["precision"] == "int4"
    assert m["provider"] == "cpu"
    r = onnx_daemon.get("/admin/models/onnx-fp32/inspect")
    assert r.status_code == 200, r.text
    data = r.json()
    assert data["format"] == "onnx" and data["quantization"] == "fp32"
    assert data["provider"]["name"] == "cpu" and "CPU build" in data["provider"]["reason"]
    assert data["estimate"]["kv_cache_bytes"] > 0
    listed = {x.id: x for x in client(onnx_daemon).models.list().data}
    extra = listed["onnx-int4"].model_extra or {}
    assert extra["meta"]["format"] == "onnx" and extra["meta"]["provider"] == "cpu"
    assert (listed["tiny"].model_extra or {})["meta"]["format"] == "gguf"


def test_tier_moves_round_trip(onnx_daemon: Daemon) -> None:
    before = chat(onnx_daemon).choices[0].message.content
    for tier in ("warm", "cold"):
        r = onnx_daemon.post("/admin/models/onnx-int4/tier", json={"tier": tier})
        assert r.status_code == 200, r.text
        assert onnx_daemon.model("onnx-int4")["tier"] == tier
    assert chat(onnx_daemon).choices[0].message.content == before
    assert onnx_daemon.model("onnx-int4")["tier"] == "hot"
