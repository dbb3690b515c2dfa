"""A recurrent model (Mamba) through the real daemon and the official `openai` client.

Its sequences decode together like any model's, each with its own state. A state cannot
be cut back to a shorter prefix, so a cached one serves only a prompt that extends it
whole (the next turn of a conversation): the answer is then the one read from scratch.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from appliance.engines.llamacpp import EngineConfig, LlamaEngine
from appliance.engines.state_store import StateStore
from appliance.tiny_model import write_tiny_hybrid_gguf, write_tiny_mamba_gguf
from tests.daemon import Daemon, start_daemon, wait_for
from tests.engines.test_step_shape_llamacpp import Serve

DOC = " ".join(f"line {i} of the shared document says the same thing again." for i in range(6))


# Qwen3.5's way: the generation prompt opens a reasoning block, the history shows none.
OPENS_THINK = """{%- for m in messages %}<|im_start|>{{ m.role }}
{{ m.content }}<|im_end|>
{% endfor %}{%- if add_generation_prompt %}<|im_start|>assistant
<think>
{% endif %}"""


@pytest.fixture(scope="module")
def mamba_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    home = tmp_path_factory.mktemp("recurrent")
    model = write_tiny_mamba_gguf(home / "mamba.gguf")
    think = home / "think.jinja"
    think.write_text(OPENS_THINK)
    catalog = home / "catalog.toml"
    catalog.write_text(f'''
[models.mamba]
source = "{model}"
context = 512
parallel = 4
keep_alive = "forever"

[models.mamba-think]
source = "{model}"
context = 512
parallel = 2
keep_alive = "forever"
chat_template = "{think}"
''')
    env = {"APPLIANCE_PROMPT_CACHE_MIN_SAVE": "0", "APPLIANCE_WEIGHT_REPACK": "false"}
    d = start_daemon(home, catalog, env=env)
    yield d
    d.stop()


def client(d: Daemon) -> openai.OpenAI:
    return openai.OpenAI(base_url=d.v1, api_key="x", max_retries=0, timeout=60)


def ask(d: Daemon, content: str, **kw: Any) -> Any:
    kw.setdefault("max_tokens", 8)
    kw.setdefault("temperature", 0)
    return client(d).chat.completions.create(
        model="mamba", messages=[{"role": "user", "content": content}], **kw
    )


def test_a_recurrent_model_gets_the_slots_asked(mamba_daemon: Daemon) -> None:
    r = ask(mamba_daemon, "hello", max_tokens=4)
    assert r.choices[0].finish_reason in ("stop", "length")
    model = mamba_daemon.model("mamba")
    engine = model["engine"]
    assert engine["architecture"] == "mamba"
    assert engine["slots"] == 4 and engine["n_seq_max"] == 4
    assert engine["slots_reason"] is None
    assert model["slots"] == 4  # what `appliance ps` and the TUI show
    wait_for(lambda: 'appliance_slots{model="mamba"}' in mamba_daemon.get("/metrics").text)
    assert 'appliance_slots{model="mamba"} 4.0' in mamba_daemon.get("/metrics").text


def completion(d: Daemon, prompt: str | list[int], **kw: Any) -> dict[str, Any]:
    body = {"model": "mamba", "prompt": prompt, "max_tokens": 8, "temperature": 0}
    body |= {"ignore_eos": True, **kw}
    r = httpx.post(d.v1 + "/completions", json=body, timeout=60)
    r.raise_for_status()
    out: dict[str, Any] = r.json()
    return out


@pytest.fixture(scope="module", params=[write_tiny_mamba_gguf, write_tiny_hybrid_gguf])
def recurrent_engine(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Any:
    """The engine on a tiny Mamba, then on a tiny hybrid (Jamba): the same rules hold."""
    path = request.param(tmp_path_factory.mktemp("recurrent-engine") / "model.gguf")
    cfg = EngineConfig(str(path), n_ctx=256, n_threads=1, n_slots=3, weight_repack=False)
    return LlamaEngine(cfg)


def test_concurrent_sequences_are_read_in_one_step_each_as_if_alone(
    recurrent_engine: LlamaEngine,
) -> None:
    prompts = {
        "a": ("request number zero, a prompt of some length", 12),
        "b": ("request number one", 6),
        "c": ("request number two: " * 3, 12),
    }
    alone = {}
    for rid, request in prompts.items():
        serve = Serve(recurrent_engine)
        serve({rid: request})
        alone[rid] = serve.text(rid)
    together = Serve(recurrent_engine)
    together(prompts)
    # llama.cpp read the three prompts, each in its own state, in one step.
    assert max(len(step) for step in together.recorder.steps) == 3
    for rid in prompts:
        assert together.text(rid) == alone[rid] != ""


def test_a_saved_state_comes_back_for_the_next_turn(
    recurrent_engine: LlamaEngine, tmp_path: Path
) -> None:
    states = StateStore("mamba|test", ram_bytes=1 << 20, disk_dir=tmp_path, disk_bytes=1 << 20)
    serve = Serve(recurrent_engine, states=states)
    serve({"doc": (DOC[:120], 8)})
    [entry] = serve.scheduler.kv.index.entries.values()
    held = list(entry.tokens)
    serve.scheduler.kv.evict(entry)  # out of the KV, into the saved states
    assert held in [s.tokens for s in states.states]

    def next_turn(rid: str, **params: Any) -> None:
        frame = {"type": "generate", "id": rid, "mode": "completion", "prompt": ""}
        params = {"temperature": 0, "max_tokens": 6, "logprobs": 3, **params}
        serve.scheduler.submit({**frame, "prompt_ids": [*held, 5, 6, 7], "params": params})
        serve.until_idle()

    next_turn("restored")
    next_turn("fresh", deterministic=True)
    assert serve.done("restored")["cached_tokens"] == len(held)
    assert serve.done("fresh")["cached_tokens"] == 0
    assert serve.text("restored") == serve.text("fresh") != ""


def test_a_prompt_saved_before_its_last_token_serves_a_retry_and_a_changed_turn(
    recurrent_engine: LlamaEngine, tmp_path: Path
) -> None:
    states = StateStore("mamba|test", ram_bytes=1 << 20, disk_dir=tmp_path, disk_bytes=1 << 20)
    serve = Serve(recurrent_engine, states=states)
    prompt = DOC[:120]
    serve({"first": (prompt, 8)})
    read = serve.done("first")["prompt_tokens"] - 1
    serve({"retry": (prompt, 8)})
    assert serve.done("retry")["cached_tokens"] == read
    assert serve.text("retry") == serve.text("first") != ""
    # A next turn that does not start with the first answer: from the saved prompt too,
    # and as read from scratch.
    turn = prompt + " an answer written otherwise, then a new question"
    serve({"turn": (turn, 8)})
    assert serve.done("turn")["cached_tokens"] == read
    fresh = Serve(recurrent_engine)
    fresh({"turn": (turn, 8)})
    assert fresh.done("turn")["cached_tokens"] == 0
    assert serve.text("turn") == fresh.text("turn") != ""


def test_a_cached_state_serves_the_next_turn_and_only_a_whole_prefix(
    mamba_daemon: Daemon,
) -> None:
    ids = mamba_daemon.post("/tokenize", json={"content": DOC}).json()["tokens"]
    first = mamba_daemon.post(
        "/completion",
        json={
            "prompt": ids,
            "n_predict": 12,
            "temperature": 0,
            "return_tokens": True,
            "ignore_eos": True,
        },
    ).json()
    answer = first["tokens"]
    assert len(answer) == 12
    # The next turn: the prompt, the answer and more. The state holds all but the answer's
    # last token (never read), and the request starts from it.
    turn = [*ids, *answer, *ids[:5]]
    hit = completion(mamba_daemon, turn, max_tokens=4, logprobs=3)
    assert hit["usage"]["prompt_tokens_details"]["cached_tokens"] == len(ids) + 11
    # The same prompt computed from scratch gives the same distribution and text.
    fresh = completion(mamba_daemon, turn, max_tokens=4, logprobs=3, deterministic=True)
    assert fresh["usage"]["prompt_tokens_details"]["cached_tokens"] == 0
    a = hit["choices"][0]["logprobs"]["top_logprobs"][0]
    b = fresh["choices"][0]["logprobs"]["top_logprobs"][0]
    assert a.keys() == b.keys() and all(abs(a[k] - b[k]) < 1e-3 for k in a)
    assert hit["choices"][0]["text"] == fresh["choices"][0]["text"]

    # A prompt sharing only part of a cached state reads from scratch.
    again = completion(mamba_daemon, DOC + " what does it say?", max_tokens=24)
    ask_again = completion(mamba_daemon, DOC + " what does it mean?", max_tokens=4)
    assert again["usage"]["prompt_tokens_details"]["cached_tokens"] == 0
    assert ask_again["usage"]["prompt_tokens_details"]["cached_tokens"] == 0


def test_the_same_prompt_gives_the_same_text(mamba_daemon: Daemon) -> None:
    prompt = DOC + " what does it say?"
    first = ask(mamba_daemon, prompt, max_tokens=24, extra_body={"ignore_eos": True})
    ask(mamba_daemon, "something else entirely", max_tokens=5)  # another state in between
    second = ask(mamba_daemon, prompt, max_tokens=24, extra_body={"ignore_eos": True})
    assert first.choices[0].message.content == second.choices[0].message.content
    assert first.usage.prompt_tokens == second.usage.prompt_tokens > 40
    # The first answer's state is longer than the prompt and cannot serve it again; the
    # state saved where the history ends does (the daemon saves any worth it): only the
    # generation prompt, `<|im_start|>assistant\n`, is read again.
    assert first.usage.prompt_tokens_details.cached_tokens == 0
    history = second.usage.prompt_tokens_details.cached_tokens
    assert 0 < second.usage.prompt_tokens - history <= len("<|im_start|>assistant\n")


def test_the_next_turn_starts_where_the_history_ended(mamba_daemon: Daemon) -> None:
    """The prompt opens a reasoning block its next turn does not show (Qwen3.5's template):
    the next turn still reads only from where the last prompt's history ended, and so does
    a retry."""

    def chat(*messages: dict[str, str]) -> Any:
        return client(mamba_daemon).chat.completions.create(
            model="mamba-think", messages=list(messages), max_tokens=6, temperature=0
        )

    question = {"role": "user", "content": DOC + " what comes next?"}
    first = chat(question)
    assert first.usage.prompt_tokens_details.cached_tokens == 0
    retry = chat(question)
    history = retry.usage.prompt_tokens_details.cached_tokens
    assert 0 < first.usage.prompt_tokens - history <= len("<|im_start|>assistant\n<think>\n")
    answer = {"role": "assistant", "content": "An answer."}
    turn = chat(question, answer, {"role": "user", "content": "And before?"})
    assert turn.usage.prompt_tokens_details.cached_tokens == history


def test_the_next_conversation_on_a_system_prompt_starts_after_it(mamba_daemon: Daemon) -> None:
    """An agent's system prompt and tools start every conversation: a recurrent state cannot
    be cut back to them, so the state is saved where the user's turn starts, and the next
    conversation starts there (answering as it would from scratch)."""
    system = {"role": "system", "content": "You answer from this document. " + DOC}

    def chat(question: str, **extra: Any) -> Any:
        messages = [system, {"role": "user", "content": question}]
        return client(mamba_daemon).chat.completions.create(
            model="mamba", messages=messages, max_tokens=6, temperature=0, extra_body=extra
        )

    assert chat("Alpha?").usage.prompt_tokens_details.cached_tokens == 0
    second = chat("Bravo?")
    block = f"<|im_start|>system\n{system['content']}<|im_end|>\n"
    ids = mamba_daemon.post("/tokenize", json={"content": block, "add_special": True}).json()
    n_block = len(ids["tokens"])  # with the BOS the prompt starts with
    assert second.usage.prompt_tokens_details.cached_tokens == n_block
    fresh = chat("Bravo?", deterministic=True)
    assert fresh.usage.prompt_tokens_details.cached_tokens == 0
    assert second.choices[0].message.content == fresh.choices[0].message.content
