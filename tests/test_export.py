"""The export pipeline on Linux: every family x format passes parity of the saved artifact;
a corrupted artifact fails parity and never replaces a good one; untraceable models write nothing."""

from __future__ import annotations

import itertools
import json

import coremltools as ct
import numpy as np
import pytest
import torch

from layoutnet.contract import CLASSES, SEQ_LEN
from layoutnet.errors import ExportError
from layoutnet.export.parity import build_parity_samples, check_parity
from layoutnet.export.pipeline import ModelInfo, export_model
from layoutnet.export.settings import ExportSettings

from .test_models import FAMILIES, ShapeDependent


def val_rows(n=300, seed=0):
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, 189, (n, SEQ_LEN), generator=generator)
    lengths = torch.randint(1, SEQ_LEN + 1, (n,), generator=generator)
    ids[torch.arange(SEQ_LEN)[None, :] >= lengths[:, None]] = 0
    return ids, torch.randint(0, len(CLASSES), (n,), generator=generator)


def randomise_batchnorm(model):
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm1d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    return model.eval()


def settings(fmt, precision="fp32", **kw):
    return ExportSettings(
        format=fmt, precision=precision, parity_samples=300, random_samples=30, parity_vectors=40, **kw
    )


FORMATS = [("neuralnetwork", "fp32"), ("mlprogram", "fp32"), ("mlprogram", "fp16")]


@pytest.mark.parametrize(("fmt", "precision"), FORMATS, ids=["nn", "mlprogram", "mlprogram-fp16"])
@pytest.mark.parametrize("family", ["cnn_crop", "compact_cnn", "transformer_post_mask", "ensemble"])
def test_family_exports_and_passes_parity(tmp_path, family, fmt, precision):
    torch.manual_seed(0)
    model = randomise_batchnorm(FAMILIES[family]())
    ids, labels = val_rows()
    section = export_model(
        model, settings(fmt, precision), tmp_path, ModelInfo(run_id="t", val_accuracy=0.5), ids, labels
    )
    assert section["status"] == "ok"
    parity = section["parity"]
    assert parity["backend"] == "reference-executor"
    assert parity["passed"] and parity["max_prob_diff"] <= 0.01
    assert parity["samples"] == 300 + 30 + 12 and parity["labelled_samples"] == 300
    assert parity["argmax_agreement"] >= 0.99
    limit = 1e-4 if precision == "fp32" else 0.01
    assert parity["max_prob_diff"] <= limit
    artifact = tmp_path / ("LayoutClassifier.mlpackage" if fmt == "mlprogram" else "LayoutClassifier.mlmodel")
    assert section["path"] == str(artifact) and artifact.exists()
    vectors = json.loads((tmp_path / "parity_vectors.json").read_text())
    assert vectors["classes"] == list(CLASSES) and len(vectors["vectors"]) >= 40
    first = vectors["vectors"][0]
    assert len(first["input_ids"]) == SEQ_LEN and abs(sum(first["probabilities"]) - 1) < 1e-4


def test_artifact_carries_contract_and_provenance_metadata(tmp_path):
    model = FAMILIES["compact_cnn"]().eval()
    export_model(model, settings("neuralnetwork"), tmp_path, ModelInfo(run_id="run-42", val_accuracy=0.97))
    spec = ct.utils.load_spec(str(tmp_path / "LayoutClassifier.mlmodel"))
    meta = dict(spec.description.metadata.userDefined)
    assert meta["classes"].split(",") == list(CLASSES)
    assert meta["input_length"] == "20" and len(meta["alphabet"]) == 188
    assert meta["training_run_id"] == "run-42" and meta["validation_accuracy"] == "0.970000"
    assert meta["model_family"] == "cnn" and int(meta["parameter_count"]) > 0
    assert {"layoutnet_version", "torch_version", "coremltools_version"} <= set(meta)
    assert spec.description.input[0].name == "input_ids"
    assert (
        spec.description.input[0].type.multiArrayType.dataType
        == ct.proto.FeatureTypes_pb2.ArrayFeatureType.INT32
    )
    assert spec.description.output[0].name == "classLogits"


def test_untraceable_model_writes_nothing(tmp_path):
    section: dict = {}
    with pytest.raises(ExportError, match="TracerWarning"):
        export_model(
            ShapeDependent(), settings("neuralnetwork"), tmp_path / "export", ModelInfo(), section=section
        )
    assert section["status"] == "failed" and "TracerWarning" in section["error"]
    assert not (tmp_path / "export").exists() or not any((tmp_path / "export").iterdir())


def corrupt_mlpackage_weights(path):
    """Overwrite the middle of the largest weight payload in weight.bin (headers left intact)."""
    blob = next(path.rglob("weight.bin"))
    data = bytearray(blob.read_bytes())
    sentinel = (0xDEADBEEF).to_bytes(4, "little")
    starts = [i for i in range(0, len(data), 64) if data[i : i + 4] == sentinel] + [len(data)]
    begin, end = max(itertools.pairwise(starts), key=lambda pair: pair[1] - pair[0])
    payload_start = begin + 64
    size = min(4096, (end - payload_start) // 2)
    middle = payload_start + (end - payload_start - size) // 2
    data[middle : middle + size] = np.random.default_rng(0).integers(0, 256, size, dtype=np.uint8).tobytes()
    blob.write_bytes(bytes(data))


def corrupt_mlmodel_weight(path):
    spec = ct.utils.load_spec(str(path))
    for layer in spec.neuralNetwork.layers:
        if layer.WhichOneof("layer") == "innerProduct":
            weights = layer.innerProduct.weights.floatValue
            for i in range(len(weights)):
                weights[i] = weights[i] * -3.0 + 0.5
            break
    ct.utils.save_spec(spec, str(path))


@pytest.mark.parametrize("fmt", ["mlprogram", "neuralnetwork"])
def test_corrupted_artifact_fails_parity_and_good_artifact_stays(tmp_path, fmt, monkeypatch):
    torch.manual_seed(0)
    model = randomise_batchnorm(FAMILIES["cnn_same"]())
    ids, labels = val_rows()
    good = export_model(model, settings(fmt), tmp_path, ModelInfo(), ids, labels)
    target = tmp_path / ("LayoutClassifier.mlpackage" if fmt == "mlprogram" else "LayoutClassifier.mlmodel")
    good_bytes = sorted(
        (p.name, p.read_bytes()) for p in ([target] if target.is_file() else target.rglob("*")) if p.is_file()
    )

    # Parity of a corrupted copy of the saved artifact fails.
    corrupted = tmp_path / "copy" / target.name
    corrupted.parent.mkdir()
    import shutil

    (shutil.copytree if target.is_dir() else shutil.copy)(target, corrupted)
    (corrupt_mlpackage_weights if fmt == "mlprogram" else corrupt_mlmodel_weight)(corrupted)
    samples = build_parity_samples(ids, labels, 300, 30)
    assert not check_parity(corrupted, model, samples, 0.01).passed

    # An export whose saved file is corrupted before validation fails and leaves the good one in place.
    import layoutnet.export.pipeline as pipeline

    real_convert = pipeline.convert

    class CorruptingModel:
        def __init__(self, mlmodel):
            self.mlmodel = mlmodel

        def save(self, path):
            self.mlmodel.save(path)
            from pathlib import Path

            (corrupt_mlpackage_weights if fmt == "mlprogram" else corrupt_mlmodel_weight)(Path(path))

    monkeypatch.setattr(pipeline, "convert", lambda *a, **k: CorruptingModel(real_convert(*a, **k)))
    section: dict = {}
    with pytest.raises(ExportError, match="parity failed") as info:
        export_model(model, settings(fmt), tmp_path, ModelInfo(), ids, labels, section)
    assert "worst sample" in str(info.value) and "pytorch:" in str(info.value)
    assert section["status"] == "failed" and section["parity"]["passed"] is False
    after = sorted(
        (p.name, p.read_bytes()) for p in ([target] if target.is_file() else target.rglob("*")) if p.is_file()
    )
    assert after == good_bytes and good["status"] == "ok"
    failed = list((tmp_path / "failed").iterdir())
    assert len(failed) == 1 and "parity failed" in (failed[0] / "reason.txt").read_text()
    assert (failed[0] / target.name).exists()
