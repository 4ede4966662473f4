"""The export pipeline on Linux: every family x format x front end passes parity of the saved
artifact at fp32, fp16 storage and fp16 arithmetic; the app's precision decides; a corrupted artifact
fails parity and never replaces a good one; uncapturable models write nothing; warnings are reported."""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import coremltools as ct
import numpy as np
import pytest
import torch
from torch import nn

from layoutnet.contract import CLASSES, SEQ_LEN
from layoutnet.errors import ConfigError, ExportError
from layoutnet.export.parity import build_parity_samples, check_parity
from layoutnet.export.pipeline import ModelInfo, export_model
from layoutnet.export.result import ExportFailure
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
    kw = {"fp16_arithmetic_samples": 0, **kw}  # small models: every row at every precision
    return ExportSettings(
        format=fmt, precision=precision, parity_samples=300, random_samples=30, parity_vectors=40, **kw
    )


def artifact_name(fmt):
    return "LayoutClassifier.mlpackage" if fmt == "mlprogram" else "LayoutClassifier.mlmodel"


FORMATS = [("neuralnetwork", "fp32"), ("mlprogram", "fp32"), ("mlprogram", "fp16")]


@pytest.mark.parametrize(("fmt", "precision"), FORMATS, ids=["nn", "mlprogram", "mlprogram-fp16"])
@pytest.mark.parametrize("family", ["cnn_crop", "compact_cnn", "transformer_post_mask", "ensemble"])
def test_family_exports_and_passes_parity_at_every_precision(tmp_path, family, fmt, precision):
    torch.manual_seed(0)
    model = randomise_batchnorm(FAMILIES[family]())
    ids, labels = val_rows()
    result = export_model(
        model,
        settings(fmt, precision, app_precision="fp16_sequential"),  # the whole bracket must pass
        tmp_path,
        ModelInfo(run_id="t", val_accuracy=0.5),
        ids,
        labels,
    )
    assert result.status == "ok"
    parity = result.parity
    assert parity["backend"] == "reference-executor" and parity["precision"] in parity["required"]
    modes = ["fp32", "fp16_storage", "fp16_wide", "fp16", "fp16_sequential"]
    assert parity["passed"] and parity["required"] == modes[precision == "fp16" :]
    assert parity["max_prob_diff"] <= 0.01
    assert parity["samples"] == 300 + 30 + 12 and parity["labelled_samples"] == 300
    by_precision = result.parity_by_precision
    assert set(by_precision) == set(modes)
    assert all(result.range_guards[g]["passed"] for g in ("values", "matrix_outputs", "accumulators"))
    assert all(p["argmax_agreement"] >= 0.99 for p in by_precision.values())
    if precision == "fp32":
        assert by_precision["fp32"]["max_prob_diff"] <= 1e-4
    assert result.accuracy["torch"] is not None and result.accuracy["labelled_samples"] == 300
    artifact = tmp_path / artifact_name(fmt)
    assert result.path == str(artifact) and artifact.exists()
    assert (
        result.artifact_size_bytes > 0
        and result.section()["artifact_size_bytes"] == result.artifact_size_bytes
    )
    vectors = json.loads((tmp_path / "parity_vectors.json").read_text())
    assert vectors["classes"] == list(CLASSES) and len(vectors["vectors"]) >= 40
    first = vectors["vectors"][0]
    assert len(first["input_ids"]) == SEQ_LEN and abs(sum(first["probabilities"]) - 1) < 1e-4


@pytest.mark.parametrize("fmt", ["neuralnetwork", "mlprogram"])
@pytest.mark.parametrize("family", ["cnn_crop", "compact_cnn", "transformer_post_mask", "ensemble"])
def test_torch_export_front_end_passes_parity(tmp_path, family, fmt):
    torch.manual_seed(0)
    model = randomise_batchnorm(FAMILIES[family]())
    ids, labels = val_rows(120)
    result = export_model(model, settings(fmt, frontend="torch_export"), tmp_path, ModelInfo(), ids, labels)
    assert result.status == "ok" and result.frontend == "torch_export"
    assert (
        result.capture["frontend"] == "torch_export" and result.capture["max_captured_vs_eager_diff"] <= 1e-4
    )
    assert result.parity_by_precision["fp32"]["max_prob_diff"] <= 1e-4 and result.parity["passed"]
    spec = ct.utils.load_spec(str(tmp_path / artifact_name(fmt)))
    assert spec.description.metadata.userDefined["frontend"] == "torch_export"
    assert (
        spec.description.input[0].type.multiArrayType.dataType
        == ct.proto.FeatureTypes_pb2.ArrayFeatureType.INT32
    )
    assert json.loads((tmp_path / "manifest.json").read_text())["frontend"] == "torch_export"


class DataDependent(nn.Module):
    """Reads the number of non-padding ids into Python: no single graph computes it."""

    def __init__(self):
        super().__init__()
        self.head = nn.Linear(1, len(CLASSES))

    def forward(self, ids):
        length = int((ids > 0).sum())
        return self.head(torch.ones(1, 1) * length)


class Wrapper(nn.Module):
    def __init__(self):
        super().__init__()
        self.counter = DataDependent()

    def forward(self, ids):
        return self.counter(ids)


def test_torch_export_of_a_data_dependent_model_names_the_module_and_writes_nothing(tmp_path):
    with pytest.raises(
        ExportFailure, match=r"torch.export failed in module 'counter' \(DataDependent"
    ) as info:
        export_model(
            Wrapper(), settings("neuralnetwork", frontend="torch_export"), tmp_path / "export", ModelInfo()
        )
    assert info.value.result.status == "failed" and info.value.result.frontend == "torch_export"
    assert not (tmp_path / "export").exists()


def test_artifact_carries_contract_provenance_and_app_metadata(tmp_path):
    model = FAMILIES["compact_cnn"]().eval()
    info = ModelInfo(run_id="run-42", val_accuracy=0.97, app_metadata={"correction_threshold": "0.8"})
    result = export_model(model, settings("neuralnetwork"), tmp_path, info)
    spec = ct.utils.load_spec(str(tmp_path / "LayoutClassifier.mlmodel"))
    meta = dict(spec.description.metadata.userDefined)
    assert meta["classes"].split(",") == list(CLASSES)
    assert meta["input_length"] == "20" and len(meta["alphabet"]) == 188
    assert meta["training_run_id"] == "run-42" and meta["validation_accuracy"] == "0.970000"
    assert meta["model_family"] == "compact_cnn" and int(meta["parameter_count"]) > 0
    assert {"layoutnet_version", "torch_version", "coremltools_version"} <= set(meta)
    assert (meta["format"], meta["precision"], meta["frontend"], meta["compression"]) == (
        "neuralnetwork",
        "fp32",
        "trace",
        "none",
    )
    assert meta["correction_threshold"] == "0.8"
    assert json.loads((tmp_path / "parity_vectors.json").read_text())["app_metadata"] == {
        "correction_threshold": "0.8"
    }
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert (
        manifest["app_metadata"] == {"correction_threshold": "0.8"}
        and result.app_metadata == manifest["app_metadata"]
    )
    assert manifest["artifact"] == "LayoutClassifier.mlmodel" and set(manifest["files"]) == {
        "LayoutClassifier.mlmodel"
    }
    assert manifest["contract"]["classes"] == ",".join(CLASSES) and manifest["parity"]["passed"]
    assert spec.description.input[0].name == "input_ids"
    assert (
        spec.description.input[0].type.multiArrayType.dataType
        == ct.proto.FeatureTypes_pb2.ArrayFeatureType.INT32
    )
    assert spec.description.output[0].name == "classLogits"


def test_app_metadata_from_settings_and_clashing_keys_are_refused(tmp_path):
    model = FAMILIES["compact_cnn"]().eval()
    result = export_model(
        model, settings("neuralnetwork", app_metadata={"correction_threshold": "0.5"}), tmp_path, ModelInfo()
    )
    assert result.app_metadata == {"correction_threshold": "0.5"}
    with pytest.raises(ExportError, match="'classes' would overwrite"):
        export_model(
            model, settings("neuralnetwork"), tmp_path / "b", ModelInfo(app_metadata={"classes": "x"})
        )


def test_untraceable_model_writes_nothing(tmp_path):
    with pytest.raises(ExportFailure, match="TracerWarning") as info:
        export_model(ShapeDependent(), settings("neuralnetwork"), tmp_path / "export", ModelInfo())
    assert info.value.result.status == "failed" and "TracerWarning" in info.value.result.error
    assert not (tmp_path / "export").exists() or not any((tmp_path / "export").iterdir())


def test_app_precision_decides_which_parity_must_pass(tmp_path):
    """fp32 arithmetic agrees to ~1e-7, fp16 arithmetic to ~1e-4: a 1e-6 tolerance passes at
    app_precision=fp32 and fails at fp16 (the default, a bracket from fp32 to the fp16 tree) or fp16
    storage, and every export reports every precision of the device bracket."""
    torch.manual_seed(0)
    model = randomise_batchnorm(FAMILIES["cnn_same"]())
    ids, labels = val_rows(100)
    ok = export_model(
        model,
        settings("neuralnetwork", tolerance=1e-6, app_precision="fp32"),
        tmp_path / "a",
        ModelInfo(),
        ids,
        labels,
    )
    assert ok.parity["required"] == ["fp32"] and not ok.parity_by_precision["fp16"]["passed"]
    assert set(ok.parity_by_precision) == {"fp32", "fp16_storage", "fp16_wide", "fp16", "fp16_sequential"}
    failed_at = r"parity failed at fp16_storage, fp16_wide, fp16 \(in the bracket of export.app_precision"
    with pytest.raises(ExportFailure, match=failed_at) as info:
        export_model(
            model,
            settings("neuralnetwork", tolerance=1e-6, app_precision="fp16"),
            tmp_path / "b",
            ModelInfo(),
            ids,
            labels,
        )
    assert info.value.result.parity_by_precision["fp32"]["passed"]
    assert not (tmp_path / "b" / "LayoutClassifier.mlmodel").exists()


def test_the_app_precision_names_a_bracket_and_an_fp16_file_is_never_held_to_fp32_parity():
    from layoutnet.export.parity import bracket

    assert bracket("fp32", "fp16") == ["fp16_storage"]
    assert bracket("fp32", "fp32") == ["fp32"]
    # compute units .all with MLModelConfiguration() defaults: CPU, GPU (fp32 accumulation), Neural Engine
    assert bracket("fp16", "fp32") == ["fp32", "fp16_storage", "fp16_wide", "fp16"]
    assert bracket("fp16_sequential", "fp16") == ["fp16_storage", "fp16_wide", "fp16", "fp16_sequential"]


def test_warnings_of_torch_and_coremltools_are_reported_once(tmp_path, capsys):
    import coremltools._deps as deps
    from packaging.version import Version

    model = FAMILIES["compact_cnn"]().eval()
    result = export_model(model, settings("neuralnetwork"), tmp_path, ModelInfo())
    from layoutnet.reporting.record import record_export

    record_export(tmp_path / "run", result)
    messages = [w["message"] for w in result.warnings]
    assert any("torch.jit.trace` is deprecated" in m for m in messages)
    assert len(messages) == len(set(messages))
    if Version(torch.__version__.split("+")[0]) > Version(deps._TORCH_MAX_VERSION):
        assert any("has not been tested with coremltools" in m for m in messages)
    assert not any(m.startswith("Failed to load") for m in messages)
    assert result.versions["torch"] == torch.__version__ and result.versions["coremltools"] == ct.__version__
    out = capsys.readouterr().out
    assert out.count("`torch.jit.trace`") == 1  # once, however the table wraps it
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["export"]["warnings"] == result.warnings


def test_coremltools_scikit_learn_converter_notice_is_not_reported():
    # coremltools checks scikit-learn's version on import to enable its sklearn-model converters, which
    # layoutnet never uses (k-means palettization imports sklearn.cluster itself): not an export warning.
    import logging

    from layoutnet.export.notices import NoticeCollector

    logger = logging.getLogger("coremltools")
    with NoticeCollector() as notices:
        logger.warning(
            "scikit-learn version 9.9.1 is not supported. Minimum required version: 0.17. Maximum "
            "required version: 1.5.1. Disabling scikit-learn conversion API."
        )
        logger.warning("an untested torch")
    assert [n.message for n in notices.items if "scikit-learn" in n.message] == []
    assert "an untested torch" in [n.message for n in notices.items]


def test_coremltools_progress_bars_are_not_drawn(tmp_path, capsys):
    export_model(FAMILIES["compact_cnn"]().eval(), settings("mlprogram"), tmp_path, ModelInfo())
    captured = capsys.readouterr()
    assert "Running MIL" not in captured.err + captured.out
    assert "Converting PyTorch Frontend" not in captured.err + captured.out


def test_compression_needs_an_ml_program():
    with pytest.raises(ConfigError) as info:
        ExportSettings(compression="int8").check()
    assert info.value.key == "export.compression" and "export.format=mlprogram" in str(info.value)
    with pytest.raises(ConfigError) as info:
        ExportSettings(
            format="mlprogram",
            compression="palettize4",
            compression_granularity="per_grouped_channel",
            minimum_deployment_target="iOS17",
        ).check()
    assert info.value.key == "export.compression_granularity" and "iOS18" in str(info.value)


LOOSE_BUDGET = {"realtext_points": 100.0, "validation_points": 100.0, "harm_points": 100.0}


@pytest.fixture(scope="module")
def ensemble_and_rows():
    torch.manual_seed(0)
    return randomise_batchnorm(FAMILIES["ensemble"]()), *val_rows(200)


@pytest.mark.parametrize("level", ["int8", "palettize6", "palettize4"])
def test_compressed_artifact_publishes_at_the_default_tolerance_against_its_own_weights(
    tmp_path, level, ensemble_and_rows
):
    """Parity of a compressed file is with the model carrying the file's decompressed weights: fp32
    agrees to float32 rounding and every precision stays within the default 0.01, while the cost
    against the uncompressed model is reported beside it; the parity vectors hold what the file
    computes."""
    from layoutnet.export.executor import load_executor

    model, ids, labels = ensemble_and_rows
    plain = export_model(model, settings("mlprogram"), tmp_path / "plain", ModelInfo(), ids, labels)
    result = export_model(
        model,
        settings("mlprogram", compression=level, compression_budget=LOOSE_BUDGET),
        tmp_path / level,
        ModelInfo(),
        ids,
        labels,
    )
    assert result.compression == level and result.artifact_size_bytes < plain.artifact_size_bytes
    assert result.parity["passed"] and result.parity["tolerance"] == 0.01
    assert set(result.parity_by_precision) == {"fp32", "fp16_storage", "fp16_wide", "fp16", "fp16_sequential"}
    assert result.parity_by_precision["fp32"]["max_prob_diff"] < 1e-5
    cost = result.compression_cost
    assert cost["level"] == level and cost["uncompressed_size_bytes"] == pytest.approx(
        plain.artifact_size_bytes, rel=0.02
    )
    assert cost["size_ratio"] == result.artifact_size_bytes / cost["uncompressed_size_bytes"] < 1
    assert cost["weights_read_back"] >= 1 and cost["validation"]["rows"] == 200
    from layoutnet.quality import REALTEXT_SPLITS

    assert set(cost["realtext"]) == set(REALTEXT_SPLITS)
    artifact = tmp_path / level / "LayoutClassifier.mlpackage"
    executor = load_executor(artifact, precision="fp32")
    assert any(t.startswith("constexpr_") for t in executor.op_types)
    manifest = json.loads((tmp_path / level / "manifest.json").read_text())
    assert manifest["compression"] == level and manifest["compression_cost"] == json.loads(json.dumps(cost))
    vectors = json.loads((tmp_path / level / "parity_vectors.json").read_text())["vectors"]
    ours = executor.predict(np.array([v["input_ids"] for v in vectors], dtype=np.int32))
    probs = np.exp(ours - ours.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    assert np.abs(probs - np.array([v["probabilities"] for v in vectors])).max() < 1e-5


def test_compression_past_its_budget_is_refused_with_the_figures_and_publishes_nothing(
    tmp_path, ensemble_and_rows
):
    model, ids, labels = ensemble_and_rows
    strict = {"realtext_points": 0.0, "validation_points": 0.0, "harm_points": 0.0}
    with pytest.raises(ExportFailure, match=r"costs more than export\.compression_budget allows") as info:
        export_model(
            model,
            settings("mlprogram", compression="palettize4", compression_budget=strict),
            tmp_path,
            ModelInfo(),
            ids,
            labels,
        )
    cost = info.value.result.compression_cost
    assert not cost["within_budget"] and cost["over_budget"]
    assert cost["over_budget"][0].split(" (budget")[0] in str(info.value)
    assert not (tmp_path / "LayoutClassifier.mlpackage").exists()


def test_compression_cost_counts_points_lost_and_harm_added_against_the_budget():
    from layoutnet.export.compression import CompressionCost
    from layoutnet.export.settings import CompressionBudget

    figures = {"points_lost": 0.15, "harm_added_points": 0.0}
    cost = CompressionCost("int8", 0.7, 0.71, {"points_lost": 0.1}, {"words": dict(figures)})
    assert cost.violations(CompressionBudget()) == []
    cost.realtext["words"]["points_lost"] = 0.25
    cost.realtext["short"] = {"points_lost": -1.0, "harm_added_points": 0.25}
    over = cost.violations(CompressionBudget())
    assert len(over) == 2 and "words accuracy -0.25 points" in over[0] and "short harmful" in over[1]
    assert cost.violations(CompressionBudget(realtext_points=0.3, harm_points=0.3)) == []


def test_auto_publishes_the_smallest_level_within_the_budget_and_says_what_it_tried(
    tmp_path, ensemble_and_rows, capsys
):
    from rich.console import Console

    from layoutnet.export.settings import LEVELS_BY_SIZE
    from layoutnet.reporting.console import print_export_summary

    model, ids, labels = ensemble_and_rows
    tight = {"realtext_points": 0.2, "validation_points": 0.5, "harm_points": 0.2}
    result = export_model(
        model,
        settings("mlprogram", compression="auto", compression_budget=tight),
        tmp_path,
        ModelInfo(),
        ids,
        labels,
    )
    tried = result.compression_trials
    assert [t["level"] for t in tried] == list(LEVELS_BY_SIZE[: len(tried)])
    assert tried[-1]["outcome"] == "published" and result.compression == tried[-1]["level"]
    assert all(not t["within_budget"] and "costs more" in t["outcome"] for t in tried[:-1])
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["compression"] == result.compression and manifest["settings"]["compression"] == "auto"
    assert manifest["compression_trials"] == tried
    print_export_summary(result, Console(width=200))
    out = capsys.readouterr().out
    assert all(f"auto tried {t['level']}" in out for t in tried)
    loose = export_model(
        model,
        settings("mlprogram", compression="auto", compression_budget=LOOSE_BUDGET),
        tmp_path / "loose",
        ModelInfo(),
        ids,
        labels,
    )
    assert loose.compression == "palettize4" and len(loose.compression_trials) == 1


def test_asking_for_compression_raises_the_deployment_target_unless_one_is_pinned():
    assert ExportSettings(format="mlprogram").deployment_target == "iOS15"
    assert ExportSettings(format="mlprogram", compression="int8").deployment_target == "iOS16"
    assert ExportSettings(format="mlprogram", compression="auto").deployment_target == "iOS16"
    grouped = ExportSettings(
        format="mlprogram", compression="palettize4", compression_granularity="per_grouped_channel"
    )
    grouped.check()
    assert grouped.deployment_target == "iOS18"
    with pytest.raises(ConfigError, match="compressed weights need iOS16"):
        ExportSettings(format="mlprogram", compression="int8", minimum_deployment_target="iOS15").check()
    with pytest.raises(ConfigError) as info:
        ExportSettings(format="mlprogram", compression="auto", compression_mode="uniform").check()
    assert info.value.key == "export.compression_mode"


@pytest.mark.parametrize("preset", ["mlprogram", "mlprogram_fp16"])
def test_the_ml_program_presets_take_compression_without_a_target_of_their_own(preset):
    from tests.test_config import compose_train

    cfg = compose_train([f"export={preset}", "export.compression=int8"])
    assert ExportSettings.from_config(cfg.export).deployment_target == "iOS16"
    pinned = compose_train(
        [f"export={preset}", "export.compression=int8", "export.minimum_deployment_target=iOS15"]
    )
    with pytest.raises(ConfigError, match="compressed weights need iOS16"):
        ExportSettings.from_config(pinned.export)
    budget = compose_train(["export.compression_budget.realtext_points=0.5"]).export
    assert ExportSettings.from_config(budget).compression_budget.realtext_points == 0.5
    with pytest.raises(ConfigError) as info:
        ExportSettings.from_config({"compression_budget": {"points": 1}})
    assert info.value.key == "export.compression_budget.points"


class Loud(nn.Module):
    """Every row's hidden layer reaches ~40,000: fp16 holds it (below 65504), the Neural Engine's
    matrix outputs, as reverse-engineered, do not (32768)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.embedding = nn.Embedding(189, 8)
        self.big = nn.Linear(8, 8, bias=False)
        self.small = nn.Linear(8, 9)
        with torch.no_grad():
            self.embedding.weight.uniform_(0.9, 1.1)
            self.big.weight.fill_(5000.0)
            self.small.weight.normal_(0.0, 1.0 / 40000)

    def forward(self, ids):
        return self.small(self.big(self.embedding(ids).mean(1)))


def test_range_guards_refuse_matrix_outputs_past_the_neural_engine_ceiling_at_the_default_bracket(tmp_path):
    ids, labels = val_rows(60)
    with pytest.raises(
        ExportFailure, match=r"range guard matrix_outputs failed: linear_\d+ \(linear\)"
    ) as info:
        export_model(Loud().eval(), settings("mlprogram"), tmp_path / "all", ModelInfo(), ids, labels)
    guards = info.value.result.range_guards
    assert guards["matrix_outputs"]["gates"] and not guards["matrix_outputs"]["passed"]
    assert 32768 < guards["matrix_outputs"]["largest"] < 65504 and guards["values"]["passed"]
    assert info.value.result.parity_by_precision["fp16_wide"]["passed"]  # the numbers alone agree
    gpu = export_model(
        Loud().eval(),
        settings("mlprogram", app_precision="fp16_storage"),
        tmp_path / "gpu",
        ModelInfo(),
        ids,
        labels,
    )
    assert (
        gpu.range_guards["matrix_outputs"]["passed"] is False
        and not gpu.range_guards["matrix_outputs"]["gates"]
    )
    assert gpu.range_guards["values"]["margin"] == pytest.approx(
        65504 / gpu.range_guards["values"]["largest"]
    )


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
    target = tmp_path / artifact_name(fmt)
    good_vectors = (tmp_path / "parity_vectors.json").read_bytes()
    good_bytes = sorted(
        (p.name, p.read_bytes()) for p in ([target] if target.is_file() else target.rglob("*")) if p.is_file()
    )

    # Parity of a corrupted copy of the saved artifact fails.
    corrupted = tmp_path / "copy" / target.name
    corrupted.parent.mkdir()
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
            (corrupt_mlpackage_weights if fmt == "mlprogram" else corrupt_mlmodel_weight)(Path(path))

    monkeypatch.setattr(pipeline, "convert", lambda *a, **k: CorruptingModel(real_convert(*a, **k)))
    with pytest.raises(ExportFailure, match="parity failed") as info:
        export_model(model, settings(fmt), tmp_path, ModelInfo(), ids, labels)
    assert "worst sample" in str(info.value) and "pytorch:" in str(info.value)
    assert info.value.result.status == "failed" and info.value.result.parity["passed"] is False
    after = sorted(
        (p.name, p.read_bytes()) for p in ([target] if target.is_file() else target.rglob("*")) if p.is_file()
    )
    assert after == good_bytes and good.status == "ok"
    assert (tmp_path / "parity_vectors.json").read_bytes() == good_vectors
    failed = list((tmp_path / "failed").iterdir())
    assert len(failed) == 1 and "parity failed" in (failed[0] / "reason.txt").read_text()
    assert (failed[0] / target.name).exists()


def test_export_measures_the_correction_threshold_on_the_real_text_words(tmp_path):
    from layoutnet.export.executor import read_spec
    from layoutnet.quality import correction_threshold

    model = FAMILIES["compact_cnn"]().eval()
    result = export_model(model, settings("neuralnetwork"), tmp_path, ModelInfo())
    expected = correction_threshold(model)
    assert float(result.app_metadata["correction_threshold"]) == expected
    spec, _ = read_spec(tmp_path / "LayoutClassifier.mlmodel")
    assert float(spec.description.metadata.userDefined["correction_threshold"]) == expected
    vectors = json.loads((tmp_path / "parity_vectors.json").read_text())
    assert float(vectors["app_metadata"]["correction_threshold"]) == expected


def test_fp16_arithmetic_parity_runs_on_a_spread_of_rows_with_every_edge_case(tmp_path):
    from layoutnet.export.parity import EDGE_TEXTS

    model = FAMILIES["compact_cnn"]().eval()
    ids, labels = val_rows()
    result = export_model(
        model,
        settings("neuralnetwork", fp16_arithmetic_samples=40, app_precision="fp16"),
        tmp_path,
        ModelInfo(),
        ids,
        labels,
    )
    assert result.parity["precision"] == "fp16" and result.parity["samples"] == 40
    samples = build_parity_samples(ids, labels, 300, 30)
    check = check_parity(tmp_path / "LayoutClassifier.mlmodel", model, samples, 0.01, "fp16", "fp32", 40)
    assert check.results["fp32"].samples == check.results["fp16_storage"].samples == 342
    assert check.results["fp16"].samples == 40
    index = samples.spread(40)
    assert len(index) == 40 and list(index[-len(EDGE_TEXTS) :]) == list(range(330, 342))
    assert len(samples.spread(0)) == len(samples.spread(10_000)) == 342
