"""Model families built only from the trace-safe blocks in `blocks`."""

from torch import nn

from layoutnet.models.cnn import CNNClassifier, CompactCNN
from layoutnet.models.ensemble import EnsembleClassifier
from layoutnet.models.transformer import TransformerClassifier

__all__ = [
    "CNNClassifier",
    "CompactCNN",
    "EnsembleClassifier",
    "TransformerClassifier",
    "count_parameters",
    "model_family",
]


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def model_family(model: nn.Module) -> str:
    return getattr(model, "family", type(model).__name__)
