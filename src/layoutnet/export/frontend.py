"""Capturing the PyTorch graph for the converter: `trace` (strict torch.jit.trace, the default) or
`torch_export` (torch.export.export -> run_decompositions({})), both equally strict: the captured
graph must compute what the eager model does on several distinct inputs, and a capture failure
(a graph break, a data-dependent shape) is an ExportError naming the module where it happened."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from layoutnet.errors import ExportError
from layoutnet.export.trace import TRACE_ATOL, strict_trace


@dataclass
class Captured:
    graph: Any  # a ScriptModule (trace) or an ExportedProgram (torch_export)
    frontend: str
    check_inputs: int
    max_abs_diff: float

    def report(self) -> dict:
        return {
            "frontend": self.frontend,
            "strict": True,
            "check_inputs": self.check_inputs,
            "max_captured_vs_eager_diff": self.max_abs_diff,
        }


def _failing_module(model: nn.Module, exc: BaseException) -> str:
    """`name (Class)` of the innermost submodule of `model` whose forward was running at `exc`."""
    names = {id(m): name or "<root>" for name, m in model.named_modules()}
    found = None
    tb = exc.__traceback__
    while tb is not None:
        owner = tb.tb_frame.f_locals.get("self")
        if isinstance(owner, nn.Module) and id(owner) in names:
            found = (names[id(owner)], type(owner).__name__, tb.tb_frame.f_code.co_filename, tb.tb_lineno)
        tb = tb.tb_next
    if exc.__cause__ is not None and found is None:
        return _failing_module(model, exc.__cause__)
    if found is None:
        return "an unknown module"
    return f"module {found[0]!r} ({found[1]}, {found[2]}:{found[3]})"


def torch_export(model: nn.Module, inputs: list[torch.Tensor]) -> Captured:
    """torch.export.export + decompositions, checked against eager on every input."""
    model = model.eval()
    try:
        with torch.no_grad():
            program = torch.export.export(model, (inputs[0],)).run_decompositions({})
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExportError(
            f"torch.export failed in {_failing_module(model, exc)}: {type(exc).__name__}: {first}\n"
            "The model must be capturable as one graph (no Python branching on tensor values, no "
            "data-dependent shapes); use export.frontend=trace or fix that module."
        ) from exc
    _drop_aliases(program)
    exported = program.module()
    worst = 0.0
    with torch.no_grad():
        for x in inputs:
            worst = max(worst, float((exported(x) - model(x)).abs().max()))
    if worst > TRACE_ATOL:
        raise ExportError(
            f"torch.export's graph and the eager model differ by {worst:.3g} (> {TRACE_ATOL}) on the "
            "check inputs; the graph depends on input values. Nothing was exported."
        )
    return Captured(program, "torch_export", len(inputs), worst)


def _drop_aliases(program) -> None:
    """Remove `aten.alias` nodes (a slice that keeps the whole tensor, e.g. the crop CNN's
    `[:, :, :seq_len]`, decomposes to one): they compute nothing, and coremltools 9 has no
    converter for them."""
    graph = program.graph_module.graph
    outputs = {str(n) for n in graph.output_node().args[0]} if hasattr(graph, "output_node") else set()
    for node in list(graph.nodes):
        if (
            node.op == "call_function"
            and node.target is torch.ops.aten.alias.default
            and str(node) not in outputs
        ):
            node.replace_all_uses_with(node.args[0])
            graph.erase_node(node)
    program.graph_module.recompile()


def capture(model: nn.Module, inputs: list[torch.Tensor], frontend: str) -> Captured:
    if frontend == "torch_export":
        return torch_export(model, inputs)
    traced = strict_trace(model, inputs)
    return Captured(traced.module, "trace", traced.check_inputs, traced.max_abs_diff)
