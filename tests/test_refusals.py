"""What layoutnet refuses: each bad input ends the command with exit code 1, no traceback, and (for
layoutnet's own checks) exactly one `error:` line naming the problem, before any work is done.

One row per case: name, command module, arguments, and a fragment the error must contain. Arguments
may use `{tmp}` (an empty directory), `{file}` (an existing regular file) and the placeholders a row's
`setup(tmp_path) -> dict` returns. Append new cases at the end of CASES. docs/refusals.md describes
the same refusals.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from .conftest import run_module
from .legacy_reference import random_legacy_state_dict


@dataclass(frozen=True)
class Case:
    name: str
    module: str
    args: tuple[str, ...]
    fragment: str
    setup: Callable[[Path], dict[str, str]] | None = None
    by_hydra: bool = False  # Hydra's own config errors: one message, not layoutnet's `error:` line


TRAIN = "layoutnet"
SMOKE = ("+experiment=smoke", "hydra.run.dir={tmp}/run")


def _legacy_pth(tmp: Path) -> dict[str, str]:
    path = tmp / "model_v1.pth"
    torch.save(random_legacy_state_dict("v1"), path)
    return {"pth": str(path)}


def _transformer_ckpt(tmp: Path) -> dict[str, str]:
    from layoutnet.models.registry import build_net

    spec = {"family": "transformer", "kwargs": {"d_model": 8, "num_heads": 2, "num_layers": 1, "ff_dim": 8}}
    net = build_net(spec)
    path = tmp / "transformer.ckpt"
    torch.save(
        {"layoutnet": {"net": spec}, "state_dict": {f"net.{k}": v for k, v in net.state_dict().items()}}, path
    )
    return {"ckpt": str(path)}


def _pickled_module(tmp: Path) -> dict[str, str]:
    path = tmp / "whole_model.pth"
    torch.save(torch.nn.Linear(2, 2), path)
    return {"pth": str(path)}


def _truncated(tmp: Path) -> dict[str, str]:
    whole = tmp / "whole.pth"
    torch.save(random_legacy_state_dict("v1"), whole)
    path = tmp / "half.pth"
    path.write_bytes(whole.read_bytes()[:2000])
    return {"pth": str(path)}


def _bad_label_csv(tmp: Path) -> dict[str, str]:
    path = tmp / "words.csv"
    path.write_text("text,label\nhello,en\nprivet,english\n", encoding="utf-8")
    return {"csv": str(path), **_legacy_pth(tmp)}


def _artifact(tmp: Path) -> dict[str, str]:
    path = tmp / "LayoutClassifier.mlmodel"
    path.write_bytes(b"stand-in")
    return {"artifact": str(path)}


def _artifact_with_input_length_19(tmp: Path) -> dict[str, str]:
    from layoutnet.export.executor import read_spec
    from layoutnet.export.pipeline import ModelInfo, export_model
    from layoutnet.export.settings import ExportSettings
    from layoutnet.models import CompactCNN

    settings = ExportSettings(parity_samples=4, random_samples=4, parity_vectors=4)
    path = Path(
        export_model(
            CompactCNN(embed_dim=8, channels=(8, 8)).eval(), settings, tmp / "export", ModelInfo()
        ).path
    )
    spec, model_file = read_spec(path)
    shape = spec.description.input[0].type.multiArrayType.shape
    del shape[:]
    shape.extend([1, 19])
    model_file.write_bytes(spec.SerializeToString())
    return {"artifact": str(path)}


def _ml_program(tmp: Path) -> Path:
    from layoutnet.export.pipeline import ModelInfo, export_model
    from layoutnet.export.settings import ExportSettings
    from layoutnet.models import CompactCNN

    settings = ExportSettings(format="mlprogram", parity_samples=4, random_samples=4, parity_vectors=4)
    net = CompactCNN(embed_dim=8, channels=(8, 8)).eval()
    return Path(export_model(net, settings, tmp / "export", ModelInfo()).path)


def _weight_file(package: Path) -> Path:
    return next(package.rglob("weight.bin"))


def _weight_bin_bad_sentinel(tmp: Path) -> dict[str, str]:
    package = _ml_program(tmp)
    weights = _weight_file(package)
    data = bytearray(weights.read_bytes())
    data[64:68] = (0xFEEDFACE).to_bytes(4, "little")  # the first blob record's sentinel
    weights.write_bytes(bytes(data))
    return {"artifact": str(package)}


def _weight_bin_truncated(tmp: Path) -> dict[str, str]:
    package = _ml_program(tmp)
    weights = _weight_file(package)
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    return {"artifact": str(package)}


def _csv_without_label_column(tmp: Path) -> dict[str, str]:
    path = tmp / "words.csv"
    path.write_text("text,language\nhello,en\n", encoding="utf-8")
    return {"csv": str(path), **_legacy_pth(tmp)}


def _checkpoint_naming_code(tmp: Path) -> dict[str, str]:
    path = tmp / "planted.ckpt"
    torch.save({"layoutnet": {"net_config": {"_target_": "builtins.print"}}, "state_dict": {}}, path)
    return {"ckpt": str(path)}


CASES: list[Case] = [
    # Training configuration (refused in Run.prepare or by Hydra, before training).
    Case(
        "unknown experiment", TRAIN, ("+experiment=nope",), "Could not find 'experiment/nope'", by_hydra=True
    ),
    Case("unknown model", TRAIN, ("model=nope",), "Could not find 'model/nope'", by_hydra=True),
    Case("non-numeric lr", TRAIN, (*SMOKE, "model.lr=fast"), "model.lr='fast': must be a number"),
    Case("negative lr", TRAIN, (*SMOKE, "model.lr=-0.001"), "model.lr=-0.001: must be > 0"),
    Case("non-integer max_epochs", TRAIN, (*SMOKE, "trainer.max_epochs=1.5"), "trainer.max_epochs=1.5"),
    Case("text max_epochs", TRAIN, (*SMOKE, "trainer.max_epochs=many"), "trainer.max_epochs='many'"),
    Case(
        "transformer seq_len",
        TRAIN,
        (*SMOKE, "model=transformer", "+model.net.seq_len=16"),
        "model.net.seq_len=16: the app's contract fixes the input length (allowed: 20)",
    ),
    Case("cnn seq_len", TRAIN, (*SMOKE, "model=cnn", "+model.net.seq_len=32"), "model.net.seq_len=32"),
    Case(
        "unknown network setting",
        TRAIN,
        (*SMOKE, "model=cnn", "+model.net.channels=[8]"),
        "model.net.channels=[8]: is not a setting of the 'cnn' network",
    ),
    Case(
        "impossible head count",
        TRAIN,
        (*SMOKE, "model=transformer", "model.net.num_heads=5"),
        "model.net.num_heads",
    ),
    Case(
        "kernel longer than the input", TRAIN, (*SMOKE, "model.net.kernel_size=25"), "model.net.kernel_size"
    ),
    Case("unknown export format", TRAIN, (*SMOKE, "export.format=onnx"), "export.format"),
    Case(
        "missing training CSV",
        TRAIN,
        (*SMOKE, "data=csv", "data.path=/nonexistent/train.csv"),
        "/nonexistent/train.csv",
    ),
    Case("run directory is a file", TRAIN, ("+experiment=smoke", "hydra.run.dir={file}"), "hydra.run.dir"),
    Case(
        "run directory cannot be created",
        TRAIN,
        ("+experiment=smoke", "hydra.run.dir={file}/run"),
        "cannot be created",
    ),
    Case("resume from a missing file", TRAIN, (*SMOKE, "ckpt_path=/nonexistent/last.ckpt"), "ckpt_path"),
    Case(
        "resume from a file that is not a layoutnet checkpoint",
        TRAIN,
        (*SMOKE, "ckpt_path={pth}"),
        "is not a layoutnet checkpoint",
        _legacy_pth,
    ),
    Case(
        "resume from a checkpoint of another family",
        TRAIN,
        (*SMOKE, "ckpt_path={ckpt}"),
        "holds a 'transformer' network but the configured model.net is 'compact_cnn'",
        _transformer_ckpt,
    ),
    Case(
        "fine-tune onto another architecture",
        TRAIN,
        (*SMOKE, "init_from={pth}", "init_legacy=v1", "trainer.max_epochs=1"),
        "model/net=compact_cnn",
        _legacy_pth,
    ),
    # Model files (evaluate, predict, export).
    Case("missing model_path", "layoutnet.evaluate", (), "model_path=None: required"),
    Case(
        "model file does not exist",
        "layoutnet.evaluate",
        ("model_path=/nonexistent/best.ckpt",),
        "no such file",
    ),
    Case(
        "pickled Python objects",
        "layoutnet.predict",
        ("model_path={pth}", "text=x"),
        "holds pickled Python objects",
        _pickled_module,
    ),
    Case(
        "truncated file",
        "layoutnet.predict",
        ("model_path={pth}", "text=x"),
        "truncated or corrupt",
        _truncated,
    ),
    Case(
        "legacy architecture that does not match",
        "layoutnet.export",
        ("ckpt_path={pth}", "legacy=cnn", "data=tiny", "hydra.run.dir={tmp}/run"),
        "looks like a 'v1' file",
        _legacy_pth,
    ),
    Case(
        "legacy= for a Core ML file",
        "layoutnet.evaluate",
        ("model_path={artifact}", "legacy=v1"),
        "applies to PyTorch state_dicts only",
        _artifact,
    ),
    Case(
        "label outside the classes",
        "layoutnet.evaluate",
        ("model_path={pth}", "data_path={csv}"),
        "line 3: label 'english' is not one of the 9 classes",
        _bad_label_csv,
    ),
    Case(
        "evaluate output_dir is a file",
        "layoutnet.evaluate",
        ("model_path={pth}", "data=tiny", "output_dir={file}"),
        "output_dir=",
        _legacy_pth,
    ),
    Case(
        "export output_dir is a file",
        "layoutnet.export",
        ("ckpt_path={pth}", "data=tiny", "output_dir={file}", "hydra.run.dir={tmp}/run"),
        "is a file, not a directory",
        _legacy_pth,
    ),
    Case(
        "unknown predict format",
        "layoutnet.predict",
        ("model_path={pth}", "format=xml"),
        "format='xml'",
        _legacy_pth,
    ),
    Case("top_k below 1", "layoutnet.predict", ("model_path={pth}", "top_k=0"), "top_k=0", _legacy_pth),
    # Other helpers append their cases below this line.
    Case(
        "artifact declaring 19 input characters",
        "layoutnet.evaluate",
        ("model_path={artifact}",),
        "the shape of input 'input_ids' is [1, 19]; the app expects [1, 20]",
        _artifact_with_input_length_19,
    ),
    Case(
        "compression of a NeuralNetwork",
        TRAIN,
        (*SMOKE, "export.compression=int8"),
        "export.compression='int8': weight compression needs an ML Program",
    ),
    Case(
        "app precision that does not exist",
        TRAIN,
        (*SMOKE, "export.app_precision=int4"),
        "export.app_precision='int4'",
    ),
    Case(
        "weight.bin with a bad record sentinel",
        "layoutnet.evaluate",
        ("model_path={artifact}", "data=tiny", "realtext=false"),
        "bad sentinel 0xfeedface",
        _weight_bin_bad_sentinel,
    ),
    Case(
        "weight.bin cut short",
        "layoutnet.evaluate",
        ("model_path={artifact}", "data=tiny", "realtext=false"),
        "weight.bin",
        _weight_bin_truncated,
    ),
    Case(
        "CSV without a label column",
        "layoutnet.evaluate",
        ("model_path={pth}", "data_path={csv}", "realtext=false"),
        "label",
        _csv_without_label_column,
    ),
    Case(
        "generate out= is a directory",
        "layoutnet.generate",
        ("n=5", "out={tmp}"),
        "out=",
    ),
    Case(
        "checkpoint whose stored network names code",
        "layoutnet.evaluate",
        ("model_path={ckpt}", "data=tiny", "realtext=false"),
        "_target_",
        _checkpoint_naming_code,
    ),
    Case(
        "distillation without a teacher",
        TRAIN,
        ("+experiment=distill", "hydra.run.dir={tmp}/run"),
        "teacher_ckpt='???': required",
    ),
    Case(
        "CSV data without a path",
        TRAIN,
        (*SMOKE, "data=csv"),
        "data.path='???': required",
    ),
    Case(
        "generate without out=",
        "layoutnet.generate",
        ("n=5",),
        "out='???': required",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_is_refused_with_one_error_line(case: Case, tmp_path: Path):
    afile = tmp_path / "a_file.txt"
    afile.write_text("not a directory\n", encoding="utf-8")
    values = {"tmp": str(tmp_path), "file": str(afile), **(case.setup(tmp_path) if case.setup else {})}
    args = [arg.format(**values) for arg in case.args]
    done = run_module(case.module, args, full_error=False)
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-2000:]
    assert case.fragment in done.stderr, done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert case.by_hydra or len(errors) == 1, done.stderr[-3000:]
    assert not (tmp_path / "run" / "checkpoints").exists()
    assert not (tmp_path / "run" / "export").exists()


def test_full_error_shows_the_traceback_above_the_error_line(tmp_path: Path):
    # A fresh interpreter: the one refusal checked exactly as a user's shell runs it.
    done = run_module(TRAIN, ["+experiment=smoke", "model.lr=fast", f"hydra.run.dir={tmp_path}"], fresh=True)
    assert done.returncode == 1
    assert "Traceback" in done.stderr and "model.lr='fast'" in done.stderr.splitlines()[-1]
