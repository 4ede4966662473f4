"""Legacy OMFK state_dicts load onto layoutnet's models and compute the documented functions."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest
import torch
from torch import nn

from layoutnet.errors import CheckpointError, ConfigError
from layoutnet.legacy import (
    LEGACY_ARCHITECTURES,
    LEGACY_PARAMETER_COUNTS,
    LEGACY_SHAPES,
    build_legacy_model,
    convert_state_dict,
    describe_detection,
    detect_architecture,
    init_from_legacy,
    legacy_net_spec,
    load_legacy,
    read_state_dict,
)
from layoutnet.models import CNNClassifier, CompactCNN, count_parameters


def _import_reference():
    spec = importlib.util.spec_from_file_location(
        "legacy_reference", Path(__file__).with_name("legacy_reference.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ref = _import_reference()

SHARED = Path(__file__).resolve().parents[2] / "shared"
V1_FIXTURE = SHARED / "fixtures" / "omfk_v1_model.pth"
ATOL = 1e-5


@pytest.fixture(scope="module")
def legacy_sds() -> dict[str, dict[str, torch.Tensor]]:
    return {arch: ref.random_legacy_state_dict(arch, seed=i) for i, arch in enumerate(LEGACY_ARCHITECTURES)}


def _save(obj: object, path: Path) -> Path:
    torch.save(obj, path)
    return path


def _assert_matches_reference(model: nn.Module, arch: str, sd: dict[str, torch.Tensor]) -> None:
    ids = ref.random_ids(12, seed=7)
    expected = ref.reference_logits(arch, sd, ids)
    assert not model.training
    with torch.no_grad():
        for dtype in (torch.int64, torch.int32):  # the app feeds int32
            got = model(ids.to(dtype))
            assert got.shape == (12, 9) and got.dtype == torch.float32
            diff = (got.double() - expected).abs().max().item()
            assert diff < ATOL, f"{arch}: max |ours - reference| = {diff:.3g}"
    assert expected.abs().max() > 0.05  # the comparison is not between near-zero outputs


# ------------------------------------------------------------------------------------------ architectures


def test_tables_agree_with_the_reference_document():
    for arch in LEGACY_ARCHITECTURES:
        assert list(LEGACY_SHAPES[arch].items()) == list(ref.legacy_shapes(arch).items()), arch
        assert len(LEGACY_SHAPES[arch]) == ref.TENSOR_COUNTS[arch]
        assert LEGACY_PARAMETER_COUNTS[arch] == ref.PARAMETER_COUNTS[arch]


@pytest.mark.parametrize("arch", ["v1", "cnn", "transformer"])
def test_our_models_have_the_legacy_parameter_counts(arch):
    assert count_parameters(build_legacy_model(arch)) == ref.PARAMETER_COUNTS[arch]


@pytest.mark.parametrize("arch", LEGACY_ARCHITECTURES)
def test_random_legacy_state_dict_loads_and_matches_reference(arch, legacy_sds, tmp_path):
    sd = legacy_sds[arch]
    path = _save(sd, tmp_path / "model.pth")
    model, info = load_legacy(path, arch)
    _assert_matches_reference(model, arch, sd)
    assert info["arch"] == arch
    assert info["path"] == str(path)
    assert info["num_tensors"] == ref.TENSOR_COUNTS[arch]
    assert info["num_parameters"] == ref.PARAMETER_COUNTS[arch]
    assert info["notes"] == []
    assert f"{ref.PARAMETER_COUNTS[arch]:,} parameters" in info["description"]


@pytest.mark.parametrize("arch", LEGACY_ARCHITECTURES)
def test_auto_detection(arch, legacy_sds, tmp_path):
    sd = legacy_sds[arch]
    assert detect_architecture(sd) == arch
    model, info = load_legacy(_save(sd, tmp_path / "model.pth"))
    assert info["arch"] == arch
    assert any("detected" in note for note in info["notes"])
    if arch in ("v1", "transformer"):  # the cheap ones; the big ones are compared above
        _assert_matches_reference(model, arch, sd)


def test_converted_names_are_exactly_our_state_dict_names(legacy_sds):
    for arch in LEGACY_ARCHITECTURES:
        converted = convert_state_dict(legacy_sds[arch], arch)
        ours = build_legacy_model(arch).state_dict()
        assert set(converted) == set(ours), arch
        for name, tensor in converted.items():
            assert tensor.shape == ours[name].shape, name


def test_ensemble_gates_go_to_the_combiner_in_member_order(legacy_sds):
    sd = legacy_sds["ensemble"]
    converted = convert_state_dict(sd, "ensemble")
    assert torch.equal(
        converted["combiner.weights"], torch.stack([sd["weight_cnn"], sd["weight_transformer"]])
    )


def test_describe_detection(legacy_sds):
    assert describe_detection(legacy_sds["ensemble"]).startswith(
        "EnsembleModel (ensemble): 92 tensors, 3,462,292 parameters"
    )
    assert "not a legacy" in describe_detection({"x.weight": torch.zeros(3)})


def test_reference_encoder_layer_is_torch_transformer_encoder_layer():
    """The independent reference computes what nn.TransformerEncoderLayer computes (so the
    reference itself is right about the legacy transformer)."""
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(128, 8, 512, dropout=0.0, activation="gelu", batch_first=True).eval()
    x = torch.randn(3, 20, 128)
    sd = {k: v.double() for k, v in layer.state_dict().items()}
    with torch.no_grad():
        expected = layer(x)
    got = ref.encoder_layer(x.double(), sd)
    assert (got - expected.double()).abs().max() < 1e-5


# ------------------------------------------------------------------------------------------ real file


def test_real_v1_checkpoint():
    if not V1_FIXTURE.is_file():
        pytest.skip(f"{V1_FIXTURE} is absent (the shared/ reference directory sits beside the project)")
    sd = read_state_dict(V1_FIXTURE)
    assert detect_architecture(sd) == "v1"
    model, info = load_legacy(V1_FIXTURE)
    assert info["arch"] == "v1" and info["num_parameters"] == 38_121
    _assert_matches_reference(model, "v1", sd)
    model, info = load_legacy(V1_FIXTURE, "v1")
    _assert_matches_reference(model, "v1", sd)


# ------------------------------------------------------------------------------------------ variants


@pytest.mark.parametrize("arch", ["transformer", "ensemble"])
def test_positional_table_with_100_rows_uses_the_first_20(arch, tmp_path):
    sd = ref.random_legacy_state_dict(arch, seed=11, pe_rows=100)
    pe_name = "pos_encoder.pe" if arch == "transformer" else "transformer.pos_encoder.pe"
    assert sd[pe_name].shape == (1, 100, 128)
    assert detect_architecture(sd) == arch
    model, info = load_legacy(_save(sd, tmp_path / "old.pth"))
    assert any("100 rows" in note for note in info["notes"])
    _assert_matches_reference(model, arch, sd)


def test_positional_table_shorter_than_20_rows_is_refused(tmp_path):
    sd = ref.random_legacy_state_dict("transformer", pe_rows=16)
    with pytest.raises(
        CheckpointError, match=r"pos_encoder\.pe: expected \[1, >=20, 128\], found \[1, 16, 128\]"
    ):
        load_legacy(_save(sd, tmp_path / "short.pth"), "transformer")


@pytest.mark.parametrize("arch", ["v1", "transformer"])
def test_dataparallel_prefix(arch, legacy_sds, tmp_path):
    sd = {f"module.{k}": v for k, v in legacy_sds[arch].items()}
    assert detect_architecture(sd) == arch
    model, info = load_legacy(_save(sd, tmp_path / "dp.pth"))
    assert info["arch"] == arch
    assert any("'module.'" in note for note in info["notes"])
    _assert_matches_reference(model, arch, legacy_sds[arch])


@pytest.mark.parametrize("key", ["model_state_dict", "state_dict", "model"])
def test_wrapped_in_a_checkpoint_dict(key, legacy_sds, tmp_path):
    sd = legacy_sds["v1"]
    path = _save({"epoch": 3, key: sd, "val_acc": 0.97}, tmp_path / "ckpt.pth")
    assert set(read_state_dict(path)) == set(sd)
    model, info = load_legacy(path)
    assert info["arch"] == "v1"
    assert any(f"'{key}'" in note for note in info["notes"])
    _assert_matches_reference(model, "v1", sd)


def test_missing_num_batches_tracked_is_accepted(legacy_sds, tmp_path):
    sd = {k: v for k, v in legacy_sds["cnn"].items() if not k.endswith("num_batches_tracked")}
    assert detect_architecture(sd) == "cnn"
    model, info = load_legacy(_save(sd, tmp_path / "nbt.pth"), "cnn")
    assert any("num_batches_tracked" in note for note in info["notes"])
    _assert_matches_reference(model, "cnn", sd)


def test_float64_file_is_cast_to_float32(legacy_sds, tmp_path):
    sd = {k: v.double() if v.is_floating_point() else v for k, v in legacy_sds["v1"].items()}
    model, info = load_legacy(_save(sd, tmp_path / "f64.pth"))
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert any("float64" in note for note in info["notes"])
    _assert_matches_reference(model, "v1", sd)


# ------------------------------------------------------------------------------------------ refusals


def test_wrong_architecture_requested_names_the_right_one(legacy_sds, tmp_path):
    path = _save(legacy_sds["transformer"], tmp_path / "tr.pth")
    with pytest.raises(CheckpointError) as err:
        load_legacy(path, "cnn")
    text = str(err.value)
    assert "'cnn'" in text and "missing keys" in text and "conv3_deep.weight [384, 768, 3]" in text
    assert "looks like a 'transformer' file" in text and "legacy=transformer or legacy=auto" in text


def test_missing_key_is_listed(legacy_sds, tmp_path):
    sd = dict(legacy_sds["v1"])
    del sd["conv2.bias"]
    path = _save(sd, tmp_path / "m.pth")
    for arch in ("v1", "auto"):
        with pytest.raises(CheckpointError, match=r"missing keys \(1\): conv2\.bias \[128\]"):
            load_legacy(path, arch)


def test_unexpected_key_is_listed(legacy_sds, tmp_path):
    sd = dict(legacy_sds["transformer"])
    sd["transformer.norm.weight"] = torch.ones(128)
    path = _save(sd, tmp_path / "u.pth")
    for arch in ("transformer", "auto"):
        with pytest.raises(
            CheckpointError, match=r"unexpected keys \(1\): transformer\.norm\.weight \[128\]"
        ):
            load_legacy(path, arch)


def test_wrong_shape_is_listed_with_expected_and_found(legacy_sds, tmp_path):
    sd = dict(legacy_sds["v1"])
    sd["conv1.weight"] = torch.zeros(64, 32, 5)
    path = _save(sd, tmp_path / "s.pth")
    for arch in ("v1", "auto"):
        with pytest.raises(
            CheckpointError, match=r"conv1\.weight: expected \[64, 32, 3\], found \[64, 32, 5\]"
        ):
            load_legacy(path, arch)


def test_convert_state_dict_refuses_directly(legacy_sds):
    sd = dict(legacy_sds["v1"])
    del sd["fc.weight"]
    with pytest.raises(CheckpointError, match=r"fc\.weight"):
        convert_state_dict(sd, "v1")
    with pytest.raises(CheckpointError, match="no legacy OMFK architecture"):
        detect_architecture(sd)


def test_prefixed_training_checkpoint_is_not_legacy(legacy_sds, tmp_path):
    inner = {f"model.{k}": v for k, v in legacy_sds["v1"].items()}
    path = _save(
        {"epoch": 1, "state_dict": inner, "pytorch-lightning_version": "2.4.0"}, tmp_path / "pl.ckpt"
    )
    with pytest.raises(
        CheckpointError, match=r"starts with 'model\.' \(without it this would be a 'v1' file\)"
    ):
        load_legacy(path)
    with pytest.raises(CheckpointError, match=r"unexpected keys .*model\.conv1\.weight"):
        load_legacy(path, "v1")


def test_layoutnet_names_are_not_legacy():
    ours = build_legacy_model("v1").state_dict()
    with pytest.raises(CheckpointError, match="layoutnet's own names"):
        detect_architecture(ours)


def test_unknown_architecture_name(tmp_path):
    with pytest.raises(ConfigError, match="unknown legacy architecture"):
        load_legacy(tmp_path / "x.pth", "lstm")


def test_not_a_torch_file(tmp_path):
    path = tmp_path / "random.pth"
    path.write_bytes(os.urandom(4096))
    with pytest.raises(CheckpointError, match="not a readable PyTorch file") as err:
        load_legacy(path)
    assert str(path) in str(err.value) and "Cause:" in str(err.value)


def test_truncated_file(legacy_sds, tmp_path):
    whole = _save(legacy_sds["v1"], tmp_path / "whole.pth").read_bytes()
    path = tmp_path / "half.pth"
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        read_state_dict(path)


def test_truncated_real_file(tmp_path):
    if not V1_FIXTURE.is_file():
        pytest.skip(f"{V1_FIXTURE} is absent (the shared/ reference directory sits beside the project)")
    whole = V1_FIXTURE.read_bytes()
    path = tmp_path / "half.pth"
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_legacy(path)


def test_nonexistent_path(tmp_path):
    path = tmp_path / "nope" / "model.pth"
    with pytest.raises(CheckpointError, match="no such file") as err:
        load_legacy(path)
    assert str(path) in str(err.value)


def test_directory_is_refused(tmp_path):
    with pytest.raises(CheckpointError, match="not a file"):
        read_state_dict(tmp_path)


def test_pickled_module_is_refused_without_running_it(tmp_path):
    path = _save(nn.Linear(2, 2), tmp_path / "whole_model.pth")
    with pytest.raises(CheckpointError, match=r"model\.state_dict\(\)"):
        read_state_dict(path)


@pytest.mark.parametrize(
    "obj, pattern",
    [
        ([torch.zeros(2)], "holds a list"),
        ({"epoch": 3, "acc": 0.9}, r"non-tensor entries: 'epoch' \(int\)"),
        ({"model_state_dict": {"a": 1}}, r"'model_state_dict' entry is not a state_dict"),
        ({}, "empty"),
    ],
)
def test_contents_that_are_not_a_state_dict(obj, pattern, tmp_path):
    with pytest.raises(CheckpointError, match=pattern):
        read_state_dict(_save(obj, tmp_path / "x.pth"))


def test_non_finite_values_are_refused(legacy_sds, tmp_path):
    sd = dict(legacy_sds["v1"])
    sd["fc.bias"] = torch.full((9,), float("nan"))
    with pytest.raises(CheckpointError, match=r"NaN or infinite values: fc\.bias"):
        load_legacy(_save(sd, tmp_path / "nan.pth"))


def test_nothing_is_written(legacy_sds, tmp_path):
    path = _save(legacy_sds["v1"], tmp_path / "model.pth")
    before = sorted(p.name for p in tmp_path.iterdir())
    load_legacy(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == before


# ------------------------------------------------------------------------------------------ init_from_legacy


def test_init_from_legacy_copies_weights_into_a_configured_net(legacy_sds, tmp_path):
    path = _save(legacy_sds["v1"], tmp_path / "v1.pth")
    net = build_legacy_model("v1").train()
    info = init_from_legacy(net, path)
    assert info["arch"] == "v1" and info["same_function"] is True
    assert net.training  # the caller's mode is kept
    net.eval()
    _assert_matches_reference(net, "v1", legacy_sds["v1"])


def test_init_from_legacy_notes_a_net_that_computes_something_else(legacy_sds, tmp_path):
    path = _save(legacy_sds["cnn"], tmp_path / "cnn.pth")
    kwargs = {**legacy_net_spec("cnn")["kwargs"], "padding": "same"}
    info = init_from_legacy(CNNClassifier(**kwargs), path, "cnn")
    assert info["same_function"] is False
    assert any("different function" in note for note in info["notes"])


def test_init_from_legacy_refuses_a_net_of_other_shapes(legacy_sds, tmp_path):
    path = _save(legacy_sds["v1"], tmp_path / "v1.pth")
    net = CompactCNN(embed_dim=32, channels=(64, 96), kernel_size=3, pools=(2, 1))
    with pytest.raises(CheckpointError) as err:
        init_from_legacy(net, path)
    text = str(err.value)
    assert "features.3.conv.weight: legacy [128, 64, 3], configured [96, 64, 3]" in text
    assert "model/net=compact_cnn" in text and "conf/model/net/compact_cnn.yaml" in text


@pytest.mark.parametrize(
    ("arch", "model", "net_file"),
    [("v1", "compact_cnn", "compact_cnn"), ("ensemble", "omfk", "omfk")],
)
def test_legacy_networks_are_sized_by_the_experiment_yaml(arch, model, net_file):
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from layoutnet.models.registry import to_spec

    from .conftest import REPO_ROOT

    with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=[f"model={model}"])
    composed = to_spec(OmegaConf.to_container(cfg.model.net, resolve=True))
    assert legacy_net_spec(arch) == composed
    assert count_parameters(build_legacy_model(arch)) == LEGACY_PARAMETER_COUNTS[arch]
