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
    from hydra.errors import ConfigCompositionException

    from layoutnet.config import check_trainer_settings

    for value in (-1e-3, 0):
        with pytest.raises(ConfigError) as info:
            build(compose_train([f"model.lr={value}"]).model, "model")
        assert info.value.key == "model.lr"
    with pytest.raises(ConfigCompositionException) as composed:  # the type: refused by the module's schema
        compose_train(["model.lr=fast"])
    assert composed.value.__cause__.full_key == "model.lr"
    for value in (1.5, "many", -2):
        with pytest.raises(ConfigError) as info:
            check_trainer_settings({"max_epochs": value})
        assert info.value.key == "trainer.max_epochs"
    check_trainer_settings({"max_epochs": -1, "max_steps": -1, "min_epochs": None})


@pytest.mark.parametrize("experiment", [None, "cnn", "transformer", "omfk", "distill", "smoke"])
def test_every_model_learns_the_labels_as_they_are_by_default(experiment):
    # The labels are posteriors under the typing prior (issue 18): no rewrite penalty or smoothing moves the
    # probabilities off them; the app's threshold makes the trade between fixes and rewrites.
    overrides = [f"+experiment={experiment}"] if experiment else []
    if experiment == "distill":
        overrides.append("teacher_ckpt=unused.ckpt")
    model = compose_train(overrides).model
    assert model.harm_weight == 0.0 and model.label_smoothing == 0.0


def test_the_python_api_with_no_arguments_builds_what_the_command_line_builds():
    from layoutnet.data.synthetic import SyntheticSource
    from layoutnet.distill import DistillationModule
    from layoutnet.module import LayoutClassifierModule

    cfg = compose_train([])
    source = build(cfg.data, "data")
    default = SyntheticSource()
    assert source.config == default.config
    assert (source.train_size, source.val_size, source.test_size, source.seed) == (
        default.train_size,
        default.val_size,
        default.test_size,
        default.seed,
    )
    assert (source.batch_size, source.eval_batch_size) == (default.batch_size, default.eval_batch_size)
    net = OmegaConf.to_container(cfg.model.net)
    assert dict(build(cfg.model, "model").hparams) == dict(LayoutClassifierModule(net).hparams)
    assert ExportSettings.from_config(cfg.export) == ExportSettings()
    distill = compose_train(["+experiment=distill", "teacher_ckpt=x.ckpt"]).model
    settings = {
        k: v for k, v in OmegaConf.to_container(distill, resolve=True).items() if k not in ("_target_", "net")
    }
    expected = {**dict(LayoutClassifierModule(net).hparams), "teacher_legacy": None}
    expected.update(temperature=2.0, alpha=0.7, teacher_ckpt="x.ckpt", warmup_steps=50)
    assert settings == expected
    assert DistillationModule.SETTINGS.__dataclass_fields__.keys() >= expected.keys()


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
