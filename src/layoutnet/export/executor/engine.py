"""The part of the reference executor shared by ML Programs and NeuralNetworks.

A loaded model becomes a `Graph`: a list of `Node`s in program order, each naming the values it
reads and writes and carrying the function that computes it (from `mil_ops` or `nn_layers`).

Loading does, once:

1. a probe run with the declared input (batch 1, all padding): every value gets a reference
   shape (checked against the declared shape where the format declares one), and every node whose
   inputs are all constants is evaluated here and never again (weight casts, folded scalars);
2. a batching analysis (see below);
3. a liveness pass, so a value is dropped as soon as its last reader has run.

Batching. The program is written for a batch of 1. Every value that depends on the input is
"batched": it carries the samples on axis 0, where the program has a 1. Each op type has a rule
(`BatchRule`) that says, from the reference shapes and constant arguments of one node, whether
running it on N samples stacked on axis 0 computes N independent copies of the batch-1 op
(elementwise ops with aligned ranks; reductions, softmax, concat, split, layer_norm over axes other
than 0; transposes keeping axis 0 first; reshapes that keep a leading 1; slices taking all of axis 0;
...). Where a rule says no, the whole program runs one sample at a time instead (`Executor.batched`
is False and `batch_fallback` says which op and why). After every op the produced shape is checked
against the reference shape with axis 0 replaced by N. On top of that, loading runs two small inputs
batched and one by one, with row-wise matrix products (`kernels.rowwise_products`), and falls back
to per-sample execution unless they agree bit for bit.

Precision (`Graph(precision=...)`, `load_executor(..., precision=...)`), one of `PRECISIONS`:

- "declared" (default): every op computes in float32 (floating inputs arrive as float32) and each
  output is cast to the dtype the program declares for it. An output typed fp16 is rounded to fp16
  and kept as the float32 holding that fp16 number, so every fp16 op rounds its result exactly as a
  float16 value stored between ops would (for +, -, *, / the fp32-then-fp16 double rounding equals
  direct fp16 rounding; ops with inner accumulation - matmul, conv, reductions - accumulate in fp32).
  A NeuralNetwork and an fp32 program run in fp32.
- "fp32": everything in float32; fp16 declarations are ignored (fp16 weights keep their values).
- "fp16_storage": every floating value is stored as fp16 - the op's inputs (inline constants and
  weights included: MIL `const` outputs, NeuralNetwork layer weights) and outputs - while each op
  computes in float32, as a GPU storing fp16 tensors with fp32 arithmetic would; applies to
  NeuralNetworks and fp32 programs alike.
- "fp16_wide", "fp16", "fp16_sequential": fp16_storage plus true fp16 arithmetic inside every op
  (`OpContext.fp16`): each intermediate step of softmax, normalisation and activation is rounded to
  fp16, and the terms of every reduction, matrix product and convolution are summed as
  `OpContext.accumulation` says (`ACCUMULATION_OF`): fp16 products into a wide accumulator
  ("fp16_wide"), fp16 products in a pairwise fp16 tree ("fp16"), or one running fp16 sum
  ("fp16_sequential"); see `kernels`, "true fp16 arithmetic".

Ops that only move or select values (transpose, concat, max, relu, ...) skip the rounding when
their inputs are fp16 already.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from layoutnet.errors import ExportError
from layoutnet.export.executor import kernels

Shape = tuple[int, ...]

PRECISIONS = ("declared", "fp32", "fp16_storage", "fp16_wide", "fp16", "fp16_sequential")
"""Precision modes of the executor (see the module docstring)."""

ACCUMULATION_OF = {"fp16_wide": "wide", "fp16": "tree", "fp16_sequential": "sequential"}
"""The precisions with true fp16 arithmetic, and how each sums (`kernels.ACCUMULATIONS`)."""

FP16_STORED = ("fp16_storage", *ACCUMULATION_OF)
"""The precisions that store every floating value (inputs, weights, outputs) as fp16."""


class UnsupportedOpError(ExportError):
    """The artifact uses an op/layer type (or a mode of one) that the reference executor does not
    implement. Raised at load time; `unsupported` maps each type to where it occurs."""

    def __init__(self, source: str, unsupported: dict[str, list[str]]):
        self.source = source
        self.unsupported = {k: list(v) for k, v in unsupported.items()}
        parts = []
        for kind, places in sorted(self.unsupported.items()):
            shown = ", ".join(places[:5]) + (f", ... ({len(places)} in all)" if len(places) > 5 else "")
            parts.append(f"{kind} (at {shown})")
        super().__init__(
            f"{source}: the reference executor does not implement {'; '.join(parts)}. "
            "Implement the op in layoutnet.export.executor or export the model without it."
        )


class Unsupported(Exception):
    """Raised by an op function (or a layer's prepare step) for a mode it does not implement."""


@dataclass(frozen=True)
class Const:
    """An argument given inline in the program (not the name of a value)."""

    value: Any


Ref = str | Const


@dataclass(frozen=True)
class OpContext:
    """What an op function may know besides its arguments."""

    name: str
    op_type: str
    batch: int | None  # N when this node runs on N stacked samples (axis 0), else None
    batched: frozenset[str]  # parameters whose argument carries the batch axis
    fp16: bool = False  # compute in true fp16 arithmetic (the precisions of ACCUMULATION_OF)
    accumulation: str = "tree"  # how fp16 arithmetic sums (kernels.ACCUMULATIONS)

    def pick(self, fp32: Callable[..., Any], fp16: Callable[..., Any]) -> Callable[..., Any]:
        """The kernel to run: `fp32`, or under fp16 arithmetic `fp16` summing as `accumulation` says
        (an fp16 kernel of `kernels` taking the `accumulation` keyword)."""
        return functools.partial(fp16, accumulation=self.accumulation) if self.fp16 else fp32


@dataclass(frozen=True)
class Arg:
    """One argument of a node as the batching rules see it."""

    shape: Shape
    batched: bool
    value: Any  # the value when it is a constant, else None


@dataclass(frozen=True)
class BatchInfo:
    args: dict[str, tuple[Arg, ...]]
    out_shapes: tuple[Shape, ...]

    def arg(self, param: str) -> Arg | None:
        found = self.args.get(param)
        return found[0] if found else None

    def value(self, param: str, default: Any = None) -> Any:
        arg = self.arg(param)
        return default if arg is None or arg.value is None else arg.value

    def rank(self, param: str) -> int:
        arg = self.arg(param)
        return len(arg.shape) if arg is not None else 0

    def all_args(self) -> list[Arg]:
        return [a for group in self.args.values() for a in group]


BatchRule = Callable[[BatchInfo], str | None]
"""Returns None when a node may run batched along axis 0, else the reason it may not."""


@dataclass
class Node:
    op_type: str
    name: str
    inputs: dict[str, list[Ref]]
    variadic: frozenset[str]
    outputs: list[str]
    out_dtypes: list[np.dtype | None]  # None: keep what the function returns (float -> float32)
    declared: list[tuple[int | None, ...] | None]  # declared output shapes (None = not declared)
    impl: Callable[[OpContext, dict[str, Any]], Any]
    rule: BatchRule
    preserves: bool = False  # the result holds only values of the inputs (or fixed constants)
    # A matrix product or convolution: `magnitude` computes it on the absolute values of every floating
    # input and weight, the largest any partial sum of its products can reach, in any order.
    magnitude: Callable[[OpContext, dict[str, Any]], Any] | None = None


def floating_mapped(value: Any, fn: Callable[[np.ndarray], np.ndarray]) -> Any:
    """`value` with `fn` applied to every floating array in it (arguments: arrays, lists of them;
    a NeuralNetwork layer's prepared weights: a namespace of them); anything else unchanged."""
    if isinstance(value, np.ndarray | np.floating) and np.asarray(value).dtype.kind == "f":
        return fn(np.asarray(value))
    if isinstance(value, list):
        return [floating_mapped(v, fn) for v in value]
    if isinstance(value, SimpleNamespace):
        return SimpleNamespace(**{k: floating_mapped(v, fn) for k, v in vars(value).items()})
    return value


Observer = Callable[[Node, OpContext, dict[str, Any], list[Any]], None]
"""Called after every executed node with the node, its context, its arguments and its results."""


# ----------------------------------------------------------------------------- batching rules


def normalize_axes(axes: Any, rank: int) -> list[int]:
    values = np.atleast_1d(np.asarray(axes, dtype=np.int64)).tolist()
    return [int(a) + rank if a < 0 else int(a) for a in values]


def elementwise(info: BatchInfo) -> str | None:
    """Ops whose output is the broadcast of the inputs: a batched input must have the output's
    rank (its axis 0 is the output's axis 0); an unbatched one of that rank must have a 1 there."""
    for out in info.out_shapes:
        if not out or out[0] != 1:
            return f"output shape {out} has no leading batch dimension of 1"
    rank = len(info.out_shapes[0])
    for arg in info.all_args():
        if arg.batched and len(arg.shape) != rank:
            return f"batched input of rank {len(arg.shape)} broadcast to rank {rank}"
        if not arg.batched and len(arg.shape) == rank and arg.shape and arg.shape[0] != 1:
            return f"constant input of shape {arg.shape} varies along axis 0"
    return None


def axes_rule(param: str, of: str = "x", all_when_missing: bool = True) -> BatchRule:
    """Ops working along the axes given by `param` (relative to input `of`): axis 0 must not be
    one of them. A missing `param` means every axis when `all_when_missing`."""

    def rule(info: BatchInfo) -> str | None:
        axes = info.value(param)
        if axes is None:
            return f"no {param}: works across every axis, including the batch" if all_when_missing else None
        if 0 in normalize_axes(axes, info.rank(of)):
            return f"{param}={np.asarray(axes).tolist()} includes axis 0"
        return None

    return rule


def leading_rule(min_rank: int) -> BatchRule:
    """Ops that treat axis 0 as an independent batch axis when the input has at least this rank."""

    def rule(info: BatchInfo) -> str | None:
        for arg in info.all_args():
            if arg.batched and len(arg.shape) < min_rank:
                return f"batched input of rank {len(arg.shape)} < {min_rank}: axis 0 is not a batch axis here"
        return None

    return rule


def all_of(*rules: BatchRule) -> BatchRule:
    def rule(info: BatchInfo) -> str | None:
        for r in rules:
            reason = r(info)
            if reason:
                return reason
        return None

    return rule


def only_batched(*params: str) -> BatchRule:
    """Only the named parameters may carry the batch (others are weights)."""

    def rule(info: BatchInfo) -> str | None:
        for param, group in info.args.items():
            if param not in params and any(a.batched for a in group):
                return f"input '{param}' depends on the model input"
        return None

    return rule


# ----------------------------------------------------------------------------- graph


def _as_compute(value: Any) -> Any:
    """Floating arrays reach op functions as float32 (fp16 storage, fp32 arithmetic)."""
    if isinstance(value, np.ndarray) and value.dtype == np.float16:
        return value.astype(np.float32)
    return value


_FP16 = np.dtype(np.float16)


def _effective_dtype(dtype: np.dtype | None, precision: str) -> np.dtype | None:
    """The dtype a value declared `dtype` is stored in under `precision`."""
    if dtype is None or dtype.kind != "f":
        return dtype
    if precision == "fp32":
        return np.dtype(np.float32)
    if precision in FP16_STORED:
        return _FP16
    return dtype


def _round_const(value: Any, precision: str) -> Any:
    """Inline floating constants as an op sees them under `precision` (fp16 modes: fp16 values)."""
    if precision in FP16_STORED and isinstance(value, np.ndarray | np.floating):
        arr = np.asarray(value)
        if arr.dtype.kind == "f":
            return kernels.round_to_fp16(arr)
    return value


def _store(value: Any, dtype: np.dtype | None, round16: bool) -> np.ndarray:
    """The value as stored between ops. fp16-typed values are kept as float32 holding exactly the
    fp16-rounded numbers (one rounding here instead of a conversion at every reader). A `None`
    dtype keeps what the op returned (floats as float32)."""
    arr = np.asarray(value)
    if dtype is None or dtype == _FP16:
        if dtype == _FP16 and round16 and arr.dtype.kind == "f" and arr.dtype != _FP16:
            return kernels.round_to_fp16(arr)
        if arr.dtype.kind == "f" and arr.dtype != np.float32:
            arr = arr.astype(np.float32)
        elif dtype == _FP16 and arr.dtype.kind != "f":
            arr = arr.astype(np.float16).astype(np.float32)
        return arr
    if arr.dtype != dtype:
        arr = arr.astype(dtype)
    return arr


@dataclass
class _Step:
    node: Node
    args: list[tuple[str, list[tuple[bool, Any]]]]  # param -> [(is_value, name or constant)]
    batched: frozenset[str] = frozenset()
    out_dtypes: list[np.dtype | None] = field(default_factory=list)  # as stored under the precision
    release: list[str] = field(default_factory=list)
    round16: bool = True  # fp16 outputs need rounding (False: inputs already fp16, op preserves values)


class Graph:
    """A loaded program: nodes in order, constants, and the one input and output."""

    def __init__(
        self,
        *,
        source: str,
        nodes: list[Node],
        constants: dict[str, np.ndarray],
        input_name: str,
        input_shape: Shape,
        input_dtype: np.dtype,
        output_name: str,
        unsupported: dict[str, list[str]],
        precision: str = "declared",
    ):
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
        self.precision = precision
        self.source = source
        self.input_name = input_name
        self.input_shape = tuple(int(d) for d in input_shape)
        self.input_dtype = np.dtype(input_dtype)
        self.output_name = output_name
        self.op_types = frozenset(n.op_type for n in nodes)
        if unsupported:
            raise UnsupportedOpError(source, unsupported)
        self._constants = dict(constants)
        self._nodes = nodes
        self.observer: Observer | None = None
        self.shapes: dict[str, Shape] = {}
        self._probe()
        self.batched, self.batch_fallback = self._analyse_batching()
        self._plan_releases()

    # -- load-time passes

    def _argument(self, ref: Ref) -> tuple[bool, Any]:
        if isinstance(ref, str):
            return True, ref
        return False, _round_const(ref.value, self.precision)

    def _probe(self) -> None:
        """Batch-1 run on the declared input: reference shapes, declared-shape checks, folding."""
        static: dict[str, Any] = dict(self._constants)
        typed: dict[str, np.dtype] = {}
        for name, value in static.items():
            self.shapes[name] = np.shape(value)
            typed[name] = np.asarray(value).dtype
        env: dict[str, Any] = dict(static)
        env[self.input_name] = np.zeros(self.input_shape, dtype=self.input_dtype)
        self.shapes[self.input_name] = self.input_shape
        typed[self.input_name] = _effective_dtype(self.input_dtype, self.precision)
        steps: list[_Step] = []
        for node in self._nodes:
            missing = [
                r for refs in node.inputs.values() for r in refs if isinstance(r, str) and r not in env
            ]
            if missing:
                raise ExportError(f"{self.source}: {node.op_type} '{node.name}' reads undefined {missing}")
            step = _Step(
                node,
                [(p, [self._argument(r) for r in refs]) for p, refs in node.inputs.items()],
                out_dtypes=[_effective_dtype(d, self.precision) for d in node.out_dtypes],
            )
            step.round16 = not (node.preserves and _floats_all_fp16(step, typed, self.precision))
            outputs = self._call(step, env, batch=None)
            is_static = all(not is_value or key in static for _, refs in step.args for is_value, key in refs)
            for name, value, declared in zip(node.outputs, outputs, node.declared, strict=True):
                if declared is not None and not _shape_matches(value.shape, declared):
                    raise ExportError(
                        f"{self.source}: {node.op_type} '{node.name}' computed {name} with shape "
                        f"{value.shape}, the program declares {declared}"
                    )
                env[name] = value
                self.shapes[name] = value.shape
                typed[name] = step.out_dtypes[node.outputs.index(name)] or value.dtype
                if is_static:
                    static[name] = value
            if not is_static:
                steps.append(step)
        self._static = {k: _as_compute(v) for k, v in static.items()}
        self._steps = steps
        if self.output_name not in env:
            raise ExportError(f"{self.source}: no op produces the output '{self.output_name}'")
        self.output_shape = self.shapes[self.output_name]

    def _analyse_batching(self) -> tuple[bool, str | None]:
        if not self.input_shape or self.input_shape[0] != 1:
            return False, f"input shape {self.input_shape} has no leading batch dimension of 1"
        reason = None
        for step in self._steps:
            node = step.node
            args = {}
            batched = set()
            for param, refs in step.args:
                group = []
                for is_value, key in refs:
                    dynamic = is_value and key not in self._static
                    value = None if dynamic else (self._static[key] if is_value else key)
                    group.append(Arg(tuple(self.shapes[key]) if is_value else _shape_of(key), dynamic, value))
                    if dynamic:
                        batched.add(param)
                args[param] = tuple(group)
            step.batched = frozenset(batched)
            if reason is None:
                out_shapes = tuple(tuple(self.shapes[o]) for o in node.outputs)
                why = node.rule(BatchInfo(args, out_shapes))
                if why is None:
                    bad = [s for s in out_shapes if not s or s[0] != 1]
                    why = f"output shape {bad[0]} has no leading 1" if bad else None
                if why:
                    reason = f"{node.op_type} '{node.name}': {why}"
        if reason is not None:
            return False, reason
        if self.output_name in self._static:
            return False, "the output does not depend on the input"
        return self._self_check()

    def _self_check(self) -> tuple[bool, str | None]:
        """Two inputs run batched and one by one must agree bit for bit (with row-wise products)."""
        rng = np.random.default_rng(0)
        rows = rng.integers(0, 3, size=(2, *self.input_shape[1:])).astype(self.input_dtype)
        rows[0] = 0
        try:
            with kernels.rowwise_products():
                together = self._execute(rows, batch=len(rows))
                alone = np.concatenate([self._execute(rows[i : i + 1], batch=None) for i in range(len(rows))])
        except (ExportError, ValueError, IndexError) as exc:
            return False, f"batched self-check failed to run: {exc}"
        if not np.array_equal(together, alone, equal_nan=True):
            return False, "batched self-check disagreed with per-sample execution"
        return True, None

    def _plan_releases(self) -> None:
        last: dict[str, int] = {}
        for i, step in enumerate(self._steps):
            for _, refs in step.args:
                for is_value, key in refs:
                    if is_value and key not in self._static:
                        last[key] = i
        for name, i in last.items():
            if name not in (self.output_name, self.input_name):
                self._steps[i].release.append(name)

    # -- execution

    def _call(self, step: _Step, env: dict[str, Any], batch: int | None) -> list[np.ndarray]:
        node = step.node
        args: dict[str, Any] = {}
        for param, refs in step.args:
            values = [_as_compute(env[key]) if is_value else key for is_value, key in refs]
            args[param] = values if param in node.variadic else values[0]
        ctx = OpContext(
            node.name,
            node.op_type,
            batch if step.batched else None,
            step.batched,
            self.precision in ACCUMULATION_OF,
            ACCUMULATION_OF.get(self.precision, "tree"),
        )
        try:
            result = node.impl(ctx, args)
        except Unsupported as exc:
            raise UnsupportedOpError(self.source, {f"{node.op_type} ({exc})": [repr(node.name)]}) from None
        except (ValueError, IndexError, TypeError) as exc:
            raise ExportError(f"{self.source}: {node.op_type} '{node.name}' failed: {exc}") from exc
        results = list(result) if isinstance(result, tuple | list) else [result]
        if self.observer is not None:  # set only after loading: sees the runs of `predict`
            self.observer(node, ctx, args, results)
        if len(results) != len(node.outputs):
            raise ExportError(
                f"{self.source}: {node.op_type} '{node.name}' gave {len(results)} outputs, "
                f"expected {len(node.outputs)}"
            )
        return [_store(v, d, step.round16) for v, d in zip(results, step.out_dtypes, strict=True)]

    def _execute(self, x: np.ndarray, batch: int | None) -> np.ndarray:
        env: dict[str, Any] = dict(self._static)
        env[self.input_name] = _store(x, _effective_dtype(x.dtype, self.precision), True)
        n = batch or 1
        for step in self._steps:
            outputs = self._call(step, env, batch)
            for name, value in zip(step.node.outputs, outputs, strict=True):
                ref = self.shapes[name]
                if value.shape != ((n, *ref[1:]) if batch else ref):
                    mode = f"batch of {n}" if batch else "one sample"
                    raise ExportError(
                        f"{self.source}: {step.node.op_type} '{step.node.name}' produced {name} with shape "
                        f"{value.shape} running a {mode}; one sample has shape {ref}"
                    )
                env[name] = value
            for name in step.release:
                env.pop(name, None)
        return env[self.output_name]

    def run(self, x: np.ndarray, batch: int | None) -> np.ndarray:
        """One execution: `x` is the declared input (batch None) or N of them stacked on axis 0."""
        return self._execute(x, batch)

    def folded(self, op_prefix: str) -> dict[str, np.ndarray]:
        """The values of the outputs of nodes whose op type starts with `op_prefix` that loading
        evaluated once (their inputs are all constants), by output name."""
        return {
            name: self._static[name]
            for node in self._nodes
            if node.op_type.startswith(op_prefix)
            for name in node.outputs
            if name in self._static
        }


def _floats_all_fp16(step: _Step, typed: dict[str, np.dtype], precision: str) -> bool:
    """Whether every floating input of the step is typed fp16 (so holds fp16-exact values)."""
    if precision in FP16_STORED:
        return True  # inputs, inline constants and weights are all rounded to fp16
    for _, refs in step.args:
        for is_value, key in refs:
            dtype = typed[key] if is_value else np.asarray(key).dtype
            if dtype.kind == "f" and dtype != _FP16:
                return False
    return True


def _shape_of(value: Any) -> Shape:
    if isinstance(value, np.ndarray | np.generic | int | float | bool | list | tuple):
        return tuple(np.shape(value))
    return ()


def _shape_matches(actual: Shape, declared: Sequence[int | None]) -> bool:
    return len(actual) == len(declared) and all(
        d is None or a == d for a, d in zip(actual, declared, strict=True)
    )


# ----------------------------------------------------------------------------- public executor


class Executor:
    """Runs a saved Core ML artifact in NumPy: `predict(ids)` -> float32 logits [N, classes]."""

    backend = "reference-executor"
    compute_units = None

    def __init__(self, graph: Graph, path: Path, model_format: str, chunk_size: int = 256):
        self._graph = graph
        self.path = Path(path)
        self.format = model_format
        self.precision = graph.precision
        self.input_name = graph.input_name
        self.output_name = graph.output_name
        self.op_types: set[str] = set(graph.op_types)
        self.batched = graph.batched
        self.batch_fallback = graph.batch_fallback
        self.chunk_size = chunk_size
        self.input_shape = graph.input_shape
        self.output_size = int(np.prod(graph.output_shape)) if graph.output_shape else 1
        self.last_seconds = 0.0

    def __repr__(self) -> str:
        mode = "batched" if self.batched else f"per-sample ({self.batch_fallback})"
        return (
            f"Executor({self.path.name}, {self.format}, precision {self.precision}, "
            f"{len(self.op_types)} op types, {mode})"
        )

    @contextlib.contextmanager
    def observed(self, observer: Observer) -> Iterator[None]:
        """Inside this block `predict` calls `observer` after every node it runs (see `Observer`)."""
        previous, self._graph.observer = self._graph.observer, observer
        try:
            yield
        finally:
            self._graph.observer = previous

    def compressed_weights(self) -> dict[str, np.ndarray]:
        """The dense values of an ML Program's compressed weights (the outputs of its `constexpr_*`
        ops, decoded from the file at load) by name, as float32; empty for an uncompressed file."""
        return {k: np.asarray(v, dtype=np.float32) for k, v in self._graph.folded("constexpr_").items()}

    def predict(self, input_ids: np.ndarray) -> np.ndarray:
        ids = np.asarray(input_ids)
        row_shape = self.input_shape[1:] if self.batched else None
        if ids.ndim == 1:
            ids = ids[None]
        if ids.dtype.kind not in "iub":
            if ids.dtype.kind == "f" and np.array_equal(ids, np.round(ids)):
                ids = ids.astype(np.int64)
            else:
                raise ValueError(f"input_ids must be integer token ids, got dtype {ids.dtype}")
        per_sample = int(np.prod(self.input_shape))
        if ids.ndim < 2 or int(np.prod(ids.shape[1:])) != per_sample:
            raise ValueError(
                f"input_ids must have shape [N, {per_sample}] (one row per sample), got {ids.shape}"
            )
        info = np.iinfo(self._graph.input_dtype) if self._graph.input_dtype.kind in "iu" else None
        if info is not None and ids.size and (ids.min() < info.min or ids.max() > info.max):
            raise ValueError(f"input_ids out of range for {self._graph.input_dtype}")
        n = ids.shape[0]
        x = ids.reshape(n, per_sample).astype(self._graph.input_dtype)
        start = time.perf_counter()
        outputs = []
        if self.batched:
            for lo in range(0, n, self.chunk_size):
                chunk = x[lo : lo + self.chunk_size]
                outputs.append(self._graph.run(chunk.reshape(len(chunk), *row_shape), batch=len(chunk)))
        else:
            for row in x:
                outputs.append(self._graph.run(row.reshape(self.input_shape), batch=None))
        self.last_seconds = time.perf_counter() - start
        if not outputs:
            return np.zeros((0, self.output_size), dtype=np.float32)
        return np.concatenate([o.reshape(len(o) if self.batched else 1, -1) for o in outputs]).astype(
            np.float32
        )
