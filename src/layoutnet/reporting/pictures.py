"""Every picture layoutnet draws: per run the confusion matrix and the training curves (loss on a log
axis, one line per distinct learning-rate schedule); per evaluation the corrections trade-off curve; per
sweep `summary.png`. What a picture shows (its panels) is decided first, as data, then drawn."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter, NullLocator

from layoutnet.contract import CLASSES
from layoutnet.quality import HARMFUL_BUDGETS, budget_key
from layoutnet.reporting.sweepsummary import (
    ACCURACY_TOLERANCE,
    JobRow,
    as_number,
    best_row,
    row_accuracy,
    short_value,
    smallest_within_tolerance,
    varied_keys,
)


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


def save_tradeoff_curve(summaries: dict[str, dict], path: Path, title: str = "corrections") -> Path:
    """PNG: share of wrong-layout text fixed against share of correct text rewritten, one line per set,
    with the thresholds of each budget marked; and both shares against the threshold."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 5))
    for index, (name, summary) in enumerate(summaries.items()):
        curve = summary["curve"]
        color = f"C{index}"
        harmful = np.array([np.nan if h is None else 100 * h for h in curve["harmful"]])
        fixed = np.array([np.nan if f is None else 100 * f for f in curve["fixed"]])
        left.plot(harmful, fixed, color=color, label=name)
        right.plot(curve["threshold"], fixed, color=color, label=f"{name}: fixed")
        right.plot(curve["threshold"], harmful, color=color, linestyle="--", label=f"{name}: rewritten")
        for budget, marker in zip(HARMFUL_BUDGETS, ("o", "s"), strict=False):
            found = summary["thresholds"].get(budget_key(budget))
            if found and found["fixed"] is not None:
                left.plot(100 * found["harmful"], 100 * found["fixed"], marker=marker, color=color)
                left.annotate(
                    f"t={found['threshold']:.3f}",
                    (100 * found["harmful"], 100 * found["fixed"]),
                    textcoords="offset points",
                    xytext=(6, -10),
                    fontsize=7,
                    color=color,
                )
    left.set_xscale("symlog", linthresh=0.1)
    left.set_xlabel("correct text rewritten (harmful), % (symlog)")
    left.set_ylabel("wrong-layout text fixed, %")
    left.set_title("trade-off (o: harmful ≤ 0.1%, □: ≤ 1%)")
    left.grid(alpha=0.3)
    left.legend(fontsize=8)
    right.set_yscale("symlog", linthresh=1)
    right.set_xlabel("threshold on the top probability")
    right.set_ylabel("% of rows (symlog)")
    right.set_title("fixed (solid) and rewritten (dashed)")
    right.grid(alpha=0.3)
    right.legend(fontsize=7, ncol=2)
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def save_reliability_diagrams(summaries: dict[str, dict], path: Path, title: str = "calibration") -> Path:
    """PNG: one reliability diagram per set (its `calibration`): accuracy of the rows in each bin of the top
    probability against the bin's mean top probability (the diagonal is a perfectly calibrated model),
    with the share of rows per bin underneath and the expected calibration error in the panel title."""
    named = [
        (name, summary["calibration"]) for name, summary in summaries.items() if summary.get("calibration")
    ]
    columns = min(3, max(1, len(named)))
    rows = max(1, math.ceil(len(named) / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 4.2 * rows), squeeze=False)
    for ax in axes.flat[len(named) :]:
        ax.set_visible(False)
    for ax, (name, calibration) in zip(axes.flat, named, strict=False):
        table = calibration["reliability"]
        bins = table["bins"]
        edges = np.linspace(0.0, 1.0, bins + 1)
        total = max(1, sum(table["rows"]))
        filled = [i for i, n in enumerate(table["rows"]) if n]
        ax.bar(
            [edges[i] for i in filled],
            [table["accuracy"][i] for i in filled],
            width=1.0 / bins,
            align="edge",
            color="C0",
            edgecolor="white",
            label="accuracy",
        )
        ax.plot(
            [table["confidence"][i] for i in filled],
            [table["accuracy"][i] for i in filled],
            "o",
            color="C1",
            markersize=3,
            label="at mean top probability",
        )
        ax.plot([0, 1], [0, 1], color="black", linestyle="--", linewidth=0.8)
        share = ax.twinx()
        share.bar(
            edges[:-1],
            [n / total for n in table["rows"]],
            width=1.0 / bins,
            align="edge",
            color="grey",
            alpha=0.3,
        )
        share.set_ylim(0, 4)  # the row shares stay in the bottom quarter
        share.set_yticks([])
        ece = calibration["ece"]
        ax.set_title(f"{name}: ECE {'—' if ece is None else f'{ece:.4f}'}", fontsize=10)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("top probability")
        ax.set_ylabel("accuracy")
        ax.grid(alpha=0.3)
    if named:
        axes.flat[0].legend(fontsize=7, loc="upper left")
    fig.suptitle(f"{title}; grey: share of rows per bin")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


# summary.png ---------------------------------------------------------------------------------------------

# At most this many category labels under one panel; beyond it every n-th label is shown.
MAX_TICK_LABELS = 10
# Job numbers are written beside the points up to this many jobs in a panel.
MAX_POINT_LABELS = 12
NOT_OK_MARKERS = {"failed": "x", "missing": "s", "incomplete": "v", "unreadable": "D"}


@dataclass
class Panel:
    """What one panel of summary.png shows, decided before anything is drawn."""

    key: str
    xlabel: str
    ylabel: str
    kind: str  # numeric | categorical
    scale: str  # linear | log
    ok: list[tuple[float, float, str]]  # (x, accuracy, job) of finished jobs
    not_ok: list[
        tuple[float, str, str]
    ]  # (x, status, job): drawn in a strip below, never on the accuracy axis
    best: tuple[float, float] | None = None
    chosen: tuple[float, float] | None = None  # size panel: the smallest artifact within tolerance
    ticks: list[tuple[float, str]] = field(default_factory=list)  # categorical: the labelled positions
    span: tuple[float, float] | None = None  # categorical: the x range holding every category
    groups: dict[str, list[tuple[float, float, str]]] = field(default_factory=dict)  # size panel: compression


def _category_ticks(categories: list[str]) -> list[tuple[float, str]]:
    step = max(1, math.ceil(len(categories) / MAX_TICK_LABELS))
    shown = []
    for i, value in enumerate(categories):
        if i % step == 0:
            label = short_value(value)
            shown.append((float(i), label if len(label) <= 18 else label[:17] + "…"))
    return shown


def _spread_in_category(jobs: list[tuple[str, float | None]]) -> dict[str, float | None]:
    """x of each job; jobs sharing a category are spread evenly over ±0.3 around it, so 60 jobs over
    four categories stay countable instead of stacking on one line."""
    members: dict[float, list[str]] = {}
    for job, x in jobs:
        if x is not None:
            members.setdefault(x, []).append(job)
    placed: dict[str, float | None] = {job: None for job, _ in jobs}
    for x, names in members.items():
        for i, job in enumerate(names):
            placed[job] = x + ((i / (len(names) - 1) - 0.5) * 0.6 if len(names) > 1 else 0.0)
    return placed


def _param_panel(
    key: str, rows: Sequence[JobRow], ok: list[JobRow], best: JobRow | None, log_keys: set[str]
) -> Panel:
    values = {row.job: row.params.get(key) for row in rows}
    present = [v for v in values.values() if v is not None]
    numeric = bool(present) and all(as_number(v) is not None for v in present)
    finished = {row.job for row in ok}
    if numeric:
        scale = "log" if key in log_keys and all(as_number(v) > 0 for v in present) else "linear"
        x_of = {job: None if value is None else as_number(value) for job, value in values.items()}
        ticks: list[tuple[float, str]] = []
        span = None
    else:
        scale = "linear"
        categories = _ordered_values([v if v is not None else "—" for v in values.values()])
        index = {value: float(i) for i, value in enumerate(categories)}
        slot = {job: index[value if value is not None else "—"] for job, value in values.items()}
        x_of = _spread_in_category([(r.job, slot[r.job]) for r in rows if r.job in finished])
        x_of |= _spread_in_category([(r.job, slot[r.job]) for r in rows if r.job not in finished])
        ticks = _category_ticks(categories)
        span = (-0.5, len(categories) - 0.5)
    return Panel(
        key=key,
        xlabel=key + (" (log)" if scale == "log" else ""),
        ylabel="best validation accuracy",
        kind="numeric" if numeric else "categorical",
        scale=scale,
        ok=[(x_of[r.job], r.val_accuracy, r.job) for r in ok if x_of[r.job] is not None],
        not_ok=[
            (x_of[r.job], r.status, r.job) for r in rows if r.job not in finished and x_of[r.job] is not None
        ],
        best=None if best is None or x_of[best.job] is None else (x_of[best.job], best.val_accuracy),
        ticks=ticks,
        span=span,
    )


def _ordered_values(values: list[str]) -> list[str]:
    """Distinct values: numerically sorted when all are numbers, else in first-seen (sweep) order."""
    distinct = list(dict.fromkeys(values))
    if all(as_number(v) is not None for v in distinct):
        return sorted(distinct, key=lambda v: as_number(v))
    return distinct


def summary_panels(
    rows: Sequence[JobRow], log_keys: set[str] = frozenset(), tolerance: float = ACCURACY_TOLERANCE
) -> list[Panel]:
    """The panels of summary.png: accuracy against each swept parameter (numeric axes for numbers, log
    where the sweep samples log, categories otherwise), against the parameter count, and accuracy against
    artifact size when jobs exported. Jobs that did not finish go to a strip under the accuracy axis."""
    varied, _ = varied_keys(rows)
    ok = [r for r in rows if r.status == "ok" and r.val_accuracy is not None]
    best = best_row(rows)
    panels = [_param_panel(key, rows, ok, best, log_keys) for key in varied]
    counted = [r for r in ok if r.parameters]
    if counted:
        sizes = [r.parameters for r in counted]
        panels.append(
            Panel(
                key="parameters",
                xlabel="model parameters",
                ylabel="best validation accuracy",
                kind="numeric",
                scale="log" if max(sizes) / min(sizes) > 20 else "linear",
                ok=[(float(r.parameters), r.val_accuracy, r.job) for r in counted],
                not_ok=[],
                best=(float(best.parameters), best.val_accuracy)
                if best is not None and best.parameters
                else None,
            )
        )
    sized = [r for r in ok if r.artifact_size_bytes and row_accuracy(r) is not None]
    if sized:
        kib = [r.artifact_size_bytes / 1024 for r in sized]
        groups: dict[str, list[tuple[float, float, str]]] = {}
        for row in sized:
            groups.setdefault(row.compression or "—", []).append(
                (row.artifact_size_bytes / 1024, row_accuracy(row), row.job)
            )
        chosen = smallest_within_tolerance(rows, tolerance)
        top = max(sized, key=row_accuracy)
        panels.append(
            Panel(
                key="artifact_size",
                xlabel="artifact size (KiB" + (", log)" if max(kib) / min(kib) > 20 else ")"),
                ylabel="artifact accuracy"
                if any(r.artifact_accuracy is not None for r in sized)
                else "best validation accuracy",
                kind="numeric",
                scale="log" if max(kib) / min(kib) > 20 else "linear",
                ok=[(r.artifact_size_bytes / 1024, row_accuracy(r), r.job) for r in sized],
                not_ok=[],
                best=(top.artifact_size_bytes / 1024, row_accuracy(top)),
                chosen=None if chosen is None else (chosen.artifact_size_bytes / 1024, row_accuracy(chosen)),
                groups=groups,
            )
        )
    return panels


def plot_summary(
    path: Path,
    rows: Sequence[JobRow],
    title: str,
    log_keys: set[str] = frozenset(),
    tolerance: float = ACCURACY_TOLERANCE,
) -> Path:
    """Render `summary_panels` into one PNG: up to three panels a row; under each parameter panel a strip
    with one line per status of the jobs that did not finish; the best job circled in red, the smallest
    artifact within tolerance in green."""
    panels = summary_panels(rows, log_keys, tolerance)
    statuses = [s for s in NOT_OK_MARKERS if any(s == st for p in panels for _, st, _ in p.not_ok)]
    statuses += sorted({st for p in panels for _, st, _ in p.not_ok} - set(statuses))
    ncols = max(1, min(3, len(panels)))
    nrows = max(1, math.ceil(len(panels) / ncols))
    fig = plt.figure(figsize=(5.2 * ncols, 4.9 * nrows + 0.5))
    outer = fig.add_gridspec(nrows, ncols, hspace=0.45, wspace=0.3, top=1 - 0.5 / (4.9 * nrows + 0.5))
    if not panels:
        fig.text(0.5, 0.5, "no job finished", ha="center", va="center")
    annotate = len(rows) <= MAX_POINT_LABELS
    for i, panel in enumerate(panels):
        cell = outer[divmod(i, ncols)]
        has_strip = bool(statuses) and panel.key not in ("parameters", "artifact_size")
        if has_strip:
            inner = cell.subgridspec(2, 1, height_ratios=[6, 0.5 + 0.35 * len(statuses)], hspace=0.08)
            ax = fig.add_subplot(inner[0])
            below = fig.add_subplot(inner[1], sharex=ax)
        else:
            ax, below = fig.add_subplot(cell), None
        named_groups = [name for name in panel.groups if name != "—"]
        if named_groups:
            for (name, points), color in zip(panel.groups.items(), plt.cm.tab10.colors, strict=False):
                xs, ys = [p[0] for p in points], [p[1] for p in points]
                ax.scatter(xs, ys, color=color, label=f"compression {name}", zorder=3)
        else:
            ax.scatter([p[0] for p in panel.ok], [p[1] for p in panel.ok], color="tab:blue", zorder=3)
        if annotate:
            for x, y, job in panel.ok:
                ax.annotate(job, (x, y), xytext=(4, -9), textcoords="offset points", fontsize=7, alpha=0.8)
        for point, size, color, label in (
            (panel.best, 200, "red", "best"),
            (panel.chosen, 360, "green", f"smallest within {tolerance:g}"),
        ):
            if point is not None:  # a ring around the point
                ring = {"facecolors": "none", "edgecolors": color, "linewidths": 1.5}
                ax.scatter(*point, s=size, zorder=4, label=label, **ring)
        if panel.scale == "log":
            log_axis(ax, [p[0] for p in panel.ok] + [p[0] for p in panel.not_ok], which="x")
        elif panel.kind == "numeric":  # at most 6 labels, thousands separated: legible at any width
            ax.xaxis.set_major_locator(MaxNLocator(nbins=5))
            if panel.key in ("parameters", "artifact_size"):
                ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:,.0f}"))
        ax.set_ylabel(panel.ylabel, fontsize=8)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=8)
        if panel.key == "artifact_size" or (i == 0 and panel.best is not None):
            ax.legend(fontsize=7, loc="best")
        target = ax
        if below is not None:
            target = below
            ax.tick_params(labelbottom=False)
            for x, status, _ in panel.not_ok:
                below.scatter(
                    [x], [statuses.index(status)], marker=NOT_OK_MARKERS.get(status, "o"), color="tab:red"
                )
            below.set_yticks(range(len(statuses)), statuses, fontsize=7)
            below.set_ylim(-0.6, len(statuses) - 0.4)
            below.invert_yaxis()
            below.grid(alpha=0.3, axis="x")
            below.tick_params(labelsize=8)
        if panel.kind == "categorical":
            target.set_xticks([p for p, _ in panel.ticks], [label for _, label in panel.ticks])
            target.tick_params(axis="x", labelrotation=30)
            for label in target.get_xticklabels():
                label.set_horizontalalignment("right")
            if panel.span is not None:
                ax.set_xlim(*panel.span)
        target.set_xlabel(panel.xlabel, fontsize=8)
    fig.suptitle(title, fontsize=9)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path
