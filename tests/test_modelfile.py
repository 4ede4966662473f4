"""One door for model files (`layoutnet.modelfile.open_model`), and model files as data: networks are
rebuilt only through the registry, and a `_target_` planted anywhere in a file never runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from layoutnet.contract import encode_batch
from layoutnet.errors import CheckpointError, ConfigError
from layoutnet.modelfile import load_net, open_model
from layoutnet.models import CompactCNN
from layoutnet.models.registry import FAMILIES, build_net, to_spec

from . import payload
from .conftest import REPO_ROOT, run_module

SPEC = {"family": "compact_cnn", "kwargs": {"embed_dim": 8, "channels": [8], "pools": [1]}}
ENSEMBLE_SPEC = {
    "family": "ensemble",
    "kwargs": {
        "cnn": {
            "family": "cnn",
            "kwargs": {
                "embed_dim": 8,
                "branch_kernels": [2, 3],
                "branch_channels": 4,
                "mix_kernels": [],
                "deep_channels": 8,
                "head_dims": [8],
            },
        },
        "transformer": {
            "family": "transformer",
            "kwargs": {"d_model": 8, "num_heads": 2, "num_layers": 1, "ff_dim": 8, "head_dims": [8]},
        },
    },
}


def checkpoint(spec: dict = SPEC, meta: dict | None = None) -> dict:
    torch.manual_seed(0)
    net = build_net(spec)
    return {
        "layoutnet": meta if meta is not None else {"net": spec, "family": "cnn", "num_parameters": 0},
        "state_dict": {f"net.{k}": v for k, v in net.state_dict().items()},
    }


def save(obj: dict, path: Path) -> Path:
    torch.save(obj, path)
    return path


# The registry ----------------------------------------------------------------------------------------


def test_every_family_builds_from_a_spec_and_its_flat_config():
    assert set(FAMILIES) == {"cnn", "compact_cnn", "transformer", "ensemble"}
    net = build_net(ENSEMBLE_SPEC)
    flat = {
        "family": "ensemble",
        **{k: {"family": v["family"], **v["kwargs"]} for k, v in ENSEMBLE_SPEC["kwargs"].items()},
    }
    assert to_spec(flat) == ENSEMBLE_SPEC
    assert sorted(net.state_dict()) == sorted(build_net(flat).state_dict())


@pytest.mark.parametrize(
    ("spec", "key", "fragment"),
    [
        ({"family": "lstm", "kwargs": {}}, "family", "unknown network family"),
        ({"family": "cnn", "kwargs": {"channels": [8]}}, "channels", "is not a setting of the 'cnn'"),
        ({"family": "compact_cnn", "kwargs": {"embed_dim": "8"}}, "embed_dim", "must be of type int"),
        ({"family": "compact_cnn", "kwargs": {"embed_dim": True}}, "embed_dim", "must be of type int"),
        ({"family": "cnn", "kwargs": {"seq_len": 21}}, "seq_len", "contract fixes the input length"),
        ({"family": "transformer", "kwargs": {"seq_len": 16}}, "seq_len", "allowed: 20"),
        ({"family": "compact_cnn", "kwargs": {"embed_dim": {"a": 1}}}, "embed_dim", "plain value"),
        (
            {
                "family": "ensemble",
                "kwargs": {
                    "cnn": {"family": "cnn", "kwargs": {"widths": 1}},
                    "transformer": {"family": "transformer", "kwargs": {}},
                },
            },
            "cnn.widths",
            "is not a setting",
        ),
    ],
)
def test_registry_refuses_what_a_family_does_not_take(spec, key, fragment):
    with pytest.raises(ConfigError) as info:
        build_net(spec)
    assert info.value.key == key and fragment in str(info.value)


# Opening files ---------------------------------------------------------------------------------------


def test_checkpoint_and_old_format_checkpoint_score_alike(tmp_path):
    new = save(checkpoint(), tmp_path / "new.ckpt")
    old_meta = {"net_config": {"_target_": "layoutnet.models.CompactCNN", **SPEC["kwargs"]}, "family": "cnn"}
    old = save(checkpoint(meta=old_meta), tmp_path / "old.ckpt")
    ids = encode_batch(["ghbdtn", "", "שלום"])
    a, b = open_model(new), open_model(old)
    assert a.kind == b.kind == "layoutnet" and isinstance(a.net, CompactCNN)
    np.testing.assert_array_equal(a.logits(ids), b.logits(ids))
    assert a.metadata["net"] == SPEC == b.metadata["net"]


def test_weights_of_another_shape_name_the_first_mismatched_tensors(tmp_path):
    other = {"family": "compact_cnn", "kwargs": {"embed_dim": 8, "channels": [16], "pools": [1]}}
    payload_ = checkpoint(other)
    payload_["layoutnet"]["net"] = SPEC  # says compact 8-channel, holds 16-channel weights
    path = save(payload_, tmp_path / "m.ckpt")
    with pytest.raises(CheckpointError) as info:
        load_net(path)
    text = str(info.value)
    assert str(path) in text and "features.0.conv.weight: expected [8, 8, 3], found [16, 8, 3]" in text


def test_weights_of_another_family_are_named(tmp_path):
    payload_ = checkpoint(ENSEMBLE_SPEC)
    payload_["layoutnet"]["net"] = SPEC
    with pytest.raises(CheckpointError, match=r"embedding.weight missing .*unexpected"):
        load_net(save(payload_, tmp_path / "m.ckpt"))


# Payloads --------------------------------------------------------------------------------------------


def test_the_planted_payload_would_run_if_instantiated(tmp_path):
    """Control: the marker callable is live, so its absence below means it was never called."""
    from hydra.utils import instantiate

    marker = tmp_path / "control"
    instantiate(payload.node(marker))
    assert marker.exists()


def planted(marker: Path) -> dict[str, tuple[dict, str]]:
    """Checkpoints with the payload at every depth of their stored config -> the key to be named."""
    bad = payload.node(marker)
    old_cnn = {"_target_": "layoutnet.models.CNNClassifier"}
    old_tf = {"_target_": "layoutnet.models.TransformerClassifier"}
    ens = ENSEMBLE_SPEC["kwargs"]
    return {
        "old top": ({"net_config": {**bad, "embed_dim": 8}}, "net_config._target_"),
        "old member": (
            {
                "net_config": {
                    "_target_": "layoutnet.models.EnsembleClassifier",
                    "cnn": bad,
                    "transformer": old_tf,
                }
            },
            "net_config.cnn._target_",
        ),
        "old member value": (
            {
                "net_config": {
                    "_target_": "layoutnet.models.EnsembleClassifier",
                    "cnn": {**old_cnn, "dropout": bad},
                    "transformer": old_tf,
                }
            },
            "net_config.cnn.dropout._target_",
        ),
        "old kwarg": (
            {"net_config": {"_target_": "layoutnet.models.CompactCNN", "embed_dim": bad}},
            "net_config.embed_dim._target_",
        ),
        "metadata": ({"net": SPEC, "_target_": payload.TARGET, "path": str(marker)}, "layoutnet._target_"),
        "metadata value": ({"net": SPEC, "family": bad}, "layoutnet.family._target_"),
        "spec": ({"net": {**SPEC, **bad}}, "layoutnet.net._target_"),
        "spec kwarg": (
            {"net": {"family": "compact_cnn", "kwargs": {"embed_dim": bad}}},
            "layoutnet.net.kwargs.embed_dim._target_",
        ),
        "spec member": (
            {"net": {"family": "ensemble", "kwargs": {**ens, "cnn": bad}}},
            "layoutnet.net.kwargs.cnn._target_",
        ),
        "spec member kwarg": (
            {
                "net": {
                    "family": "ensemble",
                    "kwargs": {**ens, "transformer": {"family": "transformer", "kwargs": {"d_model": bad}}},
                }
            },
            "layoutnet.net.kwargs.transformer.kwargs.d_model._target_",
        ),
    }


def test_a_planted_target_at_any_depth_is_refused_naming_file_and_key(tmp_path):
    marker = tmp_path / "marker"
    for name, (meta, key) in planted(marker).items():
        path = save({"layoutnet": meta, "state_dict": checkpoint()["state_dict"]}, tmp_path / f"{name}.ckpt")
        with pytest.raises(CheckpointError) as info:
            open_model(path)
        assert str(path) in str(info.value) and key in str(info.value), (name, str(info.value))
    assert not marker.exists()


def test_a_payload_outside_the_layoutnet_metadata_is_never_read(tmp_path):
    marker = tmp_path / "marker"
    data = checkpoint()
    data["hyper_parameters"] = {"net": payload.node(marker)}
    scorer = open_model(save(data, tmp_path / "m.ckpt"))
    assert scorer.net is not None and not marker.exists()


@pytest.mark.parametrize(
    ("module", "args"),
    [
        ("layoutnet.evaluate", ["model_path={ckpt}", "data=tiny", "data.test_size=16"]),
        ("layoutnet.predict", ["model_path={ckpt}", "text=ghbdtn"]),
        ("layoutnet.export", ["ckpt_path={ckpt}", "data=tiny", "hydra.run.dir={tmp}/run"]),
    ],
)
def test_commands_refuse_a_planted_checkpoint_and_nothing_runs(tmp_path, module, args):
    marker = tmp_path / "marker"
    meta, key = planted(marker)["old member"]
    ckpt = save({"layoutnet": meta, "state_dict": {}}, tmp_path / "evil.ckpt")
    done = run_module(module, [a.format(ckpt=ckpt, tmp=tmp_path) for a in args], full_error=False)
    assert done.returncode == 1, done.stderr[-2000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and key in errors[0] and str(ckpt) in done.stderr
    assert "Traceback" not in done.stderr
    assert not marker.exists()


def test_evaluate_refuses_a_planted_data_target_in_the_run_config(tmp_path):
    marker = tmp_path / "marker"
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    ckpt = save(checkpoint(), run / "checkpoints" / "best.ckpt")
    (run / "config_resolved.yaml").write_text(
        f"data:\n  _target_: {payload.TARGET}\n  path: {marker}\n", encoding="utf-8"
    )
    done = run_module("layoutnet.evaluate", [f"model_path={ckpt}"], full_error=False)
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "data._target_" in errors[0] and "config_resolved.yaml" in errors[0]
    assert not marker.exists()
    # Nested below an allowed class: refused as well.
    (run / "config_resolved.yaml").write_text(
        "data:\n  _target_: layoutnet.data.datamodule.LayoutDataModule\n"
        f"  languages:\n    en:\n      _target_: {payload.TARGET}\n      path: {marker}\n",
        encoding="utf-8",
    )
    done = run_module("layoutnet.evaluate", [f"model_path={ckpt}"], full_error=False)
    assert done.returncode == 1 and "data.languages.en._target_" in done.stderr
    assert not marker.exists()


def test_modelfile_imports_no_lightning_and_predict_no_evaluate():
    code = (
        "import sys, layoutnet.modelfile; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('pytorch_lightning', 'lightning')]; "
        "import layoutnet.predict; "
        "bad += [m for m in sys.modules if m == 'layoutnet.evaluate']; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
