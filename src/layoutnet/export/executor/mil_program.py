"""Reads an ML Program (the `mlProgram` of a Core ML spec) into an executable `Graph`.

What is read, all from the protobuf on disk (coremltools' generated `Model_pb2`/`MIL_pb2` classes):
function `main`, its block for the function's opset, each op's type, named arguments (bindings to
values by name or inline values), declared output types (dtype and shape) and attributes; `const`
values given inline (floats, ints, bools, strings, 64-bit ints, doubles, and the `bytes` encoding of
fp16 and 8-bit types) or stored in the weight blob file (`BlobFileValue`: file name and offset).

Blob values are read with coremltools' native storage reader (`libmilstoragepython`) when it is
importable, else (or when asked) with `read_blob`, which parses the documented weight.bin layout:
a 64-byte file header (uint32 blob count, uint32 version 2) and, at each blob's offset, a 64-byte
record (uint32 sentinel 0xDEADBEEF, uint32 storage dtype, uint64 size in bytes, uint64 offset of
the data) followed by the data.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import numpy as np

from layoutnet.errors import ExportError
from layoutnet.export.executor.engine import Const, Graph, Node, OpContext, Ref, Unsupported
from layoutnet.export.executor.mil_ops import MIL_OPS, MilOp

# MIL_pb2.DataType values (Format/MIL.proto).
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
    31: np.uint8,
    32: np.uint16,
    33: np.uint32,
    34: np.uint64,
}
_BYTES_DTYPES = {10, 21, 31}  # fp16, int8, uint8 immediates are stored in TensorValue.bytes

# Storage dtype codes of weight.bin records (MIL blob storage) -> numpy.
_BLOB_DTYPES = {
    1: np.float16,
    2: np.float32,
    3: np.uint8,
    4: np.int8,
    6: np.int16,
    7: np.uint16,
    8: np.int32,
    9: np.uint32,
}
_BLOB_SENTINEL = 0xDEADBEEF


def read_blob(path: Path, offset: int) -> np.ndarray:
    """One value of a weight.bin file, parsed without coremltools (flat array of its dtype)."""
    with open(path, "rb") as f:
        f.seek(offset)
        record = f.read(64)
        if len(record) < 24:
            raise ExportError(f"{path}: no blob record at offset {offset}")
        sentinel, code, size, data_offset = struct.unpack_from("<IIQQ", record)
        if sentinel != _BLOB_SENTINEL:
            raise ExportError(f"{path}: bad blob sentinel {sentinel:#x} at offset {offset}")
        if code not in _BLOB_DTYPES:
            raise ExportError(f"{path}: blob at offset {offset} has unknown storage dtype {code}")
        f.seek(data_offset)
        data = f.read(size)
    if len(data) != size:
        raise ExportError(f"{path}: blob at offset {offset} is truncated")
    return np.frombuffer(data, dtype=_BLOB_DTYPES[code]).copy()


class _BlobFiles:
    def __init__(self, model_dir: Path, reader: str):
        self.model_dir = model_dir
        self.reader = reader
        self._native: dict[Path, Any] = {}
        if reader == "auto":
            try:
                from coremltools.libmilstoragepython import _BlobStorageReader  # noqa: F401

                self.reader = "native"
            except ImportError:
                self.reader = "python"

    def read(self, file_name: str, offset: int, dtype: Any, shape: tuple[int, ...]) -> np.ndarray:
        if not file_name.startswith("@model_path/"):
            raise ExportError(f"blob file {file_name!r} is not relative to the model path")
        path = self.model_dir / file_name[len("@model_path/") :]
        if not path.is_file():
            raise ExportError(f"weight file {path} is missing")
        if self.reader == "native":
            flat = self._read_native(path, offset, dtype)
        else:
            flat = read_blob(path, offset)
            if flat.dtype != np.dtype(dtype):
                raise ExportError(
                    f"{path}@{offset}: blob holds {flat.dtype}, the program declares {np.dtype(dtype)}"
                )
        count = int(np.prod(shape)) if shape else 1
        if flat.size != count:
            raise ExportError(f"{path}@{offset}: blob holds {flat.size} values, shape {shape} needs {count}")
        return flat.reshape(shape)

    def _read_native(self, path: Path, offset: int, dtype: Any) -> np.ndarray:
        from coremltools.libmilstoragepython import _BlobStorageReader

        if path not in self._native:
            self._native[path] = _BlobStorageReader(str(path))
        reader = self._native[path]
        methods = {
            np.float16: "read_fp16_data",
            np.float32: "read_float_data",
            np.int8: "read_int8_data",
            np.uint8: "read_uint8_data",
            np.int16: "read_int16_data",
            np.uint16: "read_uint16_data",
            np.int32: "read_int32_data",
            np.uint32: "read_uint32_data",
        }
        method = methods.get(np.dtype(dtype).type)
        if method is None:
            raise ExportError(f"{path}@{offset}: cannot read blob values of dtype {np.dtype(dtype)}")
        flat = np.array(getattr(reader, method)(offset))
        return flat.view(np.float16) if np.dtype(dtype) == np.float16 else flat


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
    if kind == "blobFileValue":
        return blobs.read(value.blobFileValue.fileName, value.blobFileValue.offset, dtype, shape)
    if kind != "immediateValue" or value.immediateValue.WhichOneof("value") != "tensor":
        raise ExportError(f"unsupported constant encoding {kind}")
    tensor = value.immediateValue.tensor
    field = tensor.WhichOneof("value")
    data_type = value.type.tensorType.dataType
    if field == "bytes":
        raw = bytes(tensor.bytes.values)
        if data_type not in _BYTES_DTYPES:
            raise ExportError(f"bytes immediate of MIL dtype {data_type}")
        array = np.frombuffer(raw, dtype=dtype).copy()
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


def _impl(op: MilOp):
    fn = op.fn

    def call(ctx: OpContext, args: dict[str, Any]) -> Any:
        return fn(ctx, **args)

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
    )
