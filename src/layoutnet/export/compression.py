"""What a compressed artifact's weights are, and what its compression costs.

Parity is the promise that a file computes what its weights say. A compressed file's weights are the
compressed ones, so its parity is measured against the PyTorch model carrying them:
`with_file_weights` reads the decompressed weights back from the saved file (the reference executor
decodes its `constexpr_*` ops) and puts each onto the parameter of the model it stands for.

What the compression itself costs is a separate question, answered against the uncompressed model on
data no export step trained on (`CostMeter`): accuracy on the export's validation rows, accuracy on
each real-text split (`layoutnet.quality.REALTEXT_SPLITS`) and harmful rewrites of correctly typed
text at the app's correction threshold, held to `export.compression_budget`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from layoutnet.errors import ExportError
from layoutnet.export.settings import CompressionBudget
from layoutnet.metrics import softmax
from layoutnet.modelfile import predict_logits


def with_file_weights(model: nn.Module, artifact: Path) -> tuple[nn.Module, dict[str, str]]:
    """A copy of `model` carrying the artifact's decompressed weights, and which parameter each
    compressed weight of the file went to ({weight name in the file: parameter name}).

    Each compressed weight goes to the parameter (or floating buffer) of the same shape it is
    nearest to - compression keeps every value near its original - one parameter per weight. A
    weight with no parameter of its shape within half that parameter's range of it (a weight the
    converter derived, e.g. by folding two layers) is refused: its PyTorch counterpart is unknown.
    The other weights of the file are the model's own (parity checks that too)."""
    from layoutnet.export.executor import load_executor

    weights = load_executor(artifact, precision="fp32").compressed_weights()
    if not weights:
        raise ExportError(f"{artifact} holds no compressed weights (no constexpr_* op) to read back")
    twin = copy.deepcopy(model).eval()
    tensors = dict(twin.named_parameters())
    tensors.update((n, b) for n, b in twin.named_buffers() if b.is_floating_point())
    pairs = []
    for key, dense in weights.items():
        for name, tensor in tensors.items():
            if tuple(tensor.shape) == dense.shape:
                original = tensor.detach().numpy()
                pairs.append((float(np.abs(original - dense).max()), key, name))
    placed: dict[str, str] = {}
    for distance, key, name in sorted(pairs):
        if key in placed or name in placed.values():
            continue
        spread = float(tensors[name].max() - tensors[name].min())
        if distance <= 0.5 * spread:
            placed[key] = name
    missing = sorted(set(weights) - set(placed))
    if missing:
        shape = weights[missing[0]].shape
        raise ExportError(
            f"{artifact}: compressed weight {missing[0]!r} {list(shape)} matches no parameter of the model "
            "(none of its shape lies near it), so the model with the file's weights cannot be built; "
            "export it uncompressed (export.compression=none)"
        )
    with torch.no_grad():
        for key, name in placed.items():
            tensors[name].copy_(torch.from_numpy(weights[key]))
    return twin, placed


@dataclass
class _Predictions:
    """One model's probabilities on the validation rows and on each real-text split."""

    validation: np.ndarray | None
    realtext: dict[str, np.ndarray]


@dataclass
class CompressionCost:
    """A compression level against the uncompressed model: accuracy in both and the points lost on
    the validation rows and each real-text split; harmful rewrites and fixes of each model at its own
    correction threshold (the one its artifact carries), and the harm added."""

    level: str
    threshold_uncompressed: float
    threshold: float
    validation: dict | None
    realtext: dict[str, dict]
    size_bytes: int | None = None
    uncompressed_size_bytes: int | None = None
    weights: dict[str, str] = field(default_factory=dict)

    def violations(self, budget: CompressionBudget) -> list[str]:
        """Every figure past `budget`, as `<where> <figure> (budget <limit>)`; empty when within."""
        found = []
        if self.validation and self.validation["points_lost"] > budget.validation_points + 1e-9:
            found.append(
                f"validation accuracy -{self.validation['points_lost']:.3g} points "
                f"(budget {budget.validation_points:g})"
            )
        for split, figures in self.realtext.items():
            if figures["points_lost"] > budget.realtext_points + 1e-9:
                found.append(
                    f"real-text {split} accuracy -{figures['points_lost']:.3g} points "
                    f"(budget {budget.realtext_points:g})"
                )
            if figures["harm_added_points"] > budget.harm_points + 1e-9:
                found.append(
                    f"real-text {split} harmful rewrites +{figures['harm_added_points']:.3g} points at its "
                    f"correction threshold {self.threshold:.4g} (budget {budget.harm_points:g})"
                )
        return found

    def report(self, budget: CompressionBudget) -> dict:
        ratio = (
            self.size_bytes / self.uncompressed_size_bytes
            if self.size_bytes and self.uncompressed_size_bytes
            else None
        )
        return {
            "level": self.level,
            "size_bytes": self.size_bytes,
            "uncompressed_size_bytes": self.uncompressed_size_bytes,
            "size_ratio": ratio,
            "budget": {
                "realtext_points": budget.realtext_points,
                "validation_points": budget.validation_points,
                "harm_points": budget.harm_points,
            },
            "within_budget": not self.violations(budget),
            "over_budget": self.violations(budget),
            "threshold": self.threshold,
            "threshold_uncompressed": self.threshold_uncompressed,
            "validation": self.validation,
            "realtext": self.realtext,
            "weights_read_back": len(self.weights),
        }


def _accuracy(probs: np.ndarray, labels: np.ndarray) -> float:
    return float((probs.argmax(1) == labels).mean()) if len(labels) else float("nan")


class CostMeter:
    """Measures compression levels against the uncompressed `model` (whose artifact would carry
    correction threshold `threshold`): its own predictions are made once, then each level's model
    (`with_file_weights`) is compared with them (`cost`)."""

    def __init__(
        self,
        model: nn.Module,
        val_ids: torch.Tensor | None,
        val_labels: torch.Tensor | None,
        threshold: float,
    ):
        from layoutnet.quality import REALTEXT_SPLITS, load_realtext

        self.threshold = threshold
        self.splits = load_realtext(REALTEXT_SPLITS)
        self.split_ids = {name: split.ids() for name, split in self.splits.items()}
        has_val = val_ids is not None and len(val_ids) > 0
        self.val_ids = val_ids.long() if has_val else None
        self.val_labels = val_labels.numpy() if has_val else None
        self.uncompressed = self._predict(model)

    def _predict(self, model: nn.Module) -> _Predictions:
        def probs(ids: torch.Tensor) -> np.ndarray:
            return softmax(predict_logits(model, ids).float().numpy())

        return _Predictions(
            probs(self.val_ids) if self.val_ids is not None else None,
            {name: probs(ids) for name, ids in self.split_ids.items()},
        )

    def cost(self, level: str, compressed: nn.Module, threshold: float) -> CompressionCost:
        """`compressed` (carrying correction threshold `threshold`) against the uncompressed model."""
        from layoutnet.quality import Decisions

        ours = self._predict(compressed)
        validation = None
        if ours.validation is not None:
            before = _accuracy(self.uncompressed.validation, self.val_labels)
            after = _accuracy(ours.validation, self.val_labels)
            validation = {
                "rows": len(self.val_labels),
                "uncompressed": before,
                "compressed": after,
                "points_lost": 100 * (before - after),
            }
        realtext = {}
        for name, split in self.splits.items():
            before, after = self.uncompressed.realtext[name], ours.realtext[name]
            was, now = Decisions.of(before, split.labels), Decisions.of(after, split.labels)
            harm_before, harm_after = was.harmful(self.threshold) or 0.0, now.harmful(threshold) or 0.0
            realtext[name] = {
                "rows": len(split),
                "uncompressed": _accuracy(before, split.labels),
                "compressed": _accuracy(after, split.labels),
                "points_lost": 100 * (_accuracy(before, split.labels) - _accuracy(after, split.labels)),
                "harmful_uncompressed": harm_before,
                "harmful_compressed": harm_after,
                "harm_added_points": 100 * (harm_after - harm_before),
                "fixed_uncompressed": was.fixed(self.threshold),
                "fixed_compressed": now.fixed(threshold),
            }
        return CompressionCost(level, self.threshold, threshold, validation, realtext)
