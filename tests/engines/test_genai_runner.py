"""The ONNX runner and encoder in-process, on the committed tiny fixtures: chunked prefill
gives the runtime's own answer, streams interleave, cancellation, pooling forms."""

from __future__ import annotations

import json
import threading
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from appliance.engines.genai import GenaiConfig, GenaiEngine
from appliance.engines.genai_runner import MAX_CHUNK, Runner
from appliance.engines.onnx_encoder import OnnxEncoder, pool, pooling_of

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "onnx"


@pytest.fixture(scope="module")
def engine() -> GenaiEngine:
    return GenaiEngine(GenaiConfig(str(FIXTURES / "tiny-chat-int4"), n_ctx=2048, n_threads=1))


def run(engine: GenaiEngine, frames_in: list[dict[str, Any]], slots: int = 4) -> list[Any]:
    out: list[Any] = []
    runner = Runner(engine, out.append, n_slots=slots)
    ids = {str(f["id"]) for f in frames_in if f.get("type") == "generate"}
    ended: set[str] = set()

    def emit(frame: Any) -> None:
        out.append(frame)
        if frame["type"] in ("done", "error"):
            ended.add(str(frame["id"]))
            if ended >= ids:
                runner.submit({"type": "shutdown"})

    runner.emit = emit
    for f in frames_in:
        runner.submit(f)
    thread = threading.Thread(target=runner.run)
    thread.start()
    thread.join(60)
    assert not thread.is_alive()
    return out


def texts(frames: list[Any]) -> dict[str, str]:
    got: dict[str, str] = defaultdict(str)
    for f in frames:
        if f["type"] == "token":
            got[f["id"]] += f["text"]
    return dict(got)


def direct_greedy(engine: GenaiEngine, prompt: list[int], n: int) -> list[int]:
    import onnxruntime_genai as og

    gp = og.GeneratorParams(engine.model)
    gp.set_search_options(max_length=len(prompt) + n, do_sample=False)
    g = og.Generator(engine.model, gp)
    g.append_tokens(prompt)
    tokens = []
    while not g.is_done():
        g.generate_next_token()
        tokens.append(int(g.get_next_tokens()[0]))
    return tokens


def test_chunked_prefill_gives_the_runtimes_own_answer(engine: GenaiEngine) -> None:
    prompt = "the sea and the ship " * 120
    tokens = engine.prompt_tokens(prompt)
    assert len(tokens) > 2 * MAX_CHUNK
    expected = direct_greedy(engine, tokens, 16)
    stream = engine.new_stream()
    expected_text = "".join(stream.decode(t) for t in expected if t not in engine.eog_ids)
    frames = run(
        engine,
        [
            {
                "type": "generate",
                "id": "a",
                "prompt": prompt,
                "params": {"max_tokens": 16, "temperature": 0},
            }
        ],
    )
    done = next(f for f in frames if f["type"] == "done")
    assert done["prompt_tokens"] == len(tokens)
    assert texts(frames).get("a", "") == expected_text
    # As the scheduler: an `admitted` frame (nothing cached here) before the answer
    kinds = [f["type"] for f in frames]
    assert kinds.index("admitted") < kinds.index("token")
    assert next(f for f in frames if f["type"] == "admitted")["cached_tokens"] == 0


def test_a_long_prompt_does_not_stop_another_stream(engine: GenaiEngine) -> None:
    long_prompt = "words " * 1500
    frames = run(
        engine,
        [
            {
                "type": "generate",
                "id": "short",
                "prompt": "hi",
                "params": {"max_tokens": 40, "temperature": 0, "ignore_eos": True},
            },
            {
                "type": "generate",
                "id": "long",
                "prompt": long_prompt,
                "params": {"max_tokens": 2, "temperature": 0},
            },
        ],
    )
    order = [f["id"] for f in frames if f["type"] == "token"]
    first_long = order.index("long") if "long" in order else len(order)
    # The short stream's tokens came while the long prompt was read, chunk by chunk.
    assert order[:first_long].count("short") >= 1500 // MAX_CHUNK
    done = {f["id"]: f for f in frames if f["type"] == "done"}
    assert done["short"]["completion_tokens"] == 40 and done["short"]["finish_reason"] == "length"


def test_cancel_waiting_and_active(engine: GenaiEngine) -> None:
    out: list[Any] = []
    runner = Runner(engine, out.append, n_slots=1)
    params = {"max_tokens": 1000, "temperature": 0, "ignore_eos": True}
    runner.submit({"type": "generate", "id": "a", "prompt": "x", "params": params})
    runner.submit({"type": "generate", "id": "b", "prompt": "y", "params": params})
    runner.submit({"type": "cancel", "id": "b"})
    thread = threading.Thread(target=runner.run)
    thread.start()
    while not any(f["type"] == "token" and f["id"] == "a" for f in list(out)):
        thread.join(0.01)
    runner.submit({"type": "cancel", "id": "a"})
    runner.submit({"type": "shutdown"})
    thread.join(30)
    done = {f["id"]: f for f in out if f["type"] == "done"}
    assert done["b"]["finish_reason"] == "cancelled" and done["b"]["completion_tokens"] == 0
    assert done["a"]["finish_reason"] == "cancelled" and 0 < done["a"]["completion_tokens"] < 1000


def test_fp8_is_refused_on_the_cpu_with_what_would_run_it() -> None:
    from appliance.engines.engine import EngineRequestError
    from appliance.engines.genai import choose_provider

    for amd in (None, "/opt/rocm/lib/libamdgpu-ep.so"):
        with pytest.raises(EngineRequestError, match=r"FP8 weights.*CUDA execution provider"):
            choose_provider(use_gpu=True, precision="fp8", cuda=False, amdgpu_ep=amd)
    assert choose_provider(use_gpu=True, precision="fp8", cuda=True)[0] == "cuda"


def test_the_provider_is_the_gpus_when_the_build_has_one_and_says_why() -> None:
    from appliance.engines.genai import choose_provider

    assert choose_provider(True, "int4", cuda=True, amdgpu_ep="/x.so")[0] == "cuda"
    provider, why = choose_provider(True, "int4", cuda=False, amdgpu_ep="/opt/x/libamdgpu-ep.so")
    assert provider == "amdgpu" and "AMDGPU_EP_PATH=/opt/x/libamdgpu-ep.so" in why
    provider, why = choose_provider(True, "int4", cuda=False)
    assert provider == "cpu" and "onnxruntime-genai-cuda" in why and "AMDGPU_EP_PATH" in why
    assert choose_provider(False, "int4", cuda=True) == ("cpu", "the model is placed on the CPU")


def test_the_amd_provider_library_is_the_file_amdgpu_ep_path_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from appliance.hardware import amdgpu_ep_library

    monkeypatch.delenv("AMDGPU_EP_PATH", raising=False)
    assert amdgpu_ep_library() is None
    monkeypatch.setenv("AMDGPU_EP_PATH", str(tmp_path / "missing.so"))
    assert amdgpu_ep_library() is None
    lib = tmp_path / "libamdgpu-ep.so"
    lib.write_bytes(b"\x7fELF")
    monkeypatch.setenv("AMDGPU_EP_PATH", str(lib))
    assert amdgpu_ep_library() == str(lib)


@pytest.mark.parametrize(
    ("config", "mode"),
    [
        ({"pooling_mode_mean_tokens": True, "pooling_mode_cls_token": False}, "mean"),
        ({"pooling_mode_cls_token": True}, "cls"),
        ({"pooling_mode_max_tokens": True}, "max"),
        ({"pooling_mode_lasttoken": True}, "lasttoken"),
        ({"pooling_mode": "cls"}, "cls"),
        ({"pooling_mode": "mean_tokens"}, "mean"),
        ({}, "mean"),
    ],
)
def test_pooling_both_config_forms(tmp_path: Path, config: dict[str, Any], mode: str) -> None:
    (tmp_path / "1_Pooling").mkdir()
    (tmp_path / "1_Pooling" / "config.json").write_text(json.dumps(config))
    assert pooling_of(tmp_path, []) == mode


def test_pool_respects_the_mask() -> None:
    hidden = np.array([[[1.0, 0.0], [3.0, 2.0], [100.0, 100.0]]], dtype=np.float32)
    mask = np.array([[1, 1, 0]])
    assert pool(hidden, mask, "mean").tolist() == [[2.0, 1.0]]
    assert pool(hidden, mask, "max").tolist() == [[3.0, 2.0]]
    assert pool(hidden, mask, "cls").tolist() == [[1.0, 0.0]]
    assert pool(hidden, mask, "lasttoken").tolist() == [[3.0, 2.0]]


def test_encoder_matches_the_reference_embeddings() -> None:
    reference = json.loads((FIXTURES / "reference.json").read_text())
    enc = OnnxEncoder(str(FIXTURES / "tiny-encoder"), n_threads=1)
    ref = reference["encoder"]
    vectors, _ = enc.embed(ref["sentences"])
    assert np.allclose(np.array(vectors), np.array(ref["embeddings_mean_normalized"]), atol=1e-4)


def test_fp32_model_served_greedy_equals_the_torch_model() -> None:
    ref = json.loads((FIXTURES / "reference.json").read_text())["chat"]
    fp32 = GenaiEngine(GenaiConfig(str(FIXTURES / "tiny-chat-fp32"), n_ctx=512, n_threads=1))
    assert fp32.prompt_tokens(ref["prompt"]) == ref["prompt_ids"]
    n = len(ref["greedy_ids_hf_fp32"])
    assert direct_greedy(fp32, ref["prompt_ids"], n) == ref["greedy_ids_hf_fp32"]
    frames = run(
        fp32,
        [
            {
                "type": "generate",
                "id": "r",
                "prompt": ref["prompt"],
                "params": {"max_tokens": n, "temperature": 0, "ignore_eos": True},
            }
        ],
    )
    stream = fp32.new_stream()
    expected = "".join(stream.decode(t) for t in ref["greedy_ids_hf_fp32"])
    assert texts(frames)["r"] == expected


def test_a_bias_that_only_bans_eos_is_ignore_eos_and_others_are_refused(
    engine: GenaiEngine,
) -> None:
    eos = engine.info()["eos_token_id"]
    assert eos in engine.eog_ids
    params = {"max_tokens": 50, "temperature": 0, "logit_bias": {str(eos): -100}}
    frames = run(
        engine,
        [
            {"type": "generate", "id": "ban", "prompt": "x", "params": params},
            {"type": "generate", "id": "bias", "prompt": "x", "params": {"logit_bias": {"5": 3}}},
        ],
    )
    done = {f["id"]: f for f in frames if f["type"] in ("done", "error")}
    assert done["ban"]["type"] == "done" and done["ban"]["completion_tokens"] == 50
    assert done["bias"]["type"] == "error" and done["bias"]["param"] == "logit_bias"


def test_special_tokens_the_template_writes_show_in_answers() -> None:
    """The tokenizer's stream skips every special token; those the chat template writes
    (a family's markup), less an end, the BOS and the user-turn opener, show as text."""
    chatml = GenaiEngine(GenaiConfig(str(FIXTURES / "tiny-chat-int4"), n_ctx=512, n_threads=1))
    assert chatml.shown == {}  # <|im_start|> opens a user's turn, <|im_end|> ends
    marked = (
        "{% for m in messages %}{% if m.role == 'user' %}USER: {{ m.content }}\n"
        "{% else %}<|im_start|>{{ m.content }}<|im_end|>{% endif %}{% endfor %}"
        "{% if add_generation_prompt %}ANSWER: {% endif %}"
    )
    engine = GenaiEngine(
        GenaiConfig(str(FIXTURES / "tiny-chat-int4"), n_ctx=512, n_threads=1, chat_template=marked)
    )
    assert engine.shown == {1: b"<|im_start|>"}
    # An answer holding a shown token: the first the model writes here, made one.
    prompt = "the sea and the ship"
    first = direct_greedy(engine, engine.prompt_tokens(prompt), 1)[0]
    engine.shown = {first: b"<MARK>"}
    frame = {"type": "generate", "id": "a", "prompt": prompt}
    frames = run(engine, [{**frame, "params": {"max_tokens": 3, "temperature": 0}}])
    assert texts(frames)["a"].startswith("<MARK>")
