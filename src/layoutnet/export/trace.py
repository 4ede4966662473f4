"""Strict tracing: any TracerWarning is an error, several distinct inputs must trace to the
same graph, and the traced module must compute what the eager one does."""

from __future__ import annotations

import linecache
import warnings
from dataclasses import dataclass

import torch
from torch import nn

from layoutnet.contract import PAD_ID, SEQ_LEN, VOCAB_SIZE
from layoutnet.errors import ExportError

TRACE_ATOL = 1e-4


@dataclass
class TraceResult:
    module: torch.jit.ScriptModule
    check_inputs: int
    max_abs_diff: float


def trace_inputs(real_rows: torch.Tensor | None = None, seed: int = 0) -> list[torch.Tensor]:
    """Distinct [1, SEQ_LEN] int32 inputs: all padding, full length, random ids with padding,
    and up to three real rows."""
    generator = torch.Generator().manual_seed(seed)
    full = torch.randint(1, VOCAB_SIZE, (1, SEQ_LEN), generator=generator, dtype=torch.int32)
    partial = torch.randint(1, VOCAB_SIZE, (1, SEQ_LEN), generator=generator, dtype=torch.int32)
    partial[:, 7:] = PAD_ID
    inputs = [torch.full((1, SEQ_LEN), PAD_ID, dtype=torch.int32), full, partial]
    if real_rows is not None:
        inputs += [row.reshape(1, SEQ_LEN).to(torch.int32) for row in real_rows[:3]]
    return inputs


def _describe(warning: warnings.WarningMessage) -> str:
    source = linecache.getline(warning.filename, warning.lineno).strip()
    return f"{warning.filename}:{warning.lineno}: {source}\n    TracerWarning: {warning.message}"


def strict_trace(model: nn.Module, inputs: list[torch.Tensor]) -> TraceResult:
    """Trace `model` (eval mode, CPU) on inputs[0], checking every other input.

    Raises ExportError naming each TracerWarning with its source line, a graph that differs
    between inputs, or traced outputs that differ from eager ones.
    """
    model = model.eval()
    failure: Exception | None = None
    traced = None
    with warnings.catch_warnings(record=True) as caught, torch.no_grad():
        warnings.simplefilter("always", torch.jit.TracerWarning)
        try:
            traced = torch.jit.trace(model, inputs[0], check_inputs=[(x,) for x in inputs], strict=True)
        except Exception as exc:  # a failed check is reported with the warnings that explain it
            failure = exc
    tracer_warnings = [w for w in caught if issubclass(w.category, torch.jit.TracerWarning)]
    for w in caught:  # every other warning (torch's deprecation of jit.trace) goes on to the caller
        if not issubclass(w.category, torch.jit.TracerWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)
    if tracer_warnings:
        details = "\n".join(_describe(w) for w in tracer_warnings)
        raise ExportError(
            f"untraceable model: {len(tracer_warnings)} TracerWarning(s) while tracing; the traced graph "
            "would not match the Python code for other inputs. Remove shape-dependent Python "
            f"(reading tensor sizes/values into Python, branching on them) at:\n{details}"
        ) from failure
    if isinstance(failure, torch.jit.TracingCheckError):
        raise ExportError(
            "trace check failed: the model records a different graph for different inputs, so it "
            f"depends on shapes or values in Python. Make the model trace-safe.\n{failure}"
        ) from failure
    if failure is not None:
        raise ExportError(f"torch.jit.trace failed: {type(failure).__name__}: {failure}") from failure
    worst = 0.0
    with torch.no_grad():
        for x in inputs:
            worst = max(worst, float((traced(x) - model(x)).abs().max()))
    if worst > TRACE_ATOL:
        raise ExportError(
            f"traced and eager outputs differ by {worst:.3g} (> {TRACE_ATOL}); nothing was exported"
        )
    return TraceResult(traced, len(inputs), worst)
