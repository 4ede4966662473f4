"""Distillation (`+experiment=distill`): a small student trained on a teacher's soft labels."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

import layoutnet.config  # noqa: F401  (registers the export group's schema for compose)
from layoutnet.distill import DistillationModule, multiply_adds
from layoutnet.errors import ConfigError
from layoutnet.models import CompactCNN
from layoutnet.models.registry import build_net, to_spec

from .conftest import REPO_ROOT, run_module

TEACHER_CONFIG = {"embed_dim": 16, "channels": [32, 32], "pools": [2, 1], "kernel_size": 3, "padding": "same"}


def save_teacher(path: Path) -> CompactCNN:
    """A layoutnet checkpoint of a small CompactCNN, as a run saves it."""
    torch.manual_seed(0)
    net = CompactCNN(**TEACHER_CONFIG).eval()
    payload = {
        "layoutnet": {
            "net_config": {"_target_": "layoutnet.models.CompactCNN", **TEACHER_CONFIG},
            "family": "cnn",
            "num_parameters": sum(p.numel() for p in net.parameters()),
        },
        "state_dict": {f"net.{k}": v for k, v in net.state_dict().items()},
    }
    torch.save(payload, path)
    return net


def compose_train(*overrides: str):
    with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base="1.3"):
        return compose(config_name="train", overrides=list(overrides))


def test_default_student_has_at_most_a_tenth_of_the_default_models_multiply_adds() -> None:
    teacher = build_net(to_spec(compose_train().model.net))
    student = build_net(to_spec(compose_train("+experiment=distill", "teacher_ckpt=x.ckpt").model.net))
    assert 0 < multiply_adds(student) * 10 <= multiply_adds(teacher)
    # Counting is exact for a plain conv stack: embedding free, one conv, one linear.
    net = CompactCNN(embed_dim=4, channels=[6], pools=[1], kernel_size=3, padding="same")
    assert multiply_adds(net) == 20 * 6 * 4 * 3 + 6 * 9


def test_loss_is_the_hard_loss_when_the_student_is_the_teacher(tmp_path: Path) -> None:
    teacher = save_teacher(tmp_path / "teacher.ckpt")
    student_config = {"family": "compact_cnn", **TEACHER_CONFIG}
    module = DistillationModule(
        student_config, teacher_ckpt=str(tmp_path / "teacher.ckpt"), alpha=0.5, label_smoothing=0.0
    )
    student = module.net
    student.load_state_dict(teacher.state_dict())
    ids = torch.randint(1, 60, (16, 20))
    labels = torch.randint(0, 9, (16,))
    logits = student(ids)
    expected = 0.5 * torch.nn.functional.cross_entropy(logits, labels)
    assert torch.allclose(module._distill_loss(logits, ids, labels), expected, atol=1e-5)
    assert not any(name.startswith("teacher") for name in module.state_dict())  # never saved
    assert all(p.requires_grad is False for p in module.teacher.parameters())
    with pytest.raises(ConfigError, match="teacher_ckpt"):
        DistillationModule(student_config)
    with pytest.raises(ConfigError, match="temperature"):
        DistillationModule(student_config, teacher_ckpt="x", temperature=0)


@pytest.mark.slow
def test_tiny_distillation_trains_exports_and_checks_parity(tmp_path: Path) -> None:
    save_teacher(tmp_path / "teacher.ckpt")
    run_dir = tmp_path / "run"
    result = run_module(
        "layoutnet",
        [
            "+experiment=distill",
            f"teacher_ckpt={tmp_path / 'teacher.ckpt'}",
            "data=tiny",
            "data.train_size=2048",
            "trainer.max_epochs=1",
            "logger=csv",
            "test=false",
            "export.parity_samples=200",
            "export.random_samples=20",
            "export.parity_vectors=20",
            f"hydra.run.dir={run_dir}",
        ],
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads((run_dir / "report.json").read_text())
    assert report["status"] == "ok" and report["export"]["parity"]["passed"]
    assert (run_dir / "export" / "LayoutClassifier.mlmodel").exists()
    saved = torch.load(run_dir / "checkpoints" / "best.ckpt", weights_only=True)
    assert not any(key.startswith("teacher") for key in saved["state_dict"])
    student = compose_train("+experiment=distill", "teacher_ckpt=x.ckpt").model.net
    kwargs = saved["layoutnet"]["net"]["kwargs"]  # the student's sizes, not the teacher's
    assert (kwargs["embed_dim"], kwargs["deep_channels"]) == (student.embed_dim, student.deep_channels)
