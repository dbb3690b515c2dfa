"""llama-server's native routes, driven as its clients drive them (SillyTavern's llama.cpp
mode, llama.vscode's /infill, scripts): raw HTTP, its field names, its answer's shape."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from appliance.tiny_model import TinyModelSpec, write_tiny_gguf
from tests.daemon import Daemon, start_daemon


def http(d: Daemon) -> httpx.Client:
    return httpx.Client(base_url=d.v1.rsplit("/v1", 1)[0], timeout=60)


def events(response: httpx.Response) -> list[dict[str, Any]]:
    lines = [line for line in response.iter_lines() if line.startswith("data: ")]
    return [json.loads(line[len("data: ") :]) for line in lines]


def test_completion_answers_in_llama_server_shape(daemon: Daemon) -> None:
    r = http(daemon).post(
        "/completion", json={"prompt": "hello world", "n_predict": 6, "temperature": 0}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["stop"] is True and body["stop_type"] == "limit"
    assert body["tokens_predicted"] == 6 and body["tokens_evaluated"] >= 2
    assert body["model"] == "tiny" and body["content"]
    assert body["generation_settings"]["n_predict"] == 6
    assert body["generation_settings"]["temperature"] == 0
    # llama-server's defaults where the client gave none.
    assert body["generation_settings"]["top_k"] == 40
    assert body["timings"]["predicted_n"] == 6 and body["timings"]["predicted_ms"] > 0
    assert body["tokens"] == []  # only with return_tokens


def test_the_same_request_streams_the_same_text_and_ends_without_done(daemon: Daemon) -> None:
    request = {"prompt": "one two three", "n_predict": 8, "temperature": 0, "ignore_eos": True}
    whole = http(daemon).post("/completion", json={**request, "return_tokens": True}).json()
    with http(daemon).stream("POST", "/completion", json={**request, "stream": True}) as r:
        assert r.status_code == 200
        raw = r.read().decode()
    got = [json.loads(x[len("data: ") :]) for x in raw.split("\n\n") if x]
    assert "[DONE]" not in raw
    partial, final = got[:-1], got[-1]
    assert all(e["stop"] is False for e in partial) and final["stop"] is True
    assert "".join(e["content"] for e in partial) == whole["content"]
    assert [t for e in partial for t in e["tokens"]] == whole["tokens"]
    assert len(whole["tokens"]) == 8
    assert final["content"] == "" and final["tokens_predicted"] == 8
    assert partial[-1]["tokens_predicted"] == 8


def test_n_probs_response_fields_and_logit_bias_pairs(daemon: Daemon) -> None:
    client = http(daemon)
    body = client.post(
        "/completion",
        json={
            "prompt": "hello",
            "n_predict": 3,
            "temperature": 0,
            "n_probs": 2,
            "response_fields": ["content", "timings/predicted_n", "completion_probabilities"],
        },
    ).json()
    assert set(body) == {"content", "timings/predicted_n", "completion_probabilities"}
    assert body["timings/predicted_n"] == 3
    first = body["completion_probabilities"][0]
    assert len(first["top_logprobs"]) == 2 and first["logprob"] <= 0
    assert first["id"] == first["top_logprobs"][0]["id"]  # greedy: the likeliest
    # Banning the greedy first token ([[id, false]], llama-server's form) changes it.
    banned = client.post(
        "/completion",
        json={
            "prompt": "hello",
            "n_predict": 1,
            "temperature": 0,
            "return_tokens": True,
            "logit_bias": [[first["id"], False]],
        },
    ).json()
    assert banned["tokens"] and banned["tokens"][0] != first["id"]


def test_stop_words_are_reported_as_llama_server_reports_them(daemon: Daemon) -> None:
    client = http(daemon)
    free = client.post(
        "/completion", json={"prompt": "hello", "n_predict": 12, "temperature": 0}
    ).json()
    word = free["content"][3:6]
    assert word.strip(), free["content"]
    stopped = client.post(
        "/completion", json={"prompt": "hello", "n_predict": 12, "temperature": 0, "stop": [word]}
    ).json()
    assert stopped["stop_type"] == "word" and stopped["stopping_word"] == word
    assert word not in stopped["content"]


def test_tokenize_and_detokenize_round_trip(daemon: Daemon) -> None:
    client = http(daemon)
    ids = client.post("/tokenize", json={"content": "hello world"}).json()["tokens"]
    assert ids and all(isinstance(t, int) for t in ids)
    with_bos = client.post("/tokenize", json={"content": "hello world", "add_special": True})
    assert with_bos.json()["tokens"] == [1, *ids]  # the tiny model's BOS is 1
    pieces = client.post("/tokenize", json={"content": "hello world", "with_pieces": True})
    assert [p["id"] for p in pieces.json()["tokens"]] == ids
    joined = "".join(p["piece"] for p in pieces.json()["tokens"])
    assert joined.replace("\u2581", " ").strip() == "hello world"
    text = client.post("/detokenize", json={"tokens": ids}).json()["content"]
    assert text.strip() == "hello world"
    # The prompt's count is the one /completion reports.
    done = client.post("/completion", json={"prompt": "hello world", "n_predict": 1}).json()
    assert done["tokens_evaluated"] == len(ids) + 1


def test_a_model_name_the_server_does_not_know_means_the_default(daemon: Daemon) -> None:
    """llama-server serves its one model whatever `model` says (Continue sends a
    placeholder): an unknown name falls back to the default model, a known one is used."""
    client = http(daemon)
    placeholder = {"prompt": "x", "n_predict": 1, "model": "MODEL_NAME"}
    assert client.post("/completion", json=placeholder).json()["model"] == "tiny"
    named = client.post("/completion", json={**placeholder, "model": "think"}).json()
    assert named["model"] == "think"


def test_props_with_autoload_false_loads_nothing(daemon: Daemon) -> None:
    daemon.post("/admin/models/think/unload")
    props = http(daemon).get("/props", params={"model": "think", "autoload": "false"})
    assert props.json()["default_generation_settings"]["n_ctx"] == 512
    assert daemon.model("think")["pid"] is None  # still not loaded


def test_apply_template_props_and_slots(daemon: Daemon) -> None:
    client = http(daemon)
    prompt = client.post(
        "/apply-template", json={"messages": [{"role": "user", "content": "hi there"}]}
    ).json()["prompt"]
    assert "<|im_start|>user\nhi there<|im_end|>" in prompt
    assert prompt.endswith("<|im_start|>assistant\n")
    tool = {
        "type": "function",
        "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}},
    }
    with_tools = client.post(
        "/apply-template",
        json={"messages": [{"role": "user", "content": "hi"}], "tools": [tool]},
    ).json()["prompt"]
    assert "get_weather" in with_tools  # the prompt a chat with these tools is given
    props = client.get("/props").json()
    assert props["default_generation_settings"]["n_ctx"] == 512  # the catalog's context
    assert props["total_slots"] >= 1 and "im_start" in props["chat_template"]
    slots = client.get("/slots").json()
    assert len(slots) == props["total_slots"] and slots[0]["n_ctx"] == 512
    assert client.get("/props", params={"model": "think"}).json()["model_alias"] == "think"


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/completion", {"prompt": "x", "n_predict": "many"}, "max_tokens"),
        ("/completion", {"prompt": "x", "logit_bias": [["hello", 1.0]]}, "logit_bias"),
        ("/completion", {"prompt": "x", "n_indent": "deep"}, "n_indent"),
        ("/tokenize", {"text": "x"}, "content"),
        ("/detokenize", {"tokens": [1, "a"]}, "tokens"),
        ("/detokenize", {"tokens": [10**9]}, "tokens"),
        ("/infill", {"input_prefix": "x"}, "input_suffix"),
        ("/infill", {"input_prefix": "x", "input_suffix": "y"}, "model"),  # no FIM tokens
    ],
)
def test_bad_requests_get_clear_errors(
    daemon: Daemon, path: str, body: dict[str, Any], param: str
) -> None:
    r = http(daemon).post(path, json=body)
    assert 400 <= r.status_code < 502, r.text
    assert r.json()["error"]["param"] == param, r.text


@pytest.fixture(scope="module")
def coder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    home = tmp_path_factory.mktemp("coder")
    model = write_tiny_gguf(home / "coder.gguf", TinyModelSpec(fim=True, n_ctx_train=4096))
    catalog = home / "catalog.toml"
    catalog.write_text(f'[models.coder]\nsource = "{model}"\ncontext = 4096\n')
    d = start_daemon(home, catalog)
    yield d
    d.stop()


def test_infill_reads_prefix_and_suffix_between_the_fim_tokens(coder: Daemon) -> None:
    client = http(coder)
    prefix, suffix = "def add(a, b):\n    return ", "\n\nprint(add(1, 2))\n"

    def count(text: str) -> int:
        body = {"content": text, "parse_special": False}
        return len(client.post("/tokenize", json=body).json()["tokens"])

    r = client.post(
        "/infill",
        json={"input_prefix": prefix, "input_suffix": suffix, "n_predict": 4, "temperature": 0},
    )
    assert r.status_code == 200, r.text
    # BOS, FIM_PRE, the prefix, FIM_SUF, the suffix, FIM_MID.
    assert r.json()["tokens_evaluated"] == 4 + count(prefix) + count(suffix)
    extra = {"filename": "util.py", "text": "x = 1"}
    with_extra = client.post(
        "/infill",
        json={
            "input_prefix": prefix,
            "input_suffix": suffix,
            "n_predict": 1,
            "input_extra": [extra],
        },
    ).json()
    separator = count("\n\n--- snippet ---\n\n") + count("x = 1")
    assert with_extra["tokens_evaluated"] == 4 + count(prefix) + count(suffix) + separator
    # llama.vscode asks for 3 completions at once (n_cmpl): an array of 3 comes back.
    three = client.post(
        "/infill",
        json={  # llama.vscode's body
            "input_prefix": prefix,
            "input_suffix": suffix,
            "n_predict": 2,
            "n_cmpl": 3,
            "top_k": 40,
            "top_p": 0.99,
            "samplers": ["top_k", "top_p", "infill"],
            "t_max_prompt_ms": 500,
            "t_max_predict_ms": 2500,
            "cache_prompt": True,
            "id_slot": 0,
        },
    ).json()
    assert isinstance(three, list) and [r["index"] for r in three] == [0, 1, 2]


def test_n_indent_ends_the_answer_at_a_line_indented_less(coder: Daemon) -> None:
    # A grammar writes the lines; the third is indented less than n_indent asks.
    grammar = r'root ::= "if x:\n  y = 1\nz = 2\n"'
    request = {"prompt": "x", "n_predict": 40, "grammar": grammar, "temperature": 0}
    client = http(coder)
    free = client.post("/completion", json=request).json()
    assert free["content"] == "if x:\n  y = 1\nz = 2\n" and free["stop_type"] == "eos"
    limited = client.post("/completion", json={**request, "n_indent": 2}).json()
    assert limited["stop_type"] == "limit"
    assert limited["content"] == "if x:\n  y = 1\n"  # the line at column 0 is cut
    with client.stream("POST", "/completion", json={**request, "n_indent": 2, "stream": True}) as r:
        got = events(r)
    assert "".join(e["content"] for e in got) == limited["content"]
    assert got[-1]["stop"] is True and got[-1]["stop_type"] == "limit"
