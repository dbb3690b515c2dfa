"""Write small ONNX protobuf files by hand: a graph's nodes and initializers, no weights
that mean anything. For the store's format checks (precision, sizes); models that must
run come from tests/fixtures/onnx."""

from __future__ import annotations

import json
from pathlib import Path


def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _int_field(number: int, value: int) -> bytes:
    return _varint(number << 3) + _varint(value)


def tensor(name: str, data_type: int, dims: list[int], raw: bytes = b"") -> bytes:
    body = _field(1, b"".join(_varint(d) for d in dims)) + _int_field(2, data_type)
    body += _field(8, name.encode()) + _field(9, raw)
    return body


def node(
    op: str, inputs: list[str], outputs: list[str], ints: dict[str, int] | None = None
) -> bytes:
    body = b"".join(_field(1, i.encode()) for i in inputs)
    body += b"".join(_field(2, o.encode()) for o in outputs)
    body += _field(4, op.encode())
    for key, value in (ints or {}).items():
        body += _field(5, _field(1, key.encode()) + _int_field(3, value) + _int_field(20, 2))
    return body


def model(nodes: list[bytes], initializers: list[bytes]) -> bytes:
    graph = b"".join(_field(1, n) for n in nodes) + b"".join(_field(5, t) for t in initializers)
    graph += (
        _field(2, b"g") + _field(11, _field(1, b"input_ids")) + _field(12, _field(1, b"logits"))
    )
    return _int_field(1, 9) + _field(7, graph)


def int4_decoder() -> bytes:
    """A MatMulNBits graph: K=64, N=128, block 32, as the genai builder writes it."""
    return model(
        [
            node("Gather", ["embed", "input_ids"], ["h"]),
            node(
                "MatMulNBits",
                ["h", "w_q", "w_scales"],
                ["logits"],
                {"K": 64, "N": 128, "bits": 4, "block_size": 32},
            ),
        ],
        [
            tensor("embed", 1, [100, 64], bytes(100 * 64 * 4)),
            tensor("w_q", 2, [128, 2, 16], bytes(128 * 2 * 16)),
            tensor("w_scales", 1, [256], bytes(256 * 4)),
        ],
    )


def write_genai_folder(folder: Path, onnx: bytes | None = None) -> Path:
    """A folder with the files of an onnxruntime-genai LLM (not runnable: for the store)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.onnx").write_bytes(int4_decoder() if onnx is None else onnx)
    config = {
        "model": {
            "type": "llama",
            "context_length": 2048,
            "vocab_size": 100,
            "bos_token_id": 1,
            "eos_token_id": [2, 3],
            "decoder": {
                "filename": "model.onnx",
                "head_size": 16,
                "hidden_size": 64,
                "num_attention_heads": 4,
                "num_key_value_heads": 2,
                "num_hidden_layers": 2,
            },
        },
        "search": {"max_length": 2048},
    }
    (folder / "genai_config.json").write_text(json.dumps(config))
    (folder / "tokenizer.json").write_text('{"version": "1.0"}')
    (folder / "tokenizer_config.json").write_text(
        json.dumps({"chat_template": "{{ messages[0]['content'] }}", "eos_token": "<|im_end|>"})
    )
    return folder
