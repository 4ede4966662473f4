"""Core ML's generated protobuf classes, without running coremltools' package `__init__`.

`from coremltools.proto import Model_pb2` first executes `coremltools/__init__.py`, which imports
every converter and probes for xgboost, scikit-learn, TensorFlow, ... (seconds, most of the start-up
of `predict` of a Core ML file). Reading a spec needs only the protoc-generated `*_pb2.py` files in
coremltools' installed `proto` folder, which import nothing but protobuf and each other (relatively:
`from . import FeatureTypes_pb2`). `model_pb2()` loads them as submodules of a private package,
`PRIVATE_PACKAGE`, whose `__path__` is that folder: the relative imports resolve among those files
and no coremltools code runs. The folder is located with `importlib.util.find_spec("coremltools")`,
which reads the package's location without executing it.

Sharing the process with coremltools: protobuf's default descriptor pool accepts a file added again
with identical bytes (it returns the descriptor it holds), and the message class of a descriptor is
built once and returned to every later request, so when coremltools is imported after the executor
its `coremltools.proto.Model_pb2.Model` is the very class the executor uses (and the other way round;
`tests/test_executor_protos.py` checks both orders). When coremltools is already imported, its own
modules are used.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import sys
import threading
from pathlib import Path
from types import ModuleType

from layoutnet.errors import ExportError

PRIVATE_PACKAGE = "layoutnet.export.executor._coreml_proto"
"""Name under which coremltools' generated protobuf files are loaded when coremltools itself is not."""

_LOCK = threading.Lock()


def _proto_folder() -> Path:
    spec = importlib.util.find_spec("coremltools")
    if spec is None or not spec.submodule_search_locations:
        raise ExportError("coremltools is not installed: it holds the Core ML protobuf definitions")
    for location in spec.submodule_search_locations:
        folder = Path(location) / "proto"
        if (folder / "Model_pb2.py").is_file():
            return folder
    raise ExportError(f"coremltools at {list(spec.submodule_search_locations)} has no proto/Model_pb2.py")


def _private_package() -> ModuleType:
    with _LOCK:
        package = sys.modules.get(PRIVATE_PACKAGE)
        if package is None:
            spec = importlib.machinery.ModuleSpec(PRIVATE_PACKAGE, None, is_package=True)
            spec.submodule_search_locations = [str(_proto_folder())]
            package = importlib.util.module_from_spec(spec)
            sys.modules[PRIVATE_PACKAGE] = package
        return package


def model_pb2() -> ModuleType:
    """The generated `Model_pb2` module (`Model_pb2.Model` is a Core ML spec)."""
    if "coremltools" in sys.modules:
        return importlib.import_module("coremltools.proto.Model_pb2")
    package = _private_package()
    return importlib.import_module(f"{package.__name__}.Model_pb2")
