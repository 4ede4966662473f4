"""One way to open a model file: `open_model(path, legacy=None) -> Scorer`.

A model file is data. A layoutnet `.ckpt` stores its network as a spec (family + plain keywords,
see `layoutnet.models.registry`) that is rebuilt only through the registry; a legacy OMFK `.pth`
is matched tensor by tensor against the legacy architectures; a Core ML `.mlmodel` / `.mlpackage`
is run from the file itself. Torch files are read with `weights_only=True`: no pickled object from
a file is ever constructed, and no `_target_` or class path from a file is imported.

This module imports neither Lightning nor the models at import time (commands that only need a
Core ML file stay light).
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from layoutnet.contract import NUM_CLASSES
from layoutnet.errors import CheckpointError, ConfigError, DataError

if TYPE_CHECKING:
    import torch
    from torch import nn

COREML_SUFFIXES = (".mlpackage", ".mlmodel")
META_KEY = "layoutnet"
"""Key of a layoutnet checkpoint's own metadata: {"net": spec, "family", "num_parameters"}."""
LEGACY_NET_KEY = "net_config"
"""Metadata key of checkpoints written before specs: a Hydra config with `_target_` class paths."""
NET_PREFIX = "net."
_LISTED = 8


# Scorer --------------------------------------------------------------------------------------------


@dataclass
class Scorer:
    """Logits of any model file: a PyTorch network or a saved Core ML artifact run from disk."""

    source: str
    kind: str  # "layoutnet", "legacy:<arch>" or "coreml:<format>"
    backend: str  # "pytorch" or the artifact runner's backend
    run: Callable[[np.ndarray], np.ndarray]
    details: dict = field(default_factory=dict)
    net: nn.Module | None = None  # PyTorch files: the network in eval mode
    metadata: dict = field(default_factory=dict)  # layoutnet checkpoint / Core ML metadata

    def logits(self, ids: Any, batch_size: int = 4096) -> np.ndarray:
        """float32 [N, 9] logits of int ids [N, 20] (a torch tensor or an array)."""
        array = ids.numpy() if hasattr(ids, "numpy") else np.asarray(ids)
        if not len(array):
            return np.zeros((0, NUM_CLASSES), dtype=np.float32)
        parts = [self.run(array[i : i + batch_size]) for i in range(0, len(array), batch_size)]
        logits = np.concatenate([np.asarray(p, dtype=np.float32).reshape(-1, NUM_CLASSES) for p in parts])
        if len(logits) != len(array):
            raise DataError(f"{self.source} returned {len(logits)} rows of logits for {len(array)} inputs")
        return logits

    def describe(self) -> dict:
        return {"path": self.source, "kind": self.kind, "backend": self.backend, **self.details}


def open_model(path: str | Path | None, legacy: str | None = None) -> Scorer:
    """A Scorer for a layoutnet `.ckpt`, a legacy `.pth`, or a Core ML `.mlpackage` / `.mlmodel`.

    `legacy=None`: a layoutnet checkpoint, or else a legacy state_dict whose architecture is
    detected; `legacy=<v1|cnn|transformer|ensemble|auto>`: a legacy state_dict of that architecture.
    """
    if not path:
        raise ConfigError(
            "model_path",
            path,
            "required: a run's checkpoints/best.ckpt, a legacy .pth, or an exported .mlpackage / .mlmodel",
        )
    path = Path(str(path)).expanduser()
    if path.suffix in COREML_SUFFIXES:
        return _artifact_scorer(path, legacy)
    net, kind, details, metadata = _torch_model(path, legacy)
    return _torch_scorer(net, str(path), kind, details, metadata)


def predict_logits(net: nn.Module, ids: torch.Tensor, batch_size: int = 2048) -> torch.Tensor:
    """A PyTorch network's logits [N, classes] for token id rows [N, SEQ_LEN], in eval mode, without
    gradients, `batch_size` rows at a time."""
    import torch

    if not len(ids):
        return torch.zeros(0, NUM_CLASSES)
    net = net.eval()
    with torch.no_grad():
        return torch.cat([net(ids[i : i + batch_size]) for i in range(0, len(ids), batch_size)])


def _torch_scorer(net: nn.Module, source: str, kind: str, details: dict, metadata: dict) -> Scorer:
    import torch

    from layoutnet.models import count_parameters, model_family

    net = net.eval()

    def run(ids: np.ndarray) -> np.ndarray:
        return predict_logits(net, torch.from_numpy(ids.astype(np.int64))).float().numpy()

    details = {"family": model_family(net), "parameters": count_parameters(net), **details}
    return Scorer(source, kind, "pytorch", run, details, net=net, metadata=metadata)


def _torch_model(path: Path, legacy: str | None) -> tuple[nn.Module, str, dict, dict]:
    if legacy is None:
        try:
            checkpoint = read_torch_file(path)
        except CheckpointError:
            checkpoint = None  # the legacy loader below names the exact cause
        if is_layoutnet_checkpoint(checkpoint):
            net, meta = net_from_checkpoint(checkpoint, str(path))
            return net, "layoutnet", {}, meta
        legacy = "auto"
    from layoutnet.legacy import load_legacy

    net, info = load_legacy(path, legacy)
    return net, f"legacy:{info['arch']}", {"legacy": info}, {}


def _artifact_scorer(path: Path, legacy: str | None) -> Scorer:
    if legacy:
        raise ConfigError(
            "legacy", legacy, f"applies to PyTorch state_dicts only, not to {path.suffix} files"
        )
    if not path.exists():
        raise CheckpointError(f"{path} does not exist")
    from layoutnet.export.artifact import open_artifact

    try:
        artifact = open_artifact(path)  # the interface is checked against the contract first
    except ImportError as exc:
        raise CheckpointError(
            f"cannot run {path} here: no Core ML runtime and no reference executor ({exc})"
        ) from exc

    def run(ids: np.ndarray) -> np.ndarray:
        return artifact.logits(ids)

    details = {k: v for k, v in artifact.describe().items() if k not in ("path", "backend")}
    fmt = artifact.format
    backend = artifact.backend
    metadata = dict(artifact.metadata)
    return Scorer(str(path), f"coreml:{fmt}", backend, run, details, metadata=metadata)


# Reading torch files ---------------------------------------------------------------------------------


def read_torch_file(path: str | Path) -> Any:
    """The contents of a torch file, read with `weights_only=True` (tensors and plain containers
    only: no pickled object is constructed). Every failure is a CheckpointError naming the cause."""
    import torch

    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such file; check the path of the model file")
    if not path.is_file():
        raise CheckpointError(f"{path}: not a file; pass the path of the .ckpt/.pth file itself")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "unsupported global" in str(exc).lower():
            raise CheckpointError(
                f"{path}: the file holds pickled Python objects, not only tensors (for example a whole "
                f"model saved with torch.save(model)), and layoutnet does not run code from model "
                f"files. In the environment that wrote it, re-save it with "
                f"torch.save(model.state_dict(), path). Cause: {_first_line(exc)}"
            ) from exc
        raise _unreadable(path, exc) from exc
    except Exception as exc:  # torch.load raises RuntimeError, EOFError, ValueError, zipfile errors, ...
        raise _unreadable(path, exc) from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def _unreadable(path: Path, exc: BaseException) -> CheckpointError:
    return CheckpointError(
        f"{path}: not a readable PyTorch file ({path.stat().st_size:,} bytes): it is truncated or corrupt "
        f"(an interrupted copy or download) or not written by torch.save. Copy or download it again, or "
        f"check that it is the right file. Cause: {_first_line(exc)}"
    )


def is_layoutnet_checkpoint(checkpoint: Any) -> bool:
    return isinstance(checkpoint, Mapping) and META_KEY in checkpoint and "state_dict" in checkpoint


def _targets(obj: Any, where: str) -> Iterator[str]:
    """Paths of every `_target_` key at any depth of plain data."""
    if isinstance(obj, Mapping):
        for key, value in obj.items():
            path = f"{where}.{key}" if where else str(key)
            if key == "_target_":
                yield path
            yield from _targets(value, path)
    elif isinstance(obj, list | tuple):
        for i, value in enumerate(obj):
            yield from _targets(value, f"{where}[{i}]")


def net_spec(checkpoint: Mapping[str, Any], source: str) -> dict[str, Any]:
    """The network spec a layoutnet checkpoint stores, checked as data.

    Current checkpoints hold `layoutnet.net` (a spec); older ones `layoutnet.net_config` (a Hydra
    config), accepted only when every `_target_` names one of layoutnet's own network classes. Any
    other `_target_` anywhere in the metadata is refused with its key.
    """
    from layoutnet.models.registry import spec_from_targets, to_spec

    if not is_layoutnet_checkpoint(checkpoint):
        raise CheckpointError(
            f"{source} is not a layoutnet checkpoint (no '{META_KEY}' metadata with a state_dict); for a "
            "plain state_dict from the app's old scripts pass legacy=auto"
        )
    meta = checkpoint[META_KEY]
    if not isinstance(meta, Mapping):
        raise CheckpointError(f"{source}: '{META_KEY}' holds a {type(meta).__name__}, not metadata")
    old = "net" not in meta and LEGACY_NET_KEY in meta
    for key in _targets(meta, ""):
        if old and key.startswith(f"{LEGACY_NET_KEY}."):
            continue  # checked below, each against the registry's class paths
        raise CheckpointError(
            f"{source}: {META_KEY}.{key} asks for code to run; layoutnet rebuilds networks only from its "
            f"own families and refuses this file"
        )
    try:
        if old:
            return spec_from_targets(meta[LEGACY_NET_KEY], LEGACY_NET_KEY)
        if "net" not in meta:
            raise ConfigError("net", None, "missing: the file does not say which network it holds")
        return to_spec(meta["net"], "net")
    except ConfigError as exc:
        raise CheckpointError(f"{source}: {exc}; the file is refused") from None


def weights_of(checkpoint: Mapping[str, Any], source: str) -> dict[str, Any]:
    """The network's tensors of a layoutnet checkpoint (`net.` prefix removed)."""
    import torch

    state = checkpoint.get("state_dict")
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{source}: its state_dict is not a mapping of names to tensors")
    return {k[len(NET_PREFIX) :]: v for k, v in state.items() if str(k).startswith(NET_PREFIX)}


def weight_mismatches(expected: Mapping[str, Any], found: Mapping[str, Any]) -> list[str]:
    """Tensors of `found` that differ from `expected` (a state_dict), in the network's order."""
    problems = []
    for name, tensor in expected.items():
        if name not in found:
            problems.append(f"{name} missing (expected {list(tensor.shape)})")
        elif tuple(found[name].shape) != tuple(tensor.shape):
            problems.append(f"{name}: expected {list(tensor.shape)}, found {list(found[name].shape)}")
    problems += [f"{name} unexpected ({list(found[name].shape)})" for name in found if name not in expected]
    return problems


def _listing(items: list[str]) -> str:
    shown = "; ".join(items[:_LISTED])
    return shown + (f"; ... ({len(items) - _LISTED} more)" if len(items) > _LISTED else "")


def net_from_checkpoint(checkpoint: Mapping[str, Any], source: str = "checkpoint") -> tuple[nn.Module, dict]:
    """(network in eval mode, the checkpoint's layoutnet metadata), rebuilt through the registry."""
    from layoutnet.models.registry import build_net

    spec = net_spec(checkpoint, source)
    try:
        net = build_net(spec)
    except ConfigError as exc:
        raise CheckpointError(f"{source}: the stored network cannot be built: {exc}") from None
    weights = weights_of(checkpoint, source)
    problems = weight_mismatches(net.state_dict(), weights)
    if problems:
        raise CheckpointError(
            f"{source}: the weights do not fit the {spec['family']!r} network the file describes; "
            f"first mismatches: {_listing(problems)}"
        )
    net.load_state_dict(weights, strict=True)
    meta = {k: v for k, v in checkpoint[META_KEY].items() if k != LEGACY_NET_KEY}
    return net.eval(), {**meta, "net": spec}


def load_net(path: str | Path) -> tuple[nn.Module, dict]:
    """(network, metadata) of a layoutnet checkpoint file."""
    return net_from_checkpoint(read_torch_file(path), str(path))


def check_resume_checkpoint(path: str | Path, net: nn.Module, spec: Mapping[str, Any]) -> None:
    """Refuse a `ckpt_path=` that is not a layoutnet checkpoint of the configured network."""
    path = Path(str(path)).expanduser()
    if not path.is_file():
        raise ConfigError("ckpt_path", str(path), "file not found; pass a run's checkpoints/last.ckpt")
    try:
        checkpoint = read_torch_file(path)
        stored = net_spec(checkpoint, str(path))
    except CheckpointError as exc:
        raise ConfigError("ckpt_path", str(path), f"cannot resume from it: {exc}") from None
    if stored["family"] != spec["family"]:
        raise ConfigError(
            "ckpt_path",
            str(path),
            f"holds a {stored['family']!r} network but the configured model.net is {spec['family']!r}; "
            "repeat the interrupted run's overrides (its .hydra/overrides.yaml) with ckpt_path=",
        )
    problems = weight_mismatches(net.state_dict(), weights_of(checkpoint, str(path)))
    if problems:
        raise ConfigError(
            "ckpt_path",
            str(path),
            f"its weights do not fit the configured {spec['family']!r} network (other sizes); first "
            f"mismatches: {_listing(problems)}; repeat the interrupted run's overrides with ckpt_path=",
        )


def best_checkpoint_path(trainer: Any) -> str | None:
    """The trainer's best checkpoint file, or None when none was kept."""
    callback = getattr(trainer, "checkpoint_callback", None)
    path = getattr(callback, "best_model_path", "") if callback else ""
    return path if path and Path(path).is_file() else None
