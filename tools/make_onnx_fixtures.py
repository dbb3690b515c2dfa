r"""Build the tiny, real-format ONNX test models in tests/fixtures/onnx/.

Run from the repository root (one command; it makes .venv-fixtures/ on first use):

    python3.11 -m venv .venv-fixtures \
        && .venv-fixtures/bin/pip install -r tools/onnx-fixtures-requirements.txt \
        && .venv-fixtures/bin/python tools/make_onnx_fixtures.py

(off the project's machines, add ``--index-url https://download.pytorch.org/whl/cpu
--extra-index-url https://pypi.org/simple`` to the pip command to get the CPU build of
torch). Nothing is downloaded at build time: the tokenizers are trained here on the
English text below and the weights are random (fixed seeds), so every run writes the
same bytes. It writes, replacing what is there:

- ``tiny-chat-int4/``: a 2-layer LlamaForCausalLM (hidden 64, 4 heads, 2 KV heads)
  converted by the ONNX Runtime GenAI model builder to INT4 (MatMulNBits) for the CPU,
  with a byte-level BPE tokenizer (``<|endoftext|>``, ``<|im_start|>``, ``<|im_end|>``)
  and a ChatML chat template;
- ``tiny-chat-fp32/``: the same weights built with ``-p fp32``;
- ``tiny-encoder/``: a 2-layer BertModel exported to ``onnx/model.onnx`` in the
  sentence-transformers layout (mean pooling, then Normalize), WordPiece tokenizer;
- ``reference.json``: reference outputs computed here with torch (greedy tokens of
  the HF model, pooled and normalized embeddings of the encoder) for the tests;
- ``README.md``.

Options: ``--out DIR`` (default tests/fixtures/onnx), ``--keep-work`` (keep the HF
checkpoint and builder cache in a temporary folder and print its path).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import string
import subprocess
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np
import torch
from tokenizers import (
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
    trainers,
)

REPO = Path(__file__).resolve().parent.parent
SEED = 1234

# Chat model
CHAT_VOCAB = 768
CHAT_HIDDEN = 64
CHAT_LAYERS = 2
CHAT_HEADS = 4
CHAT_KV_HEADS = 2
CHAT_INTERMEDIATE = 256
CHAT_CONTEXT = 2048
CHAT_INIT_STD = 0.1  # larger than the usual 0.02 so greedy choices are not near-ties
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]  # ids 0, 1, 2
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

# Encoder
ENC_VOCAB = 600
ENC_HIDDEN = 32
ENC_LAYERS = 2
ENC_HEADS = 2
ENC_INTERMEDIATE = 64
ENC_MAX_SEQ = 128
ENC_SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]  # ids 0..4

REFERENCE_PROMPT = "<|im_start|>user\nHello, how are you?<|im_end|>\n<|im_start|>assistant\n"
REFERENCE_SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "A small model is enough for a test.",
    "Tokens, vectors and numbers: 12345!",
]
REFERENCE_NEW_TOKENS = 20

CORPUS = """\
The morning was cold and clear, and the river ran fast under the old stone bridge.
A small boat moved slowly along the bank while two children watched from the grass.
She opened the window, looked at the sky, and decided that it was a good day for a walk.
The library on the corner keeps its doors open until nine o'clock in the evening.
He wrote a long letter to his brother and sent it with the first train in the morning.
Every good story has a beginning, a middle and an end, but not always in that order.
The market sold bread, cheese, apples, onions, fresh fish and warm coffee in paper cups.
When the rain stopped, the streets were quiet and the lights of the city came on one by one.
Please answer the question in one short sentence, and explain your reasoning if you can.
What is the capital of France? The capital of France is Paris.
How many days are there in a week? There are seven days in a week.
Can you help me write a short poem about the sea? Of course, here is a short poem.
The computer reads the input, runs the program, and writes the output to the screen.
A server listens on a port, accepts a request, and sends back a response with a status code.
The model reads a sequence of tokens and predicts the next token, one step at a time.
Numbers such as 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 42, 100 and 2048 appear in many texts.
The recipe asks for two cups of flour, one egg, a little salt and a spoon of sugar.
They walked through the forest until the path turned to the north and climbed the hill.
On the top of the hill there was a small house with a red roof and a green door.
The teacher asked the students to read the chapter again and to write down their questions.
Good morning! Thank you very much. You are welcome. See you tomorrow. Goodbye!
I think that the answer is yes, but I am not completely sure about the details.
The weather today is sunny with a light wind from the west and a high of twenty degrees.
Water boils at one hundred degrees and freezes at zero degrees on the Celsius scale.
The cat slept on the chair near the fire while the dog waited at the door for dinner.
Reading a book is like having a long conversation with someone who lived long ago.
{"name": "test", "value": 3, "items": ["one", "two", "three"], "ok": true, "next": null}
The user said hello, and the assistant answered with a friendly greeting and a question.
Every line of this text is plain English, written only to train a very small tokenizer.
Short words like a, an, the, of, to, in, is, it, and, or, but, for, with, on, at are common.
The system is ready. The request was accepted. The task is done. The result is correct.
After the meeting, the team wrote a plan, shared the notes, and went back to work.
"""


def seed_everything() -> None:
    random.seed(SEED)
    np.random.seed(SEED)
    torch.manual_seed(SEED)
    torch.use_deterministic_algorithms(True)


def corpus_lines() -> list[str]:
    return [line for line in CORPUS.splitlines() if line.strip()]


# --------------------------------------------------------------------------- chat model


def build_bpe_tokenizer() -> Tokenizer:
    """Byte-level BPE (GPT-2 style pre-tokenizer), so any UTF-8 text round-trips."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=CHAT_VOCAB,
        min_frequency=1,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    # Repeat the lines so every pair is frequent enough; order is fixed.
    tok.train_from_iterator(corpus_lines() * 4, trainer=trainer)
    for i, special in enumerate(SPECIAL_TOKENS):
        assert tok.token_to_id(special) == i, special
    return tok


def write_hf_chat_checkpoint(hf_dir: Path, tok: Tokenizer) -> None:
    from transformers import (
        GenerationConfig,
        LlamaConfig,
        LlamaForCausalLM,
        PreTrainedTokenizerFast,
    )

    vocab_size = tok.get_vocab_size()
    eot, _im_start, im_end = (tok.token_to_id(t) for t in SPECIAL_TOKENS)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=CHAT_HIDDEN,
        intermediate_size=CHAT_INTERMEDIATE,
        num_hidden_layers=CHAT_LAYERS,
        num_attention_heads=CHAT_HEADS,
        num_key_value_heads=CHAT_KV_HEADS,
        max_position_embeddings=CHAT_CONTEXT,
        rms_norm_eps=1e-6,
        hidden_act="silu",
        initializer_range=CHAT_INIT_STD,
        tie_word_embeddings=False,
        bos_token_id=eot,
        eos_token_id=[im_end, eot],
        pad_token_id=eot,
        rope_theta=10000.0,
        architectures=["LlamaForCausalLM"],
    )
    torch.manual_seed(SEED)
    model = LlamaForCausalLM(config).eval()
    model.save_pretrained(hf_dir, safe_serialization=True)
    GenerationConfig(
        bos_token_id=eot, eos_token_id=[im_end, eot], pad_token_id=eot, do_sample=False
    ).save_pretrained(hf_dir)
    hf_tok = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=None,
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        additional_special_tokens=["<|im_start|>", "<|im_end|>"],
        model_max_length=CHAT_CONTEXT,
        clean_up_tokenization_spaces=False,
    )
    hf_tok.chat_template = CHATML_TEMPLATE
    hf_tok.save_pretrained(hf_dir)


def run_builder(hf_dir: Path, out_dir: Path, precision: str, cache_dir: Path) -> None:
    if out_dir.exists():
        shutil.rmtree(out_dir)
    cmd = [
        sys.executable, "-m", "onnxruntime_genai.models.builder",
        "-i", str(hf_dir), "-o", str(out_dir), "-p", precision, "-e", "cpu", "-c", str(cache_dir),
    ]  # fmt: skip
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=cache_dir)


def finish_chat_folder(out_dir: Path, tok: Tokenizer) -> None:
    """Pin what the tests rely on in genai_config.json and the tokenizer files."""
    eot, _im_start, im_end = (tok.token_to_id(t) for t in SPECIAL_TOKENS)
    cfg_path = out_dir / "genai_config.json"
    cfg = json.loads(cfg_path.read_text())
    model = cfg["model"]
    model["eos_token_id"] = [im_end, eot]
    model["bos_token_id"] = eot
    model["pad_token_id"] = eot
    model["context_length"] = CHAT_CONTEXT
    cfg["search"]["max_length"] = CHAT_CONTEXT
    cfg_path.write_text(json.dumps(cfg, indent=4) + "\n")

    # transformers 5 writes tokenizer_class "TokenizersBackend" (unknown to transformers 4)
    # and local-load flags; write a plain config that every reader understands.
    tc = {
        "add_bos_token": False,
        "add_eos_token": False,
        "additional_special_tokens": ["<|im_start|>", "<|im_end|>"],
        "bos_token": None,
        "chat_template": CHATML_TEMPLATE,  # also in chat_template.jinja
        "clean_up_tokenization_spaces": False,
        "eos_token": "<|endoftext|>",
        "model_max_length": CHAT_CONTEXT,
        "pad_token": "<|endoftext|>",
        "tokenizer_class": "PreTrainedTokenizerFast",
        "unk_token": None,
    }
    (out_dir / "tokenizer_config.json").write_text(json.dumps(tc, indent=2) + "\n")
    (out_dir / "chat_template.jinja").write_text(CHATML_TEMPLATE)


def hf_greedy_reference(hf_dir: Path, tok: Tokenizer) -> dict[str, object]:
    from transformers import LlamaForCausalLM

    model = LlamaForCausalLM.from_pretrained(hf_dir).eval()
    ids = tok.encode(REFERENCE_PROMPT).ids
    out: list[int] = []
    with torch.no_grad():
        seq = torch.tensor([ids])
        for _ in range(REFERENCE_NEW_TOKENS):
            logits = model(seq).logits[0, -1]
            nxt = int(torch.argmax(logits))
            out.append(nxt)
            seq = torch.cat([seq, torch.tensor([[nxt]])], dim=1)
    return {"prompt": REFERENCE_PROMPT, "prompt_ids": ids, "greedy_ids_hf_fp32": out}


# --------------------------------------------------------------------------- encoder


def build_wordpiece_tokenizer() -> Tokenizer:
    """BERT-style WordPiece: whole words of the corpus by frequency, plus every character
    alone and as a ``##`` continuation, so any word splits into known pieces.

    Built by counting instead of tokenizers' WordPieceTrainer, whose merges change from
    run to run (ties broken in hash order).
    """
    normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=True
    )
    pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    counts: dict[str, int] = {}
    for line in corpus_lines():
        for word, _span in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(line)):
            counts[word] = counts.get(word, 0) + 1
    chars = sorted(
        set("".join(counts)) | set("abcdefghijklmnopqrstuvwxyz0123456789") | set(string.punctuation)
    )
    vocab: list[str] = list(ENC_SPECIAL) + chars + ["##" + c for c in chars]
    for word, _count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        if len(vocab) >= ENC_VOCAB:
            break
        if word not in vocab:
            vocab.append(word)
    tok = Tokenizer(
        models.WordPiece(
            {t: i for i, t in enumerate(vocab)}, unk_token="[UNK]", max_input_chars_per_word=100
        )
    )
    tok.add_special_tokens(list(ENC_SPECIAL))
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizer
    tok.decoder = decoders.WordPiece(prefix="##")
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    for i, special in enumerate(ENC_SPECIAL):
        assert tok.token_to_id(special) == i, special
    return tok


class _LastHidden(torch.nn.Module):
    def __init__(self, bert: torch.nn.Module) -> None:
        super().__init__()
        self.bert = bert

    def forward(self, input_ids, attention_mask, token_type_ids):  # type: ignore[no-untyped-def]
        return self.bert(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        ).last_hidden_state


def write_encoder(out_dir: Path, tok: Tokenizer) -> dict[str, object]:
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    if out_dir.exists():
        shutil.rmtree(out_dir)
    (out_dir / "onnx").mkdir(parents=True)
    (out_dir / "1_Pooling").mkdir()

    config = BertConfig(
        vocab_size=tok.get_vocab_size(),
        hidden_size=ENC_HIDDEN,
        num_hidden_layers=ENC_LAYERS,
        num_attention_heads=ENC_HEADS,
        intermediate_size=ENC_INTERMEDIATE,
        max_position_embeddings=ENC_MAX_SEQ,
        type_vocab_size=2,
        pad_token_id=0,
        architectures=["BertModel"],
    )
    config._attn_implementation = "eager"
    torch.manual_seed(SEED + 1)
    bert = BertModel(config, add_pooling_layer=False).eval()
    wrapped = _LastHidden(bert).eval()

    batch = tok.encode_batch(["hello world", "a longer sentence for the export"])
    width = max(len(e.ids) for e in batch)
    ids = torch.tensor([e.ids + [0] * (width - len(e.ids)) for e in batch], dtype=torch.int64)
    mask = torch.tensor(
        [[1] * len(e.ids) + [0] * (width - len(e.ids)) for e in batch], dtype=torch.int64
    )
    types = torch.zeros_like(ids)
    axes = {0: "batch_size", 1: "sequence_length"}
    torch.onnx.export(
        wrapped,
        (ids, mask, types),
        str(out_dir / "onnx" / "model.onnx"),
        input_names=["input_ids", "attention_mask", "token_type_ids"],
        output_names=["last_hidden_state"],
        dynamic_axes={
            "input_ids": axes,
            "attention_mask": axes,
            "token_type_ids": axes,
            "last_hidden_state": axes,
        },
        opset_version=17,
        do_constant_folding=True,
        dynamo=False,
    )

    config.save_pretrained(out_dir)
    hf_tok = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        sep_token="[SEP]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        mask_token="[MASK]",
        model_max_length=ENC_MAX_SEQ,
        do_lower_case=True,
        clean_up_tokenization_spaces=False,
    )
    hf_tok.save_pretrained(out_dir)
    tc = {
        "clean_up_tokenization_spaces": False,
        "cls_token": "[CLS]",
        "do_basic_tokenize": True,
        "do_lower_case": True,
        "mask_token": "[MASK]",
        "model_max_length": ENC_MAX_SEQ,
        "never_split": None,
        "pad_token": "[PAD]",
        "sep_token": "[SEP]",
        "strip_accents": None,
        "tokenize_chinese_chars": True,
        "tokenizer_class": "BertTokenizer",
        "unk_token": "[UNK]",
    }
    (out_dir / "tokenizer_config.json").write_text(json.dumps(tc, indent=2) + "\n")
    for extra in ("special_tokens_map.json",):
        (out_dir / extra).unlink(missing_ok=True)

    def dump(path: Path, obj: object) -> None:
        path.write_text(json.dumps(obj, indent=2) + "\n")

    dump(
        out_dir / "modules.json",
        [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {
                "idx": 1,
                "name": "1",
                "path": "1_Pooling",
                "type": "sentence_transformers.models.Pooling",
            },
            {
                "idx": 2,
                "name": "2",
                "path": "2_Normalize",
                "type": "sentence_transformers.models.Normalize",
            },
        ],
    )
    dump(
        out_dir / "1_Pooling" / "config.json",
        {
            "word_embedding_dimension": ENC_HIDDEN,
            "pooling_mode_cls_token": False,
            "pooling_mode_mean_tokens": True,
            "pooling_mode_max_tokens": False,
            "pooling_mode_mean_sqrt_len_tokens": False,
            "pooling_mode_weightedmean_tokens": False,
            "pooling_mode_lasttoken": False,
            "include_prompt": True,
        },
    )
    dump(
        out_dir / "sentence_bert_config.json",
        {"max_seq_length": ENC_MAX_SEQ, "do_lower_case": False},
    )
    dump(
        out_dir / "config_sentence_transformers.json",
        {"prompts": {}, "default_prompt_name": None, "similarity_fn_name": "cosine"},
    )

    # Reference: torch last_hidden_state -> mean over attended tokens -> L2 normalize.
    embeddings = []
    with torch.no_grad():
        for sentence in REFERENCE_SENTENCES:
            enc = tok.encode(sentence)
            i = torch.tensor([enc.ids])
            m = torch.ones_like(i)
            hidden = wrapped(i, m, torch.zeros_like(i))[0]
            pooled = hidden.mean(dim=0)
            pooled = pooled / pooled.norm()
            embeddings.append([round(float(x), 6) for x in pooled])
    return {
        "sentences": REFERENCE_SENTENCES,
        "input_ids": [tok.encode(s).ids for s in REFERENCE_SENTENCES],
        "embeddings_mean_normalized": embeddings,
    }


# --------------------------------------------------------------------------- main


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_readme(out: Path) -> None:
    rows = []
    for path in sorted(p for p in out.rglob("*") if p.is_file() and p.name != "README.md"):
        rel = path.relative_to(out).as_posix()
        rows.append(f"| `{rel}` | {path.stat().st_size} | `{sha256(path)[:16]}` |")
    pkgs = [
        "torch",
        "transformers",
        "tokenizers",
        "onnx",
        "onnx-ir",
        "onnxruntime",
        "onnxruntime-genai",
        "numpy",
    ]
    versions = ", ".join(f"{p} {version(p)}" for p in pkgs)
    chat_vocab = Tokenizer.from_file(str(out / "tiny-chat-int4/tokenizer.json")).get_vocab_size()
    enc_vocab = Tokenizer.from_file(str(out / "tiny-encoder/tokenizer.json")).get_vocab_size()
    text = (
        f"""# Tiny ONNX test models

Generated by `tools/make_onnx_fixtures.py`; do not edit by hand. Random weights
(seed {SEED}), tokenizers trained offline on a few lines of English in the script, so
the models produce meaningless but deterministic text and embeddings.

Regenerate from the repository root:

    python3.11 -m venv .venv-fixtures \\
        && .venv-fixtures/bin/pip install -r tools/onnx-fixtures-requirements.txt \\
        && .venv-fixtures/bin/python tools/make_onnx_fixtures.py

Built with: Python {sys.version.split()[0]}, {versions}.

## tiny-chat-int4/

A LlamaForCausalLM (hidden {CHAT_HIDDEN}, {CHAT_LAYERS} layers, {CHAT_HEADS} attention heads,
{CHAT_KV_HEADS} KV heads, intermediate {CHAT_INTERMEDIATE}, context {CHAT_CONTEXT}, untied
embeddings), converted by the ONNX Runtime GenAI model builder:

    python -m onnxruntime_genai.models.builder -i <hf checkpoint> -o tiny-chat-int4 -p int4 -e cpu

The MatMuls are MatMulNBits (4-bit, block 32); the embedding Gather stays fp32. Load with
`onnxruntime_genai.Model("tests/fixtures/onnx/tiny-chat-int4")`.

Tokenizer: byte-level BPE (GPT-2 pre-tokenizer), vocab {chat_vocab}, special tokens
`<|endoftext|>` = 0 (bos, pad, eos), `<|im_start|>` = 1, `<|im_end|>` = 2 (eos).
`genai_config.json` has `eos_token_id: [2, 0]`, `context_length: {CHAT_CONTEXT}`.
ChatML chat template (`<|im_start|>role\\n...<|im_end|>\\n`, `add_generation_prompt`
appends `<|im_start|>assistant\\n`) in `tokenizer_config.json` (`chat_template`) and
`chat_template.jinja`.

## tiny-chat-fp32/

The same checkpoint built with `-p fp32` (plain MatMul), for comparison.

## tiny-encoder/

A sentence-transformers layout: BertModel (hidden {ENC_HIDDEN}, {ENC_LAYERS} layers,
{ENC_HEADS} heads, intermediate {ENC_INTERMEDIATE}, max positions {ENC_MAX_SEQ}) exported with
`torch.onnx.export` (opset 17) to `onnx/model.onnx`: inputs `input_ids`, `attention_mask`,
`token_type_ids` (int64, [batch_size, sequence_length]), output `last_hidden_state`
(float32, [batch, seq, {ENC_HIDDEN}]).
`modules.json`: Transformer, `1_Pooling` (mean tokens), `2_Normalize` (no folder; it
has no files). WordPiece tokenizer (lowercasing, vocab {enc_vocab}, `[PAD]` 0, `[UNK]` 1,
`[CLS]` 2, `[SEP]` 3, `[MASK]` 4), `max_seq_length` {ENC_MAX_SEQ}.

## reference.json

Computed with torch from the HF models: `chat.greedy_ids_hf_fp32` are the 20 greedy
tokens after `chat.prompt` (argmax over full recomputation, no KV cache);
`encoder.embeddings_mean_normalized` are mean-pooled, L2-normalized embeddings of
`encoder.sentences` (rounded to 6 decimals).

## Notes on the build

- The builder (onnxruntime-genai 0.18.0) imports `onnx_ir`, which the wheel does not
  declare: it is pinned in the requirements. `python -m onnxruntime_genai.models.builder
  --help` crashes (a `%` in its help text); the flags are `-m/-i/-o/-p/-e/-c/--extra_options`.
- It took hidden 64 / head size 16 / 2 layers as they are (MatMulNBits block 32 divides
  every K: 64 and 256). It writes the tokenizer with transformers' `save_pretrained`,
  which in transformers 5 names the class `TokenizersBackend`; the script rewrites
  `tokenizer_config.json` with `PreTrainedTokenizerFast` and pins `eos_token_id`,
  `bos_token_id`, `pad_token_id` and `context_length` in `genai_config.json`.
- The WordPiece vocabulary is counted, not trained: tokenizers' WordPieceTrainer gave
  a different vocabulary on every run.
- Two runs write byte-identical files (checked with the sha256 column below).

## Files

| file | bytes | sha256 (first 16) |
| --- | ---: | --- |
"""
        + "\n".join(rows)
        + "\n"
    )
    (out / "README.md").write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=REPO / "tests" / "fixtures" / "onnx")
    parser.add_argument("--keep-work", action="store_true")
    args = parser.parse_args()
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    seed_everything()

    work = Path(tempfile.mkdtemp(prefix="onnx-fixtures-"))
    try:
        bpe = build_bpe_tokenizer()
        hf_dir = work / "hf-tiny-chat"
        write_hf_chat_checkpoint(hf_dir, bpe)
        for precision in ("int4", "fp32"):
            dest = out / f"tiny-chat-{precision}"
            cache = work / f"cache-{precision}"
            cache.mkdir()
            run_builder(hf_dir, dest, precision, cache)
            finish_chat_folder(dest, bpe)
        chat_ref = hf_greedy_reference(hf_dir, bpe)

        wordpiece = build_wordpiece_tokenizer()
        enc_ref = write_encoder(out / "tiny-encoder", wordpiece)

        (out / "reference.json").write_text(
            json.dumps({"chat": chat_ref, "encoder": enc_ref}, indent=1) + "\n"
        )
        write_readme(out)
    finally:
        if args.keep_work:
            print(f"work folder kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"wrote {out} ({total} bytes)")


if __name__ == "__main__":
    main()
