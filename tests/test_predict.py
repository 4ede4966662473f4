"""`python -m layoutnet.predict`: top classes with probabilities and the text re-typed on the layout it was
meant for, for one `text=` or for every line of stdin, from a checkpoint, a legacy .pth or an artifact."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from layoutnet import predict as pr
from layoutnet.contract import CLASS_TO_ID, CLASSES
from layoutnet.correction import DEFAULT_LAYOUTS, Corrector
from layoutnet.errors import ConfigError, DataError
from layoutnet.layouts import LayoutSet
from layoutnet.models import CompactCNN

from .conftest import REPO_ROOT
from .legacy_reference import random_legacy_state_dict

CONF = str(REPO_ROOT / "conf")
NET_SPEC = {"family": "compact_cnn", "kwargs": {"embed_dim": 4, "channels": [4], "pools": [1]}}


def rigged_checkpoint(path: Path, winner: str, runner_up: str = "en") -> Path:
    """A checkpoint whose network always answers `winner` (p ~ 0.88), then `runner_up`."""
    net = CompactCNN(embed_dim=4, channels=(4,), pools=(1,))
    with torch.no_grad():
        net.fc.weight.zero_()
        net.fc.bias.zero_()
        net.fc.bias[CLASS_TO_ID[winner]] = 6.0
        net.fc.bias[CLASS_TO_ID[runner_up]] = 4.0
    payload = {
        "layoutnet": {"net": NET_SPEC, "family": "cnn", "num_parameters": 0},
        "state_dict": {f"net.{k}": v for k, v in net.state_dict().items()},
    }
    torch.save(payload, path)
    return path


def compose_predict(overrides: list[str]):
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        return compose("predict", overrides=pr.quote_text_overrides(overrides))


@pytest.mark.parametrize(
    ("typed", "label", "meant"),
    [
        ("ghbdtn", "ru_from_en", "привет"),
        ("руддщ", "en_from_ru", "hello"),
        ("akuo", "he_from_en", "שלום"),
        ("ghbdtn vbh", "ru_from_en", "привет мир"),
        ("Ghbdtn", "ru_from_en", "Привет"),
        ("hello", "en", "hello"),
        ("", "ru_from_he", ""),
    ],
)
def test_corrector_retypes_on_the_meant_layout(typed, label, meant):
    corrector = Corrector(LayoutSet.builtin(), DEFAULT_LAYOUTS)
    assert corrector.correct(typed, label) == meant


def test_corrector_refuses_layouts_of_the_wrong_language_or_unknown_ids():
    with pytest.raises(ConfigError, match=r"layouts\.ru"):
        Corrector(LayoutSet.builtin(), {**DEFAULT_LAYOUTS, "ru": "us"})
    with pytest.raises(DataError, match="unknown keyboard layout 'dvorak'"):
        Corrector(LayoutSet.builtin(), {**DEFAULT_LAYOUTS, "en": "dvorak"})


@pytest.mark.parametrize(
    "text",
    [
        "руддщ",
        "שלום",
        "hello world",
        "ghbdtn,",
        "it's",
        "a\\b",
        "end\\",
        "${x}",
        "\\${y}",
        "[1,2]",
        "=x",
        "",
        "1.50",
    ],
)
def test_text_arguments_are_taken_literally(text):
    (override,) = pr.quote_text_overrides([f"text={text}"])
    parsed = OverridesParser.create().parse_override(override)
    assert OmegaConf.create({"text": parsed.value()}).text == text
    assert pr.quote_text_overrides(["text='already quoted'", "top_k=2"]) == [
        "text='already quoted'",
        "top_k=2",
    ]


def test_one_text_and_stdin_lines(tmp_path):
    ckpt = rigged_checkpoint(tmp_path / "ru.ckpt", "ru_from_en")
    out = io.StringIO()
    results = pr.run_predict(compose_predict([f"model_path={ckpt}", "text=ghbdtn"]), out=out)
    assert [r.corrected for r in results] == ["привет"]
    line = out.getvalue().strip()
    assert line.startswith("ghbdtn -> привет | ru_from_en 0.8")
    assert line.count(",") == 2  # top_k=3 classes

    out = io.StringIO()
    stdin = io.StringIO("ghbdtn\r\n\nntcn ntcn\n")
    results = pr.run_predict(compose_predict([f"model_path={ckpt}", "format=json", "top_k=2"]), stdin, out)
    lines = [json.loads(x) for x in out.getvalue().splitlines()]
    assert [x["text"] for x in lines] == ["ghbdtn", "", "ntcn ntcn"]
    assert [x["corrected"] for x in lines] == ["привет", "", "тест тест"]
    assert all(x["class"] == "ru_from_en" and len(x["top"]) == 2 for x in lines)
    assert lines[0]["top"][1]["class"] == "en"
    assert sum(p["probability"] for p in lines[0]["top"]) < 1.0


def test_bad_settings_are_refused(tmp_path):
    ckpt = rigged_checkpoint(tmp_path / "ru.ckpt", "ru_from_en")
    with pytest.raises(ConfigError, match="format"):
        pr.run_predict(compose_predict([f"model_path={ckpt}", "text=x", "format=xml"]))
    with pytest.raises(ConfigError, match="top_k"):
        pr.run_predict(compose_predict([f"model_path={ckpt}", "text=x", "top_k=0"]))


def test_legacy_state_dict(tmp_path):
    path = tmp_path / "model_v1.pth"
    torch.save(random_legacy_state_dict("v1", seed=1), path)
    out = io.StringIO()
    (result,) = pr.run_predict(compose_predict([f"model_path={path}", "text=ghbdtn", "legacy=auto"]), out=out)
    assert result.label in CLASSES
    assert result.corrected == Corrector(LayoutSet.builtin(), DEFAULT_LAYOUTS).correct("ghbdtn", result.label)


def test_artifact_through_the_artifact_runner(tmp_path, monkeypatch):
    artifact = tmp_path / "LayoutClassifier.mlmodel"
    artifact.write_bytes(b"stand-in")

    class Runner:
        backend = "fake-runner"

        def predict(self, ids):
            assert ids.dtype == np.int32
            logits = np.zeros((len(ids), len(CLASSES)), dtype=np.float32)
            logits[:, CLASS_TO_ID["he_from_en"]] = 5.0
            return logits

    from layoutnet.export.artifact import Artifact, Interface

    interface = Interface(
        "neuralnetwork", "input_ids", "INT32", (1, 20), "classLogits", "FLOAT32", (1, 9), {}
    )
    monkeypatch.setattr(
        "layoutnet.export.artifact.open_artifact", lambda path, **_: Artifact(Path(path), interface, Runner())
    )
    out = io.StringIO()
    (result,) = pr.run_predict(compose_predict([f"model_path={artifact}", "text=akuo"]), out=out)
    assert result.label == "he_from_en" and result.corrected == "שלום"


def test_exported_artifact_predicts_like_its_checkpoint(tmp_path):
    from layoutnet.export.pipeline import ModelInfo, export_model
    from layoutnet.export.settings import ExportSettings
    from layoutnet.modelfile import load_net

    ckpt = rigged_checkpoint(tmp_path / "en.ckpt", "en_from_ru", runner_up="ru")
    settings = ExportSettings(parity_samples=4, random_samples=4, parity_vectors=4)
    net = load_net(ckpt)[0]
    artifact = Path(export_model(net, settings, tmp_path / "export", ModelInfo()).path)
    out = io.StringIO()
    (result,) = pr.run_predict(compose_predict([f"model_path={artifact}", "text=руддщ"]), out=out)
    assert result.label == "en_from_ru" and result.corrected == "hello"
    assert result.top[0][1] == pytest.approx(np.exp(6) / (np.exp(6) + np.exp(4) + 7), abs=1e-4)


def test_command_line_with_non_ascii_text_and_stdin(tmp_path):
    ckpt = rigged_checkpoint(tmp_path / "en.ckpt", "en_from_ru")
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    command = [sys.executable, "-m", "layoutnet.predict", f"model_path={ckpt}"]
    done = subprocess.run(
        [*command, "text=руддщ, 'vbh'"], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["руддщ, 'vbh' -> hello? 'vbh' | en_from_ru 0.868, en 0.117, ru 0.002"]
    done = subprocess.run(
        [*command, "top_k=1"], input="руддщ\nцщкдв\n", cwd=tmp_path, capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "руддщ -> hello | en_from_ru 0.868",
        "цщкдв -> world | en_from_ru 0.868",
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["en.ckpt"]  # no outputs/, no log file


@pytest.mark.parametrize("fmt", ["mlprogram", "neuralnetwork"])
def test_predict_of_a_core_ml_file_does_not_import_coremltools(tmp_path, fmt):
    # Issue 12.8: coremltools' package __init__ imports every converter (seconds); the executor reads the
    # spec with the generated protobuf classes alone (layoutnet.export.executor.protos).
    from layoutnet.export.pipeline import ModelInfo, export_model
    from layoutnet.export.settings import ExportSettings

    settings = ExportSettings(format=fmt, parity_samples=4, random_samples=4, parity_vectors=4)
    artifact = export_model(CompactCNN(embed_dim=8, channels=(8, 8)).eval(), settings, tmp_path, ModelInfo())
    code = (
        "import atexit, runpy, sys\n"
        "loaded = lambda: sorted(m for m in sys.modules if m.split('.')[0] == 'coremltools')\n"
        "atexit.register(lambda: print('coremltools modules:', loaded()))\n"
        f"sys.argv = ['predict', 'model_path={artifact.path}', 'text=ghbdtn']\n"
        "runpy.run_module('layoutnet.predict', run_name='__main__')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "src"), "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("ghbdtn -> ") and "coremltools modules: []" in done.stdout
