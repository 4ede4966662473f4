"""End-to-end runs of `python -m layoutnet` on the tiny smoke experiment."""

from __future__ import annotations

import json

import pytest
import pytorch_lightning as pl
import torch
from omegaconf import OmegaConf

from layoutnet.contract import CLASSES
from layoutnet.models import CompactCNN, TransformerClassifier
from layoutnet.module import LayoutClassifierModule, warmup_cosine

from .conftest import run_module


def run_layoutnet_args(*args):
    return run_module("layoutnet", list(args))


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("smoke")
    result = run_layoutnet_args("+experiment=smoke", f"hydra.run.dir={run_dir}")
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir, result


@pytest.mark.slow
def test_smoke_run_trains_exports_and_reports(smoke_run):
    run_dir, result = smoke_run
    report = json.loads((run_dir / "report.json").read_text())
    assert report["status"] == "ok" and report["experiment"] == "smoke"
    assert report["training"]["family"] == "cnn" and report["training"]["parameters"] > 0
    assert 0 < report["training"]["best_val_accuracy"] <= 1
    assert set(report["validation"]["per_class_accuracy"]) == set(CLASSES)
    assert {"torch", "coremltools", "layoutnet"} <= set(report["versions"])
    assert report["timings"]["fit_seconds"] > 0
    export = report["export"]
    assert export["status"] == "ok" and export["parity"]["passed"]
    assert export["parity"]["backend"] == "reference-executor"
    assert (run_dir / "export" / "LayoutClassifier.mlmodel").exists()
    assert (run_dir / "export" / "parity_vectors.json").exists()
    for name in (
        "checkpoints/best.ckpt",
        "checkpoints/last.ckpt",
        "config_resolved.yaml",
        "csv/metrics.csv",
        "plots/confusion_matrix.png",
        "plots/training_curves.png",
    ):
        assert (run_dir / name).exists(), name
    assert "Core ML export: OK" in result.stdout


@pytest.mark.slow
def test_interrupted_run_resumes_from_last_checkpoint(smoke_run, tmp_path):
    run_dir, _ = smoke_run
    last = run_dir / "checkpoints" / "last.ckpt"
    steps_before = torch.load(last, weights_only=False)["global_step"]
    result = run_layoutnet_args(
        "+experiment=smoke",
        f"ckpt_path={last}",
        "trainer.max_epochs=4",
        "export=none",
        f"hydra.run.dir={tmp_path}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["training"]["epochs"] == 4
    assert report["training"]["global_step"] > steps_before
    assert report["export"]["status"] == "disabled"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["+experiment=nope"], "Could not find 'experiment/nope'"),
        (["model=nope"], "Could not find 'model/nope'"),
        (["+experiment=smoke", "data=csv", "data.path=/nonexistent/train.csv"], "/nonexistent/train.csv"),
        (["+experiment=smoke", "model.net.kernel_size=25"], "model.net.kernel_size"),
        (["+experiment=smoke", "export.format=onnx"], "export.format"),
        (["+experiment=smoke", "ckpt_path=/nonexistent/last.ckpt"], "ckpt_path"),
    ],
)
def test_bad_input_is_refused_before_training(tmp_path, args, expected):
    result = run_layoutnet_args(*args, f"hydra.run.dir={tmp_path}")
    assert result.returncode != 0
    assert expected in result.stderr + result.stdout
    assert not (tmp_path / "checkpoints").exists()


def test_warmup_cosine_schedule_shape():
    factor = warmup_cosine(10, 110, 0.1)
    assert factor(0) == pytest.approx(0.1) and factor(9) == pytest.approx(1.0)
    assert factor(60) == pytest.approx(0.55) and factor(110) == pytest.approx(0.1)


@pytest.mark.parametrize(
    ("spec", "cls"),
    [
        ({"family": "compact_cnn", "embed_dim": 8, "channels": [8, 8]}, CompactCNN),
        (
            {
                "family": "transformer",
                "kwargs": {"d_model": 16, "num_heads": 2, "num_layers": 1, "ff_dim": 16},
            },
            TransformerClassifier,
        ),
    ],
)
def test_mixup_mixes_embeddings_only_during_the_step(spec, cls):
    module = LayoutClassifierModule(spec, mixup_alpha=0.4, mixup_prob=1.0)
    net = module.net
    assert isinstance(net, cls)
    ids = torch.randint(1, 189, (8, 20))
    labels = torch.randint(0, 9, (8,))
    module.log = lambda *a, **k: None
    torch.manual_seed(0)
    loss = module.training_step((ids, labels), 0)
    assert torch.isfinite(loss) and loss.requires_grad
    assert module.mixup.perm is None
    net.eval()
    torch.testing.assert_close(net(ids), net(ids))


@pytest.mark.slow
def test_parity_failure_fails_the_run_and_publishes_nothing(tmp_path):
    # fp32 artifacts agree to ~1e-7: a tolerance of 1e-12 cannot be met, as a broken artifact would not.
    result = run_layoutnet_args(
        "+experiment=smoke", "trainer.max_epochs=1", "export.tolerance=1e-12", f"hydra.run.dir={tmp_path}"
    )
    assert result.returncode == 1
    assert "parity failed" in result.stderr and "worst sample" in result.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["status"] == "failed" and report["export"]["status"] == "failed"
    assert not (tmp_path / "export" / "LayoutClassifier.mlmodel").exists()
    (failed,) = (tmp_path / "export" / "failed").iterdir()
    assert "parity failed" in (failed / "reason.txt").read_text()


@pytest.mark.slow
def test_reexport_and_validate_commands(smoke_run, tmp_path):
    run_dir, _ = smoke_run
    best = run_dir / "checkpoints" / "best.ckpt"
    out = tmp_path / "app"
    done = run_module(
        "layoutnet.export",
        [
            f"ckpt_path={best}",
            "export=mlprogram",
            f"output_dir={out}",
            "data=tiny",
            f"hydra.run.dir={tmp_path / 'export_run'}",
        ],
    )
    assert done.returncode == 0, done.stderr[-3000:]
    artifact = out / "LayoutClassifier.mlpackage"
    report = json.loads((tmp_path / "export_run" / "report.json").read_text())
    assert report["status"] == "ok" and report["export"]["path"] == str(artifact)
    assert report["export"]["parity"]["samples"] >= 1000

    validate = ["data=tiny", f"ckpt_path={best}", f"hydra.run.dir={tmp_path / 'validate_run'}"]
    done = run_module("layoutnet.export.validate", [f"artifact={artifact}", *validate])
    assert done.returncode == 0, done.stderr[-3000:]
    assert "reference-executor" in done.stdout

    # The artifact checked against other weights (the last epoch's, from another run) must fail.
    other = tmp_path / "other"
    trained = run_layoutnet_args(
        "+experiment=smoke", "trainer.max_epochs=1", "seed=7", "export=none", f"hydra.run.dir={other}"
    )
    assert trained.returncode == 0, trained.stderr[-3000:]
    done = run_module(
        "layoutnet.export.validate",
        [
            f"artifact={artifact}",
            "data=tiny",
            f"ckpt_path={other / 'checkpoints' / 'last.ckpt'}",
            f"hydra.run.dir={tmp_path / 'validate_other'}",
        ],
    )
    assert done.returncode == 1 and "parity failed" in done.stderr


class InterruptAt(pl.Callback):
    """Raises KeyboardInterrupt (what Ctrl-C does) at a given training step."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.step:
            raise KeyboardInterrupt


@pytest.mark.slow
def test_interrupted_run_leaves_a_checkpoint_and_resumes(tmp_path):
    from hydra import compose, initialize_config_dir

    from layoutnet.config import CONF_DIR
    from layoutnet.train import Run, _failure_text

    run_dir = tmp_path / "run"
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("train", overrides=["+experiment=smoke", "export=none", "trainer.max_epochs=1"])
    OmegaConf.set_struct(cfg, False)
    cfg.paths.output_dir = str(run_dir)
    cfg.callbacks.model_checkpoint.dirpath = str(run_dir / "checkpoints")
    cfg.callbacks.on_exception_checkpoint.dirpath = str(run_dir / "checkpoints")
    cfg.logger.csv.save_dir = str(run_dir)
    cfg.callbacks.progress_bar = None  # an interrupted tqdm bar would print at interpreter exit
    cfg.trainer.enable_progress_bar = False
    run = Run(cfg, run_dir)
    run.prepare()
    run.trainer.callbacks.append(InterruptAt(step=10))
    with pytest.raises((KeyboardInterrupt, SystemExit)) as info:
        run.fit()
    interrupted = run_dir / "checkpoints" / "interrupted.ckpt"
    assert interrupted.exists()
    assert torch.load(interrupted, weights_only=False)["global_step"] == 10
    assert f"ckpt_path={interrupted}" in _failure_text(info.value, run_dir)

    resumed = run_layoutnet_args(
        "+experiment=smoke",
        "export=none",
        "trainer.max_epochs=1",
        f"ckpt_path={interrupted}",
        f"hydra.run.dir={tmp_path / 'resumed'}",
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    report = json.loads((tmp_path / "resumed" / "report.json").read_text())
    assert report["status"] == "ok" and report["training"]["global_step"] > 10
