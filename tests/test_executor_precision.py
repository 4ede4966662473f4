"""The executor's precision modes: declared, fp32, fp16_storage and true fp16 arithmetic.

Per op: the fp16 result (inputs rounded to fp16, every step computed in fp16) must lie within the
classic rounding-error bound of a float64 reference computed on the same fp16 inputs (unit roundoff
u = 2**-11; an inner product or sum of K terms gains at most about K * u * sum|terms|), and must
differ from the fp32-arithmetic result rounded once (fp16_storage), which is what shows that every
intermediate was really rounded. Whole models: the three families in both formats, each mode
against PyTorch and against the others. A cross-check against coremltools' own NumPy evaluation of
MIL ops (`value_inference`, which keeps values in float16 but lets NumPy accumulate in float32)
shows where the two differ and by how much.
"""

from __future__ import annotations

import functools
import logging
import math
import warnings
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from layoutnet.export.executor import MIL_OPS, NN_LAYERS, PRECISIONS, kernels, load_executor
from layoutnet.export.executor.engine import OpContext
from tests.test_executor_models import build, convert
from tests.test_executor_ops import layer, set_weights

logging.getLogger("coremltools").setLevel(logging.ERROR)
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.mil import types

U = 2.0**-11  # fp16 unit roundoff
RNG = np.random.default_rng(20260)


@pytest.fixture(autouse=True)
def _seeded_per_test(request):
    """Each test draws the same numbers whichever tests ran before it in this process (xdist
    spreads them differently from run to run)."""
    global RNG
    RNG = np.random.default_rng(zlib.crc32(request.node.name.encode()))


FP16 = OpContext("op", "test", None, frozenset(), fp16=True)
FP32 = OpContext("op", "test", None, frozenset())


def h(*shape: int, scale: float = 1.0, positive: bool = False) -> np.ndarray:
    """Random values that are exact fp16 numbers (as float32, the executor's storage)."""
    x = RNG.standard_normal(shape) * scale
    if positive:
        x = np.abs(x) + 0.1
    return x.astype(np.float16).astype(np.float32)


def is_fp16(x: np.ndarray) -> bool:
    x = np.asarray(x, dtype=np.float32)
    return bool(np.array_equal(x, x.astype(np.float16).astype(np.float32), equal_nan=True))


# Each case: op name, inputs (fp16-exact float32 or constants), float64 reference, error bound
# (elementwise, from the float64 inputs and reference).
Bound = Callable[[dict[str, Any], np.ndarray], np.ndarray]


def _dot_bound(k: int) -> Callable[[np.ndarray], np.ndarray]:
    return lambda abs_products: (k + 2) * U * abs_products


def _relative(steps: int, floor: float = 0.0) -> Bound:
    return lambda a, ref: steps * U * np.abs(ref) + floor


def _softmax_bound(x: np.ndarray, ref: np.ndarray, axis: int = -1) -> np.ndarray:
    """Relative: the rounded shift x - max (|x - max| * u in the exponent), the sum of K terms and
    three more roundings; plus the smallest fp16 subnormal."""
    shift = np.abs(x - x.max(axis, keepdims=True))
    return (x.shape[axis] + 6 + shift) * U * ref + 2.0**-24


# exp(-x) overflows fp16 beyond x < -11.1: the fp16 sigmoid is then 0, within 2**-16 of the truth.
_SIGMOID_FLOOR = 2.0**-16


def _ln(x: np.ndarray, axis: int = -1, eps: float = 1e-5) -> np.ndarray:
    mean = x.mean(axis, keepdims=True)
    var = ((x - mean) ** 2).mean(axis, keepdims=True)
    return (x - mean) / np.sqrt(var + eps)


def _gelu64(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))


def _softmax64(x: np.ndarray, axis: int = -1) -> np.ndarray:
    e = np.exp(x - x.max(axis, keepdims=True))
    return e / e.sum(axis, keepdims=True)


def _conv64(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    return F.conv1d(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b)).numpy()


MIL_FP16_CASES: dict[str, Callable[[], tuple[dict[str, Any], Callable, Bound]]] = {
    "matmul": lambda: (
        dict(x=h(2, 8, 96), y=h(96, 12)),
        lambda a: a["x"] @ a["y"],
        lambda a, ref: _dot_bound(96)(np.abs(a["x"]) @ np.abs(a["y"])),
    ),
    "linear": lambda: (
        dict(x=h(4, 5, 80), weight=h(16, 80), bias=h(16)),
        lambda a: a["x"] @ a["weight"].T + a["bias"],
        lambda a, ref: _dot_bound(81)(np.abs(a["x"]) @ np.abs(a["weight"]).T + np.abs(a["bias"])),
    ),
    "conv": lambda: (
        dict(x=h(3, 24, 20), weight=h(16, 24, 3), bias=h(16)),
        lambda a: _conv64(a["x"], a["weight"], a["bias"]),
        lambda a, ref: _dot_bound(73)(_conv64(np.abs(a["x"]), np.abs(a["weight"]), np.abs(a["bias"]))),
    ),
    "reduce_sum": lambda: (
        dict(x=h(6, 300, positive=True), axes=np.array([-1], np.int32)),
        lambda a: a["x"].sum(-1),
        lambda a, ref: _dot_bound(300)(np.abs(a["x"]).sum(-1)),
    ),
    "reduce_mean": lambda: (
        dict(x=h(6, 200), axes=np.array([-1], np.int32)),
        lambda a: a["x"].mean(-1),
        lambda a, ref: _dot_bound(202)(np.abs(a["x"]).mean(-1)),
    ),
    "reduce_prod": lambda: (
        dict(x=(1 + 0.05 * h(6, 40)).astype(np.float16).astype(np.float32), axes=np.array([-1], np.int32)),
        lambda a: a["x"].prod(-1),
        _relative(42),
    ),
    "softmax": lambda: (
        dict(x=h(5, 64, scale=3), axis=np.int32(-1)),
        lambda a: _softmax64(a["x"]),
        lambda a, ref: _softmax_bound(a["x"], ref),
    ),
    "layer_norm": lambda: (
        dict(
            x=h(4, 64, scale=2),
            axes=np.array([-1], np.int32),
            gamma=h(64),
            beta=h(64),
            epsilon=np.float32(1e-5),
        ),
        lambda a: _ln(a["x"]) * a["gamma"] + a["beta"],
        lambda a, ref: (2 * 64 + 12) * U * (np.abs(_ln(a["x"]) * a["gamma"]) + np.abs(a["beta"]) + 1),
    ),
    "batch_norm": lambda: (
        dict(
            x=h(4, 8, 20),
            mean=h(8),
            variance=h(8, positive=True),
            gamma=h(8),
            beta=h(8),
            epsilon=np.float32(1e-3),
        ),
        lambda a: (
            (a["x"] - a["mean"][:, None]) / np.sqrt(a["variance"][:, None] + 1e-3) * a["gamma"][:, None]
            + a["beta"][:, None]
        ),
        lambda a, ref: 12 * U * (np.abs(ref) + np.abs(a["mean"][:, None] * a["gamma"][:, None]) + 1),
    ),
    "avg_pool": lambda: (
        dict(x=h(3, 8, 40), kernel_sizes=np.array([5], np.int32), strides=np.array([1], np.int32)),
        lambda a: np.lib.stride_tricks.sliding_window_view(a["x"], 5, axis=-1).mean(-1),
        lambda a, ref: 8 * U * np.lib.stride_tricks.sliding_window_view(np.abs(a["x"]), 5, axis=-1).mean(-1),
    ),
    "gelu": lambda: (
        dict(x=h(20, 50, scale=2.5)),
        lambda a: _gelu64(a["x"]),
        lambda a, ref: 6 * U * (np.abs(ref) + np.abs(a["x"])),
    ),
    "sigmoid": lambda: (
        dict(x=h(20, 50, scale=4)),
        lambda a: 1 / (1 + np.exp(-a["x"])),
        _relative(6, _SIGMOID_FLOOR),
    ),
    "silu": lambda: (
        dict(x=h(20, 50, scale=4)),
        lambda a: a["x"] / (1 + np.exp(-a["x"])),
        lambda a, ref: 8 * U * np.abs(ref) + _SIGMOID_FLOOR * np.abs(a["x"]),
    ),
    "elu": lambda: (
        dict(x=h(20, 50, scale=3), alpha=np.float32(1.3)),
        lambda a: np.where(a["x"] > 0, a["x"], 1.3 * np.expm1(np.minimum(a["x"], 0))),
        _relative(6),
    ),
    "softsign": lambda: (dict(x=h(20, 50, scale=3)), lambda a: a["x"] / (1 + np.abs(a["x"])), _relative(4)),
    "rsqrt": lambda: (
        dict(x=h(20, 50, positive=True), epsilon=np.float32(1e-3)),
        lambda a: 1 / np.sqrt(a["x"] + 1e-3),
        _relative(6),
    ),
    "inverse": lambda: (
        dict(x=h(20, 50, positive=True), epsilon=np.float32(1e-2)),
        lambda a: 1 / (a["x"] + 1e-2),
        _relative(4),
    ),
}
# Ops whose fp16 path has several roundings, so random data must show them (some need many values).
_SHOWS_ROUNDING = set(MIL_FP16_CASES) - {"elu", "softsign", "inverse", "rsqrt", "sigmoid"}


def _round_inputs(inputs: dict[str, Any]) -> dict[str, Any]:
    return {
        k: kernels.round_to_fp16(v) if isinstance(v, np.ndarray) and v.dtype.kind == "f" else v
        for k, v in inputs.items()
    }


def test_numpy_float16_products_accumulate_wider_than_fp16():
    """Why the executor accumulates by itself: NumPy's float16 matmul and sum round only the final
    result (a float32 accumulator inside), where an fp16 device rounds every partial sum."""
    # 1 + 0.0004 is 1 in fp16 (spacing 2**-10 there): every pair of the tree's first level drops it
    terms = np.array([1.0, 0.0004] * 1500, np.float16)
    assert float(terms.sum()) == 1501.0  # 1500.6, rounded once
    assert float((terms[None, :] @ np.ones((3000, 1), np.float16))[0, 0]) == 1501.0
    row = terms.astype(np.float32)[None, :]
    assert float(kernels.sum16(row, None)) == float(_pairwise_fp16(row.T)[0]) == 1500.0
    assert float(kernels.gemm16(row, np.ones((3000, 1), np.float32))[0, 0]) == 1500.0


def test_fp16_cases_cover_every_op_with_an_fp16_path():
    # ops that accumulate or chain several arithmetic steps
    assert set(MIL_FP16_CASES) <= set(MIL_OPS)
    for name in ("matmul", "linear", "conv", "softmax", "layer_norm", "reduce_sum", "reduce_mean", "gelu"):
        assert name in MIL_FP16_CASES


@pytest.mark.parametrize("name", sorted(MIL_FP16_CASES))
def test_mil_op_in_true_fp16_within_rounding_bound_of_float64(name: str):
    inputs, reference, bound = MIL_FP16_CASES[name]()
    inputs = _round_inputs(inputs)
    fn = MIL_OPS[name].fn
    ours = kernels.round_to_fp16(np.asarray(fn(FP16, **inputs), dtype=np.float32))  # as the engine stores it
    storage = kernels.round_to_fp16(np.asarray(fn(FP32, **inputs), dtype=np.float32))
    a64 = {
        k: v.astype(np.float64) if isinstance(v, np.ndarray) and v.dtype.kind == "f" else v
        for k, v in inputs.items()
    }
    ref = reference(a64)
    err = np.abs(ours.astype(np.float64) - ref)
    limit = bound(a64, ref) + np.spacing(np.abs(ref).astype(np.float16)).astype(np.float64)  # final rounding
    assert ours.shape == ref.shape
    assert np.all(err <= limit), f"{name}: worst excess {np.max(err - limit):.3g}"
    assert is_fp16(ours)
    if name in _SHOWS_ROUNDING:
        assert not np.array_equal(ours, storage), (
            f"{name}: fp16 arithmetic equals fp32 arithmetic rounded once"
        )


def test_true_fp16_accumulation_loses_what_fp32_accumulation_keeps():
    # 1 + 0.0004 is 1 in fp16: the tree's first level drops every 0.0004
    x = kernels.round_to_fp16(np.array([[1.0, 0.0004] * 1500], np.float32))
    axes = np.array([1], np.int32)
    assert float(MIL_OPS["reduce_sum"].fn(FP32, x=x, axes=axes)[0]) == pytest.approx(1500.6, abs=1e-3)
    assert float(MIL_OPS["reduce_sum"].fn(FP16, x=x, axes=axes)[0]) == 1500.0
    w = np.ones((1, 3000), np.float32)
    assert float(MIL_OPS["linear"].fn(FP32, x=x, weight=w)[0, 0]) == pytest.approx(1500.6, abs=1e-3)
    assert float(MIL_OPS["linear"].fn(FP16, x=x, weight=w)[0, 0]) == 1500.0


def _pairwise_fp16(terms: np.ndarray) -> np.ndarray:
    """The definition the tiled kernels must meet, in NumPy's own float16 arithmetic (each + rounds
    to fp16): the terms rounded to fp16, then neighbours added level by level, an odd last carried."""
    level = terms.astype(np.float16)
    with np.errstate(over="ignore", invalid="ignore"):
        while len(level) > 1:
            half = len(level) // 2
            paired = level[0 : 2 * half : 2] + level[1 : 2 * half : 2]
            level = np.concatenate([paired, level[2 * half :]]) if len(level) % 2 else paired
    return level[0].astype(np.float32)


def _wide_fp16(terms: np.ndarray) -> np.ndarray:
    """The terms rounded to fp16, summed exactly (Python's exact rational sum of each output's
    terms), the total rounded once to fp16."""
    from fractions import Fraction

    halves = terms.astype(np.float16).astype(np.float64).reshape(len(terms), -1)
    out = np.empty(halves.shape[1], np.float64)
    for j in range(halves.shape[1]):
        column = halves[:, j]
        out[j] = np.nan if np.isnan(column).any() else float(sum(map(Fraction, column)))
    with np.errstate(over="ignore"):
        return out.astype(np.float16).astype(np.float32).reshape(terms.shape[1:])


def _sequential_fp16(terms: np.ndarray) -> np.ndarray:
    """One running fp16 sum in index order: each term (an exact float32 product, or an fp16 number)
    added to it in float32 and the result rounded by NumPy's float16 cast."""
    acc = np.zeros(terms.shape[1:], np.float16)
    with np.errstate(over="ignore", invalid="ignore"):
        for term in terms.astype(np.float32):
            acc = (acc.astype(np.float32) + term).astype(np.float16)
    return acc.astype(np.float32)


FP16_DEFINITIONS = {"tree": _pairwise_fp16, "wide": _wide_fp16, "sequential": _sequential_fp16}


def test_every_accumulation_order_has_its_definition():
    assert set(FP16_DEFINITIONS) == set(kernels.ACCUMULATIONS)


@pytest.mark.parametrize("accumulation", sorted(FP16_DEFINITIONS))
@pytest.mark.parametrize("scale", [1.0, 1e-3, 3e-5, 40.0])
def test_tiled_fp16_products_and_sums_equal_their_fp16_definition(
    scale: float, accumulation: str, monkeypatch
):
    """gemm16 / sum16 reduce tiles of outputs at once; scales from fp16 subnormals (3e-5 * 3e-5
    products) to sums near fp16's limit must give the same numbers as the plain definition of each
    order (pairwise tree, wide accumulator, running sum), also for batched products, sums over
    several axes, and tiles smaller than the output."""
    define = FP16_DEFINITIONS[accumulation]
    a, b = h(37, 70, scale=scale), h(70, 29, scale=scale)
    products = a.T[:, :, None] * b[:, None, :]  # [K, M, N], exact in float32
    gemm = functools.partial(kernels.gemm16, accumulation=accumulation)
    assert np.array_equal(gemm(a, b), define(products), equal_nan=True)
    x, y = h(3, 5, 20, 16, scale=scale), h(3, 5, 16, 20, scale=scale)
    batched = np.moveaxis(x, -1, 0)[..., :, None] * np.moveaxis(y, -2, 0)[..., None, :]
    assert np.array_equal(gemm(x, y), define(batched), equal_nan=True)
    z = h(6, 130, 4, scale=scale)
    sums = functools.partial(kernels.sum16, accumulation=accumulation)
    assert np.array_equal(sums(z, [1]), define(np.moveaxis(z, 1, 0)))
    terms_02 = z.transpose(0, 2, 1).reshape(24, 130)  # axes 0 and 2, in index order
    assert np.array_equal(sums(z, [0, 2]), define(terms_02))
    monkeypatch.setattr(kernels, "_TERMS", 700)  # a few outputs per tile
    assert np.array_equal(gemm(a, b), define(products), equal_nan=True)
    monkeypatch.setattr(kernels, "_TERMS", 140)  # one row's products split over several column tiles
    assert np.array_equal(gemm(a, b), define(products), equal_nan=True)
    assert np.array_equal(gemm(x, y), define(batched), equal_nan=True)
    assert np.array_equal(sums(z, [1]), define(np.moveaxis(z, 1, 0)))


def test_the_three_orders_give_three_answers_where_fp16_partial_sums_round():
    """One row whose terms need more than fp16's 11 bits in a partial sum: the wide accumulator
    keeps them until the end, the tree and the running sum each lose their own share."""
    row = kernels.round_to_fp16(np.array([[2048.0] + [1.0, 0.5, 0.25] * 12], np.float32))
    ones = np.ones((row.shape[1], 1), np.float32)
    results = {a: float(kernels.gemm16(row, ones, a)[0, 0]) for a in kernels.ACCUMULATIONS}
    assert results["wide"] == 2068.0  # 2069 exact, rounded once (spacing 4 above 2048)
    assert results["sequential"] == 2048.0  # every term below half the spacing at 2048 is lost
    assert len(set(results.values())) == 3, results


def test_fp16_sums_over_an_empty_axis_are_zero():
    assert np.array_equal(kernels.sum16(np.zeros((0, 3), np.float32), [0]), np.zeros(3, np.float32))
    assert kernels.sum16(np.zeros((4, 0), np.float32), [0]).shape == (0,)


@pytest.mark.parametrize("accumulation", ["tree", "sequential"])
def test_fp16_partial_sums_overflow_to_inf_as_on_a_device(accumulation: str):
    """A partial sum beyond 65504 is inf in fp16 and stays inf, even when later terms would bring
    an fp32 sum back into range."""
    x = np.array([[60000.0, 60000.0, -60000.0]], np.float32)
    ones = np.ones((3, 1), np.float32)
    assert np.isposinf(kernels.gemm16(x, ones, accumulation)[0, 0])
    assert np.isposinf(kernels.sum16(x, [1], accumulation=accumulation)[0])
    assert float(kernels.gemm16(x, ones * 0.5, accumulation)[0, 0]) == 30000.0  # within range: exact


def test_a_wide_accumulator_overflows_only_in_the_result():
    """fp16 products into a wide accumulator: a partial sum beyond 65504 is kept, only the rounded
    total must fit fp16 (and one that does not is inf)."""
    x = np.array([[60000.0, 60000.0, -60000.0]], np.float32)
    ones = np.ones((3, 1), np.float32)
    assert float(kernels.gemm16(x, ones, "wide")[0, 0]) == 60000.0
    assert float(kernels.sum16(x, [1], accumulation="wide")[0]) == 60000.0
    assert np.isposinf(kernels.gemm16(x[:, :2], ones[:2], "wide")[0, 0])


# ----------------------------------------------------------------------------- NeuralNetwork layers


def _nn(kind: str, params: Any, *xs: np.ndarray, fp16: bool) -> np.ndarray:
    entry = NN_LAYERS[kind]
    prepared = entry.prepare(params)
    if fp16:
        from layoutnet.export.executor.nn_program import _fp16_weights

        prepared = _fp16_weights(prepared)
    out = entry.fn(FP16 if fp16 else FP32, prepared, *xs)
    return kernels.round_to_fp16(np.asarray(out, dtype=np.float32))


def test_nn_inner_product_and_softmax_in_true_fp16():
    x, w, b = h(6, 96), h(10, 96), h(10)
    params = layer("innerProduct", inputChannels=96, outputChannels=10, hasBias=True)
    set_weights(params.weights, w)
    set_weights(params.bias, b)
    ours = _nn("innerProduct", params, x, fp16=True)
    ref = x.astype(np.float64) @ w.T.astype(np.float64) + b
    limit = _dot_bound(97)(np.abs(x) @ np.abs(w).T + np.abs(b)) + np.spacing(np.abs(ref).astype(np.float16))
    assert np.all(np.abs(ours - ref) <= limit)
    assert not np.array_equal(ours, _nn("innerProduct", params, x, fp16=False))

    s = h(4, 3, 50, scale=3)
    p = layer("softmaxND", axis=-1)
    ours = _nn("softmaxND", p, s, fp16=True)
    ref = _softmax64(s.astype(np.float64))
    assert np.all(np.abs(ours - ref) <= _softmax_bound(s.astype(np.float64), ref))
    assert not np.array_equal(ours, _nn("softmaxND", p, s, fp16=False))


def test_nn_layer_norm_and_reduce_mean_in_true_fp16():
    x, gamma, beta = h(4, 64, scale=2), h(64), h(64)
    p = layer("layerNormalization", normalizedShape=[64], eps=1e-5)
    set_weights(p.gamma, gamma)
    set_weights(p.beta, beta)
    ours = _nn("layerNormalization", p, x, fp16=True)
    ref = _ln(x.astype(np.float64)) * gamma + beta
    assert np.all(np.abs(ours - ref) <= 140 * U * (np.abs(ref) + 1))
    assert not np.array_equal(ours, _nn("layerNormalization", p, x, fp16=False))

    y = h(3, 8, 200)
    p = layer("reduceMean", axes=[-1], keepDims=False)
    ours = _nn("reduceMean", p, y, fp16=True)
    ref = y.astype(np.float64).mean(-1)
    assert np.all(
        np.abs(ours - ref) <= _dot_bound(202)(np.abs(y).mean(-1)) + np.spacing(np.abs(ref).astype(np.float16))
    )
    assert not np.array_equal(ours, _nn("reduceMean", p, y, fp16=False))


def test_nn_convolution_and_gelu_in_true_fp16():
    x, w = h(2, 16, 1, 20), h(8, 16, 1, 3)
    p = layer("convolution", outputChannels=8, kernelChannels=16, kernelSize=[1, 3], stride=[1, 1])
    p.valid.SetInParent()
    set_weights(p.weights, w)
    ours = _nn("convolution", p, x, fp16=True)
    ref = _conv64(x[:, :, 0].astype(np.float64), w[:, :, 0].astype(np.float64), np.zeros(8))[:, :, None]
    bound = _dot_bound(48)(
        _conv64(np.abs(x[:, :, 0]).astype(np.float64), np.abs(w[:, :, 0]).astype(np.float64), np.zeros(8))
    )
    assert np.all(np.abs(ours - ref) <= bound[:, :, None] + np.spacing(np.abs(ref).astype(np.float16)))
    assert not np.array_equal(ours, _nn("convolution", p, x, fp16=False))

    g = h(20, 50, scale=2.5)
    ours = _nn("gelu", layer("gelu"), g, fp16=True)
    ref = _gelu64(g.astype(np.float64))
    assert np.all(
        np.abs(ours - ref) <= 6 * U * (np.abs(ref) + np.abs(g)) + np.spacing(np.abs(ref).astype(np.float16))
    )
    assert not np.array_equal(ours, _nn("gelu", layer("gelu"), g, fp16=False))


# ----------------------------------------------------------------------------- coremltools cross-check


def _coremltools_fp16(build_op: Callable[[], Any]) -> np.ndarray:
    """coremltools' own NumPy evaluation of a MIL op on fp16 constants (its value_inference)."""
    found: dict[str, Any] = {}

    @mb.program(input_specs=[mb.TensorSpec(shape=(1,), dtype=types.fp32)])
    def program(dummy):
        found["value"] = build_op().val
        return dummy

    assert found["value"] is not None and found["value"].dtype == np.float16
    return found["value"].astype(np.float32)


def test_coremltools_numpy_fp16_sits_between_fp16_storage_and_true_fp16():
    """coremltools evaluates fp16 ops with NumPy float16 arrays: each elementwise step is rounded,
    but matmul and sums accumulate in float32 - so on an inner product it agrees with the executor's
    fp16_storage result, and its distance to true fp16 arithmetic grows with the inner length."""
    x, y = h(8, 256), h(256, 8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = _coremltools_fp16(lambda: mb.matmul(x=x.astype(np.float16), y=y.astype(np.float16)))
        theirs_softmax = _coremltools_fp16(lambda: mb.softmax(x=(x * 3).astype(np.float16), axis=-1))
    storage = kernels.round_to_fp16(MIL_OPS["matmul"].fn(FP32, x=x, y=y))
    true16 = kernels.round_to_fp16(MIL_OPS["matmul"].fn(FP16, x=x, y=y))
    np.testing.assert_array_equal(theirs, storage)
    assert not np.array_equal(theirs, true16)
    bound = _dot_bound(256)(np.abs(x) @ np.abs(y))
    assert np.all(np.abs(theirs - true16) <= 2 * bound)

    s = kernels.round_to_fp16(x * 3)
    ours_softmax = kernels.round_to_fp16(MIL_OPS["softmax"].fn(FP16, x=s, axis=np.int32(-1)))
    assert np.all(np.abs(ours_softmax - theirs_softmax) <= 2 * _softmax_bound(s, theirs_softmax))


# ----------------------------------------------------------------------------- whole models

FAMILIES = {
    "cnn": "cnn-same-gelu-maxmeanmasked",
    "transformer": "transformer-mask-learned-prenorm",
    "ensemble": "ensemble",
}
FORMATS = ("mlprogram-fp32", "mlprogram-fp16", "neuralnetwork")
IDS = np.random.default_rng(7).integers(0, 60, size=(48, 20)).astype(np.int32)
IDS[:4, 10:] = 0


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> dict[tuple[str, str], tuple[Path, np.ndarray]]:
    out = {}
    root = tmp_path_factory.mktemp("precision")
    for family, name in FAMILIES.items():
        model = build(name)
        with torch.no_grad():
            logits = model(torch.from_numpy(IDS).long()).numpy()
        for fmt in FORMATS:
            suffix = "mlmodel" if fmt == "neuralnetwork" else "mlpackage"
            out[family, fmt] = (convert(model, root / f"{family}-{fmt}.{suffix}", fmt), logits)
    return out


def _probs(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def test_unknown_precision_is_refused(artifacts):
    path, _ = artifacts["cnn", "neuralnetwork"]
    with pytest.raises(ValueError, match="precision must be one of declared, fp32, fp16_storage, fp16"):
        load_executor(path, precision="half")


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("fmt", FORMATS)
def test_every_precision_runs_the_model_within_its_tolerance(artifacts, family: str, fmt: str):
    path, torch_logits = artifacts[family, fmt]
    ref = _probs(torch_logits)
    results = {}
    for precision in PRECISIONS:
        executor = load_executor(path, precision=precision)
        assert executor.precision == precision
        assert executor.batched, executor.batch_fallback
        results[precision] = executor.predict(IDS)
    fp16_program = fmt == "mlprogram-fp16"
    # fp32: PyTorch's numbers (an fp16 program keeps its fp16 weights, so only close)
    assert np.abs(_probs(results["fp32"]) - ref).max() <= (1e-2 if fp16_program else 1e-4)
    # declared: fp32 for NeuralNetworks and fp32 programs, fp16 storage for an fp16 program
    expected_declared = results["fp16_storage"] if fp16_program else results["fp32"]
    np.testing.assert_array_equal(results["declared"], expected_declared)
    for precision in ("fp16_storage", "fp16_wide", "fp16", "fp16_sequential"):
        assert is_fp16(results[precision]), precision
        assert np.abs(_probs(results[precision]) - ref).max() <= 1e-2, precision
    assert not np.array_equal(results["fp16_storage"], results["fp32"])
    for precision in ("fp16_wide", "fp16", "fp16_sequential"):  # each sums in its own order
        assert not np.array_equal(results[precision], results["fp16_storage"]), precision
    assert not np.array_equal(results["fp16"], results["fp16_wide"])
    assert not np.array_equal(results["fp16_sequential"], results["fp16"])


def test_true_fp16_is_further_from_pytorch_than_fp16_storage_on_average(artifacts):
    """Accumulating in fp16 adds error: over the 9 artifacts the mean |Δprob| of true fp16 exceeds
    that of fp16 storage."""
    storage, true16 = [], []
    for path, torch_logits in artifacts.values():
        ref = _probs(torch_logits)
        storage.append(
            np.abs(_probs(load_executor(path, precision="fp16_storage").predict(IDS)) - ref).mean()
        )
        true16.append(np.abs(_probs(load_executor(path, precision="fp16").predict(IDS)) - ref).mean())
    assert np.mean(true16) > np.mean(storage)
