"""A damaged artifact is refused at load with an ExportError that names the file, the blob and
what is wrong - never a crash, a NumPy error or silently wrong numbers.

ML Programs: the weight.bin of a saved package is truncated or has one field of one blob record
changed (sentinel, storage dtype code, size, data offset). NeuralNetworks: a layer's weights no
longer match the shape the layer declares.
"""

from __future__ import annotations

import re
import shutil
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from layoutnet.errors import ExportError, LayoutnetError
from layoutnet.export.executor import load_executor, read_spec
from tests.test_executor_models import build, convert

WEIGHTS = Path("Data") / "com.apple.CoreML" / "weights" / "weight.bin"


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> Path:
    return convert(build("ensemble"), tmp_path_factory.mktemp("good") / "model.mlpackage", "mlprogram-fp32")


@pytest.fixture(scope="module")
def network(tmp_path_factory) -> Path:
    return convert(
        build("cnn-same-tanh-mean"), tmp_path_factory.mktemp("good") / "model.mlmodel", "neuralnetwork"
    )


def records(data: bytes) -> list[tuple[int, int, int, int]]:
    """(record offset, dtype code, size, data offset) of each blob, parsed here independently."""
    count = struct.unpack_from("<I", data, 0)[0]
    found, offset = [], 64
    for _ in range(count):
        _, code, size, data_offset = struct.unpack_from("<IIQQ", data, offset)
        found.append((offset, code, size, data_offset))
        offset = (data_offset + size + 63) // 64 * 64
    return found


def damaged(package: Path, tmp_path: Path, change: Callable[[bytearray], bytes]) -> Path:
    copy = tmp_path / "damaged.mlpackage"
    shutil.copytree(package, copy)
    weight_file = copy / WEIGHTS
    weight_file.write_bytes(change(bytearray(weight_file.read_bytes())))
    return copy


def _largest(data: bytes) -> tuple[int, int, int, int]:
    return max(records(data), key=lambda r: r[2])


def _set(data: bytearray, offset: int, fmt: str, value: int) -> bytes:
    struct.pack_into(fmt, data, offset, value)
    return bytes(data)


CORRUPTIONS: dict[str, tuple[Callable[[bytearray], bytes], str]] = {
    "bad sentinel": (
        lambda d: _set(d, _largest(d)[0], "<I", 0xFEEDFACE),
        r"blob at offset {record}: bad sentinel 0xfeedface \(expected 0xdeadbeef\)",
    ),
    "unknown dtype code": (
        lambda d: _set(d, _largest(d)[0] + 4, "<I", 99),
        r"blob at offset {record}: unknown storage dtype code 99",
    ),
    "dtype other than declared": (
        lambda d: _set(d, _largest(d)[0] + 4, "<I", 1),
        r"blob at offset {record}: stores fp16 values, the program declares fp32",
    ),
    "size other than the shape needs": (
        lambda d: _set(d, _largest(d)[0] + 8, "<Q", _largest(d)[2] - 4),
        r"blob at offset {record}: holds {size_minus_4} bytes, "
        r"the declared shape \[.*\] of fp32 needs {size}",
    ),
    "data offset past the end": (
        lambda d: _set(d, _largest(d)[0] + 16, "<Q", len(d) + 64),
        r"blob at offset {record}: its {size} bytes of data at offset \d+ run past the end of the file",
    ),
    "truncated inside the data": (
        lambda d: bytes(d[: _largest(d)[3] + _largest(d)[2] // 2]),
        r"blob at offset {record}: its {size} bytes of data at offset {data} run past the end of the file",
    ),
    "truncated before a record": (
        lambda d: bytes(d[: _largest(d)[0] + 10]),
        r"blob at offset {record}: the record lies outside the file",
    ),
    "shorter than the header": (
        lambda d: bytes(d[:10]),
        r"blob at offset 0: the file is 10 bytes, shorter than its 64-byte header",
    ),
}


@pytest.mark.parametrize("reader", ["auto", "native"])
@pytest.mark.parametrize("kind", sorted(CORRUPTIONS))
def test_damaged_weight_file_is_refused_at_load(package: Path, tmp_path: Path, kind: str, reader: str):
    change, pattern = CORRUPTIONS[kind]
    record, _, size, data = _largest((package / WEIGHTS).read_bytes())
    path = damaged(package, tmp_path, change)
    with pytest.raises(ExportError) as info:
        load_executor(path, blob_reader=reader)
    message = str(info.value)
    assert isinstance(info.value, LayoutnetError)
    assert str(path / WEIGHTS) in message
    expected = pattern.format(record=record, size=size, size_minus_4=size - 4, data=data)
    assert re.search(expected, message), message
    assert "export the model again" in message
    assert "\n" not in message


def test_undamaged_weight_file_still_loads(package: Path, tmp_path: Path):
    path = damaged(package, tmp_path, bytes)
    ids = np.zeros((2, 20), np.int32)
    np.testing.assert_array_equal(load_executor(path).predict(ids), load_executor(package).predict(ids))


def _damaged_network(network: Path, tmp_path: Path, change: Callable) -> Path:
    spec, _ = read_spec(network)
    layer = next(layer for layer in spec.neuralNetwork.layers if layer.WhichOneof("layer") == change.__name__)
    change(getattr(layer, layer.WhichOneof("layer")))
    path = tmp_path / "damaged.mlmodel"
    path.write_bytes(spec.SerializeToString())
    return path


def innerProduct(params) -> None:  # named after the layer it damages
    del params.weights.floatValue[-3:]


def convolution(params) -> None:
    params.weights.floatValue.extend([0.5, 0.25])


def batchnorm(params) -> None:
    del params.gamma.floatValue[:]


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (innerProduct, r"innerProduct\): weights hold \d+ values, shape \(\d+, \d+\) needs \d+"),
        (convolution, r"convolution\): weights hold \d+ values, shape \(\d+, \d+, 1, \d+\) needs \d+"),
        (batchnorm, r"batchnorm\): weights hold 0 values, shape \(\d+,\) needs \d+"),
    ],
    ids=["inner product short", "convolution long", "batchnorm missing gamma"],
)
def test_neuralnetwork_weights_of_the_wrong_size_are_refused(network: Path, tmp_path: Path, change, problem):
    path = _damaged_network(network, tmp_path, change)
    with pytest.raises(ExportError, match=problem) as info:
        load_executor(path)
    assert str(path) in str(info.value)
