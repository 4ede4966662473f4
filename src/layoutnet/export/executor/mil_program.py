"""Reads an ML Program (the `mlProgram` of a Core ML spec) into an executable `Graph`.

What is read, all from the protobuf on disk (coremltools' generated `Model_pb2`/`MIL_pb2` classes):
function `main`, its block for the function's opset, each op's type, named arguments (bindings to
values by name or inline values), declared output types (dtype and shape) and attributes; `const`
values given inline (floats, ints, bools, strings, 64-bit ints, doubles, and the `bytes` encoding of
fp16 and 8-bit types) or stored in the weight blob file (`BlobFileValue`: file name and offset).

Blob values are read by `WeightFile`, the executor's own parser of the weight.bin layout (checked
record by record: a corrupted or truncated file is refused at load, naming the blob); sub-byte
values (uint1/2/3/4/6, int4: palettization indices, 4-bit quantized data) are unpacked from their
bit stream by `unpack_bits`. `blob_reader="native"` reads the values with coremltools' storage
reader instead, after the same checks (a cross-check only).

Compressed weights (`coremltools.optimize.coreml`) arrive as `constexpr_*` ops whose arguments are
attributes (iOS16/17 opsets) or inputs (iOS18); both become constant inputs of the node, and the
load-time probe folds them into dense weights once.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import numpy as np

from layoutnet.errors import ExportError
from layoutnet.export.executor.engine import Const, Graph, Node, OpContext, Ref, Unsupported, floating_mapped
from layoutnet.export.executor.kernels import unpack_bits
from layoutnet.export.executor.mil_ops import MIL_OPS, MilOp

# MIL_pb2.DataType values (Format/MIL.proto) -> NumPy. Sub-byte integer tensors (the indices and
# data of compressed weights) are held unpacked, one value per uint8 / int8.
_MIL_DTYPES: dict[int, Any] = {
    1: np.bool_,
    2: np.str_,
    10: np.float16,
    11: np.float32,
    12: np.float64,
    21: np.int8,
    22: np.int16,
    23: np.int32,
    24: np.int64,
    25: np.int8,  # int4
    31: np.uint8,
    32: np.uint16,
    33: np.uint32,
    34: np.uint64,
    35: np.uint8,  # uint4
    36: np.uint8,  # uint2
    37: np.uint8,  # uint1
    38: np.uint8,  # uint6
    39: np.uint8,  # uint3
}
_SUB_BYTE_BITS = {25: 4, 35: 4, 36: 2, 37: 1, 38: 6, 39: 3}  # MIL dtype -> bits per value
_SIGNED_SUB_BYTE = {25}
# Immediates may be stored as raw little-endian bytes (TensorValue.bytes): coremltools does so for
# fp16, 8-bit and sub-byte tensors and for the uint32 `shape` of an iOS16 constexpr_lut_to_dense.
_BYTES_DTYPES = {code for code, dtype in _MIL_DTYPES.items() if dtype is not np.str_}

# Storage dtype codes of weight.bin records (MILBlob BlobDataType) -> (name, MIL dtype it stores).
_BLOB_DTYPES: dict[int, tuple[str, int]] = {
    1: ("fp16", 10),
    2: ("fp32", 11),
    3: ("uint8", 31),
    4: ("int8", 21),
    5: ("bf16", 13),
    6: ("int16", 22),
    7: ("uint16", 32),
    8: ("int4", 25),
    9: ("uint1", 37),
    10: ("uint2", 36),
    11: ("uint4", 35),
    12: ("uint3", 39),
    13: ("uint6", 38),
    14: ("int32", 23),
    15: ("uint32", 33),
    16: ("fp8e4m3fn", 40),
    17: ("fp8e5m2", 41),
}
_BLOB_SENTINEL = 0xDEADBEEF
_HEADER_BYTES = 64
_RECORD_BYTES = 64


def _mil_dtype_name(code: int) -> str:
    named = {
        10: "fp16",
        11: "fp32",
        21: "int8",
        22: "int16",
        23: "int32",
        31: "uint8",
        32: "uint16",
        33: "uint32",
    }
    return named.get(code) or _OTHER_DTYPES.get(code, f"dtype {code}")


class WeightFile:
    """One weight.bin, read and checked by the executor itself (no coremltools code).

    Layout (MILBlob storage v2): a 64-byte header (uint32 blob count, uint32 version 2), then per
    blob, at the offset the program names, a 64-byte record (uint32 sentinel 0xDEADBEEF, uint32
    storage dtype, uint64 size in bytes, uint64 offset of the data) and the data. Anything that does
    not fit - a short header, a record or data past the end of the file, a bad sentinel, an unknown
    storage dtype, a dtype or size other than the program declares - is an ExportError naming the
    file, the blob offset and what is wrong.
    """

    def __init__(self, path: Path):
        self.path = path
        self.data = path.read_bytes()
        if len(self.data) < _HEADER_BYTES:
            self._fail(0, f"the file is {len(self.data)} bytes, shorter than its {_HEADER_BYTES}-byte header")
        _, version = struct.unpack_from("<II", self.data, 0)
        if version != 2:
            self._fail(0, f"storage version {version}, expected 2")

    def _fail(self, offset: int, problem: str) -> None:
        raise ExportError(
            f"{self.path}: blob at offset {offset}: {problem}. The weight file is truncated or "
            "corrupted: export the model again"
        )

    def read(self, offset: int, mil_dtype: int, shape: tuple[int, ...]) -> np.ndarray:
        """The values of the blob at `offset`, checked against the declared MIL dtype and shape."""
        size_of_file = len(self.data)
        if offset < _HEADER_BYTES or offset + _RECORD_BYTES > size_of_file:
            self._fail(offset, f"the record lies outside the file ({size_of_file} bytes)")
        sentinel, code, size, data_offset = struct.unpack_from("<IIQQ", self.data, offset)
        if sentinel != _BLOB_SENTINEL:
            self._fail(offset, f"bad sentinel {sentinel:#010x} (expected {_BLOB_SENTINEL:#010x})")
        if code not in _BLOB_DTYPES:
            self._fail(offset, f"unknown storage dtype code {code}")
        stored_name, stored_mil = _BLOB_DTYPES[code]
        if stored_mil != mil_dtype:
            self._fail(
                offset, f"stores {stored_name} values, the program declares {_mil_dtype_name(mil_dtype)}"
            )
        if data_offset + size > size_of_file:
            self._fail(
                offset,
                f"its {size} bytes of data at offset {data_offset} run past the end of the file "
                f"({size_of_file} bytes)",
            )
        count = int(np.prod(shape)) if shape else 1
        nbits = _SUB_BYTE_BITS.get(mil_dtype)
        if nbits is not None:
            expected = -(-count * nbits // 8)
        else:
            expected = count * np.dtype(_MIL_DTYPES[mil_dtype]).itemsize
        if size != expected:
            self._fail(
                offset,
                f"holds {size} bytes, the declared shape {list(shape)} of {stored_name} needs {expected}",
            )
        raw = np.frombuffer(self.data, dtype=np.uint8, count=size, offset=data_offset)
        if nbits is not None:
            flat = unpack_bits(raw, nbits, count, signed=mil_dtype in _SIGNED_SUB_BYTE)
        else:
            flat = raw.view(_MIL_DTYPES[mil_dtype]).copy()
        return flat.reshape(shape)


class _BlobFiles:
    def __init__(self, model_dir: Path, reader: str):
        self.model_dir = model_dir
        self.reader = "python" if reader == "auto" else reader
        self._files: dict[Path, WeightFile] = {}
        self._native: dict[Path, Any] = {}

    def read(self, file_name: str, offset: int, mil_dtype: int, shape: tuple[int, ...]) -> np.ndarray:
        if not file_name.startswith("@model_path/"):
            raise ExportError(f"blob file {file_name!r} is not relative to the model path")
        path = self.model_dir / file_name[len("@model_path/") :]
        if not path.is_file():
            raise ExportError(f"weight file {path} is missing")
        if path not in self._files:
            self._files[path] = WeightFile(path)
        if self.reader == "native":
            self._files[path].read(offset, mil_dtype, shape)  # the same checks first
            return self._read_native(path, offset, mil_dtype).reshape(shape)
        return self._files[path].read(offset, mil_dtype, shape)

    def _read_native(self, path: Path, offset: int, mil_dtype: int) -> np.ndarray:
        """coremltools' own blob reader (for cross-checks only; `blob_reader="native"`)."""
        from layoutnet.export.convert import coremltools

        coremltools()  # imported the export's way: what it logs on import is kept, not printed
        from coremltools.libmilstoragepython import _BlobStorageReader

        if path not in self._native:
            self._native[path] = _BlobStorageReader(str(path))
        name = {10: "fp16", 11: "float"}.get(mil_dtype, _mil_dtype_name(mil_dtype))
        flat = np.array(getattr(self._native[path], f"read_{name}_data")(offset))
        return flat.view(np.float16) if mil_dtype == 10 else flat


_OTHER_DTYPES = {
    13: "bf16",
    25: "int4",
    35: "uint4",
    36: "uint2",
    37: "uint1",
    38: "uint6",
    39: "uint3",
    40: "fp8e4m3fn",
    41: "fp8e5m2",
}


def _tensor_type(value_type: Any) -> tuple[Any, tuple[int | None, ...] | None]:
    """(numpy dtype, shape with None for unknown dims) of a MIL ValueType; (None, None) if not a tensor.
    A tensor of a dtype the executor has no NumPy type for raises Unsupported."""
    if value_type.WhichOneof("type") != "tensorType":
        return None, None
    tensor = value_type.tensorType
    dtype = _MIL_DTYPES.get(tensor.dataType)
    if dtype is None:
        raise Unsupported(f"{_OTHER_DTYPES.get(tensor.dataType, f'dtype {tensor.dataType}')} tensors")
    dims = tuple(
        d.constant.size if d.WhichOneof("dimension") == "constant" else None for d in tensor.dimensions
    )
    return dtype, dims


def _immediate(value: Any, blobs: _BlobFiles) -> Any:
    kind = value.WhichOneof("value")
    dtype, shape = _tensor_type(value.type)
    if dtype is None:
        raise ExportError(f"non-tensor constant of type {value.type.WhichOneof('type')}")
    if shape is None or any(d is None for d in shape):
        raise ExportError(f"constant with unknown shape {shape}")
    data_type = value.type.tensorType.dataType
    if kind == "blobFileValue":
        return blobs.read(value.blobFileValue.fileName, value.blobFileValue.offset, data_type, shape)
    if kind != "immediateValue" or value.immediateValue.WhichOneof("value") != "tensor":
        raise ExportError(f"unsupported constant encoding {kind}")
    tensor = value.immediateValue.tensor
    field = tensor.WhichOneof("value")
    if field == "bytes":
        raw = np.frombuffer(bytes(tensor.bytes.values), dtype=np.uint8)
        if data_type not in _BYTES_DTYPES:
            raise ExportError(f"bytes immediate of MIL dtype {data_type}")
        if data_type in _SUB_BYTE_BITS:
            count = int(np.prod(shape)) if shape else 1
            array = unpack_bits(raw, _SUB_BYTE_BITS[data_type], count, data_type in _SIGNED_SUB_BYTE)
        else:
            array = raw.view(dtype).copy()
    elif field == "strings":
        items = [s.decode() if isinstance(s, bytes) else s for s in tensor.strings.values]
        return items[0] if not shape and items else np.array(items, dtype=object).reshape(shape)
    elif field is None:
        array = np.zeros((0,), dtype=dtype)
    else:
        array = np.array(list(getattr(tensor, field).values)).astype(dtype)
    return array.reshape(shape)


def _attribute_str(op: Any, key: str) -> str | None:
    if key not in op.attributes:
        return None
    value = op.attributes[key]
    if (
        value.WhichOneof("value") == "immediateValue"
        and value.immediateValue.tensor.WhichOneof("value") == "strings"
    ):
        return value.immediateValue.tensor.strings.values[0]
    return None


def _impl(op: MilOp, each: Any = None):
    """The node's function: `op` on its arguments (with `each` applied to every floating one)."""
    fn = op.fn

    def call(ctx: OpContext, args: dict[str, Any]) -> Any:
        return fn(ctx, **(args if each is None else {k: floating_mapped(v, each) for k, v in args.items()}))

    return call


def load_program(
    spec: Any, model_dir: Path, source: str, blob_reader: str = "auto", precision: str = "declared"
) -> Graph:
    """Graph of the `main` function of `spec.mlProgram`; blob files resolve against `model_dir`
    (the folder holding the spec, where `@model_path` points)."""
    program = spec.mlProgram
    if "main" not in program.functions:
        raise ExportError(f"{source}: the ML Program has no function 'main' (has {list(program.functions)})")
    function = program.functions["main"]
    if function.opset not in function.block_specializations:
        raise ExportError(f"{source}: function 'main' has no block for its opset {function.opset}")
    block = function.block_specializations[function.opset]
    if len(function.inputs) != 1:
        raise ExportError(f"{source}: expected one input, the program has {len(function.inputs)}")
    fn_input = function.inputs[0]
    in_dtype, in_shape = _tensor_type(fn_input.type)
    if in_shape is None or any(d is None for d in in_shape):
        raise ExportError(f"{source}: input '{fn_input.name}' has no static shape ({in_shape})")
    outputs = list(block.outputs)
    output_name = "classLogits" if "classLogits" in outputs else outputs[0]
    blobs = _BlobFiles(model_dir, blob_reader)

    nodes: list[Node] = []
    unsupported: dict[str, list[str]] = {}
    for index, op in enumerate(block.operations):
        name = _attribute_str(op, "name") or (op.outputs[0].name if op.outputs else f"#{index}")
        registered = MIL_OPS.get(op.type)
        if registered is None or len(op.blocks):
            kind = op.type if registered is None else f"{op.type} with nested blocks"
            unsupported.setdefault(kind, []).append(repr(name))
            continue
        try:
            nodes.append(_node(op, name, registered, blobs, source))
        except Unsupported as exc:
            unsupported.setdefault(f"{op.type} ({exc})", []).append(repr(name))
    return Graph(
        source=source,
        nodes=nodes,
        constants={},
        input_name=fn_input.name,
        input_shape=tuple(int(d) for d in in_shape),
        input_dtype=np.dtype(in_dtype),
        output_name=output_name,
        unsupported=unsupported,
        precision=precision,
    )


def _node(op: Any, name: str, registered: MilOp, blobs: _BlobFiles, source: str) -> Node:
    """One op as a graph node: arguments by name or inline value, declared output dtypes and shapes."""
    inputs: dict[str, list[Ref]] = {}
    for param, argument in op.inputs.items():
        refs: list[Ref] = []
        for binding in argument.arguments:
            if binding.WhichOneof("binding") == "name":
                refs.append(binding.name)
            else:
                refs.append(Const(_immediate(binding.value, blobs)))
        inputs[param] = refs
    if op.type == "const":
        if "val" not in op.attributes:
            raise ExportError(f"{source}: const '{name}' has no value")
        inputs["val"] = [Const(_immediate(op.attributes["val"], blobs))]
    elif op.type.startswith("constexpr_"):
        for key, value in op.attributes.items():
            if key != "name":
                inputs[key] = [Const(_immediate(value, blobs))]
    out_dtypes, declared = [], []
    for out in op.outputs:
        dtype, shape = _tensor_type(out.type)
        if dtype is None:
            raise Unsupported(f"a {out.type.WhichOneof('type')} output")
        out_dtypes.append(np.dtype(dtype) if dtype is not np.str_ else None)
        declared.append(shape)
    return Node(
        op_type=op.type,
        name=name,
        inputs=inputs,
        variadic=registered.variadic,
        outputs=[o.name for o in op.outputs],
        out_dtypes=out_dtypes,
        declared=declared,
        impl=_impl(registered),
        rule=registered.batch,
        preserves=registered.preserves,
        magnitude=_impl(registered, np.abs) if registered.matrix else None,
    )
