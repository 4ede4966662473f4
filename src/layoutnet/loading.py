"""One way to get a PyTorch network from any file a user holds: a layoutnet Lightning
checkpoint, or a legacy OMFK state_dict (`legacy=` names or detects its architecture)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from torch import nn

from layoutnet.checkpoints import is_layoutnet_checkpoint, net_from_checkpoint, read_checkpoint
from layoutnet.errors import CheckpointError
from layoutnet.models import count_parameters, model_family

COREML_SUFFIXES = (".mlpackage", ".mlmodel")


@dataclass
class LoadedModel:
    net: nn.Module
    source: str
    kind: str  # "layoutnet" or "legacy:<arch>"
    details: dict = field(default_factory=dict)

    def describe(self) -> dict:
        return {
            "path": self.source,
            "kind": self.kind,
            "family": model_family(self.net),
            "parameters": count_parameters(self.net),
            **self.details,
        }


def load_model(path: str | Path, legacy: str | None = None) -> LoadedModel:
    """`legacy=None`: a layoutnet checkpoint, or else a legacy state_dict detected automatically.
    `legacy=<v1|cnn|transformer|ensemble|auto>`: a legacy state_dict of that architecture."""
    path = Path(path)
    if path.suffix in COREML_SUFFIXES:
        raise CheckpointError(f"{path} is a Core ML artifact, not a PyTorch checkpoint; pass a .ckpt or .pth")
    if not path.exists():
        raise CheckpointError(f"{path} does not exist")
    if legacy is None:
        try:
            checkpoint = read_checkpoint(path)
        except CheckpointError:
            checkpoint = None  # the legacy loader below names the exact cause
        if is_layoutnet_checkpoint(checkpoint):
            net, _ = net_from_checkpoint(checkpoint, str(path))
            return LoadedModel(net, str(path), "layoutnet")
        legacy = "auto"
    from layoutnet.legacy import load_legacy

    net, info = load_legacy(path, legacy)
    return LoadedModel(net, str(path), f"legacy:{info['arch']}", {"legacy": info})
