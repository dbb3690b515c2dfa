"""Model files that lie: metadata that contradicts the tensor table or itself is refused
before the file enters the store, with a GGUFError naming the contradiction."""

from __future__ import annotations

import struct
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appliance.store import GGUFError
from appliance.store.gguf_meta import read_gguf_info
from appliance.tiny_model import TinyModelSpec, write_tiny_gguf
from tests.hubstub import HubStub
from tests.store.test_store import make_store

SMALL = TinyModelSpec(n_embd=32, n_ff=64, n_merged_words=40)  # 2 layers, 4 heads, 2 KV heads


@pytest.fixture(scope="module")
def valid(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return write_tiny_gguf(tmp_path_factory.mktemp("lies") / "ok.gguf", SMALL).read_bytes()


def _key_at(data: bytes, key: str) -> int:
    """Offset of the value of metadata `key` (after its length, name and type)."""
    raw = key.encode()
    at = data.index(struct.pack("<Q", len(raw)) + raw)
    return at + 8 + len(raw) + 4


def set_u32(data: bytes, key: str, value: int) -> bytes:
    at = _key_at(data, key)
    (vtype,) = struct.unpack_from("<I", data, at - 4)
    assert vtype == 4, f"{key} is not a uint32"
    return data[:at] + struct.pack("<I", value) + data[at + 4 :]


def set_architecture(data: bytes, arch: str) -> bytes:
    """A tiny llama GGUF as one of `arch` (as long as "llama"): its name and its keys."""
    assert len(arch) == len("llama")
    at = _key_at(data, "general.architecture")
    assert data[at : at + 13] == struct.pack("<Q", 5) + b"llama"
    data = data[:at] + struct.pack("<Q", 5) + arch.encode() + data[at + 13 :]
    return data.replace(b"llama.", arch.encode() + b".")


def rename(data: bytes, old: str, new: str) -> bytes:
    assert len(old) == len(new)
    return data.replace(old.encode(), new.encode())


def refused(tmp_path: Path, data: bytes, match: str) -> str:
    p = tmp_path / "lie.gguf"
    p.write_bytes(data)
    with pytest.raises(GGUFError, match=match) as ei:
        read_gguf_info(p)
    return str(ei.value)


def test_the_valid_file_passes(tmp_path: Path, valid: bytes) -> None:
    p = tmp_path / "ok.gguf"
    p.write_bytes(valid)
    info = read_gguf_info(p)
    assert (info.block_count, info.embedding_length, info.head_count) == (2, 32, 4)


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (
            lambda d: set_u32(d, "llama.block_count", 3),
            r"^inconsistent GGUF: llama\.block_count is 3 but the file has no blk\.2\.\* tensors$",
        ),
        (
            lambda d: set_u32(d, "llama.block_count", 1),
            r"llama\.block_count is 1 but the file has blk\.1\.\* tensors",
        ),
        (
            lambda d: set_u32(d, "llama.block_count", 40000),
            r"llama\.block_count is 40000 but the file has no blk\.2\.\* tensors",
        ),
        (  # a layer in the middle of the table is absent: blk.0 renamed away
            lambda d: rename(d, "blk.0.", "blx.0."),
            r"llama\.block_count is 2 but the file has no blk\.0\.\* tensors",
        ),
        (  # every layer renamed away
            lambda d: rename(rename(d, "blk.0.", "blx.0."), "blk.1.", "blx.1."),
            r"llama\.block_count is 2 but the file has no blk\.N tensors",
        ),
        (
            lambda d: set_u32(d, "llama.embedding_length", 16),
            r"llama\.embedding_length is 16 but token_embd\.weight is 32 wide",
        ),
        (
            lambda d: set_u32(d, "llama.attention.head_count", 5),
            r"llama\.attention\.head_count \(5\) does not divide llama\.embedding_length \(32\)",
        ),
        (
            lambda d: set_u32(d, "llama.attention.head_count_kv", 3),
            r"head_count_kv \(3\) does not divide llama\.attention\.head_count \(4\)",
        ),
        (
            lambda d: set_u32(d, "llama.attention.head_count_kv", 8),
            r"head_count_kv \(8\) does not divide",
        ),
        (  # llama.cpp sizes attn_q by the heads: it refused the load, not the import
            lambda d: set_u32(d, "llama.attention.head_count", 0),
            r"^inconsistent GGUF: llama\.attention\.head_count is 0 but the layer has "
            r"attention weights \(blk\.0\.attn_q\.weight\)$",
        ),
        (
            lambda d: set_u32(d, "llama.context_length", 0xFFFFFFFF),
            r"llama\.context_length is 4294967295 \(expected 1 to 67108864\)",
        ),
        (
            lambda d: set_u32(d, "llama.context_length", 0),
            r"llama\.context_length is 0 \(expected 1 to",
        ),
        (
            lambda d: set_u32(d, "llama.embedding_length", 1 << 24),
            r"llama\.embedding_length is 16777216 \(expected 1 to 1048576\)",
        ),
    ],
    ids=[
        "more-blocks",
        "fewer-blocks",
        "absurd-blocks",
        "hole",
        "no-blocks",
        "embd-width",
        "heads",
        "kv-heads",
        "kv-above-heads",
        "zero-heads",
        "huge-context",
        "zero-context",
        "huge-embd",
    ],
)
def test_contradictions_are_refused_by_name(
    tmp_path: Path, valid: bytes, mutate: object, match: str
) -> None:
    msg = refused(tmp_path, mutate(valid), match)  # type: ignore[operator]
    assert msg.startswith("inconsistent GGUF: ")
    assert "memory" not in msg


def test_per_layer_head_counts_are_checked_per_layer(tmp_path: Path) -> None:
    from tests.store.test_gguf_meta import F32, build, kv_raw, kv_u32, tinfo

    def heads(*values: int) -> bytes:
        arr = struct.pack("<IQ", 4, len(values)) + struct.pack(f"<{len(values)}I", *values)
        return kv_raw("llama.attention.head_count", 9, arr)

    t = [tinfo("blk.0.w", [4], F32, 0), tinfo("blk.1.w", [4], F32, 32)]
    ok = [kv_u32("llama.block_count", 2), kv_u32("llama.embedding_length", 64), heads(8, 0)]
    p = tmp_path / "ok.gguf"
    p.write_bytes(build(ok, t, data_len=64))
    assert read_gguf_info(p).head_count == 8  # a layer without attention (0 heads) is fine

    bad = [kv_u32("llama.block_count", 2), kv_u32("llama.embedding_length", 64), heads(8, 6)]
    refused(tmp_path, build(bad, t, data_len=64), r"head_count in layer 1 \(6\) does not divide")
    # A layer with 0 heads is one without attention: not one with attention weights.
    attention = [tinfo("blk.0.w", [4], F32, 0), tinfo("blk.1.attn_qkv.weight", [4], F32, 32)]
    refused(
        tmp_path,
        build(ok, attention, data_len=64),
        r"head_count in layer 1 is 0 but the layer has attention weights \(blk\.1\.attn_qkv",
    )
    short = [kv_u32("llama.block_count", 2), heads(8)]
    refused(tmp_path, build(short, t, data_len=64), r"head_count has 1 values but block_count is 2")
    # An explicit head size (Gemma: 16 heads x 256 > 3072) frees heads from dividing.
    gemma = [
        kv_u32("llama.block_count", 2),
        kv_u32("llama.embedding_length", 3072 // 64),
        kv_u32("llama.attention.head_count", 7),
        kv_u32("llama.attention.key_length", 256),
    ]
    p.write_bytes(build(gemma, t, data_len=64))
    assert read_gguf_info(p).key_length == 256


def test_attention_free_layers_have_no_heads(tmp_path: Path) -> None:
    """Mamba (and RWKV) write head_count 0, as their converters do: not a contradiction."""
    from appliance.tiny_model import write_tiny_mamba_gguf

    assert read_gguf_info(write_tiny_mamba_gguf(tmp_path / "mamba.gguf")).head_count == 0


def test_encoder_decoder_layers_count_against_their_own_keys(tmp_path: Path) -> None:
    from tests.store.test_gguf_meta import F32, build, kv_str, kv_u32, tinfo

    names = ["enc.blk.0.w", "enc.blk.1.w", "dec.blk.0.w"]
    t = [tinfo(n, [4], F32, 32 * i) for i, n in enumerate(names)]
    kvs = [
        kv_str("general.architecture", "t5"),
        kv_u32("t5.block_count", 2),
        kv_u32("t5.decoder_block_count", 1),
    ]
    p = tmp_path / "t5.gguf"
    p.write_bytes(build(kvs, t, data_len=96, arch=False))
    assert read_gguf_info(p).block_count == 2
    kvs[2] = kv_u32("t5.decoder_block_count", 2)
    refused(
        tmp_path,
        build(kvs, t, data_len=96, arch=False),
        r"t5\.decoder_block_count is 2 but the file has no dec\.blk\.1\.\* tensors",
    )


def test_messages_never_quote_file_bytes(tmp_path: Path, valid: bytes) -> None:
    msg = refused(tmp_path, b"\x1b[2J\x00\xff" + valid[6:], "bad magic")
    assert "bad magic 0x1b5b324a" in msg and "\x1b" not in msg
    # A tensor name full of control bytes is shown as its length and a short hex prefix.
    evil = b"\x1b]0;pwned\x07" + bytes(range(9))  # as long as the names it replaces
    twice = valid.replace(b"blk.0.ffn_up.weight", evil).replace(b"blk.1.ffn_up.weight", evil)
    msg = refused(tmp_path, twice, r"duplicate tensor name <19-byte name 1b5d303b70776e65\.\.\.>$")
    assert msg.isprintable()
    dup = valid.replace(b"blk.1.attn_k.weight", b"blk.1.attn_q.weight")
    refused(tmp_path, dup, r"duplicate tensor name blk\.1\.attn_q\.weight")
    llama = struct.pack("<Q", 5) + b"llama"
    arch = valid.replace(llama, struct.pack("<Q", 5) + b"ll\x1bma")
    msg = refused(tmp_path, arch, r"general\.architecture <5-byte name 6c6c1b6d61> is not")
    assert msg.isprintable()


def test_a_lying_file_never_enters_the_store(tmp_path: Path, valid: bytes, hub: HubStub) -> None:
    lie = tmp_path / "lie.gguf"
    lie.write_bytes(set_u32(valid, "llama.block_count", 22))
    store = make_store(tmp_path / "s", hub)
    with pytest.raises(GGUFError, match=r"block_count is 22 but the file has no blk\.2\.\*"):
        store.import_file(lie, "lie")
    hub.add_file("org/liar", "lie.gguf", lie.read_bytes())
    with pytest.raises(GGUFError, match=r"lie\.gguf from org/liar is not a usable GGUF: incons"):
        store.pull("hf://org/liar/lie.gguf")
    assert store.list() == []
    assert [p for p in store.root.rglob("*") if p.is_file() and "locks" not in p.parts] == []


# -- fuzz -------------------------------------------------------------------------------------

_FUZZ_DIR = tempfile.TemporaryDirectory(prefix="gguf-fuzz-")
_FUZZ_BASE = write_tiny_gguf(Path(_FUZZ_DIR.name) / "base.gguf", SMALL).read_bytes()
_HEADER = read_gguf_info(Path(_FUZZ_DIR.name) / "base.gguf").data_offset + 64

_u64 = st.one_of(
    st.sampled_from([0, 1, 2, 31, 32, 2**31, 2**32 - 1, 2**63, 2**64 - 1]),
    st.integers(0, 2**64 - 1),
)
_edit = st.one_of(
    st.tuples(st.just("byte"), st.integers(0, _HEADER - 1), st.integers(0, 255)),
    st.tuples(st.just("u64"), st.integers(0, _HEADER - 8), _u64),
    st.tuples(st.just("u32"), st.integers(0, _HEADER - 4), st.integers(0, 2**32 - 1)),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(edits=st.lists(_edit, min_size=1, max_size=8), cut=st.none() | st.integers(0, _HEADER))
def test_fuzz_mutations_raise_only_gguf_errors(
    edits: list[tuple[str, int, int]], cut: int | None
) -> None:
    data = bytearray(_FUZZ_BASE)
    for kind, at, value in edits:
        if kind == "byte":
            data[at] = value
        elif kind == "u64":
            data[at : at + 8] = struct.pack("<Q", value)
        else:
            data[at : at + 4] = struct.pack("<I", value)
    if cut is not None:
        del data[cut:]
    path = Path(_FUZZ_DIR.name) / "mutant.gguf"
    path.write_bytes(bytes(data))
    try:
        read_gguf_info(path)
    except GGUFError as e:
        msg = str(e)
        assert msg.isprintable() and len(msg) < 600, msg


def test_vocoder_layout_is_not_held_to_blk_layers(tmp_path: Path) -> None:
    from tests.store.test_gguf_meta import F32, build, kv_str, kv_u32, tinfo

    kvs = [
        kv_str("general.architecture", "wavtokenizer-dec"),
        kv_u32("wavtokenizer-dec.block_count", 12),
        kv_u32("wavtokenizer-dec.embedding_length", 1280),
    ]
    t = [tinfo("token_embd.weight", [4, 2], F32, 0), tinfo("convnext.0.dw.weight", [4], F32, 32)]
    p = tmp_path / "vocoder.gguf"
    p.write_bytes(build(kvs, t, data_len=64, arch=False))
    assert read_gguf_info(p).block_count == 12
