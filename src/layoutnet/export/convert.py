"""Core ML conversion of a captured model, with the contract and provenance as metadata, and the
optional weight compression of an ML Program (`coremltools.optimize.coreml`)."""

from __future__ import annotations

import contextlib
import functools
import importlib
from collections.abc import Iterator
from typing import Any

import numpy as np

from layoutnet.contract import INPUT_NAME, OUTPUT_NAME, SEQ_LEN, contract_metadata
from layoutnet.errors import ExportError
from layoutnet.export.notices import IMPORT_NOTICES, Notice, library_log_records
from layoutnet.export.settings import ExportSettings

_CT: Any = None

# coremltools draws a tqdm bar per conversion stage (five for one export); the export prints one
# line per step itself, so these bars are turned off while converting and compressing.
_CONVERTER_BARS = (
    ("coremltools.converters.mil.frontend.torch.ops", "_tqdm"),
    ("coremltools.converters.mil.backend.nn.op_mapping", "_tqdm"),
    ("coremltools.converters.mil.mil.passes.pass_pipeline", "tqdm"),
    ("coremltools.optimize.coreml._post_training_quantization", "tqdm"),
    ("coremltools.optimize.coreml._quantization_passes", "tqdm"),
)


def coremltools() -> Any:
    """The coremltools module; what it logs on import (an untested torch version) is kept in
    `notices.IMPORT_NOTICES` for the export report instead of being printed or dropped."""
    global _CT
    if _CT is None:
        with library_log_records(IMPORT_NOTICES):
            import coremltools as ct
        _CT = ct
        if not any("has not been tested" in n.message for n in IMPORT_NOTICES):
            IMPORT_NOTICES.extend(_untested_torch_notice(ct))
    return _CT


def _untested_torch_notice(ct: Any) -> list[Notice]:
    """coremltools says once, when first imported, that this torch is newer than any it was tested
    with; when something else imported it first, the same fact is stated here."""
    import torch
    from packaging.version import InvalidVersion, Version

    newest = getattr(getattr(ct, "_deps", None), "_TORCH_MAX_VERSION", None)
    try:
        untested = newest is not None and Version(torch.__version__.split("+")[0]) > Version(newest)
    except InvalidVersion:
        return []
    if not untested:
        return []
    message = (
        f"Torch version {torch.__version__} has not been tested with coremltools {ct.__version__}. "
        f"Torch {newest} is the most recent version that has been tested."
    )
    return [Notice("coremltools", "logging WARNING", message)]


def coremltools_version() -> str:
    return coremltools().__version__


@contextlib.contextmanager
def converter_bars_off() -> Iterator[None]:
    saved = []
    for module_name, attribute in _CONVERTER_BARS:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        bar = getattr(module, attribute, None)
        if bar is not None:
            saved.append((module, attribute, bar))
            setattr(module, attribute, functools.partial(bar, disable=True))
    try:
        yield
    finally:
        for module, attribute, bar in saved:
            setattr(module, attribute, bar)


def convert(captured: Any, settings: ExportSettings, metadata: dict[str, str]):
    """MLModel with input `input_ids` int32 [1, SEQ_LEN] and output `classLogits`.

    `captured` is a traced ScriptModule or a torch.export ExportedProgram (after decompositions).
    """
    ct = coremltools()
    options: dict = {"convert_to": settings.format}
    if settings.format == "mlprogram":
        options["compute_precision"] = (
            ct.precision.FLOAT16 if settings.precision == "fp16" else ct.precision.FLOAT32
        )
    if settings.deployment_target:
        options["minimum_deployment_target"] = getattr(ct.target, settings.deployment_target)
    try:
        with converter_bars_off():
            model = ct.convert(
                captured,
                inputs=[ct.TensorType(name=INPUT_NAME, shape=(1, SEQ_LEN), dtype=np.int32)],
                outputs=[ct.TensorType(name=OUTPUT_NAME)],
                skip_model_load=True,
                **options,
            )
    except Exception as exc:  # the converter raises plain RuntimeError/ValueError/NotImplementedError
        raise ExportError(
            f"Core ML conversion ({settings.format}, front end {settings.frontend}) failed: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
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
    for key, value in {**contract_metadata(), **settings_metadata(settings), **metadata}.items():
        user[key] = str(value)
    return model


def settings_metadata(settings: ExportSettings) -> dict[str, str]:
    """How the file was made, in its metadata."""
    return {
        "format": settings.format,
        "precision": settings.precision,
        "frontend": settings.frontend,
        "compression": settings.compression,
    }


def compress(model: Any, settings: ExportSettings) -> Any:
    """The ML Program with its weights compressed as `settings.compression` says (unchanged for none)."""
    if settings.compression == "none":
        return model
    coremltools()
    import coremltools.optimize.coreml as cto

    granularity = settings.granularity
    if settings.compression == "int8":
        op_config = cto.OpLinearQuantizerConfig(
            mode=settings.mode,
            dtype="int8",
            granularity=granularity,
            block_size=settings.compression_group_size,
        )
        compressor = cto.linear_quantize_weights
    else:
        op_config = cto.OpPalettizerConfig(
            mode=settings.mode,
            nbits=6 if settings.compression == "palettize6" else 4,
            granularity=granularity,
            group_size=settings.compression_group_size,
        )
        compressor = cto.palettize_weights
    try:
        with converter_bars_off():
            compressed = compressor(model, config=cto.OptimizationConfig(global_config=op_config))
    except (ValueError, NotImplementedError) as exc:
        raise ExportError(
            f"export.compression={settings.compression} (granularity {granularity}, mode {settings.mode}) "
            f"failed in coremltools: {exc}"
        ) from exc
    # the compressor rebuilds the model; the descriptions and metadata are copied back
    spec, original = compressed.get_spec(), model.get_spec()
    spec.description.CopyFrom(original.description)
    weights_dir = compressed.weights_dir
    return coremltools().models.MLModel(spec, weights_dir=weights_dir, skip_model_load=True)


def _declare_int32_input(ct, model):
    """The NeuralNetwork backend declares integer inputs as FLOAT32; the app feeds int32. A
    NeuralNetwork spec may declare INT32 multi-array inputs (Core ML casts them to its float
    compute type), so the declaration is set to what the contract says."""
    spec = model.get_spec()
    array_type = spec.description.input[0].type.multiArrayType
    array_type.dataType = ct.proto.FeatureTypes_pb2.ArrayFeatureType.INT32
    return ct.models.MLModel(spec, skip_model_load=True)
