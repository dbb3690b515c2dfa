"""A bounded, validating reader of GGUF headers.

We do not hand untrusted files to `gguf.GGUFReader`: it memory-maps the file and
builds numpy arrays whose sizes come from the file itself. This reader walks the
header with explicit bounds instead. Every count and length is checked against
the bytes that remain in the file and against a sane cap *before* anything is
allocated or read, numeric arrays are skipped with a seek, and every tensor's
data range is checked to lie inside the file, aligned and not overlapping.

Only `gguf`'s constant tables are used (type sizes and names).
"""

from __future__ import annotations

import itertools
import os
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, LlamaFileType

from appliance.store.errors import GGUFError
from appliance.store.layer_kinds import layer_kinds

__all__ = ["EMBEDDING_ARCHITECTURES", "GGUFError", "GGUFInfo", "read_gguf_info"]

SUPPORTED_VERSIONS = (2, 3)
DEFAULT_ALIGNMENT = 32
GGML_MAX_DIMS = 4

# Sanity caps, applied on top of "must fit in what is left of the file".
MAX_TENSORS = 1 << 20
MAX_KV = 1 << 20
MAX_KEY_BYTES = 1 << 16
MAX_STRING_BYTES = 64 << 20
MAX_ARRAY_LEN = 1 << 26
MAX_TENSOR_NAME_BYTES = 256
MAX_KEPT_INT_ARRAY = 4096  # small int arrays (per-layer head counts) are kept for lookups

# What a model's hyperparameters may claim at most. Far above any real model (10M-token
# contexts, 16k-wide embeddings, a few hundred layers) and far below what would make the
# memory estimate or the engine's allocations absurd.
MAX_CONTEXT_LENGTH = 1 << 26
MAX_EMBEDDING_LENGTH = 1 << 20
MAX_BLOCK_COUNT = 1 << 16
MAX_HEAD_COUNT = 1 << 16
MAX_HEAD_DIM = 1 << 16
_ARCH_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}")
_PRINTABLE_NAME_RE = re.compile(r"[\x21-\x7e]{1,96}")
# Per-layer tensors: `blk.N.*`, and `enc.blk.N.*` / `dec.blk.N.*` in encoder-decoders (T5).
# Architectures whose tensor table follows other rules (a vocoder's convnext.N layers and
# feature-width embeddings): their metadata is not held against it.
_OWN_TENSOR_LAYOUT = frozenset({"wavtokenizer-dec"})
_LAYER_RE = re.compile(r"(enc\.|dec\.)?blk\.(\d{1,9})\.")
# A layer's attention query weights: llama.cpp sizes them by the layer's head count.
_ATTENTION_RE = re.compile(r"(?:enc\.|dec\.)?blk\.(\d{1,9})\.attn_(?:q|qkv)\.weight")

# Architectures that are embedding encoders even when no pooling type is written.
EMBEDDING_ARCHITECTURES = frozenset(
    {
        "bert",
        "modern-bert",
        "nomic-bert",
        "nomic-bert-moe",
        "neo-bert",
        "jina-bert-v2",
        "jina-bert-v3",
        "eurobert",
        "gemma-embedding",
        "t5encoder",
        "llama-embed",
    }
)

# GGUF value types (gguf.GGUFValueType), with their fixed sizes and struct codes.
_T_UINT8, _T_INT8, _T_UINT16, _T_INT16, _T_UINT32, _T_INT32 = 0, 1, 2, 3, 4, 5
_T_FLOAT32, _T_BOOL, _T_STRING, _T_ARRAY = 6, 7, 8, 9
_T_UINT64, _T_INT64, _T_FLOAT64 = 10, 11, 12
_SCALAR_CODES: dict[int, str] = {
    _T_UINT8: "B",
    _T_INT8: "b",
    _T_UINT16: "H",
    _T_INT16: "h",
    _T_UINT32: "I",
    _T_INT32: "i",
    _T_FLOAT32: "f",
    _T_BOOL: "?",
    _T_UINT64: "Q",
    _T_INT64: "q",
    _T_FLOAT64: "d",
}
_TYPE_NAMES: dict[int, str] = {
    _T_UINT8: "uint8",
    _T_INT8: "int8",
    _T_UINT16: "uint16",
    _T_INT16: "int16",
    _T_UINT32: "uint32",
    _T_INT32: "int32",
    _T_FLOAT32: "float32",
    _T_BOOL: "bool",
    _T_STRING: "string",
    _T_ARRAY: "array",
    _T_UINT64: "uint64",
    _T_INT64: "int64",
    _T_FLOAT64: "float64",
}
_INT_TYPES = frozenset(
    {_T_UINT8, _T_INT8, _T_UINT16, _T_INT16, _T_UINT32, _T_INT32, _T_UINT64, _T_INT64}
)
_OLD_MAGICS = {b"ggml": "GGML", b"ggmf": "GGMF", b"ggjt": "GGJT", b"lmgg": "GGML", b"fmgg": "GGMF"}
_SHARD_RE = re.compile(r"-(\d{5})-of-(\d{5})\.gguf$", re.IGNORECASE)

MetaValue = str | int | float | bool


def _shown(name: str) -> str:
    """A key or tensor name as an error shows it: the name when it is short printable
    ASCII, else its length and at most 8 bytes in hex; never raw file bytes."""
    if _PRINTABLE_NAME_RE.fullmatch(name):
        return name
    raw = name.encode("utf-8", errors="replace")
    return f"<{len(raw)}-byte name {raw[:8].hex()}{'...' if len(raw) > 8 else ''}>"


@dataclass(frozen=True)
class GGUFInfo:
    """What the store, the tier planner and the engines need to know about a GGUF file."""

    path: Path
    file_size: int
    version: int
    architecture: str
    name: str | None
    n_params: int
    quantization: str
    context_length: int | None
    embedding_length: int | None
    block_count: int | None
    head_count: int | None
    head_count_kv: int | None
    key_length: int | None
    value_length: int | None
    feed_forward_length: int | None
    vocab_size: int | None
    chat_template: str | None
    bos_token: str | None
    eos_token: str | None
    bos_token_id: int | None
    eos_token_id: int | None
    pooling_type: int | None
    is_embedding: bool
    tensor_bytes: int
    block_tensor_bytes: int  # bytes of the per-layer `blk.N.*` tensors (the offloadable part)
    tensor_count: int
    alignment: int
    data_offset: int
    # Scalar key/values; arrays summarised as "[N x type]". Left out of ==/hash.
    metadata: Mapping[str, MetaValue] = field(repr=False, compare=False, hash=False)
    # "gguf", or for a model folder "onnx" (an onnxruntime-genai LLM) or "onnx-encoder".
    format: str = "gguf"
    kv_layers: int | None = None  # layers with a KV cache (None: all); see layer_kinds
    recurrent_state_bytes: int = 0  # one sequence's recurrent state (Mamba, hybrids)


class _Cursor:
    """Bounded sequential reads over a file of known size."""

    def __init__(self, f: BinaryIO, size: int, endian: str) -> None:
        self.f = f
        self.size = size
        self.pos = 0
        self.endian = endian

    @property
    def remaining(self) -> int:
        return self.size - self.pos

    def _need(self, n: int, what: str) -> None:
        if n > self.remaining:
            raise GGUFError(
                f"truncated GGUF: {what} at byte {self.pos} needs {n} bytes "
                f"but the file has {self.size} bytes"
            )

    def read(self, n: int, what: str) -> bytes:
        self._need(n, what)
        data = self.f.read(n)
        if len(data) != n:
            raise GGUFError(
                f"truncated GGUF: {what} at byte {self.pos} needs {n} bytes, read {len(data)}"
            )
        self.pos += n
        return data

    def skip(self, n: int, what: str) -> None:
        self._need(n, what)
        self.f.seek(n, os.SEEK_CUR)
        self.pos += n

    def scalar(self, code: str, what: str) -> int | float | bool:
        size = struct.calcsize(code)
        value: int | float | bool = struct.unpack(self.endian + code, self.read(size, what))[0]
        return value

    def u32(self, what: str) -> int:
        return int(self.scalar("I", what))

    def u64(self, what: str) -> int:
        return int(self.scalar("Q", what))

    def string(self, what: str, cap: int) -> str:
        start = self.pos
        n = self.u64(f"length of {what}")
        self.check_length(n, cap, what, start)
        return self.read(n, what).decode("utf-8", errors="replace")

    def string_array(self, key: str, count: int, keep: bool) -> list[str] | None:
        """Read (`keep`) or skip `count` strings, through a window of at most 1 MiB.

        Vocabularies hold 100k+ short strings: one read per window instead of two
        per string keeps this fast, and the window bounds what is held at once.
        """
        unpack = struct.Struct(self.endian + "Q").unpack_from
        buf = b""
        off = 0
        base = self.pos  # file offset of buf[0]; the file itself is at base + len(buf)
        items: list[str] | None = [] if keep else None

        def fill(need: int, what: str) -> None:
            nonlocal buf, off, base
            avail = len(buf) - off
            if avail >= need:
                return
            file_left = self.size - (base + len(buf))
            if need - avail > file_left:
                raise GGUFError(
                    f"truncated GGUF: {what} at byte {base + off} needs {need} bytes "
                    f"but the file has {self.size} bytes"
                )
            want = max(need - avail, min(1 << 20, file_left))
            chunk = self.f.read(want)
            if len(chunk) != want:
                raise GGUFError(f"truncated GGUF: {what}: the file ended early while reading")
            base += off
            buf = buf[off:] + chunk
            off = 0

        for i in range(count):
            fill(8, f"length of {key}[{i}]")
            (n,) = unpack(buf, off)
            at = base + off
            off += 8
            if n > MAX_STRING_BYTES:
                raise GGUFError(
                    f"corrupt GGUF: {key}[{i}] at byte {at} claims {n} bytes "
                    f"(limit {MAX_STRING_BYTES})"
                )
            if n > self.size - (base + off):
                raise GGUFError(
                    f"truncated GGUF: {key}[{i}] at byte {at} claims {n} bytes but only "
                    f"{self.size - (base + off)} remain in the file of {self.size} bytes"
                )
            if items is not None:
                fill(n, f"{key}[{i}]")
                items.append(buf[off : off + n].decode("utf-8", errors="replace"))
                off += n
            elif len(buf) - off >= n:
                off += n
            else:  # skip past the window without reading what lies between
                skip_in_file = n - (len(buf) - off)
                self.f.seek(skip_in_file, os.SEEK_CUR)
                base, buf, off = base + len(buf) + skip_in_file, b"", 0
        logical = base + off
        self.f.seek(logical - (base + len(buf)), os.SEEK_CUR)
        self.pos = logical
        return items

    def check_length(self, n: int, cap: int, what: str, at: int) -> None:
        """Refuse a string length above `cap` (corrupt) or past the end of the file (truncated)."""
        if n > cap:
            raise GGUFError(f"corrupt GGUF: {what} at byte {at} claims {n} bytes (limit {cap})")
        if n > self.remaining:
            raise GGUFError(
                f"truncated GGUF: {what} at byte {at} claims {n} bytes "
                f"but only {self.remaining} remain in the file of {self.size} bytes"
            )


@dataclass
class _KV:
    scalars: dict[str, MetaValue] = field(default_factory=dict)
    summaries: dict[str, str] = field(default_factory=dict)
    int_arrays: dict[str, list[int]] = field(default_factory=dict)
    tokens: list[str] | None = None


def _read_value(cur: _Cursor, key: str, vtype: int, kv: _KV) -> None:
    shown = _shown(key)
    if vtype in _SCALAR_CODES:
        kv.scalars[key] = cur.scalar(_SCALAR_CODES[vtype], f"value of {shown}")
        return
    if vtype == _T_STRING:
        kv.scalars[key] = cur.string(f"string value of {shown}", MAX_STRING_BYTES)
        return
    if vtype != _T_ARRAY:
        raise GGUFError(f"corrupt GGUF: key {shown} has unknown value type {vtype}")

    etype = cur.u32(f"array type of {shown}")
    count_at = cur.pos
    count = cur.u64(f"array length of {shown}")
    if etype == _T_ARRAY:
        raise GGUFError(f"unsupported GGUF: key {shown} is a nested array")
    if etype != _T_STRING and etype not in _SCALAR_CODES:
        raise GGUFError(f"corrupt GGUF: array {shown} has unknown element type {etype}")
    min_item = 8 if etype == _T_STRING else struct.calcsize(_SCALAR_CODES[etype])
    if count > MAX_ARRAY_LEN:
        raise GGUFError(
            f"corrupt GGUF: array {shown} at byte {count_at} claims {count} elements "
            f"(limit {MAX_ARRAY_LEN})"
        )
    if count * min_item > cur.remaining:
        raise GGUFError(
            f"truncated GGUF: array {shown} at byte {count_at} claims {count} elements, "
            f"more than the {cur.remaining} bytes left in the file can hold"
        )
    kv.summaries[key] = f"[{count} x {_TYPE_NAMES[etype]}]"

    if etype == _T_STRING:
        items = cur.string_array(shown, count, keep=key == "tokenizer.ggml.tokens")
        if items is not None:
            kv.tokens = items
        return

    code = _SCALAR_CODES[etype]
    if (etype in _INT_TYPES or etype == _T_BOOL) and count <= MAX_KEPT_INT_ARRAY:
        raw = cur.read(count * min_item, f"array {shown}")
        kv.int_arrays[key] = [int(v) for v in struct.unpack(f"{cur.endian}{count}{code}", raw)]
    else:
        cur.skip(count * min_item, f"array {shown}")


def _quant_name_from_file_type(value: int) -> str | None:
    try:
        name = LlamaFileType(value & ~int(LlamaFileType.GUESSED)).name
    except ValueError:
        return None
    for prefix in ("MOSTLY_", "ALL_"):
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name


def _open_checked(path: Path) -> tuple[BinaryIO, int]:
    try:
        st = path.stat()
    except FileNotFoundError:
        raise GGUFError(f"no such file: {path}") from None
    except OSError as e:
        raise GGUFError(f"cannot read {path}: {e.strerror or e}") from None
    if not path.is_file():
        raise GGUFError(f"not a GGUF file: {path} is not a regular file")
    try:
        f = open(path, "rb", buffering=1 << 20)  # noqa: SIM115 - closed by the caller
    except OSError as e:
        raise GGUFError(f"cannot read {path}: {e.strerror or e}") from None
    return f, st.st_size


def read_gguf_info(path: str | os.PathLike[str]) -> GGUFInfo:
    """Parse and validate the header of a GGUF file; raise `GGUFError` with one line if bad."""
    p = Path(path)
    f, size = _open_checked(p)
    with f:
        return _parse(f, p, size)


def _parse(f: BinaryIO, path: Path, size: int) -> GGUFInfo:
    head = f.read(8)
    if len(head) < 4:
        raise GGUFError(f"not a GGUF file: {path.name} is only {size} bytes")
    magic = head[:4]
    if magic != b"GGUF":
        if magic in _OLD_MAGICS:
            raise GGUFError(
                f"not a GGUF file: {path.name} is in the old {_OLD_MAGICS[magic]} format; "
                "convert it to GGUF with a current llama.cpp"
            )
        raise GGUFError(
            f"not a GGUF file: bad magic 0x{magic.hex()} (a GGUF file starts with GGUF)"
        )
    if len(head) < 8:
        raise GGUFError(f"truncated GGUF: header needs 24 bytes but the file has {size} bytes")
    (le_version,) = struct.unpack("<I", head[4:8])
    (be_version,) = struct.unpack(">I", head[4:8])
    if le_version in SUPPORTED_VERSIONS:
        endian, version = "<", le_version
    elif be_version in SUPPORTED_VERSIONS:
        endian, version = ">", be_version
    else:
        shown = le_version if le_version < 0x10000 else be_version
        raise GGUFError(
            f"unsupported GGUF version {shown} (supported: 2, 3); "
            "re-convert the model with a current llama.cpp"
        )

    cur = _Cursor(f, size, endian)
    cur.pos = 8
    tensor_count = cur.u64("tensor count")
    kv_count = cur.u64("metadata count")
    # A tensor info is at least 8 (name length) + 4 (n_dims) + 4 (type) + 8 (offset) bytes;
    # a key/value at least 8 (key length) + 1 (key) + 4 (type) + 1 (value).
    for count, what, cap, min_size in (
        (tensor_count, "tensors", MAX_TENSORS, 24),
        (kv_count, "metadata entries", MAX_KV, 14),
    ):
        if count > cap:
            raise GGUFError(f"corrupt GGUF: header claims {count} {what} (limit {cap})")
        if count * min_size > cur.remaining:
            raise GGUFError(
                f"truncated GGUF: header claims {count} {what}, "
                f"impossible in a file of {size} bytes"
            )

    kv = _KV()
    for i in range(kv_count):
        key = cur.string(f"key of metadata entry {i}", MAX_KEY_BYTES)
        if not key:
            raise GGUFError(f"corrupt GGUF: metadata entry {i} has an empty key")
        if key in kv.scalars or key in kv.summaries:
            raise GGUFError(f"corrupt GGUF: duplicate metadata key {_shown(key)}")
        vtype = cur.u32(f"value type of {_shown(key)}")
        _read_value(cur, key, vtype, kv)

    alignment = DEFAULT_ALIGNMENT
    if "general.alignment" in kv.scalars or "general.alignment" in kv.summaries:
        raw_align = kv.scalars.get("general.alignment")
        if not isinstance(raw_align, int) or isinstance(raw_align, bool):
            raise GGUFError("corrupt GGUF: general.alignment is not an integer")
        if raw_align <= 0 or raw_align & (raw_align - 1) or raw_align > (1 << 30):
            raise GGUFError(f"corrupt GGUF: general.alignment {raw_align} is not a power of two")
        alignment = raw_align

    # Tensor infos.
    tensors: list[tuple[str, int, int, int, int]] = []  # name, type, n_elems, offset, nbytes
    names: set[str] = set()
    token_embd_dims: list[int] | None = None
    for i in range(tensor_count):
        name = cur.string(f"name of tensor {i}", MAX_TENSOR_NAME_BYTES)
        shown = _shown(name)
        if name in names:
            raise GGUFError(f"corrupt GGUF: duplicate tensor name {shown}")
        names.add(name)
        n_dims = cur.u32(f"dimension count of tensor {shown}")
        if n_dims > GGML_MAX_DIMS:
            raise GGUFError(
                f"corrupt GGUF: tensor {shown} has {n_dims} dimensions (at most {GGML_MAX_DIMS})"
            )
        dims = [cur.u64(f"dimension {d} of tensor {shown}") for d in range(n_dims)]
        ttype = cur.u32(f"type of tensor {shown}")
        offset = cur.u64(f"offset of tensor {shown}")
        try:
            qtype = GGMLQuantizationType(ttype)
            block, type_size = GGML_QUANT_SIZES[qtype]
        except (ValueError, KeyError):
            raise GGUFError(
                f"unsupported GGUF: tensor {shown} has unknown ggml type {ttype}"
            ) from None
        n_elems = 1
        for d in dims:
            n_elems *= d
        if n_elems >= 1 << 63:
            raise GGUFError(f"corrupt GGUF: tensor {shown} has absurd shape {dims}")
        if dims and dims[0] % block:
            raise GGUFError(
                f"corrupt GGUF: tensor {shown} row size {dims[0]} is not a multiple of "
                f"the {qtype.name} block size {block}"
            )
        nbytes = n_elems // block * type_size
        if offset % alignment:
            raise GGUFError(
                f"corrupt GGUF: tensor {shown} data offset {offset} is not aligned to {alignment}"
            )
        tensors.append((name, ttype, n_elems, offset, nbytes))
        if name == "token_embd.weight":
            token_embd_dims = dims

    data_offset = cur.pos + (-cur.pos % alignment)
    for name, _t, _n, offset, nbytes in tensors:
        end = data_offset + offset + nbytes
        if end > size:
            raise GGUFError(
                f"truncated GGUF: tensor {_shown(name)} ends at byte {end} "
                f"but the file has {size} bytes"
            )
    ordered = sorted(tensors, key=lambda t: t[3])
    for prev, nxt in itertools.pairwise(ordered):
        if prev[3] + prev[4] > nxt[3]:
            raise GGUFError(f"corrupt GGUF: tensors {_shown(prev[0])} and {_shown(nxt[0])} overlap")

    info = _build_info(path, size, version, alignment, data_offset, kv, tensors)
    _check_consistent(info, kv, [t[0] for t in tensors], token_embd_dims)
    return info


def _build_info(
    path: Path,
    size: int,
    version: int,
    alignment: int,
    data_offset: int,
    kv: _KV,
    tensors: list[tuple[str, int, int, int, int]],
) -> GGUFInfo:
    arch_raw = kv.scalars.get("general.architecture")
    if not isinstance(arch_raw, str) or not arch_raw:
        raise GGUFError("invalid GGUF: general.architecture is missing")
    if not _ARCH_RE.fullmatch(arch_raw):
        raise GGUFError(
            f"invalid GGUF: general.architecture {_shown(arch_raw)} is not an architecture name"
        )
    arch = arch_raw

    def get_int(key: str) -> int | None:
        v = kv.scalars.get(key)
        if isinstance(v, int) and not isinstance(v, bool):
            return v
        arr = kv.int_arrays.get(key)
        if arr:  # per-layer values (e.g. head counts): the largest is the one that sizes memory
            return max(arr)
        return None

    def get_str(key: str) -> str | None:
        v = kv.scalars.get(key)
        return v if isinstance(v, str) else None

    n_embd = get_int(f"{arch}.embedding_length")
    n_head = get_int(f"{arch}.attention.head_count")
    n_head_kv = get_int(f"{arch}.attention.head_count_kv")
    if n_head_kv is None:
        n_head_kv = n_head
    default_head_dim = n_embd // n_head if n_embd and n_head else None
    key_length = get_int(f"{arch}.attention.key_length") or default_head_dim
    value_length = get_int(f"{arch}.attention.value_length") or default_head_dim

    tokens = kv.tokens
    vocab_size = get_int(f"{arch}.vocab_size")
    if vocab_size is None and tokens is not None:
        vocab_size = len(tokens)

    def token(idx: int | None) -> str | None:
        if idx is None or tokens is None or not 0 <= idx < len(tokens):
            return None
        return tokens[idx]

    bos_id = get_int("tokenizer.ggml.bos_token_id")
    eos_id = get_int("tokenizer.ggml.eos_token_id")
    pooling = get_int(f"{arch}.pooling_type")

    tensor_bytes = sum(t[4] for t in tensors)
    block_bytes = sum(t[4] for t in tensors if t[0].startswith("blk."))
    n_params = sum(t[2] for t in tensors)

    quant: str | None = None
    file_type = get_int("general.file_type")
    if file_type is not None:
        quant = _quant_name_from_file_type(file_type)
    if quant is None:
        quant = _dominant_type(tensors)

    metadata: dict[str, MetaValue] = dict(kv.scalars)
    metadata.update(kv.summaries)
    n_layer = get_int(f"{arch}.block_count")
    kinds = layer_kinds(arch, n_layer, n_embd, lambda key: _scalar_int(kv, key), kv.int_arrays)

    return GGUFInfo(
        path=path,
        file_size=size,
        version=version,
        architecture=arch,
        name=get_str("general.name"),
        n_params=n_params,
        quantization=quant,
        context_length=get_int(f"{arch}.context_length"),
        embedding_length=n_embd,
        block_count=n_layer,
        head_count=n_head,
        head_count_kv=n_head_kv,
        key_length=key_length,
        value_length=value_length,
        feed_forward_length=get_int(f"{arch}.feed_forward_length"),
        vocab_size=vocab_size,
        chat_template=get_str("tokenizer.chat_template"),
        bos_token=token(bos_id),
        eos_token=token(eos_id),
        bos_token_id=bos_id,
        eos_token_id=eos_id,
        pooling_type=pooling,
        is_embedding=bool(pooling) or arch in EMBEDDING_ARCHITECTURES,
        tensor_bytes=tensor_bytes,
        block_tensor_bytes=block_bytes,
        tensor_count=len(tensors),
        alignment=alignment,
        data_offset=data_offset,
        metadata=metadata,
        kv_layers=kinds.attention,
        recurrent_state_bytes=kinds.state_bytes,
    )


def _check_consistent(
    info: GGUFInfo, kv: _KV, tensor_names: list[str], token_embd_dims: list[int] | None
) -> None:
    """Refuse a file whose metadata contradicts itself or its tensor table.

    The memory estimate and the engine both trust these numbers: a file that claims 22
    layers but holds 2, or a 10^12-token context, must be refused here, by name, rather
    than fail later as "not enough memory" or a crash in the engine.
    """
    arch = info.architecture

    def bad(what: str) -> GGUFError:
        return GGUFError(f"inconsistent GGUF: {what}")

    def positive(key: str, value: int | None, cap: int) -> None:
        if value is not None and not 0 < value <= cap:
            raise bad(f"{key} is {value} (expected 1 to {cap})")

    n_ctx, n_embd, n_layer = info.context_length, info.embedding_length, info.block_count
    positive(f"{arch}.context_length", n_ctx, MAX_CONTEXT_LENGTH)
    positive(f"{arch}.embedding_length", n_embd, MAX_EMBEDDING_LENGTH)
    if n_layer is not None and not 0 <= n_layer <= MAX_BLOCK_COUNT:
        raise bad(f"{arch}.block_count is {n_layer} (expected 0 to {MAX_BLOCK_COUNT})")
    for key in (f"{arch}.attention.key_length", f"{arch}.attention.value_length"):
        v = kv.scalars.get(key)
        if isinstance(v, int) and not isinstance(v, bool):
            positive(key, v, MAX_HEAD_DIM)

    # Head counts: a scalar, or one per layer (0 for layers without attention).
    heads = _per_layer(kv, f"{arch}.attention.head_count", n_layer)
    heads_kv = _per_layer(kv, f"{arch}.attention.head_count_kv", n_layer)
    explicit_head_dim = f"{arch}.attention.key_length" in kv.scalars
    for i, n_head in enumerate(heads):
        where = f" in layer {i}" if len(heads) > 1 else ""
        if not 0 <= n_head <= MAX_HEAD_COUNT:
            raise bad(f"{arch}.attention.head_count{where} is {n_head}")
        if n_head and n_embd and not explicit_head_dim and n_embd % n_head:
            raise bad(
                f"{arch}.attention.head_count{where} ({n_head}) does not divide "
                f"{arch}.embedding_length ({n_embd})"
            )
    if heads and heads_kv:
        for i in range(max(len(heads), len(heads_kv))):
            n_head = heads[min(i, len(heads) - 1)]
            n_kv = heads_kv[min(i, len(heads_kv) - 1)]
            where = f" in layer {i}" if max(len(heads), len(heads_kv)) > 1 else ""
            if n_kv < 0 or (n_kv and n_head and (n_kv > n_head or n_head % n_kv)):
                raise bad(
                    f"{arch}.attention.head_count_kv{where} ({n_kv}) does not divide "
                    f"{arch}.attention.head_count ({n_head})"
                )

    if not tensor_names or arch in _OWN_TENSOR_LAYOUT:
        return  # a vocabulary-only file (or another layout): nothing to hold the numbers against

    # 0 heads is an attention-free layer (Mamba, RWKV, a hybrid's recurrent layers); a
    # layer with query weights and 0 heads fails llama.cpp's load ("wrong shape").
    for name in tensor_names:
        m = _ATTENTION_RE.fullmatch(name)
        if m is None or not heads:
            continue
        layer = int(m.group(1))
        if len(heads) == 1 or layer < len(heads):
            n_head = heads[layer if len(heads) > 1 else 0]
            if n_head == 0:
                where = f" in layer {layer}" if len(heads) > 1 else ""
                raise bad(
                    f"{arch}.attention.head_count{where} is 0 but the layer has attention "
                    f"weights ({name})"
                )

    if n_embd and token_embd_dims and token_embd_dims[0] != n_embd:
        raise bad(
            f"{arch}.embedding_length is {n_embd} but token_embd.weight is "
            f"{token_embd_dims[0]} wide"
        )

    if n_layer is None:
        return
    layers: dict[str, set[int]] = {}
    for name in tensor_names:
        m = _LAYER_RE.match(name)
        if m is not None:
            layers.setdefault(m.group(1) or "", set()).add(int(m.group(2)))
    if not layers:
        if n_layer:
            raise bad(f"{arch}.block_count is {n_layer} but the file has no blk.N tensors")
        return
    n_dec = _scalar_int(kv, f"{arch}.decoder_block_count")
    for prefix, found in sorted(layers.items()):
        decoder = prefix == "dec." and n_dec is not None
        count = n_dec if decoder and n_dec is not None else n_layer
        key = f"{arch}.decoder_block_count" if decoder else f"{arch}.block_count"
        missing = next((i for i in range(count) if i not in found), None)
        if missing is not None:
            raise bad(f"{key} is {count} but the file has no {prefix}blk.{missing}.* tensors")
        extra = max(found)
        if extra >= count:
            raise bad(f"{key} is {count} but the file has {prefix}blk.{extra}.* tensors")


def _scalar_int(kv: _KV, key: str) -> int | None:
    v = kv.scalars.get(key)
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _per_layer(kv: _KV, key: str, n_layer: int | None) -> list[int]:
    """A per-layer value as a list: [] when absent, [v] for a scalar, the array otherwise."""
    scalar = _scalar_int(kv, key)
    if scalar is not None:
        return [scalar]
    arr = kv.int_arrays.get(key)
    if arr is None:
        return []
    if n_layer is not None and len(arr) != n_layer:
        raise GGUFError(
            f"inconsistent GGUF: {key} has {len(arr)} values but block_count is {n_layer}"
        )
    return arr


def _dominant_type(tensors: list[tuple[str, int, int, int, int]]) -> str:
    """The ggml type holding the most bytes among matrices, e.g. "Q4_K"; "unknown" if none."""
    by_type: dict[int, int] = {}
    for _name, ttype, _n, _off, nbytes in tensors:
        by_type[ttype] = by_type.get(ttype, 0) + nbytes
    if not by_type:
        return "unknown"
    best = max(by_type.items(), key=lambda kv: kv[1])[0]
    return GGMLQuantizationType(best).name


def shard_info(filename: str) -> tuple[int, int] | None:
    """(index, count) for split GGUF names like `x-00001-of-00003.gguf`, else None."""
    m = _SHARD_RE.search(filename)
    return (int(m.group(1)), int(m.group(2))) if m else None
