"""NeuralNetwork (.mlmodel) layers, one small NumPy function per layer type.

`@nn_layer(type)` registers a layer type (the name of the `layer` oneof of NeuralNetworkLayer).
`prepare` runs once at load on the layer's parameter message and returns what the function needs
(weights as float32 arrays: `floatValue`, or fp16 `float16Value` bytes; quantized weights are
refused); it raises `Unsupported` for a mode it does not implement, which is reported at load.
The function is called as `fn(ctx, prepared, *inputs)` with float32 inputs (a NeuralNetwork computes
in float: integer model inputs arrive as floats) and returns one array or a tuple.

Under true fp16 arithmetic (`ctx.fp16`) a layer with more than one arithmetic step rounds after
each, and sums and products accumulate in fp16 (see `mil_ops` and `kernels`).

Axis conventions follow NeuralNetwork.proto: "channel, height, width" are axes -3, -2, -1; layers
described on [C, H, W] treat every axis before -3 as batch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np

from layoutnet.export.executor import kernels
from layoutnet.export.executor.engine import (
    BatchInfo,
    BatchRule,
    OpContext,
    Unsupported,
    elementwise,
    leading_rule,
    normalize_axes,
)
from layoutnet.export.executor.kernels import r16


@dataclass(frozen=True)
class NnLayer:
    name: str
    fn: Callable[..., Any]
    prepare: Callable[[Any], Any]
    batch: BatchRule
    matrix: bool = False  # a matrix product or convolution (see `mil_ops.mil_op`)


NN_LAYERS: dict[str, NnLayer] = {}


def _keep(params: Any) -> Any:
    return params


def nn_layer(
    name: str, *, prepare: Callable[[Any], Any] = _keep, batch: BatchRule = elementwise, matrix: bool = False
):
    """Register the decorated function as the implementation of NeuralNetwork layer `name` (matrix:
    a matrix product or convolution, see `mil_ops.mil_op`)."""

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        if name in NN_LAYERS:
            raise ValueError(f"NN layer {name!r} registered twice")
        NN_LAYERS[name] = NnLayer(name, fn, prepare, batch, matrix)
        return fn

    return register


def weights(params: Any, shape: tuple[int, ...] | None = None) -> np.ndarray | None:
    """A WeightParams message as float32, checked against `shape` when given (ValueError when its
    size differs, or when it is empty: the loader turns that into an ExportError naming the file and
    the layer). None when empty and no shape is required."""
    if params.HasField("quantization") or len(params.int8RawValue) or len(params.rawValue):
        raise Unsupported("quantized weights")
    if len(params.floatValue):
        array = np.asarray(params.floatValue, dtype=np.float32)
    elif len(params.float16Value):
        raw = params.float16Value
        if len(raw) % 2:
            raise ValueError(f"fp16 weights of {len(raw)} bytes (an odd count)")
        array = np.frombuffer(raw, dtype=np.float16).astype(np.float32)
    elif shape is None:
        return None
    else:
        array = np.zeros(0, dtype=np.float32)
    if shape is not None:
        if array.size != int(np.prod(shape)):
            raise ValueError(f"weights hold {array.size} values, shape {shape} needs {int(np.prod(shape))}")
        array = array.reshape(shape)
    return array


# ----------------------------------------------------------------------------- activations


def _fp16_steps(ctx: OpContext) -> Callable[[Any], Any]:
    return r16 if ctx.fp16 else _same_value


def _same_value(x: Any) -> Any:
    return x


_ACTIVATIONS: dict[str, Callable[[np.ndarray, Any], np.ndarray]] = {
    "linear": lambda x, p: np.float32(p.alpha) * x + np.float32(p.beta),
    "ReLU": lambda x, p: np.maximum(x, 0),
    "leakyReLU": lambda x, p: np.where(x >= 0, x, np.float32(p.alpha) * x),
    "thresholdedReLU": lambda x, p: np.where(x >= np.float32(p.alpha), x, 0).astype(np.float32),
    "tanh": lambda x, p: np.tanh(x),
    "scaledTanh": lambda x, p: np.float32(p.alpha) * np.tanh(np.float32(p.beta) * x),
    "sigmoid": lambda x, p: kernels.sigmoid(x),
    "sigmoidHard": lambda x, p: np.clip(np.float32(p.alpha) * x + np.float32(p.beta), 0, 1),
    "ELU": lambda x, p: np.where(x >= 0, x, np.float32(p.alpha) * np.expm1(np.minimum(x, 0))),
    "softsign": lambda x, p: x / (1 + np.abs(x)),
    "softplus": lambda x, p: kernels.softplus(x),
}


# Activations of more than one arithmetic step, written out step by step for true fp16.
_ACTIVATIONS_FP16: dict[str, Callable[[np.ndarray, Any], np.ndarray]] = {
    "linear": lambda x, p: r16(np.float32(p.alpha) * x) + np.float32(p.beta),
    "scaledTanh": lambda x, p: np.float32(p.alpha) * r16(np.tanh(r16(np.float32(p.beta) * x))),
    "sigmoid": lambda x, p: kernels.sigmoid16(x),
    "sigmoidHard": lambda x, p: np.clip(r16(np.float32(p.alpha) * x) + np.float32(p.beta), 0, 1),
    "ELU": lambda x, p: np.where(x >= 0, x, np.float32(p.alpha) * r16(np.expm1(np.minimum(x, 0)))),
    "softsign": lambda x, p: x / r16(1 + np.abs(x)),
}


def _prepare_activation(params: Any) -> Any:
    kind = params.WhichOneof("NonlinearityType")
    if kind not in _ACTIVATIONS:
        raise Unsupported(f"nonlinearity {kind}")
    fn = _ACTIVATIONS[kind]
    return SimpleNamespace(fn=fn, fn16=_ACTIVATIONS_FP16.get(kind, fn), args=getattr(params, kind))


@nn_layer("activation", prepare=_prepare_activation)
def activation(ctx: OpContext, p: Any, x: np.ndarray) -> np.ndarray:
    return (p.fn16 if ctx.fp16 else p.fn)(x, p.args)


@nn_layer(
    "gelu", prepare=lambda params: ("EXACT", "TANH_APPROXIMATION", "SIGMOID_APPROXIMATION")[params.mode]
)
def gelu(ctx: OpContext, mode: str, x: np.ndarray) -> np.ndarray:
    return kernels.gelu16(x, mode) if ctx.fp16 else kernels.gelu(x, mode)


@nn_layer("clip")
def clip(ctx: OpContext, p: Any, x: np.ndarray) -> np.ndarray:
    return np.minimum(np.maximum(x, np.float32(p.minVal)), np.float32(p.maxVal))


@nn_layer("copy")
def copy(ctx: OpContext, p: Any, x: np.ndarray) -> np.ndarray:
    return x


# ----------------------------------------------------------------------------- elementwise arithmetic


@nn_layer("add")
def add(ctx: OpContext, p: Any, *xs: np.ndarray) -> np.ndarray:
    if len(xs) == 1:
        return xs[0] + np.float32(p.alpha)
    step = _fp16_steps(ctx)
    total = xs[0]
    for x in xs[1:]:
        total = step(total + x)
    return total


@nn_layer("multiply")
def multiply(ctx: OpContext, p: Any, *xs: np.ndarray) -> np.ndarray:
    if len(xs) == 1:
        return xs[0] * np.float32(p.alpha)
    step = _fp16_steps(ctx)
    total = xs[0]
    for x in xs[1:]:
        total = step(total * x)
    return total


def _broadcastable(fn: Callable[[Any, Any], Any]) -> Callable[..., Any]:
    def layer(ctx: OpContext, p: Any, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return fn(x, y)

    layer.__doc__ = f"elementwise {fn.__name__} with numpy broadcasting"
    return layer


_BROADCASTABLE = {
    "addBroadcastable": np.add,
    "subtractBroadcastable": np.subtract,
    "multiplyBroadcastable": np.multiply,
    "divideBroadcastable": np.true_divide,
    "maxBroadcastable": np.maximum,
    "minBroadcastable": np.minimum,
    "powBroadcastable": np.power,
    "floorDivBroadcastable": np.floor_divide,
    "modBroadcastable": np.mod,
}
for _name, _fn in _BROADCASTABLE.items():
    nn_layer(_name)(_broadcastable(_fn))


def _comparison(fn: Callable[[Any, Any], Any]) -> Callable[..., Any]:
    def layer(ctx: OpContext, p: Any, x: np.ndarray, y: np.ndarray | None = None) -> np.ndarray:
        other = np.float32(p.alpha) if y is None else y
        return fn(x, other).astype(np.float32)

    layer.__doc__ = f"{fn.__name__} of two inputs, or of one input and alpha, as 1.0 / 0.0"
    return layer


_COMPARISONS = {
    "equal": np.equal,
    "notEqual": np.not_equal,
    "lessThan": np.less,
    "lessEqual": np.less_equal,
    "greaterThan": np.greater,
    "greaterEqual": np.greater_equal,
}
for _name, _fn in _COMPARISONS.items():
    nn_layer(_name)(_comparison(_fn))


def _logical(fn: Callable[..., Any]) -> Callable[..., Any]:
    def layer(ctx: OpContext, p: Any, *xs: np.ndarray) -> np.ndarray:
        return fn(*(x != 0 for x in xs)).astype(np.float32)

    layer.__doc__ = f"{fn.__name__} of inputs read as x != 0, as 1.0 / 0.0"
    return layer


for _name, _fn in {
    "logicalAnd": np.logical_and,
    "logicalOr": np.logical_or,
    "logicalXor": np.logical_xor,
    "logicalNot": np.logical_not,
}.items():
    nn_layer(_name)(_logical(_fn))


@nn_layer("whereBroadcastable")
def where_broadcastable(ctx: OpContext, p: Any, cond: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.where(cond != 0, x, y)


# ----------------------------------------------------------------------------- constants, embedding, dense


@nn_layer("loadConstantND", prepare=lambda params: weights(params.data, tuple(params.shape)))
def load_constant_nd(ctx: OpContext, value: np.ndarray) -> np.ndarray:
    return value


def _prepare_embedding(params: Any) -> Any:
    table = weights(params.weights, (params.embeddingSize, params.vocabSize)).T.copy()
    bias = weights(params.bias, (params.embeddingSize,)) if params.hasBias else None
    return SimpleNamespace(table=table, bias=bias)


@nn_layer("embeddingND", prepare=_prepare_embedding, batch=leading_rule(2))
def embedding_nd(ctx: OpContext, p: Any, x: np.ndarray) -> np.ndarray:
    out = p.table[x[..., 0].astype(np.int64)]
    return out + p.bias if p.bias is not None else out


def _prepare_inner_product(params: Any) -> Any:
    if params.int8DynamicQuantize:
        raise Unsupported("int8DynamicQuantize")
    w = weights(params.weights, (params.outputChannels, params.inputChannels))
    b = weights(params.bias, (params.outputChannels,)) if params.hasBias else None
    return SimpleNamespace(weight=w, bias=b)


@nn_layer("innerProduct", prepare=_prepare_inner_product, batch=leading_rule(2), matrix=True)
def inner_product(ctx: OpContext, p: Any, x: np.ndarray) -> np.ndarray:
    """x @ weight.T + bias over the last axis (rank <= 3) or over C*H*W of [..., C, 1, 1] inputs."""
    out_ch = p.weight.shape[0]
    linear = ctx.pick(kernels.linear, kernels.linear16)
    if x.ndim <= 3:
        return linear(x, p.weight, p.bias)
    if x.ndim == 4:
        return linear(x.reshape(x.shape[0], -1), p.weight, p.bias).reshape(x.shape[0], out_ch, 1, 1)
    if x.ndim == 5:
        flat = x.reshape(x.shape[0] * x.shape[1], -1)
        return linear(flat, p.weight, p.bias).reshape(x.shape[0], x.shape[1], out_ch, 1, 1)
    raise ValueError(f"innerProduct input of rank {x.ndim}")


def _prepare_batched_matmul(params: Any) -> Any:
    if params.int8DynamicQuantize:
        raise Unsupported("int8DynamicQuantize")
    rows, cols = params.weightMatrixFirstDimension, params.weightMatrixSecondDimension
    stored = weights(params.weights, (cols, rows)) if rows and cols else None
    bias = weights(params.bias, (cols,)) if params.hasBias else None
    return SimpleNamespace(weight=stored, bias=bias, ta=params.transposeA, tb=params.transposeB)


def _batched_matmul_rule(info: BatchInfo) -> str | None:
    args = info.args["inputs"]
    out_rank = len(info.out_shapes[0])
    for i, arg in enumerate(args):
        if arg.batched and (len(arg.shape) != out_rank or (len(arg.shape) == 2 and i == 1)):
            return f"batched input {i} of shape {arg.shape}: axis 0 is not a batch axis"
    return None


@nn_layer("batchedMatmul", prepare=_prepare_batched_matmul, batch=_batched_matmul_rule, matrix=True)
def batched_matmul(ctx: OpContext, p: Any, a: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """a @ b (or a @ the layer's weight + bias when there is one input), either side transposed first."""
    if p.ta and a.ndim >= 2:
        a = np.swapaxes(a, -1, -2)
    if b is None:
        return ctx.pick(kernels.linear, kernels.linear16)(a, p.weight, p.bias)
    if p.tb and b.ndim >= 2:
        b = np.swapaxes(b, -1, -2)
    return ctx.pick(kernels.matmul, kernels.matmul16)(a, b)


# ----------------------------------------------------------------------------- convolution, pooling, padding


def _prepare_convolution(params: Any) -> Any:
    if params.isDeconvolution:
        raise Unsupported("deconvolution")
    kh, kw = list(params.kernelSize) or [3, 3]
    if not (
        len(params.weights.floatValue)
        or len(params.weights.float16Value)
        or params.weights.HasField("quantization")
    ):
        raise Unsupported("weights given as a second input")
    w = weights(params.weights, (params.outputChannels, params.kernelChannels, kh, kw))
    b = weights(params.bias, (params.outputChannels,)) if params.hasBias else None
    strides = list(params.stride) or [1, 1]
    dilations = list(params.dilationFactor) or [1, 1]
    padding = params.WhichOneof("ConvolutionPaddingType")
    return SimpleNamespace(
        weight=w,
        bias=b,
        strides=strides,
        dilations=dilations,
        padding=padding,
        params=params,
        groups=max(params.nGroups, 1),
    )


def _border(amounts: Any) -> list[tuple[int, int]]:
    edges = list(amounts.borderAmounts)
    pads = [(int(e.startEdgeSize), int(e.endEdgeSize)) for e in edges]
    return pads + [(0, 0)] * (2 - len(pads))


def _same(
    sizes: tuple[int, ...],
    kernel: tuple[int, ...],
    strides: list[int],
    dilations: list[int],
    top_left_heavy: bool,
) -> list[tuple[int, int]]:
    pads = [
        kernels.same_padding(s, k, st, d)
        for s, k, st, d in zip(sizes, kernel, strides, dilations, strict=True)
    ]
    return [(hi, lo) for lo, hi in pads] if top_left_heavy else pads


@nn_layer("convolution", prepare=_prepare_convolution, batch=leading_rule(4), matrix=True)
def convolution(ctx: OpContext, p: Any, x: np.ndarray) -> np.ndarray:
    """2-d cross-correlation of [..., C, H, W] with the layer's weight, valid or same padding."""
    lead, (c, h, w) = x.shape[:-3], x.shape[-3:]
    kernel = p.weight.shape[2:]
    if p.padding == "same":
        pads = _same((h, w), kernel, p.strides, p.dilations, p.params.same.asymmetryMode == 1)
    else:
        pads = _border(p.params.valid.paddingAmounts)
    y = kernels.conv(
        x.reshape(-1, c, h, w),
        p.weight,
        p.bias,
        p.strides,
        p.dilations,
        pads,
        p.groups,
        ctx.fp16,
        ctx.accumulation,
    )
    return y.reshape(*lead, *y.shape[1:])


def _prepare_pooling(params: Any) -> Any:
    kinds = {0: "max", 1: "avg"}
    if params.type not in kinds:
        raise Unsupported("L2 pooling")
    return SimpleNamespace(
        kind=kinds[params.type],
        kernel=list(params.kernelSize) or [3, 3],
        strides=list(params.stride) or [1, 1],
        padding=params.WhichOneof("PoolingPaddingType"),
        params=params,
    )


@nn_layer("pooling", prepare=_prepare_pooling, batch=leading_rule(3))
def pooling(ctx: OpContext, p: Any, x: np.ndarray) -> np.ndarray:
    """Max or average pooling over H, W (global, valid, same or includeLastPixel padding)."""
    q = p.params
    if q.globalPooling:
        if p.kind == "max":
            return np.max(x, axis=(-2, -1), keepdims=True)
        return ctx.pick(np.mean, kernels.mean16)(x, (-2, -1), keepdims=True)
    sizes = x.shape[-2:]
    if p.padding == "same":
        pads = _same(sizes, tuple(p.kernel), p.strides, [1, 1], q.same.asymmetryMode == 1)
    elif p.padding == "includeLastPixel":
        amounts = list(q.includeLastPixel.paddingAmounts) or [0, 0]
        pads = []
        for size, k, s, pad in zip(sizes, p.kernel, p.strides, amounts, strict=True):
            out = -(-(size + 2 * pad - k) // s) + 1
            if pad > 0 and (out - 1) * s >= size + pad:
                out -= 1
            pads.append((pad, max((out - 1) * s + k - size - pad, 0)))
    else:
        pads = _border(q.valid.paddingAmounts)
    exclude = bool(q.avgPoolExcludePadding)
    return kernels.pool(x, p.kind, p.kernel, p.strides, pads, exclude, ctx.fp16, ctx.accumulation)


def _prepare_padding(params: Any) -> Any:
    kind = params.WhichOneof("PaddingType")
    modes = {"constant": "constant", "reflection": "reflect", "replication": "edge"}
    if kind not in modes:
        raise Unsupported(f"padding type {kind}")
    value = params.constant.value if kind == "constant" else 0.0
    return SimpleNamespace(mode=modes[kind], value=value, pads=_border(params.paddingAmounts))


@nn_layer("padding", prepare=_prepare_padding, batch=leading_rule(3))
def padding(ctx: OpContext, p: Any, x: np.ndarray) -> np.ndarray:
    width = [(0, 0)] * (x.ndim - 2) + p.pads
    if p.mode == "constant":
        return np.pad(x, width, mode="constant", constant_values=np.float32(p.value))
    return np.pad(x, width, mode=p.mode)


# ----------------------------------------------------------------------------- normalization


def _prepare_batchnorm(params: Any) -> Any:
    if params.computeMeanVar or params.instanceNormalization:
        raise Unsupported("computeMeanVar / instanceNormalization")
    c = (params.channels,)
    gamma, beta = weights(params.gamma, c), weights(params.beta, c)
    mean, var = weights(params.mean, c), weights(params.variance, c)
    scale = gamma / np.sqrt(var + np.float32(params.epsilon))
    return SimpleNamespace(scale=scale.reshape(-1, 1, 1), shift=(beta - mean * scale).reshape(-1, 1, 1))


@nn_layer("batchnorm", prepare=_prepare_batchnorm, batch=leading_rule(4))
def batchnorm(ctx: OpContext, p: Any, x: np.ndarray) -> np.ndarray:
    """x * scale + shift with scale and shift folded at load (in fp32, then stored as fp16 under
    the fp16 precisions, as a compiler folding the layer would)."""
    return _fp16_steps(ctx)(x * p.scale) + p.shift


def _mvn_rule(info: BatchInfo) -> str | None:
    return leading_rule(4 if info.value("params").acrossChannels else 3)(info)


@nn_layer("mvn", batch=_mvn_rule)
def mvn(ctx: OpContext, p: Any, x: np.ndarray) -> np.ndarray:
    """Mean-variance normalization over (C, H, W) or (H, W); epsilon inside the square root,
    (x - mean) / sqrt(var + eps), as in the LayerNormalization layer that this layer stands for
    in converted models."""
    axes = (-3, -2, -1) if p.acrossChannels else (-2, -1)
    if not p.normalizeVariance:
        return x - ctx.pick(np.mean, kernels.mean16)(x, axes, keepdims=True)
    return ctx.pick(kernels.normalize, kernels.normalize16)(x, [a % x.ndim for a in axes], p.epsilon)


def _prepare_scale(params: Any) -> Any:
    def broadcastable(shape: list[int], values: np.ndarray) -> np.ndarray:
        if values.size != int(np.prod(shape)):
            raise ValueError(f"weights hold {values.size} values, shape {shape} needs {int(np.prod(shape))}")
        if len(shape) == 1:
            return values.reshape(-1, 1, 1) if values.size > 1 else values.reshape(())
        return values.reshape(shape)

    scale = broadcastable(list(params.shapeScale), weights(params.scale))
    bias = broadcastable(list(params.shapeBias), weights(params.bias)) if params.hasBias else None
    return SimpleNamespace(scale=scale, bias=bias)


@nn_layer("scale", prepare=_prepare_scale, batch=leading_rule(4))
def scale(ctx: OpContext, p: Any, x: np.ndarray) -> np.ndarray:
    y = x * p.scale
    if p.bias is None:
        return y
    return _fp16_steps(ctx)(y) + p.bias


def _prepare_layer_norm(params: Any) -> Any:
    shape = tuple(params.normalizedShape)
    return SimpleNamespace(
        shape=shape, eps=params.eps, gamma=weights(params.gamma, shape), beta=weights(params.beta, shape)
    )


def _layer_norm_rule(info: BatchInfo) -> str | None:
    rank = len(info.args["inputs"][0].shape)
    return None if rank > len(info.value("params").normalizedShape) else "normalizes axis 0"


@nn_layer("layerNormalization", prepare=_prepare_layer_norm, batch=_layer_norm_rule)
def layer_normalization(ctx: OpContext, p: Any, x: np.ndarray) -> np.ndarray:
    """(x - mean) / sqrt(var + eps) over the trailing normalizedShape axes, then * gamma + beta."""
    axes = list(range(x.ndim - len(p.shape), x.ndim))
    y = ctx.pick(kernels.normalize, kernels.normalize16)(x, axes, p.eps)
    if p.gamma is not None:
        y = _fp16_steps(ctx)(y * p.gamma)
    return y + p.beta if p.beta is not None else y


# ----------------------------------------------------------------------------- reductions, softmax


def _axes_param_rule(get: Callable[[Any], Any]) -> BatchRule:
    """Rule for layers whose axes are fixed by their parameters: filled in by the loader, which
    passes the parameter message as the constant argument 'params'."""

    def rule(info: BatchInfo) -> str | None:
        params = info.value("params")
        axes = get(params)
        if axes is None:
            return "works across every axis, including the batch"
        if 0 in normalize_axes(axes, len(info.args["inputs"][0].shape)):
            return f"axes {list(np.atleast_1d(axes))} include axis 0"
        return None

    return rule


def _reduce_axes(params: Any) -> Any:
    return None if params.reduceAll else list(params.axes)


def _reduce(fn: Callable[..., np.ndarray], fn16: Callable[..., np.ndarray] | None) -> Callable[..., Any]:
    def layer(ctx: OpContext, p: Any, x: np.ndarray) -> np.ndarray:
        axis = None if p.reduceAll else tuple(normalize_axes(list(p.axes), x.ndim))
        if ctx.fp16 and fn16 is not None:
            return ctx.pick(fn, fn16)(x, axis, bool(p.keepDims))
        return fn(x, axis=axis, keepdims=bool(p.keepDims))

    layer.__doc__ = f"{fn.__name__} over `axes` (all with reduceAll)"
    return layer


for _name, (_fn, _fn16) in {
    "reduceMax": (np.max, None),
    "reduceMin": (np.min, None),
    "reduceMean": (np.mean, kernels.mean16),
    "reduceSum": (np.sum, kernels.sum16),
    "reduceProd": (np.prod, kernels.prod16),
}.items():
    nn_layer(_name, batch=_axes_param_rule(_reduce_axes))(_reduce(_fn, _fn16))


@nn_layer("softmaxND", batch=_axes_param_rule(lambda params: params.axis))
def softmax_nd(ctx: OpContext, p: Any, x: np.ndarray) -> np.ndarray:
    """Softmax over the layer's `axis`."""
    return ctx.pick(kernels.softmax, kernels.softmax16)(x, int(p.axis))


@nn_layer("softmax", batch=_axes_param_rule(lambda params: -3))
def softmax(ctx: OpContext, p: Any, x: np.ndarray) -> np.ndarray:
    """Softmax over the channel axis (-3) of [..., C, H, W]."""
    return ctx.pick(kernels.softmax, kernels.softmax16)(x, -3)


# ----------------------------------------------------------------------------- shape and layout


def _reshape_rule(info: BatchInfo) -> str | None:
    x = info.args["inputs"][0]
    if x.shape[:1] != (1,) or info.out_shapes[0][:1] != (1,):
        return f"reshape {x.shape} -> {info.out_shapes[0]} moves the leading 1"
    return None


@nn_layer("reshapeStatic", batch=_reshape_rule)
def reshape_static(ctx: OpContext, p: Any, x: np.ndarray) -> np.ndarray:
    n = ctx.batch
    one = (1, *x.shape[1:]) if n else x.shape
    target = [one[i] if s == 0 else int(s) for i, s in enumerate(p.targetShape)]
    if -1 in target:
        known = int(np.prod([s for s in target if s != -1]))
        target[target.index(-1)] = int(np.prod(one)) // max(known, 1)
    if n:
        target[0] = n
    return x.reshape(target)


@nn_layer(
    "transpose", batch=lambda info: None if list(info.value("params").axes)[:1] == [0] else "moves axis 0"
)
def transpose(ctx: OpContext, p: Any, x: np.ndarray) -> np.ndarray:
    return np.transpose(x, list(p.axes))


def _expand_dims_rule(info: BatchInfo) -> str | None:
    axes = normalize_axes(list(info.value("params").axes), len(info.out_shapes[0]))
    return "inserts an axis before the batch axis" if 0 in axes else None


@nn_layer("expandDims", batch=_expand_dims_rule)
def expand_dims(ctx: OpContext, p: Any, x: np.ndarray) -> np.ndarray:
    rank = x.ndim + len(p.axes)
    return np.expand_dims(x, tuple(sorted(normalize_axes(list(p.axes), rank))))


@nn_layer("squeeze", batch=_axes_param_rule(lambda params: None if params.squeezeAll else list(params.axes)))
def squeeze(ctx: OpContext, p: Any, x: np.ndarray) -> np.ndarray:
    if p.squeezeAll:
        return np.squeeze(x)
    axes = tuple(a for a in normalize_axes(list(p.axes), x.ndim) if x.shape[a] == 1)
    return np.squeeze(x, axis=axes) if x.ndim > 1 else x


def _concat_rule(info: BatchInfo) -> str | None:
    args = info.args["inputs"]
    if 0 in normalize_axes(info.value("params").axis, len(args[0].shape)):
        return "concatenates along axis 0"
    if any(not a.shape or a.shape[0] != 1 for a in args):
        return "inputs without a leading 1"
    return None


@nn_layer("concatND", batch=_concat_rule)
def concat_nd(ctx: OpContext, p: Any, *xs: np.ndarray) -> np.ndarray:
    if ctx.batch:
        xs = tuple(
            x if x.shape[0] == ctx.batch else np.broadcast_to(x, (ctx.batch, *x.shape[1:])) for x in xs
        )
    return np.concatenate(xs, axis=int(p.axis))


@nn_layer("splitND", batch=_axes_param_rule(lambda params: params.axis))
def split_nd(ctx: OpContext, p: Any, x: np.ndarray) -> tuple[np.ndarray, ...]:
    axis = normalize_axes(p.axis, x.ndim)[0]
    if len(p.splitSizes):
        return tuple(np.split(x, np.cumsum(list(p.splitSizes))[:-1], axis=axis))
    return tuple(np.split(x, int(p.numSplits), axis=axis))


_SLICE_AXES = {0: -3, 1: -2, 2: -1}


@nn_layer("slice", batch=_axes_param_rule(lambda params: _SLICE_AXES[params.axis]))
def slice_(ctx: OpContext, p: Any, x: np.ndarray) -> np.ndarray:
    axis = _SLICE_AXES[p.axis] % x.ndim
    index = [slice(None)] * x.ndim
    index[axis] = slice(int(p.startIndex), int(p.endIndex), int(p.stride) or 1)
    return x[tuple(index)]


def _slice_static_rule(info: BatchInfo) -> str | None:
    p = info.value("params")
    begin = None if p.beginMasks[0] else p.beginIds[0]
    end = None if p.endMasks[0] else p.endIds[0]
    squeeze0 = bool(p.squeezeMasks[0]) if len(p.squeezeMasks) else False
    if squeeze0 or list(range(1)[slice(begin, end, p.strides[0])]) != [0]:
        return "does not keep axis 0 whole"
    return None


@nn_layer("sliceStatic", batch=_slice_static_rule)
def slice_static(ctx: OpContext, p: Any, x: np.ndarray) -> np.ndarray:
    squeeze_masks = list(p.squeezeMasks) or [False] * x.ndim
    index: list[Any] = []
    for i in range(x.ndim):
        if squeeze_masks[i]:
            index.append(int(p.beginIds[i]))
        else:
            begin = None if p.beginMasks[i] else int(p.beginIds[i])
            end = None if p.endMasks[i] else int(p.endIds[i])
            index.append(slice(begin, end, int(p.strides[i])))
    if ctx.batch:
        index[0] = slice(None)
    return x[tuple(index)]
