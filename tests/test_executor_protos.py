"""The executor reads Core ML specs with coremltools' generated protobuf classes, loaded without running
coremltools' package `__init__` (issue 12.8: that import is most of `predict`'s start-up). Sharing a
process with coremltools must still work in either order: the same .proto files registered twice in
protobuf's default pool must not clash, and a conversion, save and executor run afterwards must succeed.
Each order runs in a fresh interpreter (this one has imported coremltools long ago)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from layoutnet.export.executor import protos

from .conftest import REPO_ROOT

# Export of a tiny network (ct.convert, save, load back, parity through the executor), then the
# executor on the saved file against PyTorch.
_EXPORT_AND_RUN = """
import numpy as np
import torch
from layoutnet.export.executor import load_executor
from layoutnet.export.pipeline import ModelInfo, export_model
from layoutnet.export.settings import ExportSettings
from layoutnet.models import CompactCNN

torch.manual_seed(0)
net = CompactCNN(embed_dim=8, channels=(8, 8)).eval()
settings = ExportSettings(format=FORMAT, parity_samples=4, random_samples=4, parity_vectors=4)
result = export_model(net, settings, OUT, ModelInfo())
assert result.status == "ok", result.status
ids = np.random.default_rng(0).integers(0, 30, size=(6, 20)).astype(np.int32)
got = load_executor(result.path).predict(ids)
want = net(torch.from_numpy(ids).long()).detach().numpy()
assert np.abs(got - want).max() < 1e-2, np.abs(got - want).max()
"""

_OURS_FIRST = """
import sys
from layoutnet.export.executor import read_spec
from layoutnet.export.executor.protos import PRIVATE_PACKAGE

spec, _ = read_spec(EXISTING)
assert spec.WhichOneof("Type") in ("mlProgram", "neuralNetwork")
assert "coremltools" not in sys.modules, "reading a spec imported coremltools"
ours = sys.modules[PRIVATE_PACKAGE + ".Model_pb2"]
EXPORT_AND_RUN
import coremltools
assert coremltools.proto.Model_pb2.Model is ours.Model
assert coremltools.proto.Model_pb2.Model.FromString(spec.SerializeToString()) == spec
print("ok")
"""

_COREMLTOOLS_FIRST = """
import importlib, sys
import coremltools
from layoutnet.export.executor import read_spec
from layoutnet.export.executor.protos import PRIVATE_PACKAGE, _private_package

spec, _ = read_spec(EXISTING)
assert type(spec) is coremltools.proto.Model_pb2.Model  # coremltools' own modules, already imported
assert PRIVATE_PACKAGE not in sys.modules
# The private copy loaded anyway, after coremltools registered the same files.
ours = importlib.import_module(_private_package().__name__ + ".Model_pb2")
assert ours.Model is coremltools.proto.Model_pb2.Model
assert ours.Model.FromString(spec.SerializeToString()) == spec
EXPORT_AND_RUN
print("ok")
"""


@pytest.fixture(scope="module")
def existing(tmp_path_factory) -> Path:
    from layoutnet.export.pipeline import ModelInfo, export_model
    from layoutnet.export.settings import ExportSettings
    from layoutnet.models import CompactCNN

    settings = ExportSettings(parity_samples=4, random_samples=4, parity_vectors=4)
    out = tmp_path_factory.mktemp("existing")
    net = CompactCNN(embed_dim=8, channels=(8, 8)).eval()
    return Path(export_model(net, settings, out, ModelInfo()).path)


@pytest.mark.parametrize(
    ("order", "fmt", "implementation"),
    [
        ("ours_first", "mlprogram", "upb"),
        ("coremltools_first", "neuralnetwork", "upb"),
        ("ours_first", "neuralnetwork", "python"),
        ("coremltools_first", "mlprogram", "python"),
    ],
)
def test_coremltools_in_the_same_process_either_order(tmp_path, existing, order, fmt, implementation):
    script = {"ours_first": _OURS_FIRST, "coremltools_first": _COREMLTOOLS_FIRST}[order]
    code = textwrap.dedent(script).replace("EXPORT_AND_RUN", _EXPORT_AND_RUN)
    code = f"EXISTING = {str(existing)!r}\nOUT = {str(tmp_path / 'new')!r}\nFORMAT = {fmt!r}\n" + code
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT / "src"),
        "PYTHONWARNINGS": "ignore",
        "PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION": implementation,
    }
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith("ok")


def test_proto_folder_is_found_without_importing_coremltools():
    code = (
        "import sys; from layoutnet.export.executor.protos import _proto_folder; "
        "print(_proto_folder().name, 'coremltools' in sys.modules)"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "src")}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["proto", "False"]


def test_without_coremltools_the_spec_reader_says_so(monkeypatch):
    monkeypatch.setattr(protos.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(protos.ExportError, match="coremltools is not installed"):
        protos._proto_folder()
