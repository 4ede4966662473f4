"""Opening a saved Core ML artifact: its interface is checked against the app's contract first.

`open_artifact(path)` reads the spec from disk and refuses, before computing any number, a file
whose interface differs from what the app feeds and reads: input `input_ids` INT32 [1, 20], output
`classLogits` [1, 9] (where the spec declares a shape), and metadata whose class list (and alphabet
and input length, where present) equal the contract's. Only then does it build what runs the file:
Core ML itself on a Mac, layoutnet's reference executor elsewhere.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from layoutnet.contract import ALPHABET, CLASSES, INPUT_NAME, NUM_CLASSES, OUTPUT_NAME, SEQ_LEN
from layoutnet.errors import ExportError
from layoutnet.export.executor.engine import PRECISIONS as RUNNER_PRECISIONS

COREML_SUFFIXES = (".mlpackage", ".mlmodel")

_INT32 = 131104
_ARRAY_TYPES = {
    0: "INVALID",
    65568: "FLOAT32",
    65600: "DOUBLE",
    131104: "INT32",
    131080: "INT8",
    65552: "FLOAT16",
}
_OUTPUT_TYPES = ("FLOAT32", "FLOAT16", "DOUBLE")


class InterfaceError(ExportError):
    """A saved artifact whose inputs, outputs or metadata differ from the app's contract."""

    def __init__(self, path: Path | str, field_name: str, found: object, expected: object):
        self.field = field_name
        self.found = found
        self.expected = expected
        super().__init__(
            f"{path}: {field_name} is {found}; the app expects {expected}. The file does not keep the "
            "app's contract (layoutnet.contract); re-export it with layoutnet."
        )


@dataclass(frozen=True)
class Interface:
    """What a saved artifact declares, read from its spec."""

    format: str  # "mlprogram" or "neuralnetwork"
    input_name: str
    input_type: str
    input_shape: tuple[int, ...]
    output_name: str
    output_type: str
    output_shape: tuple[int, ...]  # () when the spec does not declare it
    metadata: dict[str, str] = field(default_factory=dict)

    def report(self) -> dict:
        return {
            "input": {
                "name": self.input_name,
                "dtype": self.input_type.lower(),
                "shape": list(self.input_shape),
            },
            "output": {
                "name": self.output_name,
                "dtype": self.output_type.lower(),
                "shape": list(self.output_shape) or None,
            },
        }


def _array(feature: Any) -> tuple[str, str, tuple[int, ...]]:
    kind = feature.type.WhichOneof("Type")
    if kind != "multiArrayType":
        return feature.name, f"a {kind or 'untyped'} feature", ()
    array = feature.type.multiArrayType
    return (
        feature.name,
        _ARRAY_TYPES.get(array.dataType, str(array.dataType)),
        tuple(int(d) for d in array.shape),
    )


def check_interface(spec: Any, path: Path | str) -> Interface:
    """The artifact's Interface; InterfaceError naming the first field that breaks the contract."""
    kind = spec.WhichOneof("Type")
    formats = {"mlProgram": "mlprogram", "neuralNetwork": "neuralnetwork"}
    if kind not in formats:
        raise InterfaceError(path, "the model type", kind, "an ML Program or a NeuralNetwork")
    inputs = [_array(f) for f in spec.description.input]
    names = [name for name, _, _ in inputs]
    if names != [INPUT_NAME]:
        raise InterfaceError(path, "the input list", names, f"one input named {INPUT_NAME!r}")
    _, input_type, input_shape = inputs[0]
    if input_type != "INT32":
        raise InterfaceError(path, f"the type of input {INPUT_NAME!r}", input_type, "INT32")
    if input_shape != (1, SEQ_LEN):
        raise InterfaceError(
            path,
            f"the shape of input {INPUT_NAME!r}",
            list(input_shape),
            f"[1, {SEQ_LEN}] ({SEQ_LEN} character ids)",
        )
    outputs = {name: (dtype, shape) for name, dtype, shape in map(_array, spec.description.output)}
    if OUTPUT_NAME not in outputs:
        raise InterfaceError(path, "the output list", sorted(outputs), f"an output named {OUTPUT_NAME!r}")
    output_type, output_shape = outputs[OUTPUT_NAME]
    if output_type not in _OUTPUT_TYPES:
        raise InterfaceError(path, f"the type of output {OUTPUT_NAME!r}", output_type, "a float multi-array")
    if output_shape and output_shape != (1, NUM_CLASSES):
        raise InterfaceError(
            path, f"the shape of output {OUTPUT_NAME!r}", list(output_shape), f"[1, {NUM_CLASSES}]"
        )
    metadata = dict(spec.description.metadata.userDefined)
    classes = metadata.get("classes")
    if classes is None:
        raise InterfaceError(path, "the metadata key 'classes'", "missing", ",".join(CLASSES))
    if classes.split(",") != list(CLASSES):
        raise InterfaceError(path, "the class list in the metadata", repr(classes), repr(",".join(CLASSES)))
    if "input_length" in metadata and metadata["input_length"] != str(SEQ_LEN):
        raise InterfaceError(
            path, "the metadata input_length", repr(metadata["input_length"]), repr(str(SEQ_LEN))
        )
    if "alphabet" in metadata and metadata["alphabet"] != ALPHABET:
        raise InterfaceError(
            path,
            "the metadata alphabet",
            f"{len(metadata['alphabet'])} characters differing from the contract's",
            f"the contract's {len(ALPHABET)} characters",
        )
    for key, expected in (("input_name", INPUT_NAME), ("output_name", OUTPUT_NAME)):
        if key in metadata and metadata[key] != expected:
            raise InterfaceError(path, f"the metadata {key}", repr(metadata[key]), repr(expected))
    return Interface(
        formats[kind], INPUT_NAME, input_type, input_shape, OUTPUT_NAME, output_type, output_shape, metadata
    )


def read_interface(path: str | Path) -> Interface:
    """Read and check the interface of the artifact at `path` (no numbers are computed)."""
    from layoutnet.export.executor import read_spec

    path = Path(path)
    if path.suffix not in COREML_SUFFIXES:
        raise ExportError(f"{path} is not a Core ML artifact (.mlpackage or .mlmodel)")
    spec, _ = read_spec(path)
    return check_interface(spec, path)


def coreml_runtime_available() -> bool:
    if sys.platform != "darwin":
        return False
    try:
        from coremltools.libcoremlpython import _MLModelProxy  # noqa: F401
    except ImportError:
        return False
    return True


class CoreMLRuntime:
    """Runs a saved artifact through Core ML itself (macOS only), reading `classLogits` by name."""

    def __init__(self, path: Path, compute_units: str):
        import coremltools as ct

        self.backend = "coreml-runtime"
        self.compute_units = compute_units
        self.precision = "fp32" if compute_units == "CPU_ONLY" else "device"
        self.model = ct.models.MLModel(str(path), compute_units=getattr(ct.ComputeUnit, compute_units))

    def predict(self, ids: np.ndarray) -> np.ndarray:
        rows = []
        for row in ids:
            outputs = self.model.predict({INPUT_NAME: row.reshape(1, SEQ_LEN).astype(np.int32)})
            if OUTPUT_NAME not in outputs:
                raise ExportError(f"Core ML returned {sorted(outputs)}, not {OUTPUT_NAME!r}")
            rows.append(np.asarray(outputs[OUTPUT_NAME]).reshape(-1))
        return np.stack(rows).astype(np.float32)


class ExecutorRunner:
    """The reference executor at one precision mode."""

    def __init__(self, path: Path, precision: str):
        from layoutnet.export.executor import load_executor

        self.backend = "reference-executor"
        self.compute_units = None
        self.precision = precision
        self.executor = (
            load_executor(path, precision=precision) if precision != "declared" else load_executor(path)
        )

    def predict(self, ids: np.ndarray) -> np.ndarray:
        return np.asarray(self.executor.predict(np.ascontiguousarray(ids, dtype=np.int32)), dtype=np.float32)


@dataclass
class Artifact:
    """A saved artifact whose interface keeps the contract, with what runs it here."""

    path: Path
    interface: Interface
    runner: Any  # what the app would see: Core ML with all compute units, or the executor

    @property
    def format(self) -> str:
        return self.interface.format

    @property
    def metadata(self) -> dict[str, str]:
        return self.interface.metadata

    @property
    def backend(self) -> str:
        return self.runner.backend

    def logits(self, ids: np.ndarray) -> np.ndarray:
        """float32 [N, 9] logits of int ids [N, 20]."""
        out = self.runner.predict(np.ascontiguousarray(ids, dtype=np.int32))
        if out.shape != (len(ids), NUM_CLASSES):
            raise ExportError(
                f"{self.path} returned logits of shape {out.shape}, expected ({len(ids)}, {NUM_CLASSES})"
            )
        return out

    predict = logits

    def describe(self) -> dict:
        details = {"path": str(self.path), "format": self.format, "backend": self.backend}
        if getattr(self.runner, "compute_units", None):
            details["compute_units"] = self.runner.compute_units
        return details


def open_artifact(path: str | Path, *, precision: str = "declared") -> Artifact:
    """Check the artifact's interface against the contract, then return it with its runner.

    precision (reference executor only): declared (the file's own types), fp32, fp16_storage,
    fp16_wide, fp16 or fp16_sequential (`executor.load_executor`); on a Mac with Core ML the
    artifact runs with all compute units, as in the app.
    Raises InterfaceError (an ExportError) for a file that breaks the contract.
    """
    if precision not in RUNNER_PRECISIONS:
        raise ValueError(f"precision must be one of {RUNNER_PRECISIONS}, not {precision!r}")
    path = Path(path)
    interface = read_interface(path)
    runner = CoreMLRuntime(path, "ALL") if coreml_runtime_available() else ExecutorRunner(path, precision)
    return Artifact(path, interface, runner)
