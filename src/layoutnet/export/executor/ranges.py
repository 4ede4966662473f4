"""The largest values a saved model computes, op by op: what the range guards of parity read.

`observed_run(executor, ids)` runs the rows through the executor (at whatever precision it was
loaded with; parity uses its fp32 run, the values the model means) and records for every op:

- `output`: the largest |value| it produced (inf if it overflowed even in float32);
- `accumulator` (matrix products and convolutions, `MilOp.matrix` / `NnLayer.matrix`): the op
  computed on the absolute values of its inputs and weights, i.e. the largest |partial sum| its
  products can reach in any summation order;
- `exp_input` (softmax and exp): the largest input, which `exp` must take without overflowing fp16
  when a device exponentiates before subtracting the row's maximum.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from layoutnet.export.executor.engine import Executor, Node, OpContext

EXPONENTIATING = ("softmax", "softmaxND", "exp")
"""Op / layer types that exponentiate their (first) input."""


@dataclass
class OpRange:
    name: str
    op_type: str
    matrix: bool
    output: float = 0.0
    accumulator: float | None = None
    exp_input: float | None = None


def _largest(values: Iterable[Any]) -> float:
    """The largest |value| of the floating arrays among `values` (0 when there is none)."""
    largest = 0.0
    for value in values:
        array = np.asarray(value)
        if array.dtype.kind == "f" and array.size:
            with np.errstate(invalid="ignore"):
                largest = max(largest, float(np.nanmax(np.abs(array))))
    return largest


def _first_input(args: dict[str, Any]) -> Any:
    """The op's data input: MIL's `x`, a NeuralNetwork layer's first input."""
    if "x" in args:
        return args["x"]
    inputs = args.get("inputs") or [None]
    return inputs[0]


def observed_run(executor: Executor, ids: np.ndarray) -> tuple[np.ndarray, list[OpRange]]:
    """The executor's logits for `ids`, and every executed op's largest output, accumulator and
    exponent input over them, in program order."""
    ranges: dict[str, OpRange] = {}

    def observe(node: Node, ctx: OpContext, args: dict[str, Any], results: list[Any]) -> None:
        entry = ranges.setdefault(node.name, OpRange(node.name, node.op_type, node.magnitude is not None))
        entry.output = max(entry.output, _largest(results))
        if node.magnitude is not None:
            bound = _largest([node.magnitude(ctx, args)])
            entry.accumulator = max(entry.accumulator or 0.0, bound)
        if node.op_type in EXPONENTIATING:
            x = np.asarray(_first_input(args))
            if x.dtype.kind == "f" and x.size:
                entry.exp_input = max(entry.exp_input or -np.inf, float(np.max(x)))

    with executor.observed(observe):
        logits = executor.predict(ids)
    return logits, list(ranges.values())
