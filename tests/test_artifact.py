"""Interface parity: a saved artifact whose input, output or class list differs from the app's
contract is refused by export, validate and evaluate before any number is computed, with the field,
what it is and what the app expects. Each field is mutated in a saved .mlmodel and .mlpackage."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from layoutnet.contract import CLASSES
from layoutnet.export.artifact import InterfaceError, open_artifact, read_interface
from layoutnet.export.executor import read_spec
from layoutnet.export.pipeline import ModelInfo, export_model
from layoutnet.export.result import ExportFailure
from layoutnet.export.settings import ExportSettings
from layoutnet.export.validate import validate_artifact
from layoutnet.modelfile import open_model

from .conftest import REPO_ROOT
from .test_models import FAMILIES

DOUBLE = 65600


def _rename_input(spec):
    spec.description.input[0].name = "ids"


def _double_input(spec):
    spec.description.input[0].type.multiArrayType.dataType = DOUBLE


def _rename_output(spec):
    spec.description.output[0].name = "logits"


def _reverse_classes(spec):
    spec.description.metadata.userDefined["classes"] = ",".join(reversed(CLASSES))


def _input_length_19(spec):
    del spec.description.input[0].type.multiArrayType.shape[:]
    spec.description.input[0].type.multiArrayType.shape.extend([1, 19])


def _metadata_length_19(spec):
    spec.description.metadata.userDefined["input_length"] = "19"


def _output_shape_8(spec):
    del spec.description.output[0].type.multiArrayType.shape[:]
    spec.description.output[0].type.multiArrayType.shape.extend([1, 8])


MUTATIONS = {
    "input renamed ids": (
        _rename_input,
        "the input list is ['ids']; the app expects one input named 'input_ids'",
    ),
    "input declared DOUBLE": (
        _double_input,
        "the type of input 'input_ids' is DOUBLE; the app expects INT32",
    ),
    "output renamed logits": (
        _rename_output,
        "the output list is ['logits']; the app expects an output named",
    ),
    "class list reversed": (_reverse_classes, "the class list in the metadata is 'ru_from_he,"),
    "input length 19": (
        _input_length_19,
        "the shape of input 'input_ids' is [1, 19]; the app expects [1, 20]",
    ),
    "metadata input_length 19": (
        _metadata_length_19,
        "the metadata input_length is '19'; the app expects '20'",
    ),
    "output shape [1, 8]": (
        _output_shape_8,
        "the shape of output 'classLogits' is [1, 8]; the app expects [1, 9]",
    ),
}


def mutate(artifact: Path, change) -> None:
    """Change the spec of a saved artifact in place (the description the app reads)."""
    spec, model_file = read_spec(artifact)
    change(spec)
    model_file.write_bytes(spec.SerializeToString())


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """One good artifact per format (compact CNN)."""
    root = tmp_path_factory.mktemp("interface")
    artifacts = {}
    for fmt in ("neuralnetwork", "mlprogram"):
        settings = ExportSettings(format=fmt, parity_samples=8, random_samples=8, parity_vectors=8)
        result = export_model(FAMILIES["compact_cnn"]().eval(), settings, root / fmt, ModelInfo())
        artifacts[fmt] = Path(result.path)
    return artifacts


def copy_of(artifact: Path, where: Path) -> Path:
    where.mkdir(parents=True, exist_ok=True)
    target = where / artifact.name
    (shutil.copytree if artifact.is_dir() else shutil.copy)(artifact, target)
    return target


@pytest.mark.parametrize("fmt", ["neuralnetwork", "mlprogram"])
def test_good_artifact_keeps_the_contract(exported, fmt):
    interface = read_interface(exported[fmt])
    assert (interface.input_name, interface.input_type, interface.input_shape) == (
        "input_ids",
        "INT32",
        (1, 20),
    )
    assert interface.output_name == "classLogits" and interface.format == fmt
    artifact = open_artifact(exported[fmt])
    assert artifact.logits(artifact_ids()).shape == (2, 9)


def artifact_ids():
    import numpy as np

    return np.zeros((2, 20), dtype=np.int32)


@pytest.mark.parametrize("fmt", ["neuralnetwork", "mlprogram"])
@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_mutated_artifact_is_refused_by_open_and_evaluate(exported, tmp_path, fmt, mutation):
    change, expected = MUTATIONS[mutation]
    artifact = copy_of(exported[fmt], tmp_path)
    mutate(artifact, change)
    with pytest.raises(InterfaceError) as info:
        open_artifact(artifact)
    assert expected in str(info.value) and str(artifact) in str(info.value)
    with pytest.raises(InterfaceError, match="the app expects"):
        open_model(artifact)  # what evaluate and predict open a model file with


def compose_validate(overrides):
    with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base="1.3"):
        return compose("validate", overrides=overrides)


@pytest.mark.parametrize("fmt", ["neuralnetwork", "mlprogram"])
@pytest.mark.parametrize(
    "mutation", ["input declared DOUBLE", "output renamed logits", "class list reversed"]
)
def test_validate_refuses_a_mutated_artifact_before_loading_any_weights(exported, tmp_path, fmt, mutation):
    change, expected = MUTATIONS[mutation]
    artifact = copy_of(exported[fmt], tmp_path / "export")
    mutate(artifact, change)
    # the checkpoint does not exist: the interface is refused before it would be read
    cfg = compose_validate(
        [
            f"artifact={artifact}",
            f"ckpt_path={tmp_path / 'missing.ckpt'}",
            f"paths.output_dir={tmp_path / 'run'}",
        ]
    )
    with pytest.raises(ExportFailure, match="the app expects") as info:
        validate_artifact(cfg)
    assert expected in str(info.value) and info.value.result.status == "failed"


@pytest.mark.parametrize("fmt", ["neuralnetwork", "mlprogram"])
@pytest.mark.parametrize("mutation", ["input renamed ids", "input declared DOUBLE", "class list reversed"])
def test_export_refuses_a_converted_model_that_breaks_the_interface(tmp_path, monkeypatch, fmt, mutation):
    import layoutnet.export.pipeline as pipeline

    change, expected = MUTATIONS[mutation]
    real_convert = pipeline.convert

    def broken_convert(*args, **kwargs):
        model = real_convert(*args, **kwargs)
        spec = model.get_spec()
        change(spec)
        import coremltools as ct

        return ct.models.MLModel(spec, weights_dir=model.weights_dir, skip_model_load=True)

    monkeypatch.setattr(pipeline, "convert", broken_convert)
    settings = ExportSettings(format=fmt, parity_samples=8, random_samples=8, parity_vectors=8)
    with pytest.raises(ExportFailure, match="the app expects") as info:
        export_model(FAMILIES["compact_cnn"]().eval(), settings, tmp_path / "export", ModelInfo())
    assert expected in str(info.value)
    result = info.value.result
    assert result.parity is None  # refused before any number
    assert not list((tmp_path / "export").glob("LayoutClassifier.*"))
