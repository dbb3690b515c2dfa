"""What an ONNX graph is made of, read straight from its protobuf without loading weights.

The store must say a model's precision (fp32/fp16/bf16/int4/fp8) and size before it
is served, and must not trust the file: so instead of `onnx.load` (which reads every
weight into memory) this walks the ModelProto's wire format over a memory map,
keeping only node op types, MatMulNBits shapes and initializer types and shapes.
Weights (`raw_data`) are skipped by length, so a multi-GB model is read in
milliseconds. Field numbers are those of onnx.proto3.
"""

from __future__ import annotations

import mmap
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from appliance.store.errors import StoreError


class OnnxFormatError(StoreError):
    """A file that is not a readable ONNX model (truncated, not protobuf, no graph)."""


# TensorProto.DataType -> (name, bits per element)
DATA_TYPES: dict[int, tuple[str, int]] = {
    1: ("float32", 32),
    2: ("uint8", 8),
    3: ("int8", 8),
    4: ("uint16", 16),
    5: ("int16", 16),
    6: ("int32", 32),
    7: ("int64", 64),
    9: ("bool", 8),
    10: ("float16", 16),
    11: ("float64", 64),
    12: ("uint32", 32),
    13: ("uint64", 64),
    16: ("bfloat16", 16),
    17: ("float8e4m3fn", 8),
    18: ("float8e4m3fnuz", 8),
    19: ("float8e5m2", 8),
    20: ("float8e5m2fnuz", 8),
    21: ("uint4", 4),
    22: ("int4", 4),
    23: ("float4e2m1", 4),
}
FP8_TYPES = frozenset({17, 18, 19, 20})
INT4_TYPES = frozenset({21, 22})

_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5


@dataclass(frozen=True)
class Initializer:
    name: str
    data_type: int
    dims: tuple[int, ...]

    @property
    def elements(self) -> int:
        n = 1
        for d in self.dims:
            n *= max(d, 0)
        return n

    @property
    def nbytes(self) -> int:
        bits = DATA_TYPES.get(self.data_type, ("?", 32))[1]
        return (self.elements * bits + 7) // 8


@dataclass(frozen=True)
class NBitsMatMul:
    """One MatMulNBits node: a K×N weight stored in `bits` bits per element."""

    inputs: tuple[str, ...]
    k: int
    n: int
    bits: int


@dataclass
class OnnxGraph:
    ops: Counter[str] = field(default_factory=Counter)
    initializers: list[Initializer] = field(default_factory=list)
    nbits: list[NBitsMatMul] = field(default_factory=list)
    dequantized: set[str] = field(default_factory=set)  # initializers a DequantizeLinear reads
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)

    @property
    def n_params(self) -> int:
        """Weights counted once: K×N per MatMulNBits, its packed blob and scales not again."""
        packed = {name for mm in self.nbits for name in mm.inputs[1:]}
        rest = sum(i.elements for i in self.initializers if i.name not in packed)
        return rest + sum(mm.k * mm.n for mm in self.nbits)

    @property
    def precision(self) -> str:
        """The weights' precision, from the ops and the initializers' types."""
        if any(i.data_type in FP8_TYPES for i in self.initializers):
            return "fp8"
        if self.nbits:
            bits = Counter(mm.bits for mm in self.nbits).most_common(1)[0][0]
            return f"int{bits}"
        if any(i.data_type in INT4_TYPES and i.name in self.dequantized for i in self.initializers):
            return "int4"
        by_type: Counter[int] = Counter()
        for i in self.initializers:
            by_type[i.data_type] += i.nbytes
        for dtype, _ in by_type.most_common():
            name = DATA_TYPES.get(dtype, ("", 0))[0]
            if name == "float32":
                return "fp32"
            if name == "float16":
                return "fp16"
            if name == "bfloat16":
                return "bf16"
            if name in ("int8", "uint8") and "DequantizeLinear" in self.ops:
                return "int8"
        return "unknown"


class _Reader:
    def __init__(self, buf: memoryview | bytes, start: int, end: int, where: str) -> None:
        self.buf = buf
        self.pos = start
        self.end = end
        self.where = where

    def fail(self, what: str) -> OnnxFormatError:
        return OnnxFormatError(f"{self.where}: not a valid ONNX model ({what} at byte {self.pos})")

    def varint(self) -> int:
        shift = result = 0
        while True:
            if self.pos >= self.end or shift > 63:
                raise self.fail("truncated varint")
            b = self.buf[self.pos]
            self.pos += 1
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result
            shift += 7

    def fields(self) -> list[tuple[int, int, int, int]]:
        """(field number, wire type, value or start, end) for each field up to `end`."""
        out = []
        while self.pos < self.end:
            key = self.varint()
            number, wire = key >> 3, key & 7
            if wire == _VARINT:
                out.append((number, wire, self.varint(), 0))
            elif wire == _LEN:
                n = self.varint()
                start = self.pos
                if n > self.end - start:
                    raise self.fail("truncated field")
                self.pos = start + n
                out.append((number, wire, start, start + n))
            elif wire == _I64:
                self.pos += 8
            elif wire == _I32:
                self.pos += 4
            else:
                raise self.fail(f"wire type {wire}")
            if self.pos > self.end:
                raise self.fail("truncated field")
        return out

    def sub(self, start: int, end: int) -> _Reader:
        return _Reader(self.buf, start, end, self.where)

    def text(self, start: int, end: int) -> str:
        return bytes(self.buf[start:end]).decode("utf-8", "replace")

    def packed_varints(self, start: int, end: int) -> list[int]:
        r = self.sub(start, end)
        out = []
        while r.pos < r.end:
            out.append(r.varint())
        return out


def _signed(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def _initializer(r: _Reader) -> Initializer:
    name, dtype, dims = "", 0, []
    for number, wire, a, b in r.fields():
        if number == 1:
            dims.extend(r.packed_varints(a, b) if wire == _LEN else [a])
        elif number == 2 and wire == _VARINT:
            dtype = a
        elif number == 8 and wire == _LEN:
            name = r.text(a, b)
    return Initializer(name, dtype, tuple(_signed(d) for d in dims))


def _node(r: _Reader, graph: OnnxGraph) -> None:
    inputs: list[str] = []
    op = ""
    ints: dict[str, int] = {}
    for number, wire, a, b in r.fields():
        if wire != _LEN:
            continue
        if number == 1:
            inputs.append(r.text(a, b))
        elif number == 4:
            op = r.text(a, b)
        elif number == 5:  # AttributeProto: name=1, i=3
            attr_name, value = "", None
            for n2, w2, a2, b2 in r.sub(a, b).fields():
                if n2 == 1 and w2 == _LEN:
                    attr_name = r.text(a2, b2)
                elif n2 == 3 and w2 == _VARINT:
                    value = _signed(a2)
            if value is not None:
                ints[attr_name] = value
    graph.ops[op] += 1
    if op == "MatMulNBits":
        graph.nbits.append(
            NBitsMatMul(tuple(inputs), ints.get("K", 0), ints.get("N", 0), ints.get("bits", 4))
        )
    elif op == "DequantizeLinear" and inputs:
        graph.dequantized.add(inputs[0])


def _value_name(r: _Reader) -> str:
    for number, wire, a, b in r.fields():
        if number == 1 and wire == _LEN:
            return r.text(a, b)
    return ""


def read_onnx_graph(path: str | os.PathLike[str]) -> OnnxGraph:
    """Parse `path`'s graph structure; raise `OnnxFormatError` if it is not an ONNX model."""
    p = Path(path)
    size = p.stat().st_size
    if size == 0:
        raise OnnxFormatError(f"{p.name}: empty file, not an ONNX model")
    with open(p, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        view = memoryview(mm)
        try:
            return _read(_Reader(view, 0, size, p.name))
        finally:
            view.release()


def _read(model: _Reader) -> OnnxGraph:
    graph = OnnxGraph()
    found = False
    for number, wire, a, b in model.fields():
        if number != 7 or wire != _LEN:
            continue
        found = True
        g = model.sub(a, b)
        for n2, w2, a2, b2 in g.fields():
            if w2 != _LEN:
                continue
            if n2 == 1:
                _node(g.sub(a2, b2), graph)
            elif n2 == 5:
                graph.initializers.append(_initializer(g.sub(a2, b2)))
            elif n2 == 11:
                graph.inputs.append(_value_name(g.sub(a2, b2)))
            elif n2 == 12:
                graph.outputs.append(_value_name(g.sub(a2, b2)))
    if not found or not graph.ops:
        raise model.fail("no graph")
    return graph
