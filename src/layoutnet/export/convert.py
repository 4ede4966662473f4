"""Core ML conversion of a traced model, with the contract and provenance as metadata."""

from __future__ import annotations

import logging
import warnings

import numpy as np
import torch

from layoutnet.contract import INPUT_NAME, OUTPUT_NAME, SEQ_LEN, contract_metadata
from layoutnet.export.settings import ExportSettings

log = logging.getLogger(__name__)


def _coremltools():
    # coremltools prints a line per missing native proxy on Linux; those are expected there.
    logging.getLogger("coremltools").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import coremltools as ct
    return ct


def convert(traced: torch.jit.ScriptModule, settings: ExportSettings, metadata: dict[str, str]):
    """MLModel with input `input_ids` int32 [1, SEQ_LEN] and output `classLogits`."""
    ct = _coremltools()
    options: dict = {"convert_to": settings.format}
    if settings.format == "mlprogram":
        options["compute_precision"] = (
            ct.precision.FLOAT16 if settings.precision == "fp16" else ct.precision.FLOAT32
        )
        options["minimum_deployment_target"] = getattr(
            ct.target, settings.minimum_deployment_target or "iOS15"
        )
    elif settings.minimum_deployment_target:
        options["minimum_deployment_target"] = getattr(ct.target, settings.minimum_deployment_target)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = ct.convert(
            traced,
            inputs=[ct.TensorType(name=INPUT_NAME, shape=(1, SEQ_LEN), dtype=np.int32)],
            outputs=[ct.TensorType(name=OUTPUT_NAME)],
            skip_model_load=True,
            **options,
        )
    if settings.format == "neuralnetwork":
        model = _declare_int32_input(ct, model)
    model.author = settings.author
    model.version = settings.version
    model.short_description = settings.description
    model.input_description[INPUT_NAME] = (
        f"int32 [1, {SEQ_LEN}]: ids of the first {SEQ_LEN} characters "
        "(alphabet position + 1; 0 = padding/unknown)"
    )
    model.output_description[OUTPUT_NAME] = "9 class logits in the order of the `classes` metadata"
    user = model.user_defined_metadata
    for key, value in {**contract_metadata(), **metadata}.items():
        user[key] = str(value)
    return model


def _declare_int32_input(ct, model):
    """The NeuralNetwork backend declares integer inputs as FLOAT32; the app feeds int32. A
    NeuralNetwork spec may declare INT32 multi-array inputs (Core ML casts them to its float
    compute type), so the declaration is set to what the contract says."""
    spec = model.get_spec()
    array_type = spec.description.input[0].type.multiArrayType
    array_type.dataType = ct.proto.FeatureTypes_pb2.ArrayFeatureType.INT32
    return ct.models.MLModel(spec, skip_model_load=True)


def coremltools_version() -> str:
    return _coremltools().__version__
