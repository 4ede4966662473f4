"""NumPy numerics shared by the ML Program ops and the NeuralNetwork layers.

Everything here takes and returns float32 arrays (the caller rounds to the declared dtype).
Convolution and pooling use sliding windows (im2col) and one matrix product per group; no Python
loop runs over positions or samples.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

_SQRT_HALF = np.float32(math.sqrt(0.5))

# erfc(z) for z >= 0 as t * exp(-z^2 + P(t)), t = 1 / (1 + z / 2), P of degree 9: the Chebyshev
# fit of Numerical Recipes ("erfcc"), fractional error below 1.2e-7 everywhere, so the GELU tail
# keeps its relative accuracy. Evaluated in float32, block by block so that the temporaries stay in
# cache (GELU is the largest elementwise cost of these models).
_ERFC_COEFFS = tuple(
    np.float32(c)
    for c in (
        0.17087277,
        -0.82215223,
        1.48851587,
        -1.13520398,
        0.27886807,
        -0.18628806,
        0.09678418,
        0.37409196,
        1.00002368,
        -1.26551223,
    )
)
_BLOCK = 1 << 15


def _half_erfc_of_scaled(x: np.ndarray, scale: np.float32, out: np.ndarray) -> np.ndarray:
    """out = erfc(|x| * scale) / 2 (for scale = 1/sqrt(2): P(N(0,1) > |x|))."""
    z = np.abs(x)
    z *= scale
    t = z * np.float32(0.5)
    t += np.float32(1.0)
    np.reciprocal(t, out=t)
    np.multiply(t, _ERFC_COEFFS[0], out=out)
    for c in _ERFC_COEFFS[1:-1]:
        out += c
        out *= t
    out += _ERFC_COEFFS[-1]
    np.multiply(z, z, out=z)
    out -= z
    np.exp(out, out=out)
    out *= t
    out *= np.float32(0.5)
    return out


def _blockwise(fn, x: np.ndarray) -> np.ndarray:
    """Apply fn(in_block, out_block) over x in memory order; the result keeps x's memory layout."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 0:
        return _blockwise(fn, x.reshape(1)).reshape(())
    order = sorted(range(x.ndim), key=lambda a: -abs(x.strides[a]))
    xt = np.ascontiguousarray(x.transpose(order))
    out = np.empty_like(xt)
    flat_in, flat_out = xt.reshape(-1), out.reshape(-1)
    for lo in range(0, flat_in.size, _BLOCK):
        fn(flat_in[lo : lo + _BLOCK], flat_out[lo : lo + _BLOCK])
    return out.transpose(np.argsort(order))


_TWO_OVER_SQRT_PI = np.float32(2.0 / math.sqrt(math.pi))
# Maclaurin series erf(x) = 2x/sqrt(pi) * S(x^2), S(u) = 1 - u/3 + u^2/10 - u^3/42 + u^4/216 - u^5/1320
# (next term below 3e-8 for |x| < 0.5), used there because 1 - erfc(|x|) would cancel.
_ERF_SERIES = tuple(np.float32(c) for c in (-1 / 1320, 1 / 216, -1 / 42, 1 / 10, -1 / 3, 1.0))


def _erf_block(x: np.ndarray, out: np.ndarray) -> None:
    _half_erfc_of_scaled(x, np.float32(1.0), out)  # erfc(|x|) / 2
    out *= np.float32(-2.0)
    out += np.float32(1.0)  # erf(|x|)
    np.negative(out, out=out, where=x < 0)
    small = np.abs(x) < np.float32(0.5)
    if small.any():
        xs = x[small]
        u = xs * xs
        series = np.full_like(xs, _ERF_SERIES[0])
        for c in _ERF_SERIES[1:]:
            series *= u
            series += c
        out[small] = xs * _TWO_OVER_SQRT_PI * series


def erf(x: np.ndarray) -> np.ndarray:
    return _blockwise(_erf_block, x)


def _select(mask: np.ndarray, if_true: np.ndarray, if_false: np.ndarray) -> None:
    """if_false[i] = if_true[i] where mask[i], in place, by bit operations on the float32 values
    (NumPy's `where=` and `np.where` take a branchy loop, 50-200x slower than arithmetic here)."""
    bits = mask.view(np.uint8).astype(np.uint32)
    np.negative(bits, out=bits)  # 0 or all ones
    chosen, other = if_true.view(np.uint32), if_false.view(np.uint32)
    chosen ^= other
    chosen &= bits
    other ^= chosen


def _gelu_block(x: np.ndarray, out: np.ndarray) -> None:
    # gelu(x) = x * Phi(x); with q = Phi(-|x|): x * q for x < 0, x - x * q for x >= 0 (no cancellation
    # in the negative tail).
    _half_erfc_of_scaled(x, _SQRT_HALF, out)
    out *= x
    _select(x >= 0, x - out, out)


def gelu(x: np.ndarray, mode: str = "EXACT") -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    if mode == "EXACT":
        return _blockwise(_gelu_block, x)
    if mode == "TANH_APPROXIMATION":
        inner = np.float32(math.sqrt(2.0 / math.pi)) * (x + np.float32(0.044715) * x * x * x)
        return np.float32(0.5) * x * (np.float32(1.0) + np.tanh(inner))
    if mode == "SIGMOID_APPROXIMATION":
        return x * sigmoid(np.float32(1.702) * x)
    raise ValueError(f"unknown gelu mode {mode!r}")


def unpack_bits(packed: np.ndarray, nbits: int, count: int, signed: bool = False) -> np.ndarray:
    """`count` values of `nbits` bits each from a packed byte array, least significant bit first
    (value i occupies bits i*nbits .. i*nbits+nbits-1 of the little-endian bit stream), as MIL
    blob storage and the iOS16 `constexpr_lut_to_dense` indices pack them. Signed values are two's
    complement. Returns uint8 (int8 when signed)."""
    bits = np.unpackbits(np.asarray(packed, dtype=np.uint8), bitorder="little")
    if bits.size < count * nbits:
        raise ValueError(f"{packed.size} bytes hold fewer than {count} values of {nbits} bits")
    groups = bits[: count * nbits].reshape(count, nbits).astype(np.uint8)
    values = np.zeros(count, dtype=np.uint8)
    for bit in range(nbits):
        values |= groups[:, bit] << np.uint8(bit)
    if signed:
        wrapped = values.astype(np.int16)
        wrapped[wrapped >= 1 << (nbits - 1)] -= 1 << nbits
        return wrapped.astype(np.int8)
    return values


_SIGN = np.uint32(0x80000000)
_MAGNITUDE = np.uint32(0x7FFFFFFF)
_KEEP_FP16_BITS = np.uint32(0xFFFFE000)  # sign, exponent and the 10 mantissa bits fp16 keeps
_FP16_MIN_NORMAL = np.uint32(0x38800000)  # 2**-14
_FP16_OVERFLOW = np.uint32(0x477FF000)  # 65520: rounds to 65536, beyond fp16's 65504, so to inf
_INF = np.uint32(0x7F800000)


_EXPONENT = np.uint32(0x7F800000)
_SHIFTER_BITS = np.uint32(0x06C00000)  # added to the bits of 2**e: 1.5 * 2**(e + 13), ulp 2**(e - 10)
_NORMAL_FLOOR = np.full(_BLOCK, _FP16_MIN_NORMAL, dtype=np.uint32)


def _round_fp16_block(x: np.ndarray, out: np.ndarray) -> None:
    u = x.view(np.uint32)
    o = out.view(np.uint32)
    mag = np.bitwise_and(u, _MAGNITUDE)
    if mag.max() < _FP16_OVERFLOW:
        # Every value finite and rounding to a finite fp16 (the usual case): with 2**e the power of
        # two at or below |x| (at least 2**-14, fp16's smallest normal), s = 1.5 * 2**(e + 13) has
        # float32 spacing 2**(e - 10), fp16's spacing at |x| (2**-24 below 2**-14), so x + s rounded
        # by float32 (nearest, ties to even) is s plus x rounded to fp16, and subtracting s is exact;
        # then x's sign bit again (a result rounded to zero keeps it, as fp16 does).
        np.bitwise_and(u, _EXPONENT, out=mag)
        np.maximum(mag, _NORMAL_FLOOR[: mag.size], out=mag)
        mag += _SHIFTER_BITS
        shifter = mag.view(np.float32)
        np.add(x, shifter, out=out)
        out -= shifter
        np.bitwise_and(u, _SIGN, out=mag)
        o |= mag
        return
    # normal range: round the 23-bit mantissa to 10 bits, to nearest, ties to even
    np.right_shift(mag, 13, out=o)
    np.bitwise_and(o, 1, out=o)
    o += np.uint32(0xFFF)
    o += mag
    np.bitwise_and(o, _KEEP_FP16_BITS, out=o)
    subnormal = mag < _FP16_MIN_NORMAL
    if subnormal.any():
        # fp16 subnormals are multiples of 2**-24: adding 0.75 puts |x| where float32 has that spacing
        with np.errstate(invalid="ignore"):  # NaN bit patterns in the block are fixed below
            fine = mag.view(np.float32) + np.float32(0.75)
            fine -= np.float32(0.75)
        np.copyto(o, fine.view(np.uint32), where=subnormal)
    o[mag >= _FP16_OVERFLOW] = _INF
    nan = mag > _INF
    o[nan] = mag[nan] | np.uint32(0x00400000)
    np.bitwise_and(u, _SIGN, out=mag)
    np.bitwise_or(o, mag, out=o)


def round_to_fp16(x: np.ndarray) -> np.ndarray:
    """float32 array of the values of `x` rounded to fp16 (nearest, ties to even, fp16 subnormals,
    overflow to inf): what `x.astype(float16).astype(float32)` gives, with integer bit operations
    that run in cache instead of NumPy's much slower float16 conversion loops."""
    return _blockwise(_round_fp16_block, x)


def sigmoid(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    with np.errstate(over="ignore"):
        return np.float32(1.0) / (np.float32(1.0) + np.exp(-x))


def softplus(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return np.logaddexp(np.float32(0.0), x).astype(np.float32)


def softmax(x: np.ndarray, axis: int) -> np.ndarray:
    shifted = x - np.max(x, axis=axis, keepdims=True)
    e = np.exp(shifted)
    return e / np.sum(e, axis=axis, keepdims=True)


def normalize(x: np.ndarray, axes: Sequence[int], eps: float) -> np.ndarray:
    """(x - mean) / sqrt(var + eps) over `axes` (population variance)."""
    axes = tuple(axes)
    mean = np.mean(x, axis=axes, keepdims=True)
    centered = x - mean
    var = np.mean(centered * centered, axis=axes, keepdims=True)
    return centered / np.sqrt(var + np.float32(eps))


_ROWWISE = False


def gemm(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Every matrix product of the executor goes through here (np.matmul: BLAS for 2-D operands).

    BLAS computes each row of a product to within rounding, but not bit for bit independently of
    the other rows of the call: OpenBLAS uses other kernels for the tail rows of a call. So a sample
    run alone and the same sample inside a batch agree to a few float32 ulps, not exactly. Inside
    `rowwise_products()` every output row is its own vector-matrix product instead, which depends
    on nothing but that row: slow, but batched and per-sample runs then agree bit for bit.
    """
    if _ROWWISE and a.ndim >= 2 and b.ndim >= 2:
        return _rowwise(a, b)
    return np.matmul(a, b)


def _rowwise(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lead = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    a = np.broadcast_to(a, (*lead, *a.shape[-2:]))
    b = np.broadcast_to(b, (*lead, *b.shape[-2:]))
    out = np.empty((*lead, a.shape[-2], b.shape[-1]), dtype=np.result_type(a, b))
    for index in np.ndindex(*lead):
        matrix = b[index]
        for row in range(a.shape[-2]):
            out[(*index, row)] = a[(*index, row)] @ matrix
    return out


@contextmanager
def rowwise_products() -> Iterator[None]:
    """Matrix products computed row by row (see `gemm`), for exact batched-vs-single comparisons."""
    global _ROWWISE
    previous, _ROWWISE = _ROWWISE, True
    try:
        yield
    finally:
        _ROWWISE = previous


def linear(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    """x [..., in] @ weight[out, in].T + bias: one matrix product over all leading dims."""
    lead = x.shape[:-1]
    out = gemm(x.reshape(-1, x.shape[-1]), weight.T)
    if bias is not None:
        out += bias
    return out.reshape(*lead, weight.shape[0])


def matmul(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """numpy matmul semantics, folding leading dims into one product when the right side is a matrix."""
    if x.ndim >= 3 and y.ndim == 2:
        lead = x.shape[:-1]
        return gemm(x.reshape(-1, x.shape[-1]), y).reshape(*lead, y.shape[-1])
    return gemm(x, y)


def same_padding(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TensorFlow-style SAME: output ceil(size / stride), extra padding at the end."""
    out = -(-size // stride)
    eff = (kernel - 1) * dilation + 1
    total = max((out - 1) * stride + eff - size, 0)
    return total // 2, total - total // 2


def _windows(
    x: np.ndarray,
    axes: Sequence[int],
    kernel: Sequence[int],
    strides: Sequence[int],
    dilations: Sequence[int],
) -> np.ndarray:
    """Views of the (already padded) x: the window axes are appended, the `axes` become output positions."""
    eff = [(k - 1) * d + 1 for k, d in zip(kernel, dilations, strict=True)]
    view = sliding_window_view(x, eff, axis=tuple(axes))
    index = [slice(None)] * view.ndim
    for axis, stride in zip(axes, strides, strict=True):
        index[axis] = slice(None, None, stride)
    for i, dilation in enumerate(dilations):
        index[x.ndim + i] = slice(None, None, dilation)
    return view[tuple(index)]


def conv(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None,
    strides: Sequence[int],
    dilations: Sequence[int],
    pads: Sequence[tuple[int, int]],
    groups: int = 1,
    fp16: bool = False,
    accumulation: str = "tree",
) -> np.ndarray:
    """Cross-correlation of x [N, C, *S] with weight [O, C/groups, *K] -> [N, O, *Out] (fp16: in
    fp16 arithmetic, the window reduced as `accumulation` says, in the im2col column order).

    im2col in channels-last order: the input is padded as [N, *S, C], every output position gathers
    its window as contiguous runs of C, and one matrix product per group does the rest. The result
    is returned as a [N, O, *Out] view of channels-last memory (elementwise ops keep that layout).
    """
    nsp = weight.ndim - 2
    kernel = weight.shape[2:]
    xl = np.moveaxis(x, 1, -1)  # [N, *S, C]
    if any(lo or hi for lo, hi in pads):
        xl = np.pad(xl, [(0, 0), *[tuple(p) for p in pads], (0, 0)])
    win = _windows(xl, range(1, 1 + nsp), kernel, strides, dilations)  # [N, *Out, C, *K]
    n, c = win.shape[0], win.shape[1 + nsp]
    out_sp = win.shape[1 : 1 + nsp]
    cols = win.transpose(0, *range(1, 1 + nsp), *range(2 + nsp, 2 + 2 * nsp), 1 + nsp)  # [N, *Out, *K, C]
    rows = n * int(np.prod(out_sp))
    out_ch = weight.shape[0]
    wl = np.moveaxis(weight, 1, -1)  # [O, *K, C/groups], matching the column order
    product = functools.partial(gemm16, accumulation=accumulation) if fp16 else gemm
    if groups == 1:
        y = product(cols.reshape(rows, -1), wl.reshape(out_ch, -1).T)
    else:
        cg, og = c // groups, out_ch // groups
        y = np.concatenate(
            [
                product(
                    cols[..., g * cg : (g + 1) * cg].reshape(rows, -1),
                    wl[g * og : (g + 1) * og].reshape(og, -1).T,
                )
                for g in range(groups)
            ],
            axis=-1,
        )
    if bias is not None:
        y = r16(y + bias) if fp16 else y + bias
    return np.moveaxis(y.reshape(n, *out_sp, out_ch), -1, 1)


def pool(
    x: np.ndarray,
    kind: str,
    kernel: Sequence[int],
    strides: Sequence[int],
    pads: Sequence[tuple[int, int]],
    exclude_padding: bool = True,
    fp16: bool = False,
    accumulation: str = "tree",
) -> np.ndarray:
    """Max or average pooling over the trailing len(kernel) axes of x (fp16: the window sum
    accumulated in fp16 and the division rounded)."""
    nsp = len(kernel)
    if any(lo or hi for lo, hi in pads):
        width = [(0, 0)] * (x.ndim - nsp) + [tuple(p) for p in pads]
        fill = -np.inf if kind == "max" else 0.0
        xp = np.pad(x, width, constant_values=fill)
    else:
        xp = x
    spatial = range(x.ndim - nsp, x.ndim)
    win = _windows(xp, spatial, kernel, strides, [1] * nsp)
    axes = tuple(range(win.ndim - nsp, win.ndim))
    if kind == "max":
        return np.max(win, axis=axes)
    total = sum16(win, axes, accumulation=accumulation) if fp16 else np.sum(win, axis=axes)
    divide = (lambda a, b: r16(a / b)) if fp16 else np.true_divide
    if exclude_padding and any(lo or hi for lo, hi in pads):
        ones = np.pad(np.ones(x.shape[x.ndim - nsp :], dtype=x.dtype), [tuple(p) for p in pads])
        counts = np.sum(
            _windows(ones, range(nsp), kernel, strides, [1] * nsp), axis=tuple(range(nsp, 2 * nsp))
        )
        return divide(total, counts.astype(np.float32))
    return divide(total, np.float32(np.prod(kernel)))


# ----------------------------------------------------------------------------- true fp16 arithmetic
#
# The fp16-arithmetic precisions of the executor model a device that computes in float16: every
# value and every intermediate step of an op is a float16 number. NumPy cannot be trusted to do that
# by itself: its float16 `matmul`, `dot`, `einsum`, `sum` and `mean` convert to float32 internally and
# round only the final result. So these kernels keep values as float32 arrays holding float16
# numbers and round after every arithmetic step:
#
# - +, -, *, /, sqrt of two fp16 numbers computed in float32 and rounded once to fp16 give the
#   correctly rounded fp16 result (float32 has at least 2 * 11 + 2 significant bits);
# - transcendental functions (exp, tanh, erf, log) are fp16 primitives: the float32 value rounded;
# - sums, matrix products and convolutions reduce in one of three orders (`ACCUMULATIONS`), the
#   device bracket: which one a given GPU or Neural Engine uses is not documented, and the sources
#   disagree (BENCHMARKS.md, "Parity at the device's precisions"):
#   "wide"       every product rounded to fp16, the products summed in a wide accumulator (exactly,
#                here: in float64, which holds the sum of up to 2**13 fp16 numbers without rounding),
#                the sum rounded once to fp16 - the Neural Engine as a reverse-engineering write-up
#                describes it (fp16 tiles reduced into an fp32-class accumulator);
#   "tree"       every product rounded to fp16, then neighbours added level by level, (t0 + t1),
#                (t2 + t3), ..., each sum rounded to fp16, an odd last term carried up, until one fp16
#                number is left (`tree_sum16`) - adder trees and SIMD lanes folded in halves;
#   "sequential" one running fp16 sum in index order, one multiply-accumulate per term: the exact
#                product (two fp16 numbers multiply exactly in float32) added to the running sum in
#                float32 and the result rounded to fp16 - the multiply-accumulate of Apple's MPS
#                headers with an fp16 accumulator (a GPU allowed low-precision accumulation). For a
#                convolution the index order is the im2col column order: kernel position, then channel.
#   Every order is bit for bit its definition in NumPy's own float16 arithmetic (tests).
#
# Memory and speed: "wide" and "tree" hold the K products of a tile of outputs at a time (`_TERMS`
# floats in all), so each step is one NumPy pass over the tile; "sequential" holds one running sum
# per output and makes K passes.

r16 = round_to_fp16

ACCUMULATIONS = ("wide", "tree", "sequential")
"""How fp16 arithmetic reduces the terms of a sum, matrix product or convolution (see above)."""

_TERMS = 1 << 21  # floats of products held at once by one tile of a reduction


def tree_sum16(terms: np.ndarray) -> np.ndarray:
    """The fp16 pairwise sum over axis 0 of `terms` (float32 holding fp16 numbers): neighbours added
    level by level, each sum rounded to fp16, an odd last term carried up; zeros when there is none."""
    level = terms
    while len(level) > 1:
        half = len(level) // 2
        paired = r16(level[0 : 2 * half : 2] + level[1 : 2 * half : 2])
        level = np.concatenate([paired, level[2 * half :]]) if len(level) % 2 else paired
    return level[0] if len(level) else np.zeros(terms.shape[1:], dtype=np.float32)


def wide_sum16(terms: np.ndarray) -> np.ndarray:
    """The sum over axis 0 of `terms` (fp16 numbers) in a wide accumulator, rounded once to fp16:
    float64 adds fp16 numbers without rounding (up to 2**13 of them), and the total is rounded
    straight from float64 to fp16 (no float32 step in between)."""
    total = np.sum(terms, axis=0, dtype=np.float64)
    with np.errstate(over="ignore"):
        return np.asarray(total).astype(np.float16).astype(np.float32)


def sequential_sum16(terms: np.ndarray) -> np.ndarray:
    """The running fp16 sum over axis 0 of `terms` (fp16 numbers), in index order."""
    acc = np.zeros(terms.shape[1:], dtype=np.float32)
    for term in terms:
        acc = r16(acc + term)
    return acc


_REDUCE16 = {"wide": wide_sum16, "tree": tree_sum16, "sequential": sequential_sum16}


def reduce16(terms: np.ndarray, accumulation: str = "tree") -> np.ndarray:
    """The fp16 sum over axis 0 of `terms` (float32 holding fp16 numbers) in one of `ACCUMULATIONS`."""
    if accumulation not in _REDUCE16:
        raise ValueError(f"accumulation must be one of {', '.join(ACCUMULATIONS)}, not {accumulation!r}")
    return _REDUCE16[accumulation](terms)


def _tile(terms: int) -> int:
    """Outputs per tile of a reduction over `terms` terms."""
    return max(1, _TERMS // max(terms, 1))


def sum16(
    x: np.ndarray, axes: Sequence[int] | None, keepdims: bool = False, accumulation: str = "tree"
) -> np.ndarray:
    """Sum over `axes` (all when None) in fp16, the terms in index order reduced as `accumulation` says."""
    x = np.asarray(x, dtype=np.float32)
    axes = tuple(range(x.ndim)) if axes is None else tuple(a % x.ndim for a in axes)
    rest = [a for a in range(x.ndim) if a not in axes]
    moved = x.transpose(*rest, *axes)
    count = int(np.prod(moved.shape[len(rest) :]))
    width = int(np.prod(moved.shape[: len(rest)]))
    terms = np.ascontiguousarray(moved.reshape(width, count).T)  # [terms, outputs]
    acc = np.empty(width, dtype=np.float32)
    step = _tile(count)
    with np.errstate(over="ignore", invalid="ignore"):
        for lo in range(0, width, step):
            acc[lo : lo + step] = reduce16(r16(terms[:, lo : lo + step]), accumulation)
    acc = acc.reshape(moved.shape[: len(rest)])
    if keepdims:
        acc = acc.reshape([1 if a in axes else x.shape[a] for a in range(x.ndim)])
    return acc


def mean16(
    x: np.ndarray, axes: Sequence[int] | None, keepdims: bool = False, accumulation: str = "tree"
) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    axes_t = tuple(range(x.ndim)) if axes is None else tuple(a % x.ndim for a in axes)
    count = int(np.prod([x.shape[a] for a in axes_t])) if axes_t else 1
    return r16(sum16(x, axes_t, keepdims, accumulation) / r16(np.float32(max(count, 1))))


def prod16(
    x: np.ndarray, axes: Sequence[int] | None, keepdims: bool = False, accumulation: str = "tree"
) -> np.ndarray:
    """Product over `axes` in fp16, one rounding per factor in index order (every order alike: a
    product has no wide accumulator to model)."""
    x = np.asarray(x, dtype=np.float32)
    axes = tuple(range(x.ndim)) if axes is None else tuple(a % x.ndim for a in axes)
    rest = [a for a in range(x.ndim) if a not in axes]
    moved = x.transpose(*rest, *axes)
    flat = moved.reshape(*moved.shape[: len(rest)], -1)
    acc = np.ones(flat.shape[:-1], dtype=np.float32)
    for k in range(flat.shape[-1]):
        acc = r16(acc * flat[..., k])
    if keepdims:
        acc = acc.reshape([1 if a in axes else x.shape[a] for a in range(x.ndim)])
    return acc


def gemm16(a: np.ndarray, b: np.ndarray, accumulation: str = "tree") -> np.ndarray:
    """a [..., M, K] @ b [..., K, N] in fp16, the K terms of each output reduced as `accumulation`
    says ("wide", "tree": each product rounded to fp16 first; "sequential": fused multiply-adds into
    a running fp16 sum). Each output depends only on its own row of `a` and column of `b`, so the
    outputs are cut into tiles ("wide", "tree": tiles that hold their K products at once)."""
    if accumulation not in _REDUCE16:
        raise ValueError(f"accumulation must be one of {', '.join(ACCUMULATIONS)}, not {accumulation!r}")
    a = np.asarray(a, dtype=np.float32)
    b = np.asarray(b, dtype=np.float32)
    lead = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    m, k_dim, n = a.shape[-2], a.shape[-1], b.shape[-1]
    count = int(np.prod(lead)) if lead else 1
    a3 = np.broadcast_to(a, (*lead, m, k_dim)).reshape(count, m, k_dim)
    b3 = np.broadcast_to(b, (*lead, k_dim, n)).reshape(count, k_dim, n)
    out = np.empty((count, m, n), dtype=np.float32)
    if k_dim == 0 or out.size == 0:
        return np.zeros((*lead, m, n), dtype=np.float32)
    a_k = a3.transpose(2, 0, 1)  # [K, L, M]
    b_k = b3.transpose(1, 0, 2)  # [K, L, N]
    # tiles of [rows, cols] outputs (times K products unless sequential): over (L, M) rows, and over
    # the N columns when one row alone exceeds the tile
    held = 1 if accumulation == "sequential" else k_dim
    rows = max(1, _tile(held) // n)
    cols = n if rows > 1 else min(n, _tile(held))
    flat_a = a_k.reshape(k_dim, count * m)
    pairs = np.repeat(np.arange(count), m)  # which b of the batch each row multiplies
    flat_out = out.reshape(count * m, n)
    with np.errstate(over="ignore", invalid="ignore"):
        for lo in range(0, count * m, rows):
            sel = slice(lo, lo + rows)
            right = b_k[:, :1, :] if count == 1 else b_k[:, pairs[sel], :]
            for start in range(0, n, cols):
                part = slice(start, start + cols)
                if accumulation == "sequential":
                    shape = np.broadcast_shapes(flat_a[0, sel, None].shape, right[0, :, part].shape)
                    acc = np.zeros(shape, dtype=np.float32)
                    for k in range(k_dim):
                        acc = r16(acc + flat_a[k, sel, None] * right[k, :, part])
                    flat_out[sel, part] = acc
                else:
                    products = r16(flat_a[:, sel, None] * right[:, :, part])
                    flat_out[sel, part] = _REDUCE16[accumulation](products)
    return out.reshape(*lead, m, n)


def matmul16(x: np.ndarray, y: np.ndarray, accumulation: str = "tree") -> np.ndarray:
    """numpy matmul semantics (1-D operands promoted and the added axis dropped) in fp16."""
    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y, dtype=np.float32)
    squeeze = []
    if x.ndim == 1:
        x = x[None, :]
        squeeze.append(-2)
    if y.ndim == 1:
        y = y[:, None]
        squeeze.append(-1)
    if x.ndim >= 3 and y.ndim == 2:
        lead = x.shape[:-1]
        out = gemm16(x.reshape(-1, x.shape[-1]), y, accumulation).reshape(*lead, y.shape[-1])
    else:
        out = gemm16(x, y, accumulation)
    return np.squeeze(out, axis=tuple(squeeze)) if squeeze else out


def linear16(
    x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, accumulation: str = "tree"
) -> np.ndarray:
    lead = x.shape[:-1]
    out = gemm16(x.reshape(-1, x.shape[-1]), weight.T, accumulation)
    if bias is not None:
        out = r16(out + bias)
    return out.reshape(*lead, weight.shape[0])


def softmax16(x: np.ndarray, axis: int, accumulation: str = "tree") -> np.ndarray:
    shifted = r16(x - np.max(x, axis=axis, keepdims=True))
    e = r16(np.exp(shifted))
    return r16(e / sum16(e, [axis], keepdims=True, accumulation=accumulation))


def normalize16(x: np.ndarray, axes: Sequence[int], eps: float, accumulation: str = "tree") -> np.ndarray:
    """(x - mean) / sqrt(var + eps) over `axes`, every step in fp16."""
    axes = tuple(axes)
    centered = r16(x - mean16(x, axes, keepdims=True, accumulation=accumulation))
    var = mean16(r16(centered * centered), axes, keepdims=True, accumulation=accumulation)
    return r16(centered / r16(np.sqrt(r16(var + r16(np.float32(eps))))))


def sigmoid16(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        e = r16(np.exp(-np.asarray(x, dtype=np.float32)))
    return r16(np.float32(1.0) / r16(np.float32(1.0) + e))


_F16 = {
    "half": np.float32(0.5),
    "one": np.float32(1.0),
    "inv_sqrt2": r16(np.float32(math.sqrt(0.5))),
    "sqrt_2_over_pi": r16(np.float32(math.sqrt(2.0 / math.pi))),
    "c": r16(np.float32(0.044715)),
    "k": r16(np.float32(1.702)),
}


def gelu16(x: np.ndarray, mode: str = "EXACT") -> np.ndarray:
    """GELU as an fp16 device evaluates its formula: erf / tanh as fp16 primitives, every product
    and sum rounded (so 1 + erf(x / sqrt 2) cancels in the negative tail, as it would there)."""
    x = np.asarray(x, dtype=np.float32)
    c = _F16
    if mode == "EXACT":
        inner = r16(np.float32(1.0) + r16(erf(r16(x * c["inv_sqrt2"]))))
    elif mode == "TANH_APPROXIMATION":
        cube = r16(r16(x * x) * x)
        poly = r16(x + r16(c["c"] * cube))
        inner = r16(np.float32(1.0) + r16(np.tanh(r16(c["sqrt_2_over_pi"] * poly))))
    elif mode == "SIGMOID_APPROXIMATION":
        return r16(x * sigmoid16(r16(c["k"] * x)))
    else:
        raise ValueError(f"unknown gelu mode {mode!r}")
    return r16(r16(c["half"] * x) * inner)


def conv16(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None,
    strides: Sequence[int],
    dilations: Sequence[int],
    pads: Sequence[tuple[int, int]],
    groups: int = 1,
    accumulation: str = "tree",
) -> np.ndarray:
    """`conv` in fp16 arithmetic, the window reduced as `accumulation` says (channels-last columns)."""
    return conv(x, weight, bias, strides, dilations, pads, groups, fp16=True, accumulation=accumulation)


def pool16(
    x: np.ndarray,
    kind: str,
    kernel: Sequence[int],
    strides: Sequence[int],
    pads: Sequence[tuple[int, int]],
    exclude_padding: bool = True,
    accumulation: str = "tree",
) -> np.ndarray:
    return pool(x, kind, kernel, strides, pads, exclude_padding, fp16=True, accumulation=accumulation)
