"""Reference executor: runs a saved Core ML artifact in NumPy.

coremltools can convert and save on Linux but only runs models on macOS. This package reads the
artifact from disk - the protobuf spec and, for an ML Program, the weight blob file - and executes
it op by op with NumPy, so parity between PyTorch and the file on disk can be proven anywhere.
It never calls `MLModel.predict`.

    executor = load_executor("model.mlpackage")  # or a NeuralNetwork .mlmodel
    logits = executor.predict(ids)               # int [N, 20] -> float32 [N, 9]
    fp16 = load_executor("model.mlpackage", precision="fp16")  # as a device computing in fp16

Supported: ML Programs (`.mlpackage`, or an `.mlmodel` holding an mlProgram with its `weights/`
folder beside it) with the ops in `mil_ops.MIL_OPS`, fp32 or fp16, any iOS15+ opset, including
weights compressed by `coremltools.optimize.coreml` (int8/int4 quantization, 1-8 bit
palettization: the `constexpr_*` ops, decoded from the packed weights by the executor); NeuralNetworks
with the layers in `nn_layers.NN_LAYERS`, fp32 or fp16 weights. Anything else is refused at load
time with `UnsupportedOpError` naming each missing op/layer type and where it occurs.

`predict` runs N samples at once when the program allows it (see `engine` for the batching rules)
and one at a time otherwise; `Executor.batched` / `Executor.batch_fallback` say which and why.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from layoutnet.errors import ExportError
from layoutnet.export.executor.engine import PRECISIONS, Executor, UnsupportedOpError
from layoutnet.export.executor.mil_ops import MIL_OPS
from layoutnet.export.executor.mil_program import load_program
from layoutnet.export.executor.nn_layers import NN_LAYERS
from layoutnet.export.executor.nn_program import load_network
from layoutnet.export.executor.protos import model_pb2

__all__ = [
    "MIL_OPS",
    "NN_LAYERS",
    "PRECISIONS",
    "Executor",
    "UnsupportedOpError",
    "load_executor",
    "read_spec",
]


def _package_model_file(package: Path) -> Path:
    manifest_path = package / "Manifest.json"
    if not manifest_path.is_file():
        raise ExportError(f"{package} is a folder without Manifest.json: not an .mlpackage")
    try:
        manifest = json.loads(manifest_path.read_text())
        root = manifest["itemInfoEntries"][manifest["rootModelIdentifier"]]["path"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ExportError(f"{manifest_path}: cannot find the root model ({exc})") from exc
    model_file = package / "Data" / root
    if not model_file.is_file():
        raise ExportError(f"{package}: the manifest names {root}, which is missing")
    return model_file


def read_spec(path: str | Path) -> tuple[Any, Path]:
    """The Core ML spec (`Model_pb2.Model`) of a saved .mlpackage or .mlmodel, and the file it came from."""
    path = Path(path)
    if path.is_dir():
        model_file = _package_model_file(path)
    elif path.is_file():
        model_file = path
    else:
        raise ExportError(f"{path} does not exist")
    spec = model_pb2().Model()
    try:
        spec.ParseFromString(model_file.read_bytes())
    except Exception as exc:  # protobuf raises its own DecodeError
        raise ExportError(f"{model_file} is not a Core ML model: {exc}") from exc
    return spec, model_file


def load_executor(
    path: str | Path,
    *,
    precision: str = "declared",
    blob_reader: str = "auto",
    chunk_size: int = 256,
) -> Executor:
    """Executor for the artifact at `path` (.mlpackage folder or .mlmodel file).

    precision (one of `PRECISIONS`, exposed as `Executor.precision`):
      "declared"     ops in the dtype the program declares (fp16-typed outputs rounded to fp16,
                     arithmetic in fp32); a NeuralNetwork or fp32 program runs in fp32;
      "fp32"         everything in fp32, fp16 declarations ignored;
      "fp16_storage" every op's inputs, weights and outputs rounded to fp16, arithmetic in fp32
                     (also for NeuralNetworks and fp32 programs: a GPU storing fp16 tensors);
      "fp16_wide", "fp16", "fp16_sequential"
                     true fp16 arithmetic: inputs, weights, every intermediate step inside an op
                     (softmax, normalisation, GELU) and outputs in fp16; the terms of every matrix
                     product, convolution and reduction summed in one of three orders, the device
                     bracket: fp16 products into a wide accumulator (fp16_wide: the Neural Engine
                     as a reverse-engineering write-up describes it), fp16 products in a pairwise
                     fp16 tree (fp16), or one running fp16 sum (fp16_sequential: a GPU allowed
                     low-precision accumulation). NumPy's own float16 matmul/sum accumulate in
                     fp32, so the executor rounds every product and partial sum itself (see
                     `kernels`, "true fp16 arithmetic"); the slowest modes.
    blob_reader: "auto" or "python" (the executor's own reader of weight.bin, which checks every
    record and refuses a corrupted or truncated file with an ExportError naming the blob), or
    "native" (coremltools' storage reader, after the same checks; for cross-checks).
    chunk_size: samples per batched run inside `predict`.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    if blob_reader not in ("auto", "native", "python"):
        raise ValueError(f"blob_reader must be auto, native or python, not {blob_reader!r}")
    spec, model_file = read_spec(path)
    kind = spec.WhichOneof("Type")
    source = str(path)
    if kind == "mlProgram":
        graph = load_program(spec, model_file.parent, source, blob_reader, precision)
        model_format = "mlprogram"
    elif kind in ("neuralNetwork", "neuralNetworkRegressor"):
        graph = load_network(spec, source, precision)
        model_format = "neuralnetwork"
    else:
        raise UnsupportedOpError(source, {f"model type {kind}": ["the spec"]})
    return Executor(graph, Path(path), model_format, chunk_size=chunk_size)
