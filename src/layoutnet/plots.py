"""Per-run pictures: the confusion matrix and the training curves."""

from __future__ import annotations

import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from layoutnet.contract import CLASSES


def save_confusion_matrix(confusion: list[list[int]], path: Path, title: str = "confusion matrix") -> Path:
    matrix = np.asarray(confusion, dtype=np.float64)
    rows = matrix.sum(axis=1, keepdims=True)
    normalised = np.divide(matrix, rows, out=np.zeros_like(matrix), where=rows > 0)
    fig, ax = plt.subplots(figsize=(8, 7))
    image = ax.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(CLASSES)), CLASSES, rotation=45, ha="right")
    ax.set_yticks(range(len(CLASSES)), CLASSES)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            if matrix[i, j]:
                ax.text(
                    j,
                    i,
                    f"{int(matrix[i, j])}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if normalised[i, j] > 0.5 else "black",
                )
    fig.colorbar(image, ax=ax, fraction=0.046, label="share of true class")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def read_metrics_csv(run_dir: Path) -> dict[str, list[tuple[float, float]]]:
    """{metric: [(step, value), ...]} from the run's CSVLogger file."""
    files = sorted(Path(run_dir).glob("csv/**/metrics.csv"))
    series: dict[str, list[tuple[float, float]]] = {}
    for file in files:
        with file.open(newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                step = float(row.get("step") or 0)
                for key, value in row.items():
                    if key in ("step", "epoch") or value in (None, ""):
                        continue
                    series.setdefault(key, []).append((step, float(value)))
    return series


def save_training_curves(run_dir: Path, path: Path) -> Path | None:
    series = read_metrics_csv(run_dir)
    if not series:
        return None
    panels = [
        ("loss", ["train/loss_step", "train/loss_epoch", "val/loss"]),
        ("accuracy", ["train/acc", "val/acc"]),
        ("learning rate", [k for k in series if k.startswith("lr-")]),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for ax, (title, keys) in zip(axes, panels, strict=True):
        for key in keys:
            if key in series:
                steps, values = zip(*series[key], strict=True)
                ax.plot(steps, values, label=key, marker="o" if len(steps) < 30 else None, markersize=3)
        ax.set_title(title)
        ax.set_xlabel("step")
        if ax.lines:
            ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
