"""Per-run pictures: the confusion matrix and the training curves (loss on a log axis, one line per
distinct learning-rate schedule)."""

from __future__ import annotations

import csv
from dataclasses import dataclass
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


@dataclass
class CurvePanel:
    """One panel of training_curves.png, decided before anything is drawn."""

    title: str
    scale: str  # linear | log (the y axis)
    lines: list[tuple[str, list[float], list[float]]]  # (label, steps, values)


def distinct_series(
    series: dict[str, list[tuple[float, float]]], keys: list[str]
) -> list[tuple[str, list[float], list[float]]]:
    """One line per distinct curve: keys whose (step, value) points are identical (the learning rate of
    each optimizer parameter group under one schedule) share a line, labelled with every name."""
    lines: dict[tuple[tuple[float, float], ...], list[str]] = {}
    for key in keys:
        if series.get(key):
            lines.setdefault(tuple(series[key]), []).append(key)
    result = []
    for points, names in lines.items():
        steps, values = zip(*points, strict=True)
        result.append((" = ".join(names), list(steps), list(values)))
    return result


def curve_panels(series: dict[str, list[tuple[float, float]]]) -> list[CurvePanel]:
    """Loss on a log axis (the first steps' loss, ten times the rest, no longer flattens the curve),
    accuracy, and one learning-rate line per distinct schedule."""
    loss = distinct_series(series, ["train/loss_step", "train/loss_epoch", "val/loss"])
    positive = all(v > 0 for _, _, values in loss for v in values)
    return [
        CurvePanel("loss", "log" if loss and positive else "linear", loss),
        CurvePanel("accuracy", "linear", distinct_series(series, ["train/acc", "val/acc"])),
        CurvePanel(
            "learning rate",
            "linear",
            distinct_series(series, sorted(k for k in series if k.startswith("lr-"))),
        ),
    ]


def log_axis(ax, values: list[float], which: str = "y") -> None:
    """A log axis labelled in plain numbers: 1-2-5 steps over a wide range; within a decade four evenly
    spaced values (a loss from 2.2 to 0.6 reads 0.5 1 1.5 2 instead of 10^0 and 2×10^0)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter, NullLocator

    if which == "y":
        ax.set_yscale("log")
        axis = ax.yaxis
    else:
        ax.set_xscale("log")
        axis = ax.xaxis
    decades = np.log10(max(values) / min(values)) if values and min(values) > 0 else 0.0
    if decades < 1.0:
        axis.set_major_locator(MaxNLocator(nbins=4))
        axis.set_minor_locator(NullLocator())
    else:
        axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        axis.set_minor_formatter(NullFormatter())
    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))


def save_training_curves(run_dir: Path, path: Path) -> Path | None:
    series = read_metrics_csv(run_dir)
    if not series:
        return None
    panels = curve_panels(series)
    fig, axes = plt.subplots(1, len(panels), figsize=(15, 4), sharex=True)
    for ax, panel in zip(axes, panels, strict=True):
        for label, steps, values in panel.lines:
            ax.plot(steps, values, label=label, marker="o" if len(steps) < 30 else None, markersize=3)
        if panel.scale == "log":
            log_axis(ax, [v for _, _, values in panel.lines for v in values])
        ax.set_title(panel.title + (" (log)" if panel.scale == "log" else ""))
        ax.set_xlabel("step")
        ax.grid(alpha=0.3, which="both" if panel.scale == "log" else "major")
        if ax.lines:
            ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
