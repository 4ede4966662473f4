"""Accuracy, per-class accuracy and the confusion matrix from logits and labels."""

from __future__ import annotations

import numpy as np
import torch

from layoutnet.contract import CLASSES, NUM_CLASSES


def softmax(logits: np.ndarray) -> np.ndarray:
    """Probabilities of rows of logits (numerically stable)."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def classification_summary(predictions: np.ndarray, labels: np.ndarray) -> dict:
    """accuracy, per-class accuracy (recall of each true class) and confusion[true][pred]."""
    # Imported here: torchmetrics (and the scipy it pulls in) costs predict about as much as torch.
    from torchmetrics.functional.classification import multiclass_confusion_matrix

    predictions = np.asarray(predictions, dtype=np.int64)
    labels = np.asarray(labels, dtype=np.int64)
    confusion = (
        multiclass_confusion_matrix(torch.from_numpy(predictions), torch.from_numpy(labels), NUM_CLASSES)
        .numpy()
        .astype(np.int64)
    )
    support = confusion.sum(axis=1)
    per_class = {
        name: (float(confusion[i, i] / support[i]) if support[i] else None) for i, name in enumerate(CLASSES)
    }
    return {
        "samples": len(labels),
        "accuracy": float((predictions == labels).mean()) if len(labels) else None,
        "per_class_accuracy": per_class,
        "support": {name: int(support[i]) for i, name in enumerate(CLASSES)},
        "confusion_matrix": confusion.tolist(),
    }
