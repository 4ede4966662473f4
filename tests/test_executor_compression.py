"""Compressed ML Programs (coremltools.optimize.coreml) in the reference executor.

Per op: the constexpr ops that coremltools 9 writes, on hand-made inputs against the formula.
Sub-byte storage: `unpack_bits` against a bit-by-bit packing written here. Whole models: a small
ensemble compressed with int8 per-channel linear quantization and 6-/4-bit palettization for the
iOS16, iOS17 and iOS18 opsets, saved, and run from disk. Its predictions must equal (to float32
rounding) those of the same artifact after coremltools' own `decompress_weights` (a cross-check of
the values the executor reads and expands itself). On a Transformer, whose weights the converter
keeps as they are (the CNN's are fused with batch norm), PyTorch with each parameter replaced by the
executor's dequantized tensor must give the executor's probabilities.
"""

from __future__ import annotations

import importlib.util
import logging
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from layoutnet.export.compression import with_file_weights
from layoutnet.export.executor import MIL_OPS, kernels, load_executor
from layoutnet.export.executor.engine import OpContext, Unsupported
from tests.test_executor_models import build, convert

logging.getLogger("coremltools").setLevel(logging.ERROR)
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import coremltools as ct
    import coremltools.optimize.coreml as cto

CTX = OpContext("op", "test", None, frozenset())
RNG = np.random.default_rng(99)


def pack_lsb_first(values: np.ndarray, nbits: int) -> np.ndarray:
    """Bit by bit: value i's bit b goes to bit (i * nbits + b) of the stream, byte k holding bits
    8k .. 8k+7 with the lowest first."""
    total = len(values) * nbits
    out = np.zeros(-(-total // 8), dtype=np.uint8)
    for i, v in enumerate(np.asarray(values).astype(np.int64) & ((1 << nbits) - 1)):
        for b in range(nbits):
            if (v >> b) & 1:
                pos = i * nbits + b
                out[pos // 8] |= np.uint8(1 << (pos % 8))
    return out


@pytest.mark.parametrize("nbits", [1, 2, 3, 4, 6, 8])
def test_unpack_bits_reads_values_packed_lowest_bit_first(nbits: int):
    values = RNG.integers(0, 1 << nbits, size=37)
    np.testing.assert_array_equal(kernels.unpack_bits(pack_lsb_first(values, nbits), nbits, 37), values)


def test_unpack_bits_sign_extends_int4_and_refuses_short_data():
    values = np.array([-8, -1, 0, 7, 3, -5])
    np.testing.assert_array_equal(kernels.unpack_bits(pack_lsb_first(values, 4), 4, 6, signed=True), values)
    with pytest.raises(ValueError, match="fewer than 7 values"):
        kernels.unpack_bits(np.zeros(3, np.uint8), 4, 7)


def test_constexpr_affine_dequantize_scales_each_channel():
    q = RNG.integers(-128, 128, size=(4, 6)).astype(np.int8)
    zp = np.array([0, 1, -2, 3], np.int8)
    scale = np.array([0.5, 0.25, 2.0, 0.125], np.float32)
    out = MIL_OPS["constexpr_affine_dequantize"].fn(CTX, quantized_data=q, zero_point=zp, scale=scale, axis=0)
    np.testing.assert_array_equal(out, (q.astype(np.float64) - zp[:, None]) * scale[:, None])
    along1 = MIL_OPS["constexpr_affine_dequantize"].fn(
        CTX, quantized_data=q.T.copy(), zero_point=np.int8(0), scale=scale, axis=np.int32(1)
    )
    np.testing.assert_array_equal(along1, q.T.astype(np.float32) * scale[None, :])


def test_constexpr_blockwise_shift_scale_repeats_blocks():
    data = RNG.integers(-8, 8, size=(4, 6)).astype(np.int8)
    scale = np.array([[1.0, 2.0, 3.0], [0.5, 0.25, 4.0]], np.float32)  # blocks of 2 x 2
    offset = np.array([[1, 0, -1], [2, -2, 0]], np.int8)
    out = MIL_OPS["constexpr_blockwise_shift_scale"].fn(CTX, data=data, scale=scale, offset=offset)
    expected = np.empty((4, 6))
    for i in range(4):
        for j in range(6):
            expected[i, j] = (data[i, j] - offset[i // 2, j // 2]) * scale[i // 2, j // 2]
    np.testing.assert_array_equal(out, expected)
    no_offset = MIL_OPS["constexpr_blockwise_shift_scale"].fn(CTX, data=data, scale=scale[:1, :1])
    np.testing.assert_array_equal(no_offset, data.astype(np.float32))
    with pytest.raises(ValueError, match="do not divide"):
        MIL_OPS["constexpr_blockwise_shift_scale"].fn(CTX, data=data, scale=np.ones((3, 1), np.float32))


def test_constexpr_lut_to_dense_packed_ios16_form():
    lut = RNG.standard_normal(64).astype(np.float32)
    idx = RNG.integers(0, 64, size=3 * 5)
    out = MIL_OPS["constexpr_lut_to_dense"].fn(
        CTX, indices=pack_lsb_first(idx, 6), lut=lut, shape=np.array([3, 5], np.uint32)
    )
    np.testing.assert_array_equal(out, lut[idx].reshape(3, 5))


def test_constexpr_lut_to_dense_per_group_ios18_form():
    indices = RNG.integers(0, 16, size=(4, 3)).astype(np.uint8)
    lut = RNG.standard_normal((2, 1, 16, 1)).astype(np.float32)  # one table per group of 2 rows
    out = MIL_OPS["constexpr_lut_to_dense"].fn(CTX, indices=indices, lut=lut)
    expected = np.array([[lut[i // 2, 0, indices[i, j], 0] for j in range(3)] for i in range(4)])
    np.testing.assert_array_equal(out, expected)
    with pytest.raises(Unsupported, match="vector palettization"):
        MIL_OPS["constexpr_lut_to_dense"].fn(CTX, indices=indices, lut=np.zeros((1, 1, 16, 2), np.float32))


# ----------------------------------------------------------------------------- whole models

PALETTE_MODE = "kmeans" if importlib.util.find_spec("sklearn") else "uniform"  # kmeans needs scikit-learn
COMPRESSIONS = {
    "int8": lambda: cto.OpLinearQuantizerConfig(
        mode="linear_symmetric", dtype="int8", granularity="per_channel", weight_threshold=0
    ),
    "palettize6": lambda: cto.OpPalettizerConfig(mode=PALETTE_MODE, nbits=6, weight_threshold=0),
    "palettize4": lambda: cto.OpPalettizerConfig(mode=PALETTE_MODE, nbits=4, weight_threshold=0),
    "palettize4-grouped": lambda: cto.OpPalettizerConfig(
        mode=PALETTE_MODE, nbits=4, granularity="per_grouped_channel", group_size=4, weight_threshold=0
    ),
    "int4-per-block": lambda: cto.OpLinearQuantizerConfig(
        mode="linear", dtype="int4", granularity="per_block", block_size=4, weight_threshold=0
    ),
}
CASES = [
    ("iOS16", "int8", "constexpr_affine_dequantize"),
    ("iOS16", "palettize6", "constexpr_lut_to_dense"),
    ("iOS17", "palettize4", "constexpr_lut_to_dense"),
    ("iOS18", "int8", "constexpr_blockwise_shift_scale"),
    ("iOS18", "palettize6", "constexpr_lut_to_dense"),
    ("iOS18", "palettize4-grouped", "constexpr_lut_to_dense"),
    ("iOS18", "int4-per-block", "constexpr_blockwise_shift_scale"),
]
IDS = np.random.default_rng(3).integers(0, 60, size=(40, 20)).astype(np.int32)


@pytest.fixture(scope="module")
def model() -> nn.Module:
    return build("ensemble")


@pytest.fixture(scope="module")
def bases(model, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("compress-base")
    return {
        t: convert(model, root / f"base-{t}.mlpackage", "mlprogram-fp32", t)
        for t in ("iOS16", "iOS17", "iOS18")
    }


def compress(base: Path, kind: str, out: Path) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ml = ct.models.MLModel(str(base), skip_model_load=True)
        config = cto.OptimizationConfig(global_config=COMPRESSIONS[kind]())
        fn = cto.linear_quantize_weights if kind.startswith("int") else cto.palettize_weights
        fn(ml, config).save(str(out))
    return out


def _probs(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


@pytest.mark.parametrize(("target", "kind", "op"), CASES)
def test_compressed_artifact_runs_from_its_packed_weights(model, bases, tmp_path, target, kind, op):
    path = compress(bases[target], kind, tmp_path / f"{kind}-{target}.mlpackage")
    executor = load_executor(path)
    assert op in executor.op_types
    ours = executor.predict(IDS)

    # cross-check: coremltools' own decompression of the same file, run by the same executor
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dense = cto.decompress_weights(ct.models.MLModel(str(path), skip_model_load=True))
        dense.save(str(tmp_path / "dense.mlpackage"))
    dense_executor = load_executor(tmp_path / "dense.mlpackage")
    assert not any(t.startswith("constexpr_") for t in dense_executor.op_types)
    np.testing.assert_allclose(ours, dense_executor.predict(IDS), rtol=1e-5, atol=1e-5)

    # and compression really changed the model
    with torch.no_grad():
        original = model(torch.from_numpy(IDS).long()).numpy()
    assert np.abs(original - ours).max() > 1e-5


@pytest.mark.parametrize(
    ("target", "kind"), [("iOS16", "int8"), ("iOS17", "palettize6"), ("iOS18", "palettize4-grouped")]
)
def test_pytorch_with_the_dequantized_weights_matches_the_compressed_artifact(tmp_path, target, kind):
    transformer = build("transformer-nomask-sinusoidal-postnorm")
    base = convert(transformer, tmp_path / "base.mlpackage", "mlprogram-fp32", target)
    small = compress(base, kind, tmp_path / "small.mlpackage")
    ours = load_executor(small).predict(IDS)
    twin, placed = with_file_weights(transformer, small)
    assert len(placed) >= 4 and len(set(placed.values())) == len(placed)
    with torch.no_grad():
        reference = twin(torch.from_numpy(IDS).long()).numpy()
        original = transformer(torch.from_numpy(IDS).long()).numpy()
    assert np.abs(_probs(ours) - _probs(reference)).max() <= 1e-4
    assert np.abs(ours - reference).max() < 0.1 * np.abs(ours - original).max()


def test_compressed_artifact_runs_in_every_precision(bases, tmp_path):
    path = compress(bases["iOS18"], "palettize6", tmp_path / "p6.mlpackage")
    declared = load_executor(path).predict(IDS)
    for precision in ("fp32", "fp16_storage", "fp16"):
        out = load_executor(path, precision=precision).predict(IDS)
        assert np.abs(_probs(out) - _probs(declared)).max() <= (1e-6 if precision == "fp32" else 1e-2)
