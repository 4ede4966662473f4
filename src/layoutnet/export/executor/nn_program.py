"""Reads a NeuralNetwork (the `neuralNetwork` of a Core ML spec) into an executable `Graph`.

Layers run in file order. Blob names are made unique on the way in (a `copy` layer may overwrite an
existing blob). The network computes in float32: the declared integer input is fed as float32, as
Core ML does for NeuralNetworks. Under the fp16 precisions every floating array a layer prepares
at load (weights, folded batch-norm scale and shift) is rounded to fp16. NeuralNetworks declare no
intermediate shapes, so the reference shapes for batching come from the load-time probe run.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from layoutnet.errors import ExportError
from layoutnet.export.executor import kernels
from layoutnet.export.executor.engine import (
    FP16_STORED,
    Const,
    Graph,
    Node,
    OpContext,
    Unsupported,
    floating_mapped,
)
from layoutnet.export.executor.nn_layers import NN_LAYERS, NnLayer

_EXACT_ARRAY_MAPPING = 1


def _impl(layer: NnLayer, prepared: Any, each: Any = None):
    """The node's function: `layer` with its prepared weights on its inputs (with `each` applied
    to every input)."""
    fn = layer.fn

    def call(ctx: OpContext, args: dict[str, Any]) -> Any:
        inputs = args["inputs"] if each is None else floating_mapped(list(args["inputs"]), each)
        return fn(ctx, prepared, *inputs)

    return call


def _array_shape(feature: Any, source: str) -> tuple[int, ...]:
    if feature.type.WhichOneof("Type") != "multiArrayType":
        raise ExportError(f"{source}: input '{feature.name}' is not a multi-array")
    shape = tuple(int(d) for d in feature.type.multiArrayType.shape)
    if not shape:
        raise ExportError(f"{source}: input '{feature.name}' has no declared shape")
    return shape


def _fp16_weights(prepared: Any) -> Any:
    """A layer's prepared weights with every floating array rounded to fp16 (fp16 precisions)."""
    return floating_mapped(prepared, kernels.round_to_fp16)


def load_network(spec: Any, source: str, precision: str = "declared") -> Graph:
    kind = spec.WhichOneof("Type")
    network = getattr(spec, kind)
    unsupported: dict[str, list[str]] = {}
    if len(network.preprocessing):
        unsupported.setdefault("image preprocessing", []).append("network")
    if network.arrayInputShapeMapping != _EXACT_ARRAY_MAPPING:
        unsupported.setdefault("rank-5 input shape mapping", []).append("network")
    if len(spec.description.input) != 1:
        raise ExportError(f"{source}: expected one input, the model has {len(spec.description.input)}")
    feature = spec.description.input[0]
    input_shape = _array_shape(feature, source)
    outputs = [o.name for o in spec.description.output]
    output_name = "classLogits" if "classLogits" in outputs else outputs[0]

    current: dict[str, str] = {feature.name: feature.name}
    counts: dict[str, int] = {}
    nodes: list[Node] = []
    for layer in network.layers:
        kind_name = layer.WhichOneof("layer")
        registered = NN_LAYERS.get(kind_name)
        if registered is None:
            unsupported.setdefault(str(kind_name), []).append(repr(layer.name))
            continue
        params = getattr(layer, kind_name)
        try:
            prepared = registered.prepare(params)
            if precision in FP16_STORED:
                prepared = _fp16_weights(prepared)
        except Unsupported as exc:
            unsupported.setdefault(f"{kind_name} ({exc})", []).append(repr(layer.name))
            continue
        except ValueError as exc:
            raise ExportError(f"{source}: layer {layer.name!r} ({kind_name}): {exc}") from exc
        inputs = [current.get(name, name) for name in layer.input]
        out_names = []
        for name in layer.output:
            counts[name] = counts.get(name, 0) + 1
            unique = name if counts[name] == 1 and name != feature.name else f"{name}#{counts[name]}"
            current[name] = unique
            out_names.append(unique)
        nodes.append(
            Node(
                op_type=kind_name,
                name=layer.name,
                inputs={"params": [Const(params)], "inputs": list(inputs)},
                variadic=frozenset({"inputs"}),
                outputs=out_names,
                out_dtypes=[np.dtype(np.float32)] * len(out_names),
                declared=[None] * len(out_names),
                impl=_impl(registered, prepared),
                rule=registered.batch,
                magnitude=_impl(registered, floating_mapped(prepared, np.abs), np.abs)
                if registered.matrix
                else None,
            )
        )
    return Graph(
        source=source,
        nodes=nodes,
        constants={},
        input_name=feature.name,
        input_shape=input_shape,
        input_dtype=np.dtype(np.float32),
        output_name=current.get(output_name, output_name),
        unsupported=unsupported,
        precision=precision,
    )
