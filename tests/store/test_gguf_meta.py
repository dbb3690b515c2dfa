from __future__ import annotations

import struct
import time
import tracemalloc
from collections.abc import Callable, Sequence
from pathlib import Path

import gguf
import pytest

from appliance.store.gguf_meta import GGUFError, read_gguf_info, shard_info
from appliance.tiny_model import CHATML_TEMPLATE

# -- a minimal raw GGUF writer, for files no sane writer would produce ---------------------

E = "<"


def _s(b: bytes | str, endian: str = E) -> bytes:
    raw = b.encode() if isinstance(b, str) else b
    return struct.pack(endian + "Q", len(raw)) + raw


def kv_str(key: str, value: str, endian: str = E) -> bytes:
    return _s(key, endian) + struct.pack(endian + "I", 8) + _s(value, endian)


def kv_u32(key: str, value: int, endian: str = E) -> bytes:
    return _s(key, endian) + struct.pack(endian + "II", 4, value)


def kv_raw(key: str, vtype: int, payload: bytes) -> bytes:
    return _s(key) + struct.pack("<I", vtype) + payload


def tinfo(name: str, dims: Sequence[int], ttype: int, offset: int, endian: str = E) -> bytes:
    out = _s(name, endian) + struct.pack(endian + "I", len(dims))
    out += b"".join(struct.pack(endian + "Q", d) for d in dims)
    return out + struct.pack(endian + "IQ", ttype, offset)


def build(
    kvs: Sequence[bytes] = (),
    tensors: Sequence[bytes] = (),
    data_len: int = 0,
    *,
    version: int = 3,
    n_tensors: int | None = None,
    n_kv: int | None = None,
    alignment: int = 32,
    endian: str = E,
    arch: bool = True,
) -> bytes:
    kv_list = ([kv_str("general.architecture", "llama", endian)] if arch else []) + list(kvs)
    head = b"GGUF" + struct.pack(
        endian + "IQQ",
        version,
        len(tensors) if n_tensors is None else n_tensors,
        len(kv_list) if n_kv is None else n_kv,
    )
    body = head + b"".join(kv_list) + b"".join(tensors)
    body += b"\0" * (-len(body) % alignment)
    return body + b"\0" * data_len


F32 = int(gguf.GGMLQuantizationType.F32)
Q4_0 = int(gguf.GGMLQuantizationType.Q4_0)
Q8_0 = int(gguf.GGMLQuantizationType.Q8_0)


def write(tmp_path: Path, data: bytes, name: str = "x.gguf") -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


def bounded(fn: Callable[[], object]) -> None:
    """Run `fn` expecting GGUFError; fail if it was slow or allocated much."""
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        with pytest.raises(GGUFError):
            fn()
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert time.perf_counter() - t0 < 1.0
    assert peak < 8 << 20, f"peak allocation {peak} bytes"


# -- real files -----------------------------------------------------------------------------


def test_reads_tiny_chat_model(tiny_gguf: Path) -> None:
    info = read_gguf_info(tiny_gguf)
    ref = gguf.GGUFReader(tiny_gguf)  # trusted here: we wrote the file ourselves
    assert info.version == 3
    assert info.architecture == "llama"
    assert info.name == "tiny-chat"
    assert info.quantization == "F32"
    assert info.context_length == 2048
    assert info.embedding_length == 64
    assert info.block_count == 2
    assert info.head_count == 4
    assert info.head_count_kv == 2
    assert info.key_length == info.value_length == 16
    assert info.feed_forward_length == 128
    assert info.chat_template == CHATML_TEMPLATE
    assert (info.bos_token_id, info.bos_token) == (1, "<s>")
    assert (info.eos_token_id, info.eos_token) == (4, "<|im_end|>")
    assert info.pooling_type is None and info.is_embedding is False
    assert info.tensor_count == len(ref.tensors) == 21
    assert info.tensor_bytes == sum(int(t.n_bytes) for t in ref.tensors)
    assert info.n_params == sum(int(t.n_elements) for t in ref.tensors)
    assert info.block_tensor_bytes == sum(
        int(t.n_bytes) for t in ref.tensors if t.name.startswith("blk.")
    )
    assert info.data_offset == ref.data_offset
    assert info.file_size == tiny_gguf.stat().st_size
    n_tokens = len(ref.fields["tokenizer.ggml.tokens"].data)
    assert info.vocab_size == n_tokens
    assert info.metadata["tokenizer.ggml.tokens"] == f"[{n_tokens} x string]"
    assert info.metadata["llama.attention.head_count"] == 4
    assert info.metadata["tokenizer.ggml.add_bos_token"] is True
    assert isinstance(info.metadata["llama.rope.freq_base"], float)


def test_reads_embedding_model(tiny_embed_gguf: Path) -> None:
    info = read_gguf_info(tiny_embed_gguf)
    assert info.pooling_type == int(gguf.PoolingType.MEAN)
    assert info.is_embedding
    assert info.chat_template is None
    assert info.eos_token == "</s>"


def test_quantization_from_file_type_and_from_tensors(tmp_path: Path) -> None:
    t = [tinfo("blk.0.w", [32, 2], Q8_0, 0)]
    p = write(tmp_path, build([kv_u32("general.file_type", 15)], t, data_len=68))
    assert read_gguf_info(p).quantization == "Q4_K_M"
    p = write(tmp_path, build([], t, data_len=68), "b.gguf")
    info = read_gguf_info(p)
    assert info.quantization == "Q8_0"
    assert info.tensor_bytes == 68 and info.n_params == 64
    p = write(tmp_path, build([kv_u32("general.file_type", 9999)], t, data_len=68), "c.gguf")
    assert read_gguf_info(p).quantization == "Q8_0"


def test_embedding_architecture_without_pooling(tmp_path: Path) -> None:
    data = build([kv_str("general.architecture", "nomic-bert")], arch=False)
    assert read_gguf_info(write(tmp_path, data)).is_embedding


def test_head_dims_and_per_layer_head_counts(tmp_path: Path) -> None:
    arr = struct.pack("<IQ", 4, 3) + struct.pack("<3I", 8, 16, 8)
    kvs = [
        kv_u32("llama.embedding_length", 256),
        kv_raw("llama.attention.head_count", 9, arr),
        kv_u32("llama.attention.key_length", 48),
    ]
    info = read_gguf_info(write(tmp_path, build(kvs)))
    assert info.head_count == 16 and info.head_count_kv == 16
    assert info.key_length == 48 and info.value_length == 16
    assert info.metadata["llama.attention.head_count"] == "[3 x uint32]"


def test_big_endian_file(tmp_path: Path) -> None:
    t = [tinfo("blk.0.w", [4], F32, 0, endian=">")]
    data = build([kv_u32("llama.block_count", 1, endian=">")], t, 16, endian=">")
    info = read_gguf_info(write(tmp_path, data))
    assert info.block_count == 1 and info.tensor_bytes == 16


def test_version_2_accepted(tmp_path: Path) -> None:
    assert read_gguf_info(write(tmp_path, build(version=2))).version == 2


# -- hostile files --------------------------------------------------------------------------


def test_bad_magic(tmp_path: Path) -> None:
    p = write(tmp_path, b"PK\x03\x04" + b"\0" * 100)
    with pytest.raises(GGUFError, match=r"not a GGUF file: bad magic 0x504b0304 "):
        read_gguf_info(p)


def test_flipped_magic_on_real_file(tmp_path: Path, tiny_bytes: bytes) -> None:
    p = write(tmp_path, b"FUGG" + tiny_bytes[4:])
    with pytest.raises(GGUFError, match="bad magic"):
        read_gguf_info(p)


def test_old_ggml_formats_and_tiny_files(tmp_path: Path) -> None:
    with pytest.raises(GGUFError, match="old GGJT format"):
        read_gguf_info(write(tmp_path, b"ggjt" + b"\0" * 64))
    with pytest.raises(GGUFError, match="only 0 bytes"):
        read_gguf_info(write(tmp_path, b"", "empty.gguf"))
    with pytest.raises(GGUFError, match="truncated GGUF"):
        read_gguf_info(write(tmp_path, b"GGUF\x03\x00", "six.gguf"))


def test_not_a_file(tmp_path: Path) -> None:
    with pytest.raises(GGUFError, match="no such file"):
        read_gguf_info(tmp_path / "missing.gguf")
    with pytest.raises(GGUFError, match="not a regular file"):
        read_gguf_info(tmp_path)


@pytest.mark.parametrize("version", [0, 1, 4, 0xFFFFFFFF])
def test_unsupported_versions(tmp_path: Path, version: int) -> None:
    with pytest.raises(GGUFError, match=r"unsupported GGUF version .*supported: 2, 3"):
        read_gguf_info(write(tmp_path, build(version=version)))


def test_truncated_real_file_everywhere(tmp_path: Path, tiny_bytes: bytes) -> None:
    info_offset = read_gguf_info(write(tmp_path, tiny_bytes, "ok.gguf")).data_offset
    cuts = [10, 23, 24, 40, 200, 5000, info_offset - 1, info_offset + 100, len(tiny_bytes) - 1]
    for cut in cuts:
        p = write(tmp_path, tiny_bytes[:cut], f"cut{cut}.gguf")
        bounded(lambda p=p: read_gguf_info(p))  # type: ignore[misc]


def test_truncated_tensor_data_message(tmp_path: Path, tiny_bytes: bytes) -> None:
    p = write(tmp_path, tiny_bytes[:-1])
    n = len(tiny_bytes)
    with pytest.raises(GGUFError) as ei:
        read_gguf_info(p)
    msg = str(ei.value)
    assert msg.startswith("truncated GGUF: tensor ")
    assert f"ends at byte {n} but the file has {n - 1} bytes" in msg


def test_huge_tensor_count(tmp_path: Path) -> None:
    p = write(tmp_path, build(n_tensors=2**63))
    bounded(lambda: read_gguf_info(p))
    with pytest.raises(GGUFError, match=r"claims 9223372036854775808 tensors"):
        read_gguf_info(p)


def test_huge_kv_count(tmp_path: Path) -> None:
    p = write(tmp_path, build(n_kv=2**40))
    bounded(lambda: read_gguf_info(p))
    with pytest.raises(GGUFError, match="metadata entries"):
        read_gguf_info(p)


def test_huge_key_length(tmp_path: Path) -> None:
    evil = struct.pack("<Q", 2**60) + b"general.name"
    p = write(tmp_path, build([evil], data_len=64))
    bounded(lambda: read_gguf_info(p))
    with pytest.raises(
        GGUFError,
        match=r"corrupt GGUF: key of metadata entry 1 .* claims 1152921504606846976 bytes",
    ):
        read_gguf_info(p)


def test_huge_string_value(tmp_path: Path) -> None:
    evil = _s("general.name") + struct.pack("<IQ", 8, 2**62) + b"abc"
    p = write(tmp_path, build([evil], data_len=64))
    bounded(lambda: read_gguf_info(p))
    with pytest.raises(GGUFError, match=r"string value of general\.name"):
        read_gguf_info(p)


def test_string_longer_than_file_but_under_cap(tmp_path: Path) -> None:
    evil = _s("general.name") + struct.pack("<IQ", 8, 1000) + b"abc"
    p = write(tmp_path, build([evil]))
    bounded(lambda: read_gguf_info(p))


def test_huge_array_lengths(tmp_path: Path) -> None:
    for i, (etype, count) in enumerate([(4, 2**61), (8, 2**40), (0, 10_000)]):
        evil = kv_raw("tokenizer.ggml.scores", 9, struct.pack("<IQ", etype, count))
        p = write(tmp_path, build([evil], data_len=64), f"a{i}.gguf")
        bounded(lambda p=p: read_gguf_info(p))  # type: ignore[misc]


def test_huge_token_string_inside_array(tmp_path: Path) -> None:
    payload = struct.pack("<IQ", 8, 2) + _s("<s>") + struct.pack("<Q", 2**50) + b"xx"
    p = write(tmp_path, build([kv_raw("tokenizer.ggml.tokens", 9, payload)], data_len=64))
    bounded(lambda: read_gguf_info(p))
    with pytest.raises(GGUFError, match=r"tokenizer.ggml.tokens\[1\]"):
        read_gguf_info(p)


def test_nested_array_and_unknown_types(tmp_path: Path) -> None:
    nested = kv_raw("x.nested", 9, struct.pack("<IQ", 9, 1))
    with pytest.raises(GGUFError, match="nested array"):
        read_gguf_info(write(tmp_path, build([nested], data_len=64), "n.gguf"))
    odd = kv_raw("x.odd", 99, b"\0" * 8)
    with pytest.raises(GGUFError, match="unknown value type 99"):
        read_gguf_info(write(tmp_path, build([odd], data_len=64), "o.gguf"))
    odd_elem = kv_raw("x.odd", 9, struct.pack("<IQ", 42, 1))
    with pytest.raises(GGUFError, match="unknown element type 42"):
        read_gguf_info(write(tmp_path, build([odd_elem], data_len=64), "e.gguf"))


def test_tensor_offset_past_end(tmp_path: Path) -> None:
    t = [tinfo("blk.0.attn_q.weight", [8], F32, 1 << 40)]
    p = write(tmp_path, build([], t, data_len=32))
    bounded(lambda: read_gguf_info(p))
    with pytest.raises(GGUFError, match=r"truncated GGUF: tensor blk.0.attn_q.weight ends at byte"):
        read_gguf_info(p)


def test_tensor_misaligned(tmp_path: Path) -> None:
    t = [tinfo("a", [4], F32, 0), tinfo("b", [4], F32, 20)]
    with pytest.raises(GGUFError, match="offset 20 is not aligned to 32"):
        read_gguf_info(write(tmp_path, build([], t, data_len=128)))


def test_tensor_overlap(tmp_path: Path) -> None:
    t = [tinfo("a", [16], F32, 0), tinfo("b", [4], F32, 32)]
    with pytest.raises(GGUFError, match="tensors a and b overlap"):
        read_gguf_info(write(tmp_path, build([], t, data_len=128)))


def test_tensor_unknown_type_dims_and_blocks(tmp_path: Path) -> None:
    cases = {
        "type": ([tinfo("a", [4], 999, 0)], "unknown ggml type 999"),
        "dims": ([tinfo("a", [1, 1, 1, 1, 1], F32, 0)], "5 dimensions"),
        "block": ([tinfo("a", [33], Q4_0, 0)], "not a multiple of the Q4_0 block size 32"),
        "shape": ([tinfo("a", [2**40, 2**40], F32, 0)], "absurd shape"),
        "dup": ([tinfo("a", [4], F32, 0), tinfo("a", [4], F32, 32)], "duplicate tensor name a"),
    }
    for key, (tensors, msg) in cases.items():
        p = write(tmp_path, build([], tensors, data_len=64), f"{key}.gguf")
        with pytest.raises(GGUFError, match=msg):
            read_gguf_info(p)


def test_bad_alignment_duplicate_key_missing_arch(tmp_path: Path) -> None:
    with pytest.raises(GGUFError, match="alignment 24 is not a power of two"):
        read_gguf_info(write(tmp_path, build([kv_u32("general.alignment", 24)]), "a.gguf"))
    dup = [kv_u32("llama.block_count", 1), kv_u32("llama.block_count", 2)]
    with pytest.raises(GGUFError, match=r"duplicate metadata key llama\.block_count"):
        read_gguf_info(write(tmp_path, build(dup), "d.gguf"))
    with pytest.raises(GGUFError, match=r"general\.architecture is missing"):
        read_gguf_info(write(tmp_path, build(arch=False), "m.gguf"))


def test_custom_alignment(tmp_path: Path) -> None:
    t = [tinfo("a", [4], F32, 0), tinfo("b", [4], F32, 64)]
    data = build([kv_u32("general.alignment", 64)], t, data_len=128, alignment=64)
    info = read_gguf_info(write(tmp_path, data))
    assert info.alignment == 64 and info.data_offset % 64 == 0


def test_shard_info() -> None:
    assert shard_info("Model-Q4_K_M-00001-of-00003.gguf") == (1, 3)
    assert shard_info("model-q4_k_m.gguf") is None


def test_large_string_arrays_cross_read_windows(tmp_path: Path) -> None:
    # > 1 MiB of tokens (several read windows) and a skipped array holding a 3 MiB string.
    tokens = [f"token-{i:07d}-" + "x" * (i % 50) for i in range(60_000)]
    merges = ["a b", "y" * (3 << 20), "c d"]
    payload = struct.pack("<IQ", 8, len(tokens)) + b"".join(_s(t) for t in tokens)
    kvs = [
        kv_raw(
            "tokenizer.ggml.merges", 9, struct.pack("<IQ", 8, 3) + b"".join(_s(m) for m in merges)
        ),
        kv_raw("tokenizer.ggml.tokens", 9, payload),
        kv_u32("tokenizer.ggml.eos_token_id", 59_999),
        kv_u32("tokenizer.ggml.bos_token_id", 31_337),
    ]
    t = [tinfo("w", [4], F32, 0)]
    p = write(tmp_path, build(kvs, t, data_len=16))
    info = read_gguf_info(p)
    assert info.vocab_size == 60_000
    assert info.eos_token == tokens[59_999] and info.bos_token == tokens[31_337]
    assert info.metadata["tokenizer.ggml.merges"] == "[3 x string]"
    assert info.tensor_bytes == 16
    data = p.read_bytes()
    for cut in (len(data) // 3, len(data) // 2, len(data) - 100):
        with pytest.raises(GGUFError, match="truncated GGUF"):
            read_gguf_info(write(tmp_path, data[:cut], "cut.gguf"))
