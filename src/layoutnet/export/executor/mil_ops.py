"""ML Program (MIL) operations, one small NumPy function per op type.

Like coremltools' MIL op definitions, each op is registered by name with `@mil_op`. A function
receives the op's inputs by parameter name (floating tensors as float32, constants as NumPy values,
variadic parameters such as `concat.values` as lists) and returns one array or a tuple of arrays;
the program then casts each result to the dtype the op declares. Optional parameters have the
defaults of the MIL op definitions (iOS15-iOS18 opsets).

`batch` is the op's batching rule (see `engine`): when the op can run on N samples stacked on
axis 0, the function sees `ctx.batch == N` and handles the few places where a 1 in the program
means "the batch" (reshape targets, slices of axis 0, concat of constants).

`ctx.fp16` asks for true fp16 arithmetic (precision "fp16"): inputs then hold fp16 numbers and an
op with more than one arithmetic step rounds after each (`kernels.r16`), accumulating sums and
products in fp16 (`kernels.sum16`, `gemm16`, ...). Single-step ops (add, mul, exp, ...) need no
branch: the engine rounds their result once, which is the correctly rounded fp16 result.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from layoutnet.export.executor import kernels
from layoutnet.export.executor.engine import (
    BatchInfo,
    BatchRule,
    OpContext,
    Unsupported,
    all_of,
    axes_rule,
    elementwise,
    leading_rule,
    normalize_axes,
    only_batched,
)
from layoutnet.export.executor.kernels import r16


@dataclass(frozen=True)
class MilOp:
    name: str
    fn: Callable[..., Any]
    batch: BatchRule
    variadic: frozenset[str]
    preserves: bool  # output values are input values (or constants): no fp16 re-rounding needed
    matrix: bool = False  # a matrix product or convolution (range guards: its accumulator and output)


MIL_OPS: dict[str, MilOp] = {}

NUMPY_DTYPES = {
    "bool": np.bool_,
    "int8": np.int8,
    "uint8": np.uint8,
    "int16": np.int16,
    "uint16": np.uint16,
    "int32": np.int32,
    "uint32": np.uint32,
    "int64": np.int64,
    "uint64": np.uint64,
    "fp16": np.float16,
    "fp32": np.float32,
    "fp64": np.float64,
}


def mil_op(
    *names: str,
    batch: BatchRule = elementwise,
    variadic: tuple[str, ...] = (),
    preserves: bool = False,
    matrix: bool = False,
):
    """Register the decorated function as the implementation of the MIL op type(s) `names`.

    preserves: the op only moves, selects or compares values (transpose, concat, max, relu, ...).
    matrix: a matrix product or convolution, a sum of products of its inputs (so computing it on the
    inputs' absolute values bounds every partial sum: the range guards read that).
    """

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        for name in names:
            if name in MIL_OPS:
                raise ValueError(f"MIL op {name!r} registered twice")
            MIL_OPS[name] = MilOp(name, fn, batch, frozenset(variadic), preserves, matrix)
        return fn

    return register


def _ints(value: Any) -> list[int]:
    return [int(v) for v in np.atleast_1d(np.asarray(value)).tolist()]


def _bools(value: Any, rank: int) -> list[bool]:
    if value is None:
        return [False] * rank
    return [bool(v) for v in np.atleast_1d(np.asarray(value)).tolist()]


def _scalar(value: Any) -> Any:
    return np.asarray(value).reshape(()).item()


def _str(value: Any) -> str:
    return str(_scalar(value)) if not isinstance(value, str) else value


# ----------------------------------------------------------------------------- constants


@mil_op("const", batch=only_batched(), preserves=True)
def const(ctx: OpContext, val: Any) -> Any:
    return val


@mil_op("identity", preserves=True)
def identity(ctx: OpContext, x: np.ndarray) -> np.ndarray:
    return x


# ----------------------------------------------------------------------------- elementwise binary


def _binary(fn: Callable[[Any, Any], Any]) -> Callable[..., Any]:
    def op(ctx: OpContext, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return fn(x, y)

    op.__doc__ = f"elementwise {fn.__name__} with broadcasting"
    return op


_BINARY: dict[str, Callable[[Any, Any], Any]] = {
    "add": np.add,
    "sub": np.subtract,
    "mul": np.multiply,
    "real_div": np.true_divide,
    "floor_div": np.floor_divide,
    "mod": np.mod,
    "pow": np.power,
    "maximum": np.maximum,
    "minimum": np.minimum,
    "equal": np.equal,
    "not_equal": np.not_equal,
    "less": np.less,
    "less_equal": np.less_equal,
    "greater": np.greater,
    "greater_equal": np.greater_equal,
    "logical_and": np.logical_and,
    "logical_or": np.logical_or,
    "logical_xor": np.logical_xor,
}
_VALUE_PRESERVING = {
    "maximum",
    "minimum",
    "equal",
    "not_equal",
    "less",
    "less_equal",
    "greater",
    "greater_equal",
    "logical_and",
    "logical_or",
    "logical_xor",
}
for _name, _fn in _BINARY.items():
    mil_op(_name, preserves=_name in _VALUE_PRESERVING)(_binary(_fn))


@mil_op("select", preserves=True)
def select(ctx: OpContext, cond: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.where(cond, a, b)


# ----------------------------------------------------------------------------- elementwise unary


@mil_op("relu", preserves=True)
def relu(ctx: OpContext, x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0)


@mil_op("relu6", preserves=True)
def relu6(ctx: OpContext, x: np.ndarray) -> np.ndarray:
    return np.clip(x, 0, 6)


@mil_op("leaky_relu")
def leaky_relu(ctx: OpContext, x: np.ndarray, alpha: Any = 0.01) -> np.ndarray:
    return np.where(x >= 0, x, x * np.float32(_scalar(alpha)))


def _r(ctx: OpContext, x: Any) -> Any:
    """x rounded to fp16 under true fp16 arithmetic, else as is (one intermediate step)."""
    return r16(x) if ctx.fp16 else x


@mil_op("elu")
def elu(ctx: OpContext, x: np.ndarray, alpha: Any = 1.0) -> np.ndarray:
    return np.where(x > 0, x, np.float32(_scalar(alpha)) * _r(ctx, np.expm1(np.minimum(x, 0))))


@mil_op("sigmoid")
def sigmoid(ctx: OpContext, x: np.ndarray) -> np.ndarray:
    return kernels.sigmoid16(x) if ctx.fp16 else kernels.sigmoid(x)


@mil_op("sigmoid_hard")
def sigmoid_hard(ctx: OpContext, x: np.ndarray, alpha: Any = 0.2, beta: Any = 0.5) -> np.ndarray:
    return np.clip(_r(ctx, np.float32(_scalar(alpha)) * x) + np.float32(_scalar(beta)), 0, 1)


@mil_op("silu")
def silu(ctx: OpContext, x: np.ndarray) -> np.ndarray:
    return x * (kernels.sigmoid16(x) if ctx.fp16 else kernels.sigmoid(x))


@mil_op("tanh")
def tanh(ctx: OpContext, x: np.ndarray) -> np.ndarray:
    return np.tanh(x)


@mil_op("gelu")
def gelu(ctx: OpContext, x: np.ndarray, mode: Any = "EXACT") -> np.ndarray:
    mode = _str(mode)
    if mode not in ("EXACT", "TANH_APPROXIMATION", "SIGMOID_APPROXIMATION"):
        raise Unsupported(f"mode={mode}")
    return kernels.gelu16(x, mode) if ctx.fp16 else kernels.gelu(x, mode)


@mil_op("softplus")
def softplus(ctx: OpContext, x: np.ndarray) -> np.ndarray:
    return kernels.softplus(x)


@mil_op("softsign")
def softsign(ctx: OpContext, x: np.ndarray) -> np.ndarray:
    return x / _r(ctx, 1 + np.abs(x))


@mil_op("exp")
def exp(ctx: OpContext, x: np.ndarray) -> np.ndarray:
    return np.exp(x)


@mil_op("exp2")
def exp2(ctx: OpContext, x: np.ndarray) -> np.ndarray:
    return np.exp2(x)


@mil_op("log")
def log(ctx: OpContext, x: np.ndarray, epsilon: Any = 1e-45) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(_r(ctx, x + np.asarray(_scalar(epsilon), dtype=x.dtype)))


@mil_op("sqrt")
def sqrt(ctx: OpContext, x: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return np.sqrt(x)


@mil_op("rsqrt")
def rsqrt(ctx: OpContext, x: np.ndarray, epsilon: Any = 1e-12) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return 1 / _r(ctx, np.sqrt(_r(ctx, x + np.float32(_scalar(epsilon)))))


@mil_op("inverse")
def inverse(ctx: OpContext, x: np.ndarray, epsilon: Any = 1e-4) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return 1 / _r(ctx, x + np.float32(_scalar(epsilon)))


@mil_op("abs", preserves=True)
def abs_(ctx: OpContext, x: np.ndarray) -> np.ndarray:
    return np.abs(x)


@mil_op("erf")
def erf(ctx: OpContext, x: np.ndarray) -> np.ndarray:
    return kernels.erf(x)


@mil_op("square")
def square(ctx: OpContext, x: np.ndarray) -> np.ndarray:
    return x * x


@mil_op("sign", preserves=True)
def sign(ctx: OpContext, x: np.ndarray) -> np.ndarray:
    return np.sign(x)


@mil_op("floor", preserves=True)
def floor(ctx: OpContext, x: np.ndarray) -> np.ndarray:
    return np.floor(x)


@mil_op("ceil", preserves=True)
def ceil(ctx: OpContext, x: np.ndarray) -> np.ndarray:
    return np.ceil(x)


@mil_op("round", preserves=True)
def round_(ctx: OpContext, x: np.ndarray) -> np.ndarray:
    return np.round(x)


@mil_op("logical_not", preserves=True)
def logical_not(ctx: OpContext, x: np.ndarray) -> np.ndarray:
    return np.logical_not(x)


@mil_op("clip", preserves=True)
def clip(ctx: OpContext, x: np.ndarray, alpha: Any, beta: Any) -> np.ndarray:
    return np.minimum(np.maximum(x, np.asarray(alpha, dtype=x.dtype)), np.asarray(beta, dtype=x.dtype))


@mil_op("cast")
def cast(ctx: OpContext, x: np.ndarray, dtype: Any) -> np.ndarray:
    name = _str(dtype)
    if name not in NUMPY_DTYPES:
        raise Unsupported(f"dtype={name}")
    return np.asarray(x).astype(NUMPY_DTYPES[name])


# ----------------------------------------------------------------------------- reductions, softmax


def _reduction(fn: Callable[..., np.ndarray], fn16: Callable[..., np.ndarray] | None) -> Callable[..., Any]:
    def op(ctx: OpContext, x: np.ndarray, axes: Any = None, keep_dims: Any = False) -> np.ndarray:
        axis = None if axes is None else tuple(normalize_axes(axes, x.ndim))
        if ctx.fp16 and fn16 is not None:
            return ctx.pick(fn, fn16)(x, axis, bool(_scalar(keep_dims)))
        return fn(x, axis=axis, keepdims=bool(_scalar(keep_dims)))

    op.__doc__ = f"{fn.__name__} over `axes` (all when absent)"
    return op


_REDUCTIONS = {
    "reduce_max": (np.max, None),
    "reduce_min": (np.min, None),
    "reduce_mean": (np.mean, kernels.mean16),
    "reduce_sum": (np.sum, kernels.sum16),
    "reduce_prod": (np.prod, kernels.prod16),
}
for _name, (_fn, _fn16) in _REDUCTIONS.items():
    mil_op(_name, batch=axes_rule("axes"), preserves=_name in ("reduce_max", "reduce_min"))(
        _reduction(_fn, _fn16)
    )


@mil_op("softmax", batch=axes_rule("axis"))
def softmax(ctx: OpContext, x: np.ndarray, axis: Any = -1) -> np.ndarray:
    """exp(x - max) / sum over `axis` (fp16: every step rounded, summed in ctx.accumulation order)."""
    return ctx.pick(kernels.softmax, kernels.softmax16)(x, int(_scalar(axis)))


# ----------------------------------------------------------------------------- linear algebra


@mil_op("linear", batch=all_of(only_batched("x"), leading_rule(2)), matrix=True)
def linear(ctx: OpContext, x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
    """x @ weight.T + bias over the last axis of x (weight [out, in])."""
    return ctx.pick(kernels.linear, kernels.linear16)(x, weight, bias)


def _matmul_rule(info: BatchInfo) -> str | None:
    out_rank = len(info.out_shapes[0])
    for param, flag in (("x", "transpose_x"), ("y", "transpose_y")):
        arg = info.arg(param)
        if arg.batched:
            if len(arg.shape) != out_rank:
                return f"batched {param} of rank {len(arg.shape)} broadcast to rank {out_rank}"
            if len(arg.shape) == 2 and (param == "y" or bool(_scalar(info.value(flag, False)))):
                return f"axis 0 of {param} is a matrix axis"
        elif len(arg.shape) == out_rank > 2 and arg.shape[0] != 1:
            return f"constant {param} of shape {arg.shape} varies along axis 0"
    return None


@mil_op("matmul", batch=_matmul_rule, matrix=True)
def matmul(
    ctx: OpContext, x: np.ndarray, y: np.ndarray, transpose_x: Any = False, transpose_y: Any = False
) -> np.ndarray:
    """x @ y with numpy broadcasting, either side transposed first (transpose_x / transpose_y)."""
    if bool(_scalar(transpose_x)) and x.ndim >= 2:
        x = np.swapaxes(x, -1, -2)
    if bool(_scalar(transpose_y)) and y.ndim >= 2:
        y = np.swapaxes(y, -1, -2)
    return ctx.pick(kernels.matmul, kernels.matmul16)(x, y)


# ----------------------------------------------------------------------------- convolution, pooling


def _pads(
    pad_type: str,
    pad: Any,
    sizes: tuple[int, ...],
    kernel: tuple[int, ...],
    strides: list[int],
    dilations: list[int],
) -> list[tuple[int, int]]:
    nsp = len(kernel)
    if pad_type == "valid":
        return [(0, 0)] * nsp
    if pad_type == "custom":
        values = _ints(pad) if pad is not None else [0] * (2 * nsp)
        return [(values[2 * i], values[2 * i + 1]) for i in range(nsp)]
    if pad_type in ("same", "same_lower"):
        pads = [
            kernels.same_padding(s, k, st, d)
            for s, k, st, d in zip(sizes, kernel, strides, dilations, strict=True)
        ]
        return pads if pad_type == "same" else [(hi, lo) for lo, hi in pads]
    raise Unsupported(f"pad_type={pad_type}")


@mil_op("conv", batch=all_of(only_batched("x"), leading_rule(3)), matrix=True)
def conv(
    ctx: OpContext,
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None = None,
    strides: Any = None,
    pad_type: Any = "valid",
    pad: Any = None,
    dilations: Any = None,
    groups: Any = 1,
) -> np.ndarray:
    """N-d cross-correlation of x [N, C, *S] with weight [O, C/groups, *K], MIL padding modes."""
    nsp = weight.ndim - 2
    strides = _ints(strides) if strides is not None else [1] * nsp
    dilations = _ints(dilations) if dilations is not None else [1] * nsp
    pads = _pads(_str(pad_type), pad, x.shape[2:], weight.shape[2:], strides, dilations)
    return kernels.conv(
        x, weight, bias, strides, dilations, pads, int(_scalar(groups)), ctx.fp16, ctx.accumulation
    )


def _pool(kind: str) -> Callable[..., Any]:
    def op(
        ctx: OpContext,
        x: np.ndarray,
        kernel_sizes: Any,
        strides: Any = None,
        pad_type: Any = "valid",
        pad: Any = None,
        ceil_mode: Any = False,
        exclude_padding_from_average: Any = False,
    ) -> np.ndarray:
        kernel = tuple(_ints(kernel_sizes))
        nsp = len(kernel)
        strides = _ints(strides) if strides is not None else [1] * nsp
        sizes = x.shape[x.ndim - nsp :]
        pads = _pads(_str(pad_type), pad, sizes, kernel, strides, [1] * nsp)
        if bool(_scalar(ceil_mode)):
            grown = []
            for size, k, s, (lo, hi) in zip(sizes, kernel, strides, pads, strict=True):
                out = -(-(size + lo + hi - k) // s) + 1
                if (out - 1) * s >= size + lo:
                    out -= 1
                extra = max((out - 1) * s + k - (size + lo + hi), 0)
                if extra and kind == "avg":
                    raise Unsupported("ceil_mode with a partial last window")
                grown.append((lo, hi + extra))
            pads = grown
        exclude = bool(_scalar(exclude_padding_from_average))
        return kernels.pool(x, kind, kernel, strides, pads, exclude, ctx.fp16, ctx.accumulation)

    op.__doc__ = f"{kind} pooling over the spatial axes of [N, C, *S]"
    return op


mil_op("max_pool", batch=leading_rule(3), preserves=True)(_pool("max"))
mil_op("avg_pool", batch=leading_rule(3))(_pool("avg"))


# ----------------------------------------------------------------------------- normalization


@mil_op("batch_norm", batch=all_of(only_batched("x"), leading_rule(2)))
def batch_norm(
    ctx: OpContext,
    x: np.ndarray,
    mean: np.ndarray,
    variance: np.ndarray,
    gamma: np.ndarray | None = None,
    beta: np.ndarray | None = None,
    epsilon: Any = 1e-5,
) -> np.ndarray:
    shape = (1, -1) + (1,) * (x.ndim - 2)
    eps = np.float32(_scalar(epsilon))
    scale = _r(ctx, 1 / _r(ctx, np.sqrt(_r(ctx, variance + (_r(ctx, eps))))))
    if gamma is not None:
        scale = _r(ctx, scale * gamma)
    shift = _r(ctx, -mean * scale)
    if beta is not None:
        shift = _r(ctx, shift + beta)
    return _r(ctx, x * scale.reshape(shape)) + shift.reshape(shape)


@mil_op("layer_norm", batch=all_of(only_batched("x"), axes_rule("axes")))
def layer_norm(
    ctx: OpContext,
    x: np.ndarray,
    axes: Any = None,
    gamma: np.ndarray | None = None,
    beta: np.ndarray | None = None,
    epsilon: Any = 1e-5,
) -> np.ndarray:
    """(x - mean) / sqrt(var + epsilon) over `axes` (all when absent), then * gamma + beta."""
    axes = list(range(x.ndim)) if axes is None else sorted(normalize_axes(axes, x.ndim))
    eps = float(_scalar(epsilon))
    y = ctx.pick(kernels.normalize, kernels.normalize16)(x, axes, eps)
    shape = [x.shape[i] if i in axes else 1 for i in range(x.ndim)]
    if gamma is not None:
        y = _r(ctx, y * gamma.reshape(shape))
    if beta is not None:
        y = y + beta.reshape(shape)
    return y


# ----------------------------------------------------------------------------- shape and layout


def _reshape_rule(info: BatchInfo) -> str | None:
    if info.arg("shape").batched:
        return "the target shape depends on the model input"
    if info.arg("x").shape[:1] != (1,) or info.out_shapes[0][:1] != (1,):
        return f"reshape {info.arg('x').shape} -> {info.out_shapes[0]} moves the leading 1"
    return None


@mil_op("reshape", batch=_reshape_rule, preserves=True)
def reshape(ctx: OpContext, x: np.ndarray, shape: Any) -> np.ndarray:
    n = ctx.batch
    one = (1, *x.shape[1:]) if n else x.shape
    target = [one[i] if s == 0 else s for i, s in enumerate(_ints(shape))] if np.size(shape) else []
    if -1 in target:
        known = int(np.prod([s for s in target if s != -1]))
        target[target.index(-1)] = int(np.prod(one)) // max(known, 1)
    if n:
        target[0] = n
    return x.reshape(target)


def _perm_rule(info: BatchInfo) -> str | None:
    perm = _ints(info.value("perm"))
    return None if normalize_axes(perm, len(perm))[0] == 0 else f"perm={perm} moves axis 0"


@mil_op("transpose", batch=_perm_rule, preserves=True)
def transpose(ctx: OpContext, x: np.ndarray, perm: Any) -> np.ndarray:
    return np.transpose(x, normalize_axes(perm, x.ndim))


def _expand_dims_rule(info: BatchInfo) -> str | None:
    axes = normalize_axes(info.value("axes"), len(info.out_shapes[0]))
    return "inserts an axis before the batch axis" if 0 in axes else None


@mil_op("expand_dims", batch=_expand_dims_rule, preserves=True)
def expand_dims(ctx: OpContext, x: np.ndarray, axes: Any) -> np.ndarray:
    rank = x.ndim + np.size(axes)
    return np.expand_dims(x, tuple(sorted(normalize_axes(axes, rank))))


@mil_op("squeeze", batch=axes_rule("axes"), preserves=True)
def squeeze(ctx: OpContext, x: np.ndarray, axes: Any = None) -> np.ndarray:
    if axes is None:
        return np.squeeze(x)
    return np.squeeze(x, axis=tuple(normalize_axes(axes, x.ndim)))


def _pad_rule(info: BatchInfo) -> str | None:
    if info.arg("pad").batched:
        return "the padding depends on the model input"
    pads = np.asarray(info.value("pad")).reshape(-1, 2)
    if len(pads) == info.rank("x") and pads[0].any():
        return "pads the batch axis"
    return None


_PAD_MODES = {"constant": "constant", "reflect": "reflect", "replicate": "edge"}


@mil_op("pad", batch=_pad_rule, preserves=True)
def pad(
    ctx: OpContext, x: np.ndarray, pad: Any, mode: Any = "constant", constant_val: Any = 0.0
) -> np.ndarray:
    mode = _str(mode)
    if mode not in _PAD_MODES:
        raise Unsupported(f"mode={mode}")
    pairs = np.asarray(pad, dtype=np.int64).reshape(-1, 2).tolist()
    width = [(0, 0)] * (x.ndim - len(pairs)) + [tuple(p) for p in pairs]
    if mode == "constant":
        return np.pad(x, width, mode="constant", constant_values=np.asarray(constant_val, dtype=x.dtype))
    return np.pad(x, width, mode=_PAD_MODES[mode])


def _concat_rule(info: BatchInfo) -> str | None:
    values = info.args["values"]
    if 0 in normalize_axes(info.value("axis"), len(values[0].shape)):
        return "concatenates along axis 0"
    if any(not a.shape or a.shape[0] != 1 or len(a.shape) != len(values[0].shape) for a in values):
        return "inputs without a leading 1"
    return None


def _broadcast_batch(ctx: OpContext, values: list[np.ndarray]) -> list[np.ndarray]:
    if not ctx.batch:
        return values
    return [v if v.shape[0] == ctx.batch else np.broadcast_to(v, (ctx.batch, *v.shape[1:])) for v in values]


@mil_op("concat", batch=_concat_rule, variadic=("values",), preserves=True)
def concat(ctx: OpContext, values: list[np.ndarray], axis: Any, interleave: Any = False) -> np.ndarray:
    if bool(_scalar(interleave)):
        raise Unsupported("interleave=True")
    return np.concatenate(_broadcast_batch(ctx, values), axis=int(_scalar(axis)))


def _stack_rule(info: BatchInfo) -> str | None:
    values = info.args["values"]
    if 0 in normalize_axes(info.value("axis"), len(values[0].shape) + 1):
        return "stacks along axis 0"
    if any(not a.shape or a.shape[0] != 1 for a in values):
        return "inputs without a leading 1"
    return None


@mil_op("stack", batch=_stack_rule, variadic=("values",), preserves=True)
def stack(ctx: OpContext, values: list[np.ndarray], axis: Any) -> np.ndarray:
    return np.stack(_broadcast_batch(ctx, values), axis=int(_scalar(axis)))


@mil_op("split", batch=all_of(only_batched("x"), axes_rule("axis")), preserves=True)
def split(
    ctx: OpContext, x: np.ndarray, axis: Any, num_splits: Any = None, split_sizes: Any = None
) -> tuple[np.ndarray, ...]:
    axis = normalize_axes(axis, x.ndim)[0]
    if split_sizes is not None:
        bounds = np.cumsum(_ints(split_sizes))[:-1]
        return tuple(np.split(x, bounds, axis=axis))
    return tuple(np.split(x, int(_scalar(num_splits)), axis=axis))


def _takes_all_of_axis0(begin: int | None, end: int | None, stride: int) -> bool:
    return list(range(1)[slice(begin, end, stride)]) == [0]


def _slice_by_index_rule(info: BatchInfo) -> str | None:
    rank = info.rank("x")
    if any(info.arg(p) is not None and info.arg(p).batched for p in ("begin", "end", "stride")):
        return "slice bounds depend on the model input"
    begin, end = _ints(info.value("begin")), _ints(info.value("end"))
    stride = _ints(info.value("stride")) if info.value("stride") is not None else [1] * rank
    b = None if _bools(info.value("begin_mask"), rank)[0] else begin[0]
    e = None if _bools(info.value("end_mask"), rank)[0] else end[0]
    if _bools(info.value("squeeze_mask"), rank)[0] or not _takes_all_of_axis0(b, e, stride[0]):
        return "does not keep axis 0 whole"
    return None


@mil_op("slice_by_index", batch=_slice_by_index_rule, preserves=True)
def slice_by_index(
    ctx: OpContext,
    x: np.ndarray,
    begin: Any,
    end: Any,
    stride: Any = None,
    begin_mask: Any = None,
    end_mask: Any = None,
    squeeze_mask: Any = None,
) -> np.ndarray:
    rank = x.ndim
    begin, end = _ints(begin), _ints(end)
    stride = _ints(stride) if stride is not None else [1] * rank
    bmask, emask, smask = _bools(begin_mask, rank), _bools(end_mask, rank), _bools(squeeze_mask, rank)
    index: list[Any] = []
    for i in range(rank):
        if smask[i]:
            index.append(begin[i])
        else:
            index.append(slice(None if bmask[i] else begin[i], None if emask[i] else end[i], stride[i]))
    if ctx.batch:
        index[0] = slice(None)
    return x[tuple(index)]


def _slice_by_size_rule(info: BatchInfo) -> str | None:
    if info.arg("begin").batched or info.arg("size").batched:
        return "slice bounds depend on the model input"
    begin, size = _ints(info.value("begin")), _ints(info.value("size"))
    return None if begin[0] == 0 and size[0] in (1, -1) else "does not keep axis 0 whole"


@mil_op("slice_by_size", batch=_slice_by_size_rule, preserves=True)
def slice_by_size(ctx: OpContext, x: np.ndarray, begin: Any, size: Any) -> np.ndarray:
    index = [slice(b, None if s == -1 else b + s) for b, s in zip(_ints(begin), _ints(size), strict=True)]
    if ctx.batch:
        index[0] = slice(None)
    return x[tuple(index)]


def _tile_rule(info: BatchInfo) -> str | None:
    reps = _ints(info.value("reps"))
    return None if len(reps) == info.rank("x") and reps[0] == 1 else f"reps={reps} repeat axis 0"


@mil_op("tile", batch=_tile_rule, preserves=True)
def tile(ctx: OpContext, x: np.ndarray, reps: Any) -> np.ndarray:
    return np.tile(x, _ints(reps))


# ----------------------------------------------------------------------------- gather


def _gather_rule(info: BatchInfo) -> str | None:
    x, indices = info.arg("x"), info.arg("indices")
    axis = normalize_axes(info.value("axis", 0), len(x.shape))[0]
    if int(_scalar(info.value("batch_dims", 0))) != 0:
        return "batch_dims != 0"
    if x.batched and indices.batched:
        return "both data and indices depend on the model input"
    if indices.batched:
        if axis != 0 or not indices.shape or indices.shape[0] != 1:
            return "batched indices not on axis 0 of the result"
        return None
    return "gathers along the batch axis" if axis == 0 else None


@mil_op("gather", batch=_gather_rule, preserves=True)
def gather(
    ctx: OpContext,
    x: np.ndarray,
    indices: np.ndarray,
    axis: Any = 0,
    batch_dims: Any = 0,
    validate_indices: Any = False,
) -> np.ndarray:
    if int(_scalar(batch_dims)) != 0:
        raise Unsupported("batch_dims != 0")
    return np.take(x, np.asarray(indices).astype(np.int64), axis=int(_scalar(axis)))


def _gather_along_axis_rule(info: BatchInfo) -> str | None:
    if 0 in normalize_axes(info.value("axis", 0), info.rank("x")):
        return "gathers along the batch axis"
    return elementwise(info)


@mil_op("gather_along_axis", batch=_gather_along_axis_rule, preserves=True)
def gather_along_axis(
    ctx: OpContext, x: np.ndarray, indices: np.ndarray, axis: Any = 0, validate_indices: Any = False
) -> np.ndarray:
    return np.take_along_axis(x, np.asarray(indices).astype(np.int64), axis=int(_scalar(axis)))


# ----------------------------------------------------------------------------- compressed weights
#
# coremltools.optimize.coreml writes compressed weights as constexpr ops, evaluated once at load
# (every input is a constant read from the weight file): int8 linear quantization as
# constexpr_affine_dequantize (iOS16/17) or constexpr_blockwise_shift_scale (iOS18, also int4 and
# per-block), palettization as constexpr_lut_to_dense (iOS16/17: packed uint8 indices and a flat
# lookup table; iOS18: sub-byte indices and per-block lookup tables). The result is the dense
# weight in the dtype of the scale / lookup table, which the program declares.


def _along(values: np.ndarray, axis: int, rank: int) -> np.ndarray:
    """A scalar or 1-D per-channel parameter shaped to broadcast along `axis` of a rank-`rank` tensor."""
    values = np.asarray(values)
    if values.ndim == 0 or values.size == 1:
        return values.reshape(())
    shape = [1] * rank
    shape[axis] = values.size
    return values.reshape(shape)


@mil_op("constexpr_affine_dequantize", batch=only_batched())
def constexpr_affine_dequantize(
    ctx: OpContext, quantized_data: np.ndarray, zero_point: Any, scale: Any, axis: Any
) -> np.ndarray:
    """(quantized_data - zero_point) * scale, zero_point and scale per channel along `axis`."""
    q = np.asarray(quantized_data)
    axis = normalize_axes(axis, q.ndim)[0]
    centered = q.astype(np.float32) - _along(zero_point, axis, q.ndim).astype(np.float32)
    return centered * _along(scale, axis, q.ndim).astype(np.float32)


def _expand_blocks(values: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A per-block parameter (each axis dividing the data's) repeated to the data's shape."""
    values = np.asarray(values)
    if values.ndim != len(shape):
        raise ValueError(f"block parameter of rank {values.ndim} for data of rank {len(shape)}")
    for axis, (blocks, size) in enumerate(zip(values.shape, shape, strict=True)):
        if size % blocks:
            raise ValueError(f"axis {axis}: {blocks} blocks do not divide size {size}")
        values = np.repeat(values, size // blocks, axis=axis)
    return values


@mil_op("constexpr_blockwise_shift_scale", batch=only_batched())
def constexpr_blockwise_shift_scale(
    ctx: OpContext, data: np.ndarray, scale: np.ndarray, offset: np.ndarray | None = None
) -> np.ndarray:
    """(data - offset) * scale, with scale and offset given per block (iOS18)."""
    data = np.asarray(data)
    values = data.astype(np.float32)
    if offset is not None:
        values = values - _expand_blocks(np.asarray(offset).astype(np.float32), data.shape)
    return values * _expand_blocks(np.asarray(scale).astype(np.float32), data.shape)


@mil_op("constexpr_lut_to_dense", batch=only_batched(), preserves=True)
def constexpr_lut_to_dense(
    ctx: OpContext,
    indices: np.ndarray,
    lut: np.ndarray,
    shape: Any = None,
    vector_axis: Any = None,
) -> np.ndarray:
    """Palettized weights: each index picks a value of its lookup table.

    iOS16/17 (`shape` given): `indices` are the packed bytes of prod(shape) indices of
    log2(len(lut)) bits each and `lut` is one flat table. iOS18: `indices` (unpacked sub-byte
    values) have the weight's shape and `lut` has shape [*blocks, 2**nbits, 1]: each axis of the
    weight is cut into as many blocks as the table has along it (per-tensor: all 1s; per grouped
    channel: groups along one axis)."""
    lut = np.asarray(lut)
    if shape is not None:
        dims = _ints(shape)
        entries = lut.size
        nbits = entries.bit_length() - 1
        if lut.ndim != 1 or entries != 1 << nbits or not 1 <= nbits <= 8:
            raise ValueError(f"lookup table of shape {lut.shape} is not 2**nbits entries")
        count = int(np.prod(dims))
        flat = kernels.unpack_bits(np.asarray(indices, dtype=np.uint8).reshape(-1), nbits, count)
        return lut[flat.astype(np.int64)].reshape(dims)
    indices = np.asarray(indices).astype(np.int64)
    if lut.ndim != indices.ndim + 2:
        raise ValueError(f"lookup table of rank {lut.ndim} for indices of rank {indices.ndim}")
    if lut.shape[-1] != 1:
        raise Unsupported(f"vector palettization (vector size {lut.shape[-1]})")
    block_index = []
    for axis, (blocks, size) in enumerate(zip(lut.shape[:-2], indices.shape, strict=True)):
        if size % blocks:
            raise ValueError(f"axis {axis}: {blocks} lookup tables do not divide size {size}")
        position = np.arange(size) // (size // blocks)
        block_index.append(position.reshape([size if a == axis else 1 for a in range(indices.ndim)]))
    return lut[(*block_index, indices, 0)]
