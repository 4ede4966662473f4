"""Broken configs are refused before training, naming the key and the allowed values."""

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from layoutnet.config import build, require_values
from layoutnet.errors import ConfigError
from layoutnet.export.settings import ExportSettings

from .conftest import REPO_ROOT

CONF = str(REPO_ROOT / "conf")


def compose_train(overrides):
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        return compose("train", overrides=overrides, return_hydra_config=False)


@pytest.mark.parametrize("experiment", ["cnn", "transformer", "ensemble", "omfk", "smoke"])
def test_every_experiment_composes_and_builds_its_model(experiment):
    cfg = compose_train([f"+experiment={experiment}"])
    module = build(cfg.model, "model")
    assert module.family in {"cnn", "compact_cnn", "transformer", "ensemble"}
    ExportSettings.from_config(cfg.export)
    if experiment == "omfk":
        assert module.num_parameters == 3_462_292


@pytest.mark.parametrize(
    ("overrides", "key", "allowed"),
    [
        (["+experiment=transformer", "model.net.num_heads=5"], "model.net.num_heads", "1, 2, 3, 4, 6"),
        (
            ["+experiment=ensemble", "model.net.transformer.num_heads=7"],
            "model.net.transformer.num_heads",
            None,
        ),
        (["+experiment=cnn", "model.net.padding=valid"], "model.net.padding", "same, crop"),
        (["+experiment=cnn", "model.net.branch_kernels=[3,21]"], "model.net.branch_kernels", "1..20"),
        (["model.label_smoothing=1.5"], "model.label_smoothing", None),
    ],
)
def test_impossible_model_configs_name_the_key(overrides, key, allowed):
    cfg = compose_train(overrides)
    with pytest.raises(ConfigError) as info:
        build(cfg.model, "model")
    assert info.value.key == key
    if allowed:
        assert allowed in str(info.value)


@pytest.mark.parametrize(
    ("settings", "key"),
    [
        ({"format": "onnx"}, "export.format"),
        ({"format": "neuralnetwork", "precision": "fp16"}, "export.precision"),
        ({"format": "mlprogram", "precision": "int8"}, "export.precision"),
        ({"format": "mlprogram", "minimum_deployment_target": "iOS13"}, "export.minimum_deployment_target"),
        ({"tolerance": 0}, "export.tolerance"),
        ({"tolerence": 0.1}, "export.tolerence"),
    ],
)
def test_bad_export_settings_are_refused(settings, key):
    with pytest.raises(ConfigError) as info:
        ExportSettings.from_config(settings)
    assert info.value.key == key


def test_export_none_disables_and_defaults_are_valid():
    assert ExportSettings.from_config(compose_train(["export=none"]).export).enabled is False
    settings = ExportSettings.from_config(compose_train([]).export)
    assert settings.enabled and settings.tolerance == 0.01 and settings.parity_samples >= 2000


def test_experiment_is_not_a_default_of_the_primary_config():
    primary = OmegaConf.load(REPO_ROOT / "conf" / "train.yaml")
    assert not any("experiment" in str(entry) for entry in primary.defaults)


def test_network_sizes_live_only_in_the_net_group():
    model_dir = REPO_ROOT / "conf" / "model"
    for path in model_dir.glob("*.yaml"):
        assert "net" not in OmegaConf.load(path), f"{path.name} writes network sizes; use conf/model/net/"
    for path in (model_dir / "net").glob("*.yaml"):
        node = OmegaConf.load(path)
        assert "_target_" not in str(OmegaConf.to_container(node)), path.name
    for members in ("ensemble", "omfk", "tiny_ensemble"):
        defaults = [str(d) for d in OmegaConf.load(model_dir / "net" / f"{members}.yaml").defaults]
        assert any(d.endswith("@cnn") for d in defaults) and any(d.endswith("@transformer") for d in defaults)


def test_bad_optimizer_and_trainer_values_name_the_key():
    from layoutnet.config import check_trainer_settings

    for value in ("fast", -1e-3, 0, True):
        with pytest.raises(ConfigError) as info:
            build(compose_train([f"model.lr={value}"]).model, "model")
        assert info.value.key == "model.lr"
    for value in (1.5, "many", -2):
        with pytest.raises(ConfigError) as info:
            check_trainer_settings({"max_epochs": value})
        assert info.value.key == "trainer.max_epochs"
    check_trainer_settings({"max_epochs": -1, "max_steps": -1, "min_epochs": None})


@pytest.mark.parametrize("experiment", [None, "cnn", "transformer", "omfk", "distill"])
def test_every_model_weighs_harmful_rewrites_by_default(experiment):
    # A wrong correction is worse than no correction (issue 10): the default objective says so.
    overrides = [f"+experiment={experiment}"] if experiment else []
    if experiment == "distill":
        overrides.append("teacher_ckpt=unused.ckpt")
    assert compose_train(overrides).model.harm_weight == 1.0


def test_exports_are_held_to_fp16_arithmetic_by_default():
    # compute units `.all`: the Neural Engine computes in float16 (issue 9.2)
    assert ExportSettings().app_precision == "fp16"
    assert ExportSettings.from_config(compose_train([]).export).app_precision == "fp16"


def test_a_value_left_to_the_user_is_refused_by_key_without_resolving_what_points_to_it():
    cfg = OmegaConf.create(
        {"teacher_ckpt": "???", "model": {"teacher": "${teacher_ckpt}"}, "data": {"files": ["a.csv", "???"]}}
    )
    with pytest.raises(ConfigError) as refused:
        require_values(cfg, {"data.files[1]": "a second CSV"})
    assert refused.value.key == "data.files[1]"
    assert "a second CSV" in str(refused.value) and "also unset: teacher_ckpt" in str(refused.value)
    require_values(OmegaConf.create({"model": {"lr": 0.1, "name": "${model.lr}"}}))  # nothing missing


@pytest.mark.parametrize("debug", ["fdr", "limit", "overfit", "profiler"])
@pytest.mark.parametrize("experiment", [None, "smoke", "cnn", "omfk"])
def test_debug_configs_file_runs_under_debug_whatever_the_experiment(experiment, debug):
    chosen = [f"+experiment={experiment}"] if experiment else []
    assert compose_train(chosen).task_name == (experiment or "default")
    assert compose_train([*chosen, f"debug={debug}"]).task_name == "debug"
    assert compose_train([*chosen, f"debug={debug}", "task_name=mine"]).task_name == "mine"
