"""`python -m layoutnet.evaluate`: scoring checkpoints, legacy state_dicts and Core ML artifacts on a CSV or
the generated test set, with a JSON report, a confusion-matrix picture and `accuracy=` as the last line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from layoutnet import evaluate as ev
from layoutnet import evaluation
from layoutnet.contract import CLASSES, encode_batch
from layoutnet.data import csvfile
from layoutnet.errors import ConfigError, DataError
from layoutnet.modelfile import open_model
from layoutnet.models import CompactCNN

from .conftest import REPO_ROOT, run_module
from .legacy_reference import random_legacy_state_dict

CONF = str(REPO_ROOT / "conf")
NET_SPEC = {
    "family": "compact_cnn",
    "kwargs": {"embed_dim": 8, "channels": [8], "pools": [1], "kernel_size": 3, "padding": "same"},
}
OLD_NET_CONFIG = {
    "_target_": "layoutnet.models.CompactCNN",
    "embed_dim": 8,
    "channels": [8],
    "pools": [1],
    "kernel_size": 3,
    "padding": "same",
}
ROWS = [
    ("ghbdtn", "ru_from_en"),
    ("привет", "ru"),
    ("", "en"),
    ("hello world", "en"),
    ("שלום", "he"),
    ("руддщ", "en_from_ru"),
    ("akuo", "he_from_en"),
    ("text, with comma", "en"),
]


def save_checkpoint(path: Path, seed: int = 0, old_format: bool = False) -> tuple[Path, CompactCNN]:
    """A layoutnet checkpoint of a small randomly initialised CompactCNN (what a run would save;
    `old_format`: what runs saved before specs, a Hydra config naming layoutnet's own class)."""
    torch.manual_seed(seed)
    net = CompactCNN(**NET_SPEC["kwargs"]).eval()
    meta = {"net_config": OLD_NET_CONFIG} if old_format else {"net": NET_SPEC}
    payload = {
        "layoutnet": {**meta, "family": "cnn", "num_parameters": 0},
        "state_dict": {f"net.{k}": v for k, v in net.state_dict().items()},
    }
    torch.save(payload, path)
    return path, net


def write_csv(path: Path, rows=ROWS, header: bool = True) -> Path:
    import csv

    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        if header:
            writer.writerow(["text", "label"])
        writer.writerows(rows)
    return path


def expected_accuracy(net: torch.nn.Module, rows=ROWS) -> float:
    with torch.no_grad():
        predictions = net(encode_batch([t for t, _ in rows])).argmax(1).numpy()
    labels = np.array([CLASSES.index(label) for _, label in rows])
    return float((predictions == labels).mean())


def compose_eval(overrides: list[str]):
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        return compose("evaluate", overrides=overrides)


def last_line(text: str) -> str:
    return [line for line in text.splitlines() if line.strip()][-1]


def test_checkpoint_on_csv_writes_report_and_picture(tmp_path, capsys):
    ckpt, net = save_checkpoint(tmp_path / "best.ckpt")
    data = write_csv(tmp_path / "words.csv")
    report = ev.run_evaluate(compose_eval([f"model_path={ckpt}", f"data_path={data}"]))

    out = capsys.readouterr().out
    assert last_line(out) == f"accuracy={expected_accuracy(net):.6f}"
    assert "per-class accuracy" in out and "confusion matrix" in out
    saved = json.loads((tmp_path / "best.eval.json").read_text(encoding="utf-8"))
    assert (tmp_path / "best.eval_confusion.png").stat().st_size > 1000
    assert saved["accuracy"] == pytest.approx(expected_accuracy(net))
    assert saved["samples"] == len(ROWS)
    assert saved["model"]["kind"] == "layoutnet" and saved["model"]["backend"] == "pytorch"
    assert saved["data"] == {"source": "csv", "path": str(data), "rows": len(ROWS)}
    assert np.array(saved["confusion_matrix"]).sum() == len(ROWS)
    assert saved["support"]["en"] == 3 and set(saved["per_class_accuracy"]) == set(CLASSES)
    assert report["paths"]["report"] == str(tmp_path / "best.eval.json")
    # The empty text is scored like any other row and mistakes carry their text.
    assert all(set(m) == {"row", "text", "label", "predicted", "probability"} for m in saved["mistakes"])


def test_csv_without_header_and_output_dir(tmp_path, capsys):
    ckpt, net = save_checkpoint(tmp_path / "model.ckpt")
    data = write_csv(tmp_path / "plain.csv", header=False)
    out_dir = tmp_path / "reports"
    ev.run_evaluate(compose_eval([f"model_path={ckpt}", f"data_path={data}", f"output_dir={out_dir}"]))
    assert last_line(capsys.readouterr().out) == f"accuracy={expected_accuracy(net):.6f}"
    assert (out_dir / "model.eval.json").exists() and (out_dir / "model.eval_confusion.png").exists()


def test_label_outside_the_classes_names_its_line(tmp_path):
    path = write_csv(tmp_path / "bad.csv", rows=[("hello", "en"), ("", "ru"), ("shalom", "he_from_xx")])
    with pytest.raises(DataError, match=r"line 4: label 'he_from_xx' is not one of the 9 classes"):
        csvfile.read(path)
    rows = csvfile.read(write_csv(tmp_path / "ok.csv", rows=[("", "ru"), ("x", "EN")]))
    assert rows.texts == ["", "x"] and rows.labels == [0, 1]


def test_missing_model_path_and_legacy_on_artifact_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="model_path"):
        open_model(None)
    artifact = tmp_path / "LayoutClassifier.mlmodel"
    artifact.write_bytes(b"x")
    with pytest.raises(ConfigError, match="legacy"):
        open_model(artifact, legacy="v1")


def test_legacy_state_dict(tmp_path, capsys):
    path = tmp_path / "model_v1.pth"
    torch.save(random_legacy_state_dict("v1", seed=3), path)
    data = write_csv(tmp_path / "words.csv")
    report = ev.run_evaluate(compose_eval([f"model_path={path}", f"data_path={data}", "legacy=v1"]))
    assert report["model"]["kind"] == "legacy:v1"
    assert last_line(capsys.readouterr().out).startswith("accuracy=")
    assert (tmp_path / "model_v1.eval.json").exists()


class _TorchRunner:
    """Stands in for the artifact runner: what the executor or Core ML would return for the file."""

    backend = "fake-runner"

    def __init__(self, net):
        self.net = net
        self.calls = 0

    def predict(self, ids: np.ndarray) -> np.ndarray:
        assert ids.dtype == np.int32 and ids.shape[1] == 20
        self.calls += 1
        with torch.no_grad():
            return self.net(torch.from_numpy(ids).long()).numpy()


def fake_artifact(path, runner, fmt):
    """An artifact whose interface keeps the contract, run by `runner` (no Core ML file needed)."""
    from layoutnet.export.artifact import Artifact, Interface

    interface = Interface(fmt, "input_ids", "INT32", (1, 20), "classLogits", "FLOAT32", (1, 9), {})
    return Artifact(Path(path), interface, runner)


def test_artifact_is_scored_through_the_artifact_runner(tmp_path, monkeypatch, capsys):
    _, net = save_checkpoint(tmp_path / "best.ckpt")
    artifact = tmp_path / "export" / "LayoutClassifier.mlpackage"
    artifact.mkdir(parents=True)
    runner = _TorchRunner(net)
    seen = []

    def fake_open(path, **_):
        seen.append(Path(path))
        return fake_artifact(path, runner, "mlprogram")

    monkeypatch.setattr("layoutnet.export.artifact.open_artifact", fake_open)
    data = write_csv(tmp_path / "words.csv")
    report = ev.run_evaluate(compose_eval([f"model_path={artifact}", f"data_path={data}", "realtext=false"]))
    assert seen == [artifact] and runner.calls == 1
    assert report["model"]["kind"] == "coreml:mlprogram" and report["model"]["backend"] == "fake-runner"
    assert last_line(capsys.readouterr().out) == f"accuracy={expected_accuracy(net):.6f}"
    assert (tmp_path / "export" / "LayoutClassifier.eval.json").exists()


def test_generated_test_set_without_data_path(tmp_path, capsys):
    ckpt, net = save_checkpoint(tmp_path / "best.ckpt")
    cfg = compose_eval([f"model_path={ckpt}", "data=tiny", "data.test_size=128"])
    report = ev.run_evaluate(cfg)
    assert report["samples"] == 128 and report["data"]["source"] == "generated test set"
    assert "expected_class_shares" in report["data"]["config"]
    data = evaluation.generated_test_data(cfg)
    ids, labels = data.ids, data.labels
    with torch.no_grad():
        accuracy = float((net(ids).argmax(1) == labels).float().mean())
    assert last_line(capsys.readouterr().out) == f"accuracy={accuracy:.6f}"


def test_model_inside_a_run_uses_that_runs_data_config(tmp_path, capsys):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    ckpt, _ = save_checkpoint(run / "checkpoints" / "best.ckpt")
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        train_cfg = compose("train", overrides=["+experiment=smoke", "data.test_size=96"])
    OmegaConf.save(OmegaConf.create({"data": train_cfg.data}), run / "config_resolved.yaml")
    report = ev.run_evaluate(compose_eval([f"model_path={ckpt}"]))
    assert report["samples"] == 96 and report["data"]["config_from"] == str(run / "config_resolved.yaml")
    assert "config_resolved.yaml), 96 rows" in capsys.readouterr().out
    # run_data=false: the evaluate config's own data section.
    cfg = compose_eval([f"model_path={ckpt}", "run_data=false", "data=tiny", "data.test_size=64"])
    assert evaluation.generated_test_data(cfg, ckpt).description["config_from"] == "data config"


def test_exported_artifact_scores_like_its_checkpoint(tmp_path, capsys):
    from layoutnet.export.pipeline import ModelInfo, export_model
    from layoutnet.export.settings import ExportSettings

    _, net = save_checkpoint(tmp_path / "best.ckpt")
    settings = ExportSettings(parity_samples=8, random_samples=8, parity_vectors=8)
    section = export_model(net, settings, tmp_path / "export", ModelInfo(run_id="test"))
    artifact = Path(section.path)
    data = write_csv(tmp_path / "words.csv")
    report = ev.run_evaluate(compose_eval([f"model_path={artifact}", f"data_path={data}"]))
    assert report["model"]["kind"] == "coreml:neuralnetwork"
    assert report["model"]["backend"] != "pytorch"
    assert report["accuracy"] == pytest.approx(expected_accuracy(net))
    assert last_line(capsys.readouterr().out) == f"accuracy={expected_accuracy(net):.6f}"


def test_command_line(tmp_path):
    ckpt, net = save_checkpoint(tmp_path / "best.ckpt")
    data = write_csv(tmp_path / "words.csv")
    done = run_module("layoutnet.evaluate", [f"model_path={ckpt}", f"data_path={data}"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.rstrip().splitlines()[-1] == f"accuracy={expected_accuracy(net):.6f}"
    assert (tmp_path / "best.eval.json").exists()
    assert not (tmp_path / "outputs").exists() and not list(tmp_path.glob("*.log"))

    bad = write_csv(tmp_path / "bad.csv", rows=[("hello", "english")])
    done = run_module(
        "layoutnet.evaluate", [f"model_path={ckpt}", f"data_path={bad}"], tmp_path, full_error=False
    )
    assert done.returncode == 1
    message = " ".join(done.stderr.split())  # rich wraps long lines
    assert "DataError" in message and "line 2: label 'english'" in message and "Traceback" not in message


def test_checkpoint_of_the_old_format_scores_like_the_new(tmp_path):
    new, net = save_checkpoint(tmp_path / "new.ckpt")
    old, _ = save_checkpoint(tmp_path / "old.ckpt", old_format=True)
    data = write_csv(tmp_path / "words.csv")
    reports = [ev.run_evaluate(compose_eval([f"model_path={p}", f"data_path={data}"])) for p in (new, old)]
    assert reports[0]["accuracy"] == reports[1]["accuracy"] == pytest.approx(expected_accuracy(net))
    assert reports[0]["confusion_matrix"] == reports[1]["confusion_matrix"]


def test_evaluating_a_core_ml_file_imports_no_lightning(tmp_path: Path):
    # Issue 12.8: scoring an artifact needs the executor, not the training stack (the report's version
    # list is read from package metadata, not by importing Lightning), nor coremltools' package (the
    # executor loads only its generated protobuf classes).
    import os
    import subprocess
    import sys

    from layoutnet.export.pipeline import ModelInfo, export_model
    from layoutnet.export.settings import ExportSettings

    settings = ExportSettings(parity_samples=4, random_samples=4, parity_vectors=4)
    artifact = export_model(
        CompactCNN(embed_dim=8, channels=(8, 8)).eval(), settings, tmp_path / "export", ModelInfo()
    )
    code = (
        "import atexit, runpy, sys\n"
        "names = {'pytorch_lightning', 'lightning', 'coremltools'}\n"
        "loaded = lambda: sorted({m.split('.')[0] for m in sys.modules} & names)\n"
        "atexit.register(lambda: print('heavy modules:', loaded()))\n"
        f"sys.argv = ['evaluate', 'model_path={artifact.path}', 'data=tiny', 'realtext=false']\n"
        "runpy.run_module('layoutnet.evaluate', run_name='__main__')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "src"), "PYTHONWARNINGS": "ignore"}
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "accuracy=" in done.stdout and "heavy modules: []" in done.stdout
