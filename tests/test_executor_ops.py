"""Unit tests of every ML Program op and NeuralNetwork layer of the reference executor.

Each registered op/layer type has at least one case here computed independently with PyTorch (or
plain NumPy indexing where PyTorch has no counterpart); the two `*_registry_is_covered` tests fail
when a type is registered without a case. fp16 behaviour: an op typed fp16 gets fp16 inputs
(upcast) and its result is rounded to fp16, which must equal PyTorch's half-precision op exactly
for correctly rounded ops and within one fp16 ulp for the others.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from layoutnet.export.executor import MIL_OPS, NN_LAYERS, kernels
from layoutnet.export.executor.engine import Arg, BatchInfo, OpContext, Unsupported

logging.getLogger("coremltools").setLevel(logging.ERROR)
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from coremltools.proto import NeuralNetwork_pb2 as nn_pb

RNG = np.random.default_rng(1234)
CTX = OpContext("op", "test", None, frozenset())


def r(*shape: int, scale: float = 1.0, positive: bool = False) -> np.ndarray:
    x = RNG.standard_normal(shape).astype(np.float32) * np.float32(scale)
    return np.abs(x) + np.float32(0.1) if positive else x


def ints(*shape: int, high: int = 5) -> np.ndarray:
    return RNG.integers(0, high, size=shape).astype(np.int32)


def T(a: Any) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a))


def npy(t: torch.Tensor) -> np.ndarray:
    return t.detach().numpy()


def run_mil(name: str, ctx: OpContext = CTX, **inputs: Any) -> Any:
    """Call an op the way the engine does: fp16 arrays arrive as float32."""
    args = {
        k: v.astype(np.float32) if isinstance(v, np.ndarray) and v.dtype == np.float16 else v
        for k, v in inputs.items()
    }
    return MIL_OPS[name].fn(ctx, **args)


# Each case: (inputs, expected, atol). expected may be a tuple for multi-output ops.
Case = tuple[dict[str, Any], Any, float]
MIL_CASES: dict[str, Callable[[], list[Case]]] = {}


def mil_case(*names: str):
    def register(fn: Callable[[], list[Case]]) -> Callable[[], list[Case]]:
        for name in names:
            MIL_CASES[name] = fn
        return fn

    return register


# ----------------------------------------------------------------------------- MIL: elementwise

_TORCH_BINARY = {
    "add": torch.add,
    "sub": torch.sub,
    "mul": torch.mul,
    "real_div": torch.div,
    "floor_div": torch.floor_divide,
    "mod": torch.remainder,
    "pow": torch.pow,
    "maximum": torch.maximum,
    "minimum": torch.minimum,
    "equal": torch.eq,
    "not_equal": torch.ne,
    "less": torch.lt,
    "less_equal": torch.le,
    "greater": torch.gt,
    "greater_equal": torch.ge,
    "logical_and": torch.logical_and,
    "logical_or": torch.logical_or,
    "logical_xor": torch.logical_xor,
}


def _binary_cases(name: str) -> Callable[[], list[Case]]:
    def cases() -> list[Case]:
        fn = _TORCH_BINARY[name]
        if name.startswith("logical"):
            x, y = ints(2, 3, 4, high=2).astype(bool), ints(3, 4, high=2).astype(bool)
        elif name == "pow":
            x, y = r(2, 3, 4, positive=True), r(3, 4)
        elif name in ("equal", "not_equal", "less", "less_equal", "greater", "greater_equal"):
            x, y = ints(2, 3, 4).astype(np.float32), ints(1, 4).astype(np.float32)
        elif name in ("floor_div", "mod", "real_div"):
            x, y = r(2, 3, 4, scale=5), r(3, 1, positive=True)
        else:
            x, y = r(2, 3, 4), r(3, 1)
        out = [({"x": x, "y": y}, npy(fn(T(x), T(y))), 1e-6)]
        if name in ("add", "not_equal"):  # integer operands (ids)
            xi, yi = ints(1, 20, high=189), np.int32(0)
            out.append(({"x": xi, "y": yi}, npy(fn(T(xi), torch.tensor(0, dtype=torch.int32))), 0))
        return out

    return cases


for _name in _TORCH_BINARY:
    mil_case(_name)(_binary_cases(_name))


@mil_case("select")
def _select() -> list[Case]:
    cond, a, b = ints(2, 5, high=2).astype(bool), r(2, 5), r(1, 5)
    return [({"cond": cond, "a": a, "b": b}, npy(torch.where(T(cond), T(a), T(b))), 0)]


_TORCH_UNARY: dict[str, tuple[Callable[[torch.Tensor], torch.Tensor], dict[str, Any], bool]] = {
    "relu": (F.relu, {}, False),
    "relu6": (F.relu6, {}, False),
    "leaky_relu": (lambda x: F.leaky_relu(x, 0.3), {"alpha": np.float32(0.3)}, False),
    "elu": (lambda x: F.elu(x, 0.7), {"alpha": np.float32(0.7)}, False),
    "sigmoid": (torch.sigmoid, {}, False),
    "sigmoid_hard": (F.hardsigmoid, {"alpha": np.float32(1 / 6), "beta": np.float32(0.5)}, False),
    "silu": (F.silu, {}, False),
    "tanh": (torch.tanh, {}, False),
    "softplus": (F.softplus, {}, False),
    "softsign": (F.softsign, {}, False),
    "exp": (torch.exp, {}, False),
    "exp2": (torch.exp2, {}, False),
    "log": (lambda x: torch.log(x + 1e-3), {"epsilon": np.float32(1e-3)}, True),
    "sqrt": (torch.sqrt, {}, True),
    "rsqrt": (lambda x: torch.rsqrt(x + 1e-3), {"epsilon": np.float32(1e-3)}, True),
    "inverse": (lambda x: 1 / (x + 1e-2), {"epsilon": np.float32(1e-2)}, True),
    "abs": (torch.abs, {}, False),
    "erf": (torch.erf, {}, False),
    "square": (torch.square, {}, False),
    "sign": (torch.sign, {}, False),
    "floor": (torch.floor, {}, False),
    "ceil": (torch.ceil, {}, False),
    "round": (torch.round, {}, False),
    "identity": (lambda x: x, {}, False),
}


def _unary_cases(name: str) -> Callable[[], list[Case]]:
    def cases() -> list[Case]:
        fn, extra, positive = _TORCH_UNARY[name]
        x = r(3, 4, 5, scale=3, positive=positive)
        x.flat[:3] = [0.5, -0.5, 2.5] if not positive else x.flat[:3]
        return [({"x": x, **extra}, npy(fn(T(x))), 2e-6)]

    return cases


for _name in _TORCH_UNARY:
    mil_case(_name)(_unary_cases(_name))


@mil_case("gelu")
def _gelu() -> list[Case]:
    x = r(4, 50, scale=4)
    sig = T(x) * torch.sigmoid(1.702 * T(x))
    return [
        ({"x": x}, npy(F.gelu(T(x))), 2e-6),
        ({"x": x, "mode": "EXACT"}, npy(F.gelu(T(x))), 2e-6),
        ({"x": x, "mode": "TANH_APPROXIMATION"}, npy(F.gelu(T(x), approximate="tanh")), 2e-6),
        ({"x": x, "mode": "SIGMOID_APPROXIMATION"}, npy(sig), 2e-6),
    ]


@mil_case("logical_not")
def _logical_not() -> list[Case]:
    x = ints(3, 4, high=2).astype(bool)
    return [({"x": x}, npy(torch.logical_not(T(x))), 0)]


@mil_case("clip")
def _clip() -> list[Case]:
    x = r(3, 7, scale=3)
    return [
        ({"x": x, "alpha": np.float32(-1), "beta": np.float32(0.5)}, npy(torch.clamp(T(x), -1, 0.5)), 0),
        ({"x": x, "alpha": np.float32(1), "beta": np.float32(3.4e38)}, npy(torch.clamp(T(x), min=1.0)), 0),
    ]


@mil_case("cast")
def _cast() -> list[Case]:
    b = ints(2, 5, high=2).astype(bool)
    i = ints(2, 5, high=189)
    f = r(2, 5, scale=3)
    return [
        ({"x": b, "dtype": "fp16"}, b.astype(np.float16), 0),
        ({"x": b, "dtype": "fp32"}, b.astype(np.float32), 0),
        ({"x": i, "dtype": "int16"}, npy(T(i).to(torch.int16)), 0),
        ({"x": f, "dtype": "int32"}, npy(T(f).to(torch.int32)), 0),
        ({"x": f, "dtype": "fp16"}, npy(T(f).half()), 0),
    ]


@mil_case("const")
def _const() -> list[Case]:
    v = r(3, 2)
    return [({"val": v}, v, 0), ({"val": "EXACT"}, "EXACT", 0)]


# ----------------------------------------------------------------------------- MIL: compressed weights
# (edge cases, sub-byte forms and whole compressed models: tests/test_executor_compression.py)


@mil_case("constexpr_affine_dequantize")
def _affine_dequantize() -> list[Case]:
    q = ints(3, 4, high=250).astype(np.uint8)
    zp, scale = np.array([128, 120, 3], np.uint8), r(3, positive=True)
    expected = npy((T(q).double() - T(zp).double()[:, None]) * T(scale).double()[:, None])
    return [({"quantized_data": q, "zero_point": zp, "scale": scale, "axis": np.int32(0)}, expected, 1e-6)]


@mil_case("constexpr_blockwise_shift_scale")
def _blockwise_shift_scale() -> list[Case]:
    data = (ints(4, 6, high=16) - 8).astype(np.int8)
    scale, offset = r(2, 3, positive=True), (ints(2, 3, high=4) - 2).astype(np.int8)
    blocks = lambda a: T(a).double().repeat_interleave(2, 0).repeat_interleave(2, 1)  # noqa: E731
    expected = npy((T(data).double() - blocks(offset)) * blocks(scale))
    return [({"data": data, "scale": scale, "offset": offset}, expected, 1e-6)]


@mil_case("constexpr_lut_to_dense")
def _lut_to_dense() -> list[Case]:
    indices, lut = ints(4, 5, high=16).astype(np.uint8), r(1, 1, 16, 1)
    expected = npy(T(lut.reshape(16))[T(indices).long()])
    return [({"indices": indices, "lut": lut}, expected, 0)]


# ----------------------------------------------------------------------------- MIL: reductions, softmax

_TORCH_REDUCE = {
    "reduce_max": lambda x, d, k: torch.amax(x, dim=d, keepdim=k),
    "reduce_min": lambda x, d, k: torch.amin(x, dim=d, keepdim=k),
    "reduce_mean": lambda x, d, k: torch.mean(x, dim=d, keepdim=k),
    "reduce_sum": lambda x, d, k: torch.sum(x, dim=d, keepdim=k),
    "reduce_prod": lambda x, d, k: torch.prod(x, dim=d[0], keepdim=k) if len(d) == 1 else None,
}


def _reduce_cases(name: str) -> Callable[[], list[Case]]:
    def cases() -> list[Case]:
        fn = _TORCH_REDUCE[name]
        x = r(2, 6, 5)
        out = []
        for axes, keep in (([1], False), ([-1], True), ([2], False)):
            out.append(
                (
                    {"x": x, "axes": np.array(axes, np.int32), "keep_dims": keep},
                    npy(fn(T(x), tuple(axes), keep)),
                    1e-5,
                )
            )
        if name != "reduce_prod":
            out.append(({"x": x, "axes": np.array([1, 2], np.int32)}, npy(fn(T(x), (1, 2), False)), 1e-5))
        out.append(({"x": x}, npy(fn(T(x).reshape(-1), (0,), False)), 1e-4))
        return out

    return cases


for _name in _TORCH_REDUCE:
    mil_case(_name)(_reduce_cases(_name))


@mil_case("softmax")
def _softmax() -> list[Case]:
    x = r(2, 3, 7, scale=4)
    return [
        ({"x": x, "axis": np.int32(-1)}, npy(torch.softmax(T(x), -1)), 1e-6),
        ({"x": x, "axis": np.int32(1)}, npy(torch.softmax(T(x), 1)), 1e-6),
        ({"x": x}, npy(torch.softmax(T(x), -1)), 1e-6),
    ]


# ----------------------------------------------------------------------------- MIL: linear algebra


@mil_case("linear")
def _linear() -> list[Case]:
    x2, x3, w, b = r(4, 6), r(2, 5, 6), r(3, 6), r(3)
    return [
        ({"x": x2, "weight": w, "bias": b}, npy(F.linear(T(x2), T(w), T(b))), 1e-5),
        ({"x": x3, "weight": w, "bias": b}, npy(F.linear(T(x3), T(w), T(b))), 1e-5),
        ({"x": x3, "weight": w}, npy(F.linear(T(x3), T(w))), 1e-5),
    ]


@mil_case("matmul")
def _matmul() -> list[Case]:
    a, b = r(2, 4, 5, 6), r(2, 4, 6, 3)
    w = r(6, 3)
    bt = r(2, 4, 3, 6)
    at = r(2, 4, 6, 5)
    return [
        ({"x": a, "y": b}, npy(torch.matmul(T(a), T(b))), 1e-5),
        ({"x": a, "y": bt, "transpose_y": True}, npy(torch.matmul(T(a), T(bt).transpose(-1, -2))), 1e-5),
        (
            {"x": at, "y": b, "transpose_x": True, "transpose_y": False},
            npy(torch.matmul(T(at).transpose(-1, -2), T(b))),
            1e-5,
        ),
        ({"x": a, "y": w}, npy(torch.matmul(T(a), T(w))), 1e-5),
        ({"x": r(5, 6), "y": w}, None, 1e-5),  # expected filled below (2-D)
    ]


def _fix_matmul_2d(cases: list[Case]) -> list[Case]:
    fixed = []
    for inputs, expected, tol in cases:
        if expected is None:
            expected = npy(torch.matmul(T(inputs["x"]), T(inputs["y"])))
        fixed.append((inputs, expected, tol))
    return fixed


# ----------------------------------------------------------------------------- MIL: conv, pooling


@mil_case("conv")
def _conv() -> list[Case]:
    x1, w1, b1 = r(2, 4, 20), r(6, 4, 3), r(6)
    x2, w2 = r(2, 4, 7, 9), r(6, 2, 3, 2)
    wk4 = r(5, 4, 4)
    out = [
        ({"x": x1, "weight": w1, "bias": b1}, npy(F.conv1d(T(x1), T(w1), T(b1))), 1e-5),
        (
            {"x": x1, "weight": w1, "bias": b1, "pad_type": "custom", "pad": np.array([1, 2], np.int32)},
            npy(F.conv1d(F.pad(T(x1), (1, 2)), T(w1), T(b1))),
            1e-5,
        ),
        (
            {"x": x1, "weight": wk4, "pad_type": "custom", "pad": np.array([2, 2], np.int32)},
            npy(F.conv1d(T(x1), T(wk4), padding=2)),
            1e-5,
        ),
        ({"x": x1, "weight": wk4, "pad_type": "same"}, npy(F.conv1d(F.pad(T(x1), (1, 2)), T(wk4))), 1e-5),
        (
            {"x": x1, "weight": wk4, "pad_type": "same_lower"},
            npy(F.conv1d(F.pad(T(x1), (2, 1)), T(wk4))),
            1e-5,
        ),
        (
            {"x": x1, "weight": w1, "strides": np.array([2], np.int32), "dilations": np.array([2], np.int32)},
            npy(F.conv1d(T(x1), T(w1), stride=2, dilation=2)),
            1e-5,
        ),
        (
            {
                "x": x2,
                "weight": w2,
                "groups": np.int32(2),
                "pad_type": "custom",
                "pad": np.array([1, 1, 0, 1], np.int32),
                "strides": np.array([1, 2], np.int32),
            },
            npy(F.conv2d(F.pad(T(x2), (0, 1, 1, 1)), T(w2), groups=2, stride=(1, 2))),
            1e-5,
        ),
    ]
    return out


def _pool_cases(kind: str) -> Callable[[], list[Case]]:
    def cases() -> list[Case]:
        x1, x2 = r(2, 3, 20), r(2, 3, 6, 8)
        k2 = np.array([2], np.int32)
        if kind == "max_pool":
            return [
                ({"x": x1, "kernel_sizes": k2, "strides": k2}, npy(F.max_pool1d(T(x1), 2)), 0),
                (
                    {"x": x1, "kernel_sizes": np.array([3], np.int32), "strides": k2, "ceil_mode": True},
                    npy(F.max_pool1d(T(x1), 3, 2, ceil_mode=True)),
                    0,
                ),
                (
                    {
                        "x": x1,
                        "kernel_sizes": np.array([3], np.int32),
                        "strides": np.array([1], np.int32),
                        "pad_type": "custom",
                        "pad": np.array([1, 1], np.int32),
                    },
                    npy(F.max_pool1d(T(x1), 3, 1, padding=1)),
                    0,
                ),
                (
                    {
                        "x": x2,
                        "kernel_sizes": np.array([2, 2], np.int32),
                        "strides": np.array([2, 2], np.int32),
                    },
                    npy(F.max_pool2d(T(x2), 2)),
                    0,
                ),
            ]
        return [
            ({"x": x1, "kernel_sizes": k2, "strides": k2}, npy(F.avg_pool1d(T(x1), 2)), 1e-6),
            (
                {
                    "x": x1,
                    "kernel_sizes": np.array([3], np.int32),
                    "strides": np.array([1], np.int32),
                    "pad_type": "custom",
                    "pad": np.array([1, 1], np.int32),
                    "exclude_padding_from_average": True,
                },
                npy(F.avg_pool1d(T(x1), 3, 1, padding=1, count_include_pad=False)),
                1e-6,
            ),
            (
                {
                    "x": x1,
                    "kernel_sizes": np.array([3], np.int32),
                    "strides": np.array([1], np.int32),
                    "pad_type": "custom",
                    "pad": np.array([1, 1], np.int32),
                },
                npy(F.avg_pool1d(T(x1), 3, 1, padding=1, count_include_pad=True)),
                1e-6,
            ),
            (
                {"x": x2, "kernel_sizes": np.array([2, 2], np.int32), "strides": np.array([2, 2], np.int32)},
                npy(F.avg_pool2d(T(x2), 2)),
                1e-6,
            ),
        ]

    return cases


mil_case("max_pool")(_pool_cases("max_pool"))
mil_case("avg_pool")(_pool_cases("avg_pool"))


# ----------------------------------------------------------------------------- MIL: normalization


@mil_case("batch_norm")
def _batch_norm() -> list[Case]:
    x, mean, var, g, b = r(3, 5, 20), r(5), r(5, positive=True), r(5), r(5)
    x4 = r(2, 5, 3, 4)
    return [
        (
            {"x": x, "mean": mean, "variance": var, "gamma": g, "beta": b, "epsilon": np.float32(1e-5)},
            npy(F.batch_norm(T(x), T(mean), T(var), T(g), T(b), eps=1e-5)),
            1e-5,
        ),
        ({"x": x4, "mean": mean, "variance": var}, npy(F.batch_norm(T(x4), T(mean), T(var), eps=1e-5)), 1e-5),
    ]


@mil_case("layer_norm")
def _layer_norm() -> list[Case]:
    x, g, b = r(2, 20, 8, scale=3), r(8), r(8)
    x3 = r(2, 4, 6)
    xt = T(x3).transpose(1, 2)
    ref_mid = npy(F.layer_norm(xt, (4,), eps=1e-3).transpose(1, 2))
    return [
        (
            {"x": x, "axes": np.array([-1], np.int32), "gamma": g, "beta": b, "epsilon": np.float32(1e-5)},
            npy(F.layer_norm(T(x), (8,), T(g), T(b), eps=1e-5)),
            1e-5,
        ),
        ({"x": x, "axes": np.array([1, 2], np.int32)}, npy(F.layer_norm(T(x), (20, 8))), 1e-5),
        ({"x": x3, "axes": np.array([1], np.int32), "epsilon": np.float32(1e-3)}, ref_mid, 1e-5),
    ]


# ----------------------------------------------------------------------------- MIL: shape and layout


@mil_case("reshape")
def _reshape() -> list[Case]:
    x = r(1, 20, 8)
    xb = r(3, 20, 8)
    return [
        ({"x": x, "shape": np.array([1, 20, 2, 4], np.int32)}, x.reshape(1, 20, 2, 4), 0),
        ({"x": x, "shape": np.array([-1, 20, 2, 4], np.int32)}, x.reshape(1, 20, 2, 4), 0),
        ({"x": x, "shape": np.array([0, -1], np.int32)}, x.reshape(1, 160), 0),
        # batched: the leading 1 of the target becomes the batch
        ({"x": xb, "shape": np.array([1, 160], np.int32), "_batch": 3}, xb.reshape(3, 160), 0),
        ({"x": xb, "shape": np.array([-1, 20, 2, 4], np.int32), "_batch": 3}, xb.reshape(3, 20, 2, 4), 0),
    ]


@mil_case("transpose")
def _transpose() -> list[Case]:
    x = r(2, 3, 4, 5)
    return [
        ({"x": x, "perm": np.array([0, 2, 1, 3], np.int32)}, npy(T(x).permute(0, 2, 1, 3)), 0),
        ({"x": x, "perm": np.array([0, -1, 1, 2], np.int32)}, npy(T(x).permute(0, 3, 1, 2)), 0),
    ]


@mil_case("expand_dims")
def _expand_dims() -> list[Case]:
    x = r(2, 3)
    return [
        ({"x": x, "axes": np.array([-1], np.int32)}, npy(T(x).unsqueeze(-1)), 0),
        ({"x": x, "axes": np.array([1, 3], np.int32)}, x.reshape(2, 1, 3, 1), 0),
    ]


@mil_case("squeeze")
def _squeeze() -> list[Case]:
    x = r(2, 1, 3, 1)
    return [
        ({"x": x, "axes": np.array([1], np.int32)}, npy(T(x).squeeze(1)), 0),
        ({"x": x, "axes": np.array([-1, 1], np.int32)}, x.reshape(2, 3), 0),
        ({"x": x}, x.reshape(2, 3), 0),
    ]


@mil_case("pad")
def _pad() -> list[Case]:
    x = r(2, 3, 6)
    p = np.array([1, 2], np.int32)
    return [
        ({"x": x, "pad": p}, npy(F.pad(T(x), (1, 2))), 0),
        (
            {"x": x, "pad": np.array([0, 0, 1, 2], np.int32), "constant_val": np.float32(1.5)},
            npy(F.pad(T(x), (1, 2), value=1.5)),
            0,
        ),
        ({"x": x, "pad": p, "mode": "reflect"}, npy(F.pad(T(x), (1, 2), mode="reflect")), 0),
        ({"x": x, "pad": p, "mode": "replicate"}, npy(F.pad(T(x), (1, 2), mode="replicate")), 0),
    ]


@mil_case("concat")
def _concat() -> list[Case]:
    a, b = r(2, 3, 4), r(2, 5, 4)
    c = r(1, 3, 2)
    xb = r(4, 3, 4)
    return [
        ({"values": [a, b], "axis": np.int32(1)}, npy(torch.cat([T(a), T(b)], 1)), 0),
        ({"values": [a, a, a], "axis": np.int32(-1), "interleave": False}, npy(torch.cat([T(a)] * 3, -1)), 0),
        # batched: a constant with a leading 1 is repeated for every sample
        (
            {"values": [xb, c], "axis": np.int32(-1), "_batch": 4},
            npy(torch.cat([T(xb), T(c).expand(4, 3, 2)], -1)),
            0,
        ),
    ]


@mil_case("stack")
def _stack() -> list[Case]:
    a, b = r(2, 3), r(2, 3)
    return [({"values": [a, b], "axis": np.int32(1)}, npy(torch.stack([T(a), T(b)], 1)), 0)]


@mil_case("split")
def _split() -> list[Case]:
    x = r(2, 5, 12)
    return [
        (
            {"x": x, "axis": np.int32(-1), "num_splits": np.int32(3)},
            tuple(npy(t) for t in T(x).split(4, -1)),
            0,
        ),
        (
            {"x": x, "axis": np.int32(1), "split_sizes": np.array([2, 3], np.int32)},
            tuple(npy(t) for t in T(x).split([2, 3], 1)),
            0,
        ),
    ]


@mil_case("slice_by_index")
def _slice_by_index() -> list[Case]:
    x = r(1, 8, 24)
    xb = r(3, 8, 24)
    full = np.array([1, 8, 24], np.int32)
    zero = np.zeros(3, np.int32)
    return [
        ({"x": x, "begin": zero, "end": np.array([1, 8, 20], np.int32)}, x[:, :, :20], 0),
        (
            {
                "x": x,
                "begin": np.array([0, 1, 2], np.int32),
                "end": full,
                "stride": np.array([1, 2, 3], np.int32),
            },
            x[:, 1::2, 2::3],
            0,
        ),
        (
            {
                "x": x,
                "begin": np.array([0, 2, -5], np.int32),
                "end": np.array([0, 0, -1], np.int32),
                "begin_mask": np.array([True, False, False]),
                "end_mask": np.array([True, True, False]),
            },
            x[:, 2:, -5:-1],
            0,
        ),
        (
            {
                "x": x,
                "begin": np.array([0, 3, 0], np.int32),
                "end": full,
                "squeeze_mask": np.array([False, True, False]),
            },
            x[:, 3, :],
            0,
        ),
        (
            {
                "x": x,
                "begin": np.array([0, 7, 0], np.int32),
                "end": np.array([1, 0, 24], np.int32),
                "stride": np.array([1, -2, 1], np.int32),
                "end_mask": np.array([False, True, False]),
            },
            x[:, 7::-2, :],
            0,
        ),
        ({"x": xb, "begin": zero, "end": np.array([1, 8, 20], np.int32), "_batch": 3}, xb[:, :, :20], 0),
    ]


@mil_case("slice_by_size")
def _slice_by_size() -> list[Case]:
    x = r(1, 8, 24)
    xb = r(3, 8, 24)
    return [
        (
            {"x": x, "begin": np.array([0, 2, 4], np.int32), "size": np.array([1, 3, -1], np.int32)},
            x[:, 2:5, 4:],
            0,
        ),
        (
            {
                "x": xb,
                "begin": np.array([0, 2, 4], np.int32),
                "size": np.array([1, 3, -1], np.int32),
                "_batch": 3,
            },
            xb[:, 2:5, 4:],
            0,
        ),
    ]


@mil_case("tile")
def _tile() -> list[Case]:
    x = r(1, 2, 3)
    return [({"x": x, "reps": np.array([1, 3, 2], np.int32)}, npy(T(x).repeat(1, 3, 2)), 0)]


@mil_case("gather")
def _gather() -> list[Case]:
    table = r(189, 8)
    idx = ints(1, 20, high=189)
    idx16 = idx.astype(np.int16)
    x = r(2, 7, 3)
    neg = np.array([-1, 0, 2], np.int32)
    return [
        ({"x": table, "indices": idx}, npy(F.embedding(T(idx).long(), T(table))), 0),
        (
            {
                "x": table,
                "indices": idx16,
                "axis": np.int32(0),
                "batch_dims": np.int32(0),
                "validate_indices": False,
            },
            npy(F.embedding(T(idx).long(), T(table))),
            0,
        ),
        (
            {"x": x, "indices": neg, "axis": np.int32(1)},
            npy(torch.index_select(T(x), 1, T(neg % 7).long())),
            0,
        ),
    ]


@mil_case("gather_along_axis")
def _gather_along_axis() -> list[Case]:
    x = r(2, 5, 3)
    idx = ints(2, 4, 3, high=5)
    return [({"x": x, "indices": idx, "axis": np.int32(1)}, npy(torch.gather(T(x), 1, T(idx).long())), 0)]


# ----------------------------------------------------------------------------- MIL tests


def test_mil_registry_is_covered():
    missing = sorted(set(MIL_OPS) - set(MIL_CASES))
    assert not missing, f"MIL ops without a unit test case: {missing}"


def _compare(actual: Any, expected: Any, tol: float) -> None:
    if isinstance(expected, tuple):
        assert isinstance(actual, tuple) and len(actual) == len(expected)
        for a, e in zip(actual, expected, strict=True):
            _compare(a, e, tol)
        return
    if isinstance(expected, str):
        assert actual == expected
        return
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    if expected.dtype == bool or tol == 0:
        np.testing.assert_array_equal(actual.astype(expected.dtype), expected)
    else:
        np.testing.assert_allclose(actual, expected, rtol=tol, atol=tol)


@pytest.mark.parametrize("name", sorted(MIL_OPS))
def test_mil_op_matches_torch(name: str):
    cases = MIL_CASES[name]()
    if name == "matmul":
        cases = _fix_matmul_2d(cases)
    assert cases
    for inputs, expected, tol in cases:
        inputs = dict(inputs)
        batch = inputs.pop("_batch", None)
        ctx = OpContext(name, name, batch, frozenset(["x", "values"]) if batch else frozenset())
        _compare(run_mil(name, ctx, **inputs), expected, tol)


# fp16: ops whose result is correctly rounded give exactly PyTorch's half result.
_FP16_EXACT = {
    "add": lambda x, y: x + y,
    "sub": lambda x, y: x - y,
    "mul": lambda x, y: x * y,
    "real_div": lambda x, y: x / y,
    "maximum": torch.maximum,
    "minimum": torch.minimum,
}


@pytest.mark.parametrize("name", sorted(_FP16_EXACT))
def test_mil_fp16_binary_rounds_like_half(name: str):
    x = r(64, 33, scale=30).astype(np.float16)
    y = (r(64, 33, positive=True) * 3).astype(np.float16)
    ours = np.asarray(run_mil(name, x=x, y=y)).astype(np.float16)
    theirs = npy(_FP16_EXACT[name](T(x), T(y)))
    assert theirs.dtype == np.float16
    np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize(
    ("name", "torch_fn", "extra"),
    [
        ("relu", F.relu, {}),
        ("sigmoid", torch.sigmoid, {}),
        ("tanh", torch.tanh, {}),
        ("gelu", F.gelu, {}),
        ("silu", F.silu, {}),
        ("exp", torch.exp, {}),
        ("softmax", lambda t: torch.softmax(t, -1), {"axis": np.int32(-1)}),
        ("reduce_mean", lambda t: t.mean(-1), {"axes": np.array([-1], np.int32)}),
    ],
)
def test_mil_fp16_unary_within_one_ulp(name: str, torch_fn: Callable, extra: dict):
    x = r(16, 40, scale=3).astype(np.float16)
    ours = np.asarray(run_mil(name, x=x, **extra)).astype(np.float16)
    ref = npy(torch_fn(T(x).double())).astype(np.float16)  # (nearly) exact result rounded once to fp16
    ulp = np.spacing(np.abs(ref).astype(np.float16)).astype(np.float32)
    assert np.all(np.abs(ours.astype(np.float32) - ref.astype(np.float32)) <= ulp)


def test_mil_fp16_linear_and_conv_within_half_tolerance():
    x, w, b = r(4, 20, 16).astype(np.float16), r(8, 16).astype(np.float16), r(8).astype(np.float16)
    ours = np.asarray(run_mil("linear", x=x, weight=w, bias=b)).astype(np.float16)
    ref = npy(F.linear(T(x).float(), T(w).float(), T(b).float()))
    np.testing.assert_allclose(ours.astype(np.float32), ref, rtol=2e-3, atol=2e-3)
    xc, wc = r(2, 6, 20).astype(np.float16), r(4, 6, 3).astype(np.float16)
    ours = np.asarray(run_mil("conv", x=xc, weight=wc)).astype(np.float16)
    ref = npy(F.conv1d(T(xc).float(), T(wc).float()))
    np.testing.assert_allclose(ours.astype(np.float32), ref, rtol=2e-3, atol=2e-3)


def test_mil_unsupported_modes_are_reported():
    with pytest.raises(Unsupported, match="mode=circular"):
        run_mil("pad", x=r(1, 2, 5), pad=np.array([1, 1], np.int32), mode="circular")
    with pytest.raises(Unsupported, match="interleave"):
        run_mil("concat", values=[r(1, 2), r(1, 2)], axis=np.int32(1), interleave=True)
    with pytest.raises(Unsupported, match="batch_dims"):
        run_mil("gather", x=r(3, 4), indices=ints(3, high=3), batch_dims=np.int32(1))


def _info(out: tuple[int, ...], **args: tuple[tuple[int, ...], bool, Any]) -> BatchInfo:
    return BatchInfo({k: (Arg(*v),) for k, v in args.items()}, (out,))


def test_mil_batch_rules_refuse_ops_that_touch_axis_0():
    rule = MIL_OPS["transpose"].batch
    assert rule(_info((1, 4, 3), x=((1, 3, 4), True, None), perm=((3,), False, np.array([0, 2, 1])))) is None
    assert rule(_info((3, 1, 4), x=((1, 3, 4), True, None), perm=((3,), False, np.array([1, 0, 2]))))
    rule = MIL_OPS["reshape"].batch
    assert rule(_info((1, 12), x=((1, 3, 4), True, None), shape=((2,), False, np.array([1, 12])))) is None
    assert rule(_info((12,), x=((1, 3, 4), True, None), shape=((1,), False, np.array([12]))))
    rule = MIL_OPS["reduce_sum"].batch
    assert rule(_info((1, 4), x=((1, 3, 4), True, None), axes=((1,), False, np.array([1])))) is None
    assert rule(_info((3, 4), x=((1, 3, 4), True, None), axes=((1,), False, np.array([-3]))))
    assert rule(_info((), x=((1, 3, 4), True, None)))
    rule = MIL_OPS["slice_by_index"].batch
    ok = dict(
        x=((1, 8), True, None), begin=((2,), False, np.array([0, 2])), end=((2,), False, np.array([1, 8]))
    )
    assert rule(_info((1, 6), **ok)) is None
    assert rule(_info((6,), **ok, squeeze_mask=((2,), False, np.array([True, False]))))
    rule = MIL_OPS["add"].batch
    assert rule(_info((1, 3), x=((1, 3), True, None), y=((3,), False, None))) is None
    assert rule(_info((1, 1, 3), x=((1, 3), True, None), y=((1, 1, 3), False, None)))
    rule = MIL_OPS["gather"].batch
    assert rule(_info((1, 20, 8), x=((189, 8), False, None), indices=((1, 20), True, None))) is None
    assert rule(_info((20, 1, 8), x=((189, 8), False, None), indices=((20, 1), True, None)))


# ----------------------------------------------------------------------------- NeuralNetwork layers


def layer(kind: str, **fields: Any) -> Any:
    """A layer parameter message with scalar/repeated fields set."""
    msg = getattr(nn_pb.NeuralNetworkLayer(), kind)
    msg.SetInParent()
    for key, value in fields.items():
        target = getattr(msg, key)
        if isinstance(value, list | tuple):
            target.extend(value)
        else:
            setattr(msg, key, value)
    return msg


def set_weights(params: Any, value: np.ndarray, fp16: bool = False) -> None:
    if fp16:
        params.float16Value = np.asarray(value, np.float16).tobytes()
    else:
        params.floatValue.extend(np.asarray(value, np.float32).reshape(-1).tolist())


def run_layer(kind: str, params: Any, *inputs: np.ndarray, batch: int | None = None) -> Any:
    spec = NN_LAYERS[kind]
    ctx = OpContext("layer", kind, batch, frozenset(["inputs"]) if batch else frozenset())
    return spec.fn(ctx, spec.prepare(params), *inputs)


NN_CASES: dict[str, Callable[[], list[tuple[Any, tuple[np.ndarray, ...], Any, float]]]] = {}


def nn_case(*names: str):
    def register(fn):
        for name in names:
            NN_CASES[name] = fn
        return fn

    return register


@nn_case("activation")
def _nn_activation():
    x = r(2, 3, 4, scale=3)
    out = []
    for kind, fields, ref in [
        ("linear", {"alpha": 2.0, "beta": -1.0}, 2 * T(x) - 1),
        ("ReLU", {}, F.relu(T(x))),
        ("leakyReLU", {"alpha": 0.2}, F.leaky_relu(T(x), 0.2)),
        ("thresholdedReLU", {"alpha": 0.5}, F.threshold(T(x), 0.5, 0.0)),
        ("tanh", {}, torch.tanh(T(x))),
        ("scaledTanh", {"alpha": 1.5, "beta": 0.5}, 1.5 * torch.tanh(0.5 * T(x))),
        ("sigmoid", {}, torch.sigmoid(T(x))),
        ("sigmoidHard", {"alpha": 1 / 6, "beta": 0.5}, F.hardsigmoid(T(x))),
        ("ELU", {"alpha": 1.0}, F.elu(T(x))),
        ("softsign", {}, F.softsign(T(x))),
        ("softplus", {}, F.softplus(T(x))),
    ]:
        params = nn_pb.ActivationParams()
        sub = getattr(params, kind)
        sub.SetInParent()
        for k, v in fields.items():
            setattr(sub, k, v)
        out.append((params, (x,), npy(ref), 2e-6))
    return out


@nn_case("gelu")
def _nn_gelu():
    x = r(3, 40, scale=3)
    return [
        (layer("gelu", mode=0), (x,), npy(F.gelu(T(x))), 2e-6),
        (layer("gelu", mode=1), (x,), npy(F.gelu(T(x), approximate="tanh")), 2e-6),
        (layer("gelu", mode=2), (x,), npy(T(x) * torch.sigmoid(1.702 * T(x))), 2e-6),
    ]


@nn_case("clip")
def _nn_clip():
    x = r(3, 5, scale=3)
    return [(layer("clip", minVal=1.0, maxVal=3.4e38), (x,), npy(torch.clamp(T(x), min=1.0)), 0)]


@nn_case("copy")
def _nn_copy():
    x = r(2, 3)
    return [(layer("copy"), (x,), x, 0)]


@nn_case("add", "multiply")
def _nn_add_multiply():
    x, y, z = r(2, 3, 4), r(2, 3, 4), r(1, 3, 1)
    return [
        (layer("add", alpha=1.5), (x,), x + np.float32(1.5), 0),
        (layer("add"), (x, y, z), npy(T(x) + T(y) + T(z)), 1e-6),
        (layer("multiply", alpha=0.25), (x,), x * np.float32(0.25), 0),
        (layer("multiply"), (x, y), npy(T(x) * T(y)), 0),
    ]


_NN_BROADCASTABLE = {
    "addBroadcastable": torch.add,
    "subtractBroadcastable": torch.sub,
    "multiplyBroadcastable": torch.mul,
    "divideBroadcastable": torch.div,
    "maxBroadcastable": torch.maximum,
    "minBroadcastable": torch.minimum,
    "powBroadcastable": torch.pow,
    "floorDivBroadcastable": torch.floor_divide,
    "modBroadcastable": torch.remainder,
}


def _nn_broadcastable_case(name: str):
    def cases():
        x, y = r(2, 3, 4, positive=True) * 3, r(3, 1, positive=True)
        return [(layer(name), (x, y), npy(_NN_BROADCASTABLE[name](T(x), T(y))), 1e-6)]

    return cases


for _name in _NN_BROADCASTABLE:
    nn_case(_name)(_nn_broadcastable_case(_name))

_NN_COMPARE = {
    "equal": torch.eq,
    "notEqual": torch.ne,
    "lessThan": torch.lt,
    "lessEqual": torch.le,
    "greaterThan": torch.gt,
    "greaterEqual": torch.ge,
}


def _nn_compare_case(name: str):
    def cases():
        x, y = ints(2, 20, high=3).astype(np.float32), ints(1, 20, high=3).astype(np.float32)
        fn = _NN_COMPARE[name]
        return [
            (layer(name), (x, y), npy(fn(T(x), T(y)).float()), 0),
            (layer(name, alpha=1.0), (x,), npy(fn(T(x), torch.tensor(1.0)).float()), 0),
        ]

    return cases


for _name in _NN_COMPARE:
    nn_case(_name)(_nn_compare_case(_name))

_NN_LOGICAL = {
    "logicalAnd": torch.logical_and,
    "logicalOr": torch.logical_or,
    "logicalXor": torch.logical_xor,
}


def _nn_logical_case(name: str):
    def cases():
        x, y = ints(3, 4, high=2).astype(np.float32) * 2.5, ints(3, 4, high=2).astype(np.float32)
        return [(layer(name), (x, y), npy(_NN_LOGICAL[name](T(x), T(y)).float()), 0)]

    return cases


for _name in _NN_LOGICAL:
    nn_case(_name)(_nn_logical_case(_name))


@nn_case("logicalNot")
def _nn_logical_not():
    x = ints(3, 4, high=2).astype(np.float32) * 3
    return [(layer("logicalNot"), (x,), npy(torch.logical_not(T(x)).float()), 0)]


@nn_case("whereBroadcastable")
def _nn_where():
    c, x, y = ints(2, 5, high=2).astype(np.float32), r(2, 5), r(5)
    return [(layer("whereBroadcastable"), (c, x, y), npy(torch.where(T(c) != 0, T(x), T(y))), 0)]


@nn_case("loadConstantND")
def _nn_load_constant():
    v = r(1, 20, 8)
    p = layer("loadConstantND", shape=[1, 20, 8])
    set_weights(p.data, v)
    p16 = layer("loadConstantND", shape=[1, 20, 8])
    set_weights(p16.data, v, fp16=True)
    return [(p, (), v, 0), (p16, (), v.astype(np.float16).astype(np.float32), 0)]


@nn_case("embeddingND")
def _nn_embedding():
    table = r(189, 8)
    ids = ints(1, 20, high=189)
    p = layer("embeddingND", vocabSize=189, embeddingSize=8)
    set_weights(p.weights, table.T)  # stored [embeddingSize, vocabSize]
    pb = layer("embeddingND", vocabSize=189, embeddingSize=8, hasBias=True)
    set_weights(pb.weights, table.T, fp16=True)
    bias = r(8)
    set_weights(pb.bias, bias)
    ref = npy(F.embedding(T(ids).long(), T(table)))
    ref16 = npy(F.embedding(T(ids).long(), T(table.astype(np.float16).astype(np.float32)))) + bias
    x = ids.astype(np.float32)[..., None]
    return [(p, (x,), ref, 0), (pb, (x,), ref16, 1e-6)]


@nn_case("innerProduct")
def _nn_inner_product():
    w, b = r(5, 8), r(5)
    p = layer("innerProduct", inputChannels=8, outputChannels=5, hasBias=True)
    set_weights(p.weights, w)
    set_weights(p.bias, b)
    x1, x2, x3 = r(8), r(3, 8), r(2, 20, 8)
    x4, x5 = r(3, 8, 1, 1), r(2, 3, 2, 2, 2)
    lin = lambda a: npy(F.linear(T(a), T(w), T(b)))  # noqa: E731
    return [
        (p, (x1,), lin(x1), 1e-5),
        (p, (x2,), lin(x2), 1e-5),
        (p, (x3,), lin(x3), 1e-5),
        (p, (x4,), lin(x4.reshape(3, 8)).reshape(3, 5, 1, 1), 1e-5),
        (p, (x5,), lin(x5.reshape(6, 8)).reshape(2, 3, 5, 1, 1), 1e-5),
    ]


@nn_case("batchedMatmul")
def _nn_batched_matmul():
    a, b = r(2, 4, 5, 6), r(2, 4, 6, 3)
    w, bias = r(6, 3), r(3)
    p1 = layer("batchedMatmul", weightMatrixFirstDimension=6, weightMatrixSecondDimension=3, hasBias=True)
    set_weights(p1.weights, w.T)  # stored transposed: [columns, rows]
    set_weights(p1.bias, bias)
    bt = r(2, 4, 3, 6)
    return [
        (layer("batchedMatmul"), (a, b), npy(torch.matmul(T(a), T(b))), 1e-5),
        (
            layer("batchedMatmul", transposeB=True),
            (a, bt),
            npy(torch.matmul(T(a), T(bt).transpose(-1, -2))),
            1e-5,
        ),
        (p1, (a,), npy(torch.matmul(T(a), T(w)) + T(bias)), 1e-5),
    ]


@nn_case("convolution")
def _nn_convolution():
    x = r(2, 4, 1, 20)
    w, b = r(6, 4, 1, 3), r(6)
    valid = layer(
        "convolution",
        outputChannels=6,
        kernelChannels=4,
        nGroups=1,
        kernelSize=[1, 3],
        stride=[1, 1],
        dilationFactor=[1, 1],
        hasBias=True,
    )
    valid.valid.paddingAmounts.borderAmounts.add()
    edge = valid.valid.paddingAmounts.borderAmounts.add()
    edge.startEdgeSize, edge.endEdgeSize = 1, 2
    set_weights(valid.weights, w)
    set_weights(valid.bias, b)
    w4 = r(6, 2, 2, 4)
    same = layer(
        "convolution",
        outputChannels=6,
        kernelChannels=2,
        nGroups=2,
        kernelSize=[2, 4],
        stride=[1, 2],
        dilationFactor=[1, 1],
    )
    same.same.SetInParent()
    set_weights(same.weights, w4, fp16=True)
    x2 = r(2, 4, 3, 9)
    w4h = T(w4.astype(np.float16).astype(np.float32))
    # SAME, stride (1, 2): H 3 -> 3 (pad 0/1), W 9 -> 5 (total 3: 1 left, 2 right)
    ref_same = npy(F.conv2d(F.pad(T(x2), (1, 2, 0, 1)), w4h, groups=2, stride=(1, 2)))
    x5 = r(2, 2, 4, 1, 20)
    return [
        (valid, (x,), npy(F.conv2d(F.pad(T(x), (1, 2)), T(w), T(b))), 1e-5),
        (same, (x2,), ref_same, 1e-5),
        (
            valid,
            (x5,),
            npy(F.conv2d(F.pad(T(x5.reshape(4, 4, 1, 20)), (1, 2)), T(w), T(b))).reshape(2, 2, 6, 1, 21),
            1e-5,
        ),
    ]


@nn_case("pooling")
def _nn_pooling():
    x = r(2, 3, 1, 20)
    mx = layer("pooling", type=0, kernelSize=[1, 2], stride=[1, 2])
    mx.valid.SetInParent()
    avg = layer("pooling", type=1, kernelSize=[1, 3], stride=[1, 1], avgPoolExcludePadding=True)
    avg.valid.paddingAmounts.borderAmounts.add()
    e = avg.valid.paddingAmounts.borderAmounts.add()
    e.startEdgeSize, e.endEdgeSize = 1, 1
    glob = layer("pooling", type=1, globalPooling=True)
    last = layer("pooling", type=0, kernelSize=[1, 3], stride=[1, 2])
    last.includeLastPixel.paddingAmounts.extend([0, 1])
    same = layer("pooling", type=0, kernelSize=[1, 3], stride=[1, 2])
    same.same.SetInParent()
    flat = T(x.reshape(2, 3, 20))
    return [
        (mx, (x,), npy(F.max_pool1d(flat, 2)).reshape(2, 3, 1, 10), 0),
        (
            avg,
            (x,),
            npy(F.avg_pool1d(flat, 3, 1, padding=1, count_include_pad=False)).reshape(2, 3, 1, 20),
            1e-6,
        ),
        (glob, (x,), x.mean(axis=(-2, -1), keepdims=True), 1e-6),
        (last, (x,), npy(F.max_pool1d(flat, 3, 2, padding=1, ceil_mode=True)).reshape(2, 3, 1, 11), 0),
        (same, (x,), npy(F.max_pool1d(F.pad(flat, (0, 1), value=-np.inf), 3, 2)).reshape(2, 3, 1, 10), 0),
    ]


@nn_case("padding")
def _nn_padding():
    x = r(2, 3, 6)
    out = []
    for kind, mode in (("constant", "constant"), ("reflection", "reflect"), ("replication", "replicate")):
        p = layer("padding")
        getattr(p, kind).SetInParent()
        if kind == "constant":
            p.constant.value = 0.5
        p.paddingAmounts.borderAmounts.add()
        e = p.paddingAmounts.borderAmounts.add()
        e.startEdgeSize, e.endEdgeSize = 2, 1
        ref = (
            F.pad(T(x), (2, 1), mode=mode, value=0.5)
            if mode == "constant"
            else F.pad(T(x), (2, 1), mode=mode)
        )
        out.append((p, (x,), npy(ref), 0))
    return out


@nn_case("batchnorm")
def _nn_batchnorm():
    x = r(2, 5, 1, 20)
    g, b, m, v = r(5), r(5), r(5), r(5, positive=True)
    p = layer("batchnorm", channels=5, epsilon=1e-5)
    for field, value in (("gamma", g), ("beta", b), ("mean", m), ("variance", v)):
        set_weights(getattr(p, field), value)
    return [(p, (x,), npy(F.batch_norm(T(x), T(m), T(v), T(g), T(b), eps=1e-5)), 1e-5)]


@nn_case("mvn")
def _nn_mvn():
    x = r(2, 20, 1, 8, scale=3)
    mean = x - x.mean(axis=(-2, -1), keepdims=True)
    return [
        (
            layer("mvn", normalizeVariance=True, epsilon=1e-5),
            (x,),
            npy(F.layer_norm(T(x.reshape(2, 20, 8)), (8,), eps=1e-5)).reshape(x.shape),
            1e-5,
        ),
        (
            layer("mvn", acrossChannels=True, normalizeVariance=True, epsilon=1e-5),
            (x,),
            npy(F.layer_norm(T(x), (20, 1, 8), eps=1e-5)),
            1e-5,
        ),
        (layer("mvn", normalizeVariance=False), (x,), mean, 1e-5),
    ]


@nn_case("scale")
def _nn_scale():
    x = r(2, 20, 1, 8)
    s, b = r(8), r(8)
    p = layer("scale", shapeScale=[1, 1, 8], hasBias=True, shapeBias=[1, 1, 8])
    set_weights(p.scale, s)
    set_weights(p.bias, b)
    pc = layer("scale", shapeScale=[20])
    sc = r(20)
    set_weights(pc.scale, sc)
    return [(p, (x,), x * s + b, 1e-6), (pc, (x,), x * sc.reshape(20, 1, 1), 1e-6)]


@nn_case("layerNormalization")
def _nn_layer_norm():
    x, g, b = r(2, 20, 8), r(8), r(8)
    p = layer("layerNormalization", normalizedShape=[8], eps=1e-5)
    set_weights(p.gamma, g)
    set_weights(p.beta, b)
    return [(p, (x,), npy(F.layer_norm(T(x), (8,), T(g), T(b), eps=1e-5)), 1e-5)]


_NN_REDUCE = {
    "reduceMax": lambda t, d, k: torch.amax(t, d, k),
    "reduceMin": lambda t, d, k: torch.amin(t, d, k),
    "reduceMean": lambda t, d, k: torch.mean(t, d, k),
    "reduceSum": lambda t, d, k: torch.sum(t, d, k),
    "reduceProd": lambda t, d, k: torch.prod(t, d[0], k),
}


def _nn_reduce_case(name: str):
    def cases():
        x = r(2, 6, 5)
        fn = _NN_REDUCE[name]
        return [
            (layer(name, axes=[1]), (x,), npy(fn(T(x), (1,), False)), 1e-5),
            (layer(name, axes=[-1], keepDims=True), (x,), npy(fn(T(x), (-1,), True)), 1e-5),
            (layer(name, reduceAll=True), (x,), npy(fn(T(x).reshape(-1), (0,), False)), 1e-4),
        ]

    return cases


for _name in _NN_REDUCE:
    nn_case(_name)(_nn_reduce_case(_name))


@nn_case("softmaxND", "softmax")
def _nn_softmax():
    x = r(2, 4, 3, 5, scale=3)
    return [
        (layer("softmaxND", axis=-1), (x,), npy(torch.softmax(T(x), -1)), 1e-6),
        (layer("softmaxND", axis=1), (x,), npy(torch.softmax(T(x), 1)), 1e-6),
        (layer("softmax"), (x,), npy(torch.softmax(T(x), -3)), 1e-6),
    ]


@nn_case("reshapeStatic")
def _nn_reshape():
    x, xb = r(1, 20, 8), r(3, 20, 8)
    return [
        (layer("reshapeStatic", targetShape=[1, 20, 2, 4]), (x,), x.reshape(1, 20, 2, 4), 0),
        (layer("reshapeStatic", targetShape=[-1, 20, 1, 8]), (x,), x.reshape(1, 20, 1, 8), 0),
        (layer("reshapeStatic", targetShape=[1, 20, 1, 8]), (xb,), xb.reshape(3, 20, 1, 8), 0, 3),
    ]


@nn_case("transpose")
def _nn_transpose():
    x = r(2, 3, 4, 5)
    return [(layer("transpose", axes=[0, 2, 3, 1]), (x,), npy(T(x).permute(0, 2, 3, 1)), 0)]


@nn_case("expandDims")
def _nn_expand_dims():
    x = r(2, 3)
    return [
        (layer("expandDims", axes=[-1]), (x,), x[..., None], 0),
        (layer("expandDims", axes=[1]), (x,), x[:, None], 0),
    ]


@nn_case("squeeze")
def _nn_squeeze():
    x = r(2, 1, 3, 1)
    return [
        (layer("squeeze", axes=[-1]), (x,), x[..., 0], 0),
        (layer("squeeze", squeezeAll=True), (x,), x.reshape(2, 3), 0),
    ]


@nn_case("concatND")
def _nn_concat():
    a, b = r(2, 3, 4), r(2, 3, 2)
    c = r(1, 3, 2)
    ab = r(4, 3, 4)
    return [
        (layer("concatND", axis=-1), (a, b), np.concatenate([a, b], -1), 0),
        (layer("concatND", axis=-1), (ab, c), np.concatenate([ab, np.broadcast_to(c, (4, 3, 2))], -1), 0, 4),
    ]


@nn_case("splitND")
def _nn_split():
    x = r(2, 5, 12)
    return [
        (layer("splitND", axis=-1, numSplits=3), (x,), tuple(np.split(x, 3, -1)), 0),
        (layer("splitND", axis=1, splitSizes=[2, 3]), (x,), tuple(np.split(x, [2], 1)), 0),
    ]


@nn_case("slice")
def _nn_slice():
    x = r(2, 6, 5, 24)
    return [
        (layer("slice", startIndex=0, endIndex=20, stride=1, axis=2), (x,), x[..., :20], 0),
        (layer("slice", startIndex=1, endIndex=-1, stride=2, axis=1), (x,), x[:, :, 1:-1:2], 0),
        (layer("slice", startIndex=2, endIndex=6, stride=1, axis=0), (x,), x[:, 2:6], 0),
    ]


@nn_case("sliceStatic")
def _nn_slice_static():
    x = r(1, 8, 24)
    p = layer(
        "sliceStatic",
        beginIds=[0, 2, 0],
        endIds=[1, 0, 20],
        strides=[1, 1, 2],
        beginMasks=[False, False, True],
        endMasks=[False, True, False],
        squeezeMasks=[False, False, False],
    )
    q = layer(
        "sliceStatic",
        beginIds=[0, 3, 0],
        endIds=[1, 4, 24],
        strides=[1, 1, 1],
        beginMasks=[False, False, False],
        endMasks=[False, False, False],
        squeezeMasks=[False, True, False],
    )
    return [(p, (x,), x[:, 2:, :20:2], 0), (q, (x,), x[:, 3, :], 0)]


def test_nn_registry_is_covered():
    missing = sorted(set(NN_LAYERS) - set(NN_CASES))
    assert not missing, f"NN layers without a unit test case: {missing}"


@pytest.mark.parametrize("name", sorted(NN_LAYERS))
def test_nn_layer_matches_torch(name: str):
    cases = [c for c in NN_CASES[name]() if _layer_kind(c[0]) in (name, "activation")]
    assert cases, f"no case of {name}"
    for case in cases:
        params, inputs, expected, tol = case[:4]
        batch = case[4] if len(case) > 4 else None
        _compare(run_layer(name, params, *inputs, batch=batch), expected, tol)


def _layer_kind(params: Any) -> str:
    """The layer type (oneof field of NeuralNetworkLayer) whose parameter message `params` is."""
    kinds = [
        f.name
        for f in nn_pb.NeuralNetworkLayer.DESCRIPTOR.oneofs_by_name["layer"].fields
        if f.message_type is not None and f.message_type.name == type(params).__name__
    ]
    assert len(kinds) == 1, (type(params).__name__, kinds)
    return kinds[0]


def test_nn_weights_fp16_and_quantized():
    from layoutnet.export.executor.nn_layers import weights

    v = r(12)
    p = nn_pb.WeightParams()
    set_weights(p, v, fp16=True)
    np.testing.assert_array_equal(weights(p, (3, 4)), v.astype(np.float16).astype(np.float32).reshape(3, 4))
    q = nn_pb.WeightParams()
    q.rawValue = bytes(12)
    q.quantization.numberOfBits = 8
    with pytest.raises(Unsupported, match="quantized"):
        weights(q)


def test_nn_unsupported_modes_are_reported():
    params = nn_pb.ActivationParams()
    params.PReLU.SetInParent()
    with pytest.raises(Unsupported, match="PReLU"):
        NN_LAYERS["activation"].prepare(params)
    with pytest.raises(Unsupported, match="deconvolution"):
        NN_LAYERS["convolution"].prepare(layer("convolution", isDeconvolution=True))
    with pytest.raises(Unsupported, match="L2"):
        NN_LAYERS["pooling"].prepare(layer("pooling", type=2))


def test_nn_batch_rules():
    def info(param_msg, shape, out):
        return BatchInfo(
            {"params": (Arg((), False, param_msg),), "inputs": (Arg(shape, True, None),)}, (out,)
        )

    rule = NN_LAYERS["reshapeStatic"].batch
    assert rule(info(layer("reshapeStatic", targetShape=[1, 20, 1, 8]), (1, 20, 8), (1, 20, 1, 8))) is None
    assert rule(info(layer("reshapeStatic", targetShape=[20, 8]), (1, 20, 8), (20, 8)))
    rule = NN_LAYERS["reduceMean"].batch
    assert rule(info(layer("reduceMean", axes=[1]), (1, 20, 8), (1, 8))) is None
    assert rule(info(layer("reduceMean", axes=[0]), (1, 20, 8), (20, 8)))
    assert rule(info(layer("reduceMean", reduceAll=True), (1, 20, 8), ()))
    rule = NN_LAYERS["slice"].batch
    assert rule(info(layer("slice", axis=2, endIndex=20, stride=1), (1, 8, 24), (1, 8, 20))) is None
    assert rule(info(layer("slice", axis=0, endIndex=1, stride=1), (1, 8, 24), (1, 8, 24)))
    rule = NN_LAYERS["convolution"].batch
    assert rule(info(None, (1, 4, 1, 20), (1, 6, 1, 20))) is None
    assert rule(info(None, (4, 1, 20), (6, 1, 20)))


def test_rowwise_products_are_independent_of_the_other_rows():
    a, b = r(300, 64), r(64, 48)
    with kernels.rowwise_products():
        together = kernels.gemm(a, b)
        alone = np.concatenate([kernels.gemm(a[i : i + 1], b) for i in range(0, 300, 37)])
    np.testing.assert_array_equal(together[::37], alone)
    np.testing.assert_allclose(kernels.gemm(a, b), a @ b, rtol=1e-6, atol=1e-5)


def test_round_to_fp16_equals_numpy_float16_conversion():
    """The bit-operation rounding used between fp16 ops agrees with NumPy's float16 cast everywhere:
    random bit patterns, every halfway point of every exponent, fp16 subnormal ties, overflow."""
    rng = np.random.default_rng(0)
    exponent = np.arange(256, dtype=np.uint32)[:, None] << np.uint32(23)
    mantissa = np.arange(1024, dtype=np.uint32)[None, :] << np.uint32(13)
    grid = (exponent | mantissa).reshape(-1)
    parts = [
        rng.integers(0, 2**32, size=2_000_000, dtype=np.uint64).astype(np.uint32),
        *(grid + np.uint32(d) for d in (0, 1, 0xFFF, 0x1000, 0x1001, 0x1FFF)),  # 0x1000: halfway
        ((2 * np.arange(2048, dtype=np.float64) + 1) * 2.0**-25).astype(np.float32).view(np.uint32),
        np.array([65504, 65519.99, 65520, 65536, np.inf, np.nan, 0.0, 2**-25, 2**-14], np.float32).view(
            np.uint32
        ),
    ]
    values = np.concatenate(parts).view(np.float32)
    values = np.concatenate([values, -values])
    with np.errstate(all="ignore"):
        expected = values.astype(np.float16).astype(np.float32)
    got = kernels.round_to_fp16(values)
    same = (got.view(np.uint32) == expected.view(np.uint32)) | (np.isnan(got) & np.isnan(expected))
    assert same.all(), values[~same][:10]
    transposed = r(4, 30, 7).transpose(0, 2, 1)
    out = kernels.round_to_fp16(transposed)
    assert out.strides == transposed.strides
    np.testing.assert_array_equal(out, transposed.astype(np.float16).astype(np.float32))


def test_round_to_fp16_of_in_range_blocks_equals_numpy_float16_conversion():
    """Blocks whose values all round to finite fp16 numbers take the two-addition rounding: same bits
    as NumPy's cast for every halfway point below 65520, fp16 subnormal ties and signed zeros."""
    exponent = np.arange(127 - 40, 127 + 16, dtype=np.uint32)[:, None] << np.uint32(23)
    mantissa = np.arange(1024, dtype=np.uint32)[None, :] << np.uint32(13)
    grid = (exponent | mantissa).reshape(-1)
    values = np.concatenate(
        [
            *(grid + np.uint32(d) for d in (0, 1, 0xFFF, 0x1000, 0x1001, 0x1FFF)),
            ((2 * np.arange(2048, dtype=np.float64) + 1) * 2.0**-25).astype(np.float32).view(np.uint32),
            np.array([65504, 65519.99, 0.0, 2**-26, 2**-25, 2**-14], np.float32).view(np.uint32),
        ]
    ).view(np.float32)
    values = np.concatenate([values, -values])
    values = values[np.abs(values) < 65520]
    got = kernels.round_to_fp16(values)
    expected = values.astype(np.float16).astype(np.float32)
    np.testing.assert_array_equal(got.view(np.uint32), expected.view(np.uint32))
