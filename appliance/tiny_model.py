"""Write tiny random-weight llama GGUF models that llama.cpp really loads and runs.

Used by the test suite, by `appliance doctor`'s offline self-test and by the
benchmarks (which quantize a larger one to Q4_K_M). The text they produce is
gibberish; the file format, the tokenizer, the chat template and the engine
path are real.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

# A ChatML template, the shape most instruct GGUFs carry.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

_WORDS = [
    "the",
    "a",
    "of",
    "and",
    "to",
    "in",
    "is",
    "you",
    "that",
    "it",
    "he",
    "was",
    "for",
    "on",
    "are",
    "as",
    "with",
    "his",
    "they",
    "I",
    "at",
    "be",
    "this",
    "have",
    "from",
    "or",
    "one",
    "had",
    "by",
    "word",
    "but",
    "not",
    "what",
    "all",
    "were",
    "we",
    "when",
    "your",
    "can",
    "said",
    "there",
    "use",
    "an",
    "each",
    "which",
    "she",
    "do",
    "how",
    "their",
    "if",
    "will",
    "up",
    "other",
    "about",
    "out",
    "many",
    "then",
    "them",
    "these",
    "so",
    "some",
    "her",
    "would",
    "make",
    "like",
    "him",
    "into",
    "time",
    "has",
    "look",
    "two",
    "more",
    "write",
    "go",
    "see",
    "number",
    "no",
    "way",
    "could",
    "people",
    "my",
    "than",
    "first",
    "water",
    "been",
    "call",
    "who",
    "oil",
    "its",
    "now",
    "find",
    "long",
    "down",
    "day",
    "did",
    "get",
    "come",
    "made",
    "may",
    "part",
    "json",
    "hello",
    "world",
    "yes",
    "true",
    "false",
    "null",
    "think",
    "answer",
]


@dataclass(frozen=True)
class TinyModelSpec:
    """Shape of a generated model; defaults give a ~1 MB model that loads in milliseconds."""

    n_embd: int = 64
    n_layer: int = 2
    n_head: int = 4
    n_head_kv: int = 2
    n_ff: int = 128
    n_ctx_train: int = 2048
    n_merged_words: int = 300
    embedding: bool = False
    chat_template: str | None = CHATML_TEMPLATE
    seed: int = 0
    fim: bool = False  # fill-in-the-middle tokens (a code model's), after the other specials
    controls: tuple[str, ...] = ()  # more control tokens (a family's markup), after those
    # Its end tokens' output rows are zero: their logit is 0 among hundreds of random ones,
    # so a greedy answer never ends (a stream that outlives a test's deadline).
    endless: bool = False


FIM_TOKENS = ("<fim_prefix>", "<fim_suffix>", "<fim_middle>")


def build_vocab(
    n_words: int, fim: bool = False, controls: tuple[str, ...] = ()
) -> tuple[list[str], list[float], list[int]]:
    """A SentencePiece-style vocabulary: specials, 256 byte tokens, then word pieces."""
    tokens: list[str] = [
        "<unk>",
        "<s>",
        "</s>",
        "<|im_start|>",
        "<|im_end|>",
        "<think>",
        "</think>",
    ]
    # token types: 1 normal, 2 unknown, 3 control, 4 user defined, 6 byte
    types: list[int] = [2, 3, 3, 3, 3, 4, 4]
    if fim:
        tokens += FIM_TOKENS
        types += [3, 3, 3]
    tokens += controls
    types += [3] * len(controls)
    scores: list[float] = [0.0] * len(tokens)
    for b in range(256):
        tokens.append(f"<0x{b:02X}>")
        types.append(6)
        scores.append(0.0)
    pieces: list[str] = []
    for w in _WORDS:
        pieces.append("\u2581" + w)
    for ch in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,:;!?'\"{}[]()-_":
        pieces.append(ch)
        pieces.append("\u2581" + ch)
    pieces.append("\u2581")
    seen: set[str] = set(tokens)
    unique = [p for p in dict.fromkeys(pieces) if p not in seen]
    # Larger vocabularies (benchmark models) get synthetic word pieces.
    letters = "etaoinshrdlucmfwypvbgkjqxz"
    i = 0
    while len(unique) < n_words:
        word, k = "", i
        while True:
            word += letters[k % len(letters)]
            k //= len(letters)
            if k == 0:
                break
        unique.append(("\u2581" if i % 2 == 0 else "") + word + "s" * (i % 3))
        i += 1
    unique = list(dict.fromkeys(unique))[:n_words]
    for i, p in enumerate(unique):
        tokens.append(p)
        types.append(1)
        scores.append(-float(i))
    return tokens, scores, types


def _add_tokenizer(
    w: Any, tokens: list[str], scores: list[float], types: list[int], chat_template: str | None
) -> None:
    """The SentencePiece-style tokenizer keys (and the chat template) of a tiny model."""
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(4 if chat_template else 2)
    w.add_unk_token_id(0)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    if chat_template:
        w.add_chat_template(chat_template)


def _publish(w: Any, out: Path) -> Path:
    """Write beside, publish by rename: never a partial file under the final name."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    w.write_header_to_file(tmp)
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    os.replace(tmp, out)
    return out


def write_tiny_gguf(path: str | os.PathLike[str], spec: TinyModelSpec | None = None) -> Path:
    """Write a llama-architecture GGUF with random F32 weights to `path`."""
    import gguf

    spec = spec or TinyModelSpec()
    out = Path(path)
    rng = np.random.default_rng(spec.seed)
    tokens, scores, types = build_vocab(spec.n_merged_words, fim=spec.fim, controls=spec.controls)
    n_vocab = len(tokens)
    head_dim = spec.n_embd // spec.n_head
    kv_dim = head_dim * spec.n_head_kv

    w = gguf.GGUFWriter(None, "llama")
    w.add_name("tiny-embed" if spec.embedding else "tiny-chat")
    w.add_context_length(spec.n_ctx_train)
    w.add_embedding_length(spec.n_embd)
    w.add_block_count(spec.n_layer)
    w.add_feed_forward_length(spec.n_ff)
    w.add_head_count(spec.n_head)
    w.add_head_count_kv(spec.n_head_kv)
    w.add_rope_dimension_count(head_dim)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_freq_base(10000.0)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    if spec.embedding:
        w.add_pooling_type(gguf.PoolingType.MEAN)
    _add_tokenizer(w, tokens, scores, types, spec.chat_template)
    if spec.fim:
        for key, text in zip(("pre", "suf", "mid"), FIM_TOKENS, strict=True):
            w.add_uint32(f"tokenizer.ggml.fim_{key}_token_id", tokens.index(text))

    def tensor(name: str, *shape: int, scale: float = 0.08) -> None:
        data = (rng.standard_normal(shape) * scale).astype(np.float32)
        w.add_tensor(name, data)

    tensor("token_embd.weight", n_vocab, spec.n_embd, scale=0.5)
    w.add_tensor("output_norm.weight", np.ones(spec.n_embd, dtype=np.float32))
    output = (rng.standard_normal((n_vocab, spec.n_embd)) * 0.5).astype(np.float32)
    if spec.endless:
        output[[tokens.index("</s>"), tokens.index("<|im_end|>")]] = 0.0
    w.add_tensor("output.weight", output)
    for i in range(spec.n_layer):
        p = f"blk.{i}."
        w.add_tensor(p + "attn_norm.weight", np.ones(spec.n_embd, dtype=np.float32))
        tensor(p + "attn_q.weight", spec.n_embd, spec.n_embd)
        tensor(p + "attn_k.weight", kv_dim, spec.n_embd)
        tensor(p + "attn_v.weight", kv_dim, spec.n_embd)
        tensor(p + "attn_output.weight", spec.n_embd, spec.n_embd)
        w.add_tensor(p + "ffn_norm.weight", np.ones(spec.n_embd, dtype=np.float32))
        tensor(p + "ffn_gate.weight", spec.n_ff, spec.n_embd)
        tensor(p + "ffn_up.weight", spec.n_ff, spec.n_embd)
        tensor(p + "ffn_down.weight", spec.n_embd, spec.n_ff)

    return _publish(w, out)


# Mamba-1 layer shapes shared by the mamba and jamba writers.
_D_STATE, _D_CONV, _DT_RANK = 16, 4, 4


def _add_ssm_keys(w: Any, n_embd: int) -> None:
    """The Mamba-1 hyperparameters (llama.cpp supports only an expansion factor of 2)."""
    w.add_ssm_conv_kernel(_D_CONV)
    w.add_ssm_inner_size(2 * n_embd)
    w.add_ssm_state_size(_D_STATE)
    w.add_ssm_time_step_rank(_DT_RANK)


def _add_mamba_layer(w: Any, rng: np.random.Generator, p: str, n_embd: int) -> None:
    """One Mamba-1 layer's tensors (numpy shapes: ggml's ne order reversed)."""
    d_inner = 2 * n_embd

    def tensor(name: str, *shape: int, scale: float = 0.08) -> None:
        w.add_tensor(p + name, (rng.standard_normal(shape) * scale).astype(np.float32))

    tensor("ssm_in.weight", 2 * d_inner, n_embd)
    tensor("ssm_conv1d.weight", d_inner, _D_CONV, scale=0.3)
    tensor("ssm_conv1d.bias", d_inner)
    tensor("ssm_x.weight", _DT_RANK + 2 * _D_STATE, d_inner)
    tensor("ssm_dt.weight", d_inner, _DT_RANK)
    tensor("ssm_dt.bias", d_inner)
    # A = -exp(A_log) must be negative for a stable state (the converters store it so).
    a = -np.exp(rng.standard_normal((d_inner, _D_STATE)) * 0.5).astype(np.float32)
    w.add_tensor(p + "ssm_a", a)
    w.add_tensor(p + "ssm_d", np.ones(d_inner, dtype=np.float32))
    tensor("ssm_out.weight", n_embd, d_inner)


def write_tiny_mamba_gguf(
    path: str | os.PathLike[str], seed: int = 0, spec: TinyModelSpec | None = None
) -> Path:
    """Write a Mamba-1 (llama.cpp arch "mamba") GGUF with random F32 weights to `path`.

    A recurrent model: llama.cpp keeps one fixed-size state per sequence instead of a
    KV cache, so the state cannot be cut back to a prefix. Same vocabulary, tokenizer
    and chat template as `write_tiny_gguf`'s default model; `spec` sets its width and
    depth (benchmarks).
    """
    import gguf

    spec = spec or TinyModelSpec(seed=seed)
    seed = spec.seed
    n_embd, n_layer = spec.n_embd, spec.n_layer
    rng = np.random.default_rng(seed)
    tokens, scores, types = build_vocab(spec.n_merged_words)
    n_vocab = len(tokens)

    w = gguf.GGUFWriter(None, "mamba")
    w.add_name("tiny-mamba")
    w.add_context_length(spec.n_ctx_train)
    w.add_embedding_length(n_embd)
    w.add_block_count(n_layer)
    w.add_feed_forward_length(0)  # no FFN and no attention; written as converters do
    w.add_head_count(0)
    _add_ssm_keys(w, n_embd)
    w.add_ssm_dt_b_c_rms(False)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    _add_tokenizer(w, tokens, scores, types, spec.chat_template)

    # numpy shapes: ggml's ne order reversed.
    def tensor(name: str, *shape: int, scale: float = 0.08) -> None:
        data = (rng.standard_normal(shape) * scale).astype(np.float32)
        w.add_tensor(name, data)

    tensor("token_embd.weight", n_vocab, n_embd, scale=0.5)
    w.add_tensor("output_norm.weight", np.ones(n_embd, dtype=np.float32))
    tensor("output.weight", n_vocab, n_embd, scale=0.5)
    for i in range(n_layer):
        p = f"blk.{i}."
        w.add_tensor(p + "attn_norm.weight", np.ones(n_embd, dtype=np.float32))
        _add_mamba_layer(w, rng, p, n_embd)
    return _publish(w, Path(path))


def write_tiny_hybrid_gguf(
    path: str | os.PathLike[str], seed: int = 0, spec: TinyModelSpec | None = None
) -> Path:
    """Write a Jamba (llama.cpp arch "jamba") GGUF with random F32 weights to `path`.

    A hybrid model: Mamba-1 layers, each with a fixed-size state per sequence, between
    attention layers with a KV cache (a layer with no KV heads is a Mamba one). llama.cpp
    keeps both for every sequence, and neither can be cut back to a prefix without the
    other. Jamba's attention uses no RoPE; its Mamba layers are `write_tiny_mamba_gguf`'s
    plus RMS norms of dt, B and C. Same vocabulary, tokenizer and chat template too;
    `spec` sets its width and depth (benchmarks: every third layer attends).
    """
    import gguf

    spec = spec or TinyModelSpec(seed=seed)
    seed = spec.seed
    n_embd, n_head, n_ff = spec.n_embd, spec.n_head, spec.n_ff
    head_dim = n_embd // n_head
    # Mamba, attention, Mamba, ...
    heads_kv = [spec.n_head_kv if i % 3 == 1 else 0 for i in range(max(3, spec.n_layer))]
    rng = np.random.default_rng(seed)
    tokens, scores, types = build_vocab(spec.n_merged_words)
    n_vocab = len(tokens)

    w = gguf.GGUFWriter(None, "jamba")
    w.add_name("tiny-jamba")
    w.add_context_length(spec.n_ctx_train)
    w.add_embedding_length(n_embd)
    w.add_block_count(len(heads_kv))
    w.add_feed_forward_length(n_ff)
    w.add_head_count(n_head)
    w.add_head_count_kv(heads_kv)
    _add_ssm_keys(w, n_embd)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    _add_tokenizer(w, tokens, scores, types, spec.chat_template)

    def tensor(name: str, *shape: int, scale: float = 0.08) -> None:
        w.add_tensor(name, (rng.standard_normal(shape) * scale).astype(np.float32))

    def ones(name: str, n: int) -> None:
        w.add_tensor(name, np.ones(n, dtype=np.float32))

    tensor("token_embd.weight", n_vocab, n_embd, scale=0.5)
    ones("output_norm.weight", n_embd)
    tensor("output.weight", n_vocab, n_embd, scale=0.5)
    for i, n_kv in enumerate(heads_kv):
        p = f"blk.{i}."
        ones(p + "attn_norm.weight", n_embd)
        if n_kv == 0:
            _add_mamba_layer(w, rng, p, n_embd)
            ones(p + "ssm_dt_norm.weight", _DT_RANK)
            ones(p + "ssm_b_norm.weight", _D_STATE)
            ones(p + "ssm_c_norm.weight", _D_STATE)
        else:
            tensor(p + "attn_q.weight", n_embd, n_embd)
            tensor(p + "attn_k.weight", n_kv * head_dim, n_embd)
            tensor(p + "attn_v.weight", n_kv * head_dim, n_embd)
            tensor(p + "attn_output.weight", n_embd, n_embd)
        ones(p + "ffn_norm.weight", n_embd)
        tensor(p + "ffn_gate.weight", n_ff, n_embd)
        tensor(p + "ffn_up.weight", n_ff, n_embd)
        tensor(p + "ffn_down.weight", n_embd, n_ff)
    return _publish(w, Path(path))


# Shapes for the benchmark model (~700M parameters; llama-like proportions).
BENCH_700M = TinyModelSpec(
    n_embd=1536,
    n_layer=22,
    n_head=12,
    n_head_kv=4,
    n_ff=4608,
    n_ctx_train=4096,
    n_merged_words=31700,
    seed=1,
)


def quantize_gguf(src: Path, dst: Path, ftype: str = "Q4_K_M", threads: int = 0) -> Path:
    """Quantize with llama.cpp's own quantizer through the bindings (no extra binary)."""
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{ftype}")
    params.nthread = threads
    tmp = dst.with_name(dst.name + ".tmp")
    rc = llama_cpp.llama_model_quantize(str(src).encode(), str(tmp).encode(), params)
    if rc != 0:
        raise RuntimeError(f"quantizing {src} to {ftype} failed (code {rc})")
    os.replace(tmp, dst)
    return dst
