"""Every picture layoutnet draws: per run the confusion matrix and the training curves (loss on a log
axis, one line per distinct learning-rate schedule); per evaluation the corrections trade-off curve; per
sweep `summary.png`. What a picture shows (its panels) is decided first, as data, then drawn."""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator, NullLocator

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
    styles: list[dict] = field(default_factory=list)  # matplotlib keywords of each line


TRAIN_COLOR, VAL_COLOR = "C0", "C1"
"""One colour per role in every panel: training blue, validation orange; learning rates from C2 on."""


def _line_style(key: str, index: int) -> dict:
    if key == "train/loss_step":  # every logged step: thin, under the epoch means
        return {"color": TRAIN_COLOR, "linewidth": 0.9, "alpha": 0.45}
    if key.startswith("train/"):
        return {"color": TRAIN_COLOR, "marker": "o", "markersize": 3}
    if key.startswith("val/"):
        return {"color": VAL_COLOR, "marker": "s", "markersize": 3}
    return {"color": f"C{2 + index}"}


def learning_rate_label(names: Sequence[str]) -> str:
    """`lr-AdamW/pg1`, `lr-AdamW/pg2` (Lightning's names for one optimizer's parameter groups) as
    `AdamW, parameter groups 1 and 2`; a name of another shape is kept."""
    parsed = [re.fullmatch(r"lr-(.+?)(?:/pg(\d+))?", name) for name in names]
    if not all(parsed) or len({m.group(1) for m in parsed}) != 1:
        return ", ".join(names)
    groups = [m.group(2) for m in parsed if m.group(2)]
    optimizer = parsed[0].group(1)
    if not groups:
        return optimizer
    if len(groups) == 1:
        return f"{optimizer}, parameter group {groups[0]}"
    return f"{optimizer}, parameter groups {', '.join(groups[:-1])} and {groups[-1]}"


def distinct_series(
    series: dict[str, list[tuple[float, float]]], keys: list[str]
) -> list[tuple[list[str], list[float], list[float]]]:
    """One line per distinct curve: keys whose (step, value) points are identical (the learning rate of
    each optimizer parameter group under one schedule) share a line; (its keys, steps, values)."""
    lines: dict[tuple[tuple[float, float], ...], list[str]] = {}
    for key in keys:
        if series.get(key):
            lines.setdefault(tuple(series[key]), []).append(key)
    result = []
    for points, names in lines.items():
        steps, values = zip(*points, strict=True)
        result.append((names, list(steps), list(values)))
    return result


def _panel(title: str, scale: str, curves, label=" = ".join) -> CurvePanel:
    return CurvePanel(
        title,
        scale,
        [(label(names), steps, values) for names, steps, values in curves],
        [_line_style(names[0], i) for i, (names, _, _) in enumerate(curves)],
    )


def curve_panels(series: dict[str, list[tuple[float, float]]]) -> list[CurvePanel]:
    """Loss on a log axis (the first steps' loss, ten times the rest, no longer flattens the curve),
    accuracy, and one learning-rate line per distinct schedule."""
    loss = distinct_series(series, ["train/loss_step", "train/loss_epoch", "val/loss"])
    positive = all(v > 0 for _, _, values in loss for v in values)
    rates = distinct_series(series, sorted(k for k in series if k.startswith("lr-")))
    return [
        _panel("loss", "log" if loss and positive else "linear", loss),
        _panel("accuracy", "linear", distinct_series(series, ["train/acc", "val/acc"])),
        _panel("learning rate", "linear", rates, learning_rate_label),
    ]


PREFERRED_STEPS = (
    (1, 1.2, 1.4, 1.6, 1.8, 2, 2.5, 3, 3.5, 4, 5, 6, 7, 8, 9),
    (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8),
    (1, 1.5, 2, 3, 5, 7),
    (1, 2, 5),
    (1, 3),
    (1,),
)
"""Tick values of a log axis within a decade, densest first: each series is roughly even on a log scale."""


def log_ticks(low: float, high: float, most: int = 8) -> list[float]:
    """Plain-number ticks for a log axis over [low, high]: the densest of `PREFERRED_STEPS` that gives at
    most `most` ticks inside the range (a loss from 2.7 to 1.1 gets 1.2, 1.5, 2, 2.5)."""
    first, last = math.floor(math.log10(low)), math.ceil(math.log10(high))
    for steps in PREFERRED_STEPS:
        ticks = [
            float(f"{m * 10.0**k:.6g}")
            for k in range(first, last + 1)
            for m in steps
            if low <= m * 10.0**k <= high
        ]
        if len(ticks) <= most:
            return ticks
    return ticks


def log_axis(ax, values: list[float], which: str = "y") -> None:
    """A log axis labelled in plain numbers (0.5, 1, 1.5, 2, not 10^0 and 2×10^0), at least three ticks
    inside the data's range; at most eight on a y axis, five on an x axis (its labels sit side by side)."""
    if which == "y":
        ax.set_yscale("log")
        axis = ax.yaxis
    else:
        ax.set_xscale("log")
        axis = ax.xaxis
    positive = [v for v in values if v > 0]
    ticks = log_ticks(min(positive), max(positive), 8 if which == "y" else 5) if positive else []
    if len(ticks) >= 3:
        axis.set_major_locator(FixedLocator(ticks))
    else:  # a range too narrow for the preferred numbers: even steps
        axis.set_major_locator(MaxNLocator(nbins=4))
    axis.set_minor_locator(NullLocator())
    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))


def _legend_below(ax, ncol: int = 1) -> None:
    """The panel's legend under its x axis, where it covers no data."""
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=ncol, frameon=False)


def save_training_curves(run_dir: Path, path: Path) -> Path | None:
    series = read_metrics_csv(run_dir)
    if not series:
        return None
    panels = curve_panels(series)
    fig, axes = plt.subplots(1, len(panels), figsize=(15, 4.6), sharex=True)
    for ax, panel in zip(axes, panels, strict=True):
        for (label, steps, values), style in zip(panel.lines, panel.styles, strict=True):
            ax.plot(steps, values, label=label, **style)
        if panel.scale == "log":
            log_axis(ax, [v for _, _, values in panel.lines for v in values])
        title = panel.title + (" (log axis)" if panel.scale == "log" else "")
        if len(panel.lines) == 1:  # one line: its name in the title, no legend
            title += f": {panel.lines[0][0]}"
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        if len(panel.lines) > 1:
            _legend_below(ax, ncol=min(3, len(panel.lines)))
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


BUDGET_MARKERS = ("o", "s")
"""Marker of the threshold chosen for each harmful budget (HARMFUL_BUDGETS order)."""
MARKER_SYMBOLS = {"o": "●", "s": "■"}


def threshold_label(threshold: float) -> str:
    """A correction threshold as the app applies it: rewrite when the top probability reaches it."""
    return "any confidence" if threshold <= 0 else f"p ≥ {threshold:.2f}"


def save_tradeoff_curve(summaries: dict[str, dict], path: Path, title: str = "corrections") -> Path:
    """PNG of what a correction threshold does, one colour per set: wrong-layout text fixed against
    correct text rewritten (harmful), and each against the threshold; the lowest threshold that keeps
    harm within each budget marked and labelled. Linear axes throughout (shares are percentages)."""
    fig, (tradeoff, fixed_ax, harm_ax) = plt.subplots(1, 3, figsize=(16, 5.2))
    budgets = list(zip(HARMFUL_BUDGETS, BUDGET_MARKERS, strict=False))
    most_harm = top_harm = 0.0  # the largest harm on a trade-off curve; on any curve
    for index, (name, summary) in enumerate(summaries.items()):
        curve = summary["curve"]
        color = f"C{index}"
        harmful = np.array([np.nan if h is None else 100 * h for h in curve["harmful"]])
        fixed = np.array([np.nan if f is None else 100 * f for f in curve["fixed"]])
        paired = np.isfinite(harmful) & np.isfinite(fixed)  # the points the trade-off panel can draw
        most_harm = max(most_harm, float(np.max(harmful[paired])) if paired.any() else 0.0)
        top_harm = max(top_harm, float(np.nanmax(harmful)) if np.isfinite(harmful).any() else 0.0)
        chosen = []
        for budget, marker in budgets:
            found = summary["thresholds"].get(budget_key(budget))
            if not found or found["fixed"] is None:
                continue
            point = (100 * found["harmful"], 100 * found["fixed"])
            tradeoff.plot(*point, marker=marker, color=color, markersize=7, linestyle="none")
            fixed_ax.plot(found["threshold"], point[1], marker=marker, color=color, linestyle="none")
            harm_ax.plot(found["threshold"], point[0], marker=marker, color=color, linestyle="none")
            chosen.append(f"{MARKER_SYMBOLS[marker]} {threshold_label(found['threshold'])}")
        # the chosen thresholds are named in the legend: labels beside the points would collide
        label = f"{name}: {', '.join(chosen)}" if chosen else name
        if not paired.any():
            label = f"{name}: no wrong-layout rows (harm only)"
        tradeoff.plot(harmful, fixed, color=color, label=label)
        fixed_ax.plot(curve["threshold"], fixed, color=color)
        harm_ax.plot(curve["threshold"], harmful, color=color)
    for budget, _ in budgets:
        for line in (tradeoff.axvline, harm_ax.axhline):
            line(100 * budget, color="0.4", linestyle=":", linewidth=1)
    right = max(most_harm * 1.05, 1.2)
    tradeoff.set_xlim(-0.015 * right, right)
    tradeoff.set_ylim(0, 101)
    tradeoff.set_xlabel("correct text rewritten (harmful), % of correctly typed rows")
    tradeoff.set_ylabel("wrong-layout text fixed, % of wrong-layout rows")
    tradeoff.set_title("fixed against harmful, as the threshold rises", fontsize=10)
    fixed_ax.set_ylim(0, 101)
    fixed_ax.set_ylabel("wrong-layout text fixed, %")
    fixed_ax.set_title("fixed, by threshold", fontsize=10)
    harm_ax.set_ylim(bottom=-0.02 * max(top_harm, 1.0))
    harm_ax.set_ylabel("correct text rewritten (harmful), %")
    harm_ax.set_title("harmful, by threshold (dotted: the budgets)", fontsize=10)
    for ax in (fixed_ax, harm_ax):
        ax.set_xlabel("threshold on the top probability")
        ax.set_xlim(-0.015, 1.015)
    for ax in (tradeoff, fixed_ax, harm_ax):
        ax.grid(alpha=0.3)
    _legend_below(tradeoff, ncol=1 if len(summaries) > 2 else len(summaries))
    handles = [plt.Line2D([], [], marker=m, color="0.3", linestyle="none") for _, m in budgets]
    harm_ax.legend(
        handles,
        [f"lowest threshold with harm ≤ {100 * b:g}%" for b, _ in budgets],
        fontsize=8,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.16),
        ncol=1,
        frameon=False,
    )
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
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
        # narrow dark bars in the middle of each bin, so they show on top of the accuracy bars
        share.bar(
            (edges[:-1] + edges[1:]) / 2,
            [n / total for n in table["rows"]],
            width=0.35 / bins,
            color="0.15",
            label="share of rows",
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
        handles = axes.flat[0].get_legend_handles_labels()
        extra = plt.Rectangle((0, 0), 1, 1, color="0.15")
        labels = [*handles[1], "share of rows (bottom quarter)"]
        # one legend for the figure, above the panels: inside one it could cover a bar
        fig.legend(
            [*handles[0], extra],
            labels,
            fontsize=8,
            loc="upper center",
            ncol=columns,
            frameon=False,
            bbox_to_anchor=(0.5, 1 - 0.35 / fig.get_figheight()),
        )
    fig.suptitle(title)
    legend_lines = math.ceil(3 / columns) if named else 0
    fig.tight_layout(rect=(0, 0, 1, 1 - (0.45 + 0.2 * legend_lines) / fig.get_figheight()))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


# summary.png ---------------------------------------------------------------------------------------------

# At most this many category labels (or swept values on a numeric axis) under one panel; beyond it every
# n-th category is labelled, and a numeric axis gets evenly spaced ticks.
MAX_TICK_LABELS = 10
# Job numbers are written beside the points up to this many jobs in a panel.
MAX_POINT_LABELS = 12
NOT_OK_MARKERS = {"failed": "x", "missing": "s", "incomplete": "v", "unreadable": "D"}
# Jobs that share a category are spread over this much either side of it, inside a shaded band.
CATEGORY_BAND = 0.15
# Swept values are the ticks of a numeric axis only when neighbours are at least this share of it apart,
# and at least TICK_CHAR_SHARE per character of the longest label (a 5-character label needs 0.09).
MIN_TICK_GAP = 0.06
TICK_CHAR_SHARE = 0.018
BEST_COLOR, CHOSEN_COLOR, NOT_OK_COLOR, POINT_COLOR = "red", "green", "0.35", "tab:blue"
"""summary.png keeps one meaning per colour in every panel: red rings the best job, green the smallest
artifact within tolerance, grey marks jobs that did not finish; points are blue, or coloured by
compression level (the same colours in every panel) when the sweep exports at several."""


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
    ticks: list[tuple[float, str]] = field(default_factory=list)  # the labelled positions (none: automatic)
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


def value_ticks(values: dict[float, str], scale: str = "linear") -> list[tuple[float, str]]:
    """Ticks at the swept values themselves, labelled as they were typed (`2`, `3`, `5`, not 2.4, 3.2):
    when there are at most MAX_TICK_LABELS of them and no two labels would collide (see MIN_TICK_GAP);
    else none, and the axis ticks evenly."""
    xs = sorted(values)
    if not xs or len(xs) > MAX_TICK_LABELS:
        return []
    where = np.log10(xs) if scale == "log" else np.asarray(xs, dtype=float)
    span = float(where[-1] - where[0])
    gap = max(MIN_TICK_GAP, TICK_CHAR_SHARE * max(len(label) for label in values.values()))
    if len(xs) > 1 and float(np.min(np.diff(where))) < gap * span:
        return []
    return [(x, values[x]) for x in xs]


def _spread_in_category(jobs: list[tuple[str, float | None]]) -> dict[str, float | None]:
    """x of each job: on its category, or, when jobs share one, spread evenly within ±CATEGORY_BAND of
    it (a band the picture shades), so 60 jobs over four categories stay countable and every job stays
    visibly on its own category."""
    members: dict[float, list[str]] = {}
    for job, x in jobs:
        if x is not None:
            members.setdefault(x, []).append(job)
    placed: dict[str, float | None] = {job: None for job, _ in jobs}
    for x, names in members.items():
        for i, job in enumerate(names):
            offset = (i / (len(names) - 1) - 0.5) * 2 * CATEGORY_BAND if len(names) > 1 else 0.0
            placed[job] = x + offset
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
        ticks = value_ticks({as_number(v): short_value(v) for v in present}, scale)
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
        xlabel=key + (" (log axis)" if scale == "log" else ""),
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


def _count_ticks(xs: list[float], scale: str, unit: str = "") -> list[tuple[float, str]]:
    return value_ticks({x: f"{x:,.0f}{unit}" for x in xs}, scale)


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
        sizes = [float(r.parameters) for r in counted]
        scale = "log" if max(sizes) / min(sizes) > 20 else "linear"
        panels.append(
            Panel(
                key="parameters",
                xlabel="model parameters" + (" (log axis)" if scale == "log" else ""),
                ylabel="best validation accuracy",
                kind="numeric",
                scale=scale,
                ok=[(float(r.parameters), r.val_accuracy, r.job) for r in counted],
                not_ok=[],
                best=(float(best.parameters), best.val_accuracy)
                if best is not None and best.parameters
                else None,
                ticks=_count_ticks(sizes, scale),
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
        scale = "log" if max(kib) / min(kib) > 20 else "linear"
        panels.append(
            Panel(
                key="artifact_size",
                xlabel="artifact size, KiB" + (" (log axis)" if scale == "log" else ""),
                ylabel="artifact accuracy"
                if any(r.artifact_accuracy is not None for r in sized)
                else "best validation accuracy",
                kind="numeric",
                scale=scale,
                ok=[(r.artifact_size_bytes / 1024, row_accuracy(r), r.job) for r in sized],
                not_ok=[],
                # the same job the other panels ring (best validation accuracy): one meaning per colour
                best=(best.artifact_size_bytes / 1024, row_accuracy(best)) if best in sized else None,
                chosen=None if chosen is None else (chosen.artifact_size_bytes / 1024, row_accuracy(chosen)),
                ticks=_count_ticks(kib, scale),
                groups=groups,
            )
        )
    return panels


def job_colors(rows: Sequence[JobRow]) -> tuple[dict[str, str], dict[str, str]]:
    """({job: colour}, {compression: colour}): one colour per compression level when the sweep exports
    at several (the same in every panel), else POINT_COLOR for every job and no legend for it."""
    levels = list(dict.fromkeys(row.compression or "—" for row in rows if row.status == "ok"))
    if len(levels) < 2:
        return {row.job: POINT_COLOR for row in rows}, {}
    palette = [c for c in plt.cm.tab10.colors if c not in (plt.cm.tab10.colors[2], plt.cm.tab10.colors[3])]
    by_level = {level: palette[i % len(palette)] for i, level in enumerate(levels)}
    return {row.job: by_level.get(row.compression or "—", POINT_COLOR) for row in rows}, by_level


def _draw_panel(ax, panel: Panel, colors: dict[str, str], annotate: bool) -> None:
    ax.scatter(
        [p[0] for p in panel.ok], [p[1] for p in panel.ok], color=[colors[p[2]] for p in panel.ok], zorder=3
    )
    if annotate:
        for x, y, job in panel.ok:
            ax.annotate(job, (x, y), xytext=(4, -9), textcoords="offset points", fontsize=7, alpha=0.8)
    for point, size, color in ((panel.best, 200, BEST_COLOR), (panel.chosen, 360, CHOSEN_COLOR)):
        if point is not None:  # a ring around the point
            ax.scatter(*point, s=size, zorder=4, facecolors="none", edgecolors=color, linewidths=1.5)
    if panel.scale == "log":
        log_axis(ax, [p[0] for p in panel.ok] + [p[0] for p in panel.not_ok], which="x")
    if panel.kind == "numeric":
        if panel.ticks:
            ax.xaxis.set_major_locator(FixedLocator([x for x, _ in panel.ticks]))
            labels = dict(panel.ticks)
            ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: labels.get(value, "")))
        elif panel.scale != "log":  # at most 6 labels, thousands separated: legible at any width
            ax.xaxis.set_major_locator(MaxNLocator(nbins=5))
            if panel.key in ("parameters", "artifact_size"):
                ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:,.0f}"))
    elif panel.span is not None:
        for x in range(round(panel.span[1] + 0.5)):
            ax.axvspan(x - CATEGORY_BAND - 0.04, x + CATEGORY_BAND + 0.04, color="0.92", zorder=0)
        ax.set_xlim(*panel.span)
    ax.set_ylabel(panel.ylabel, fontsize=8)
    ax.grid(alpha=0.3)
    ax.tick_params(labelsize=8)


def _legend_handles(rows: Sequence[JobRow], panels: list[Panel], by_level: dict[str, str], tolerance: float):
    ring = {"marker": "o", "linestyle": "none", "markerfacecolor": "none", "markersize": 11}
    handles, labels = [], []
    if any(p.best for p in panels):
        handles.append(plt.Line2D([], [], markeredgecolor=BEST_COLOR, **ring))
        labels.append("best job (validation accuracy)")
    if any(p.chosen for p in panels):
        handles.append(plt.Line2D([], [], markeredgecolor=CHOSEN_COLOR, **ring))
        labels.append(f"smallest artifact within {tolerance:g} of the most accurate")
    for level, color in by_level.items():
        handles.append(plt.Line2D([], [], marker="o", linestyle="none", color=color))
        labels.append(f"compression {level}")
    if any(p.kind == "categorical" for p in panels):
        handles.append(plt.Rectangle((0, 0), 1, 1, color="0.92"))
        labels.append("jobs of one category, spread within its band")
    return handles, labels


def plot_summary(
    path: Path,
    rows: Sequence[JobRow],
    title: str,
    log_keys: set[str] = frozenset(),
    tolerance: float = ACCURACY_TOLERANCE,
) -> Path:
    """Render `summary_panels` into one PNG: up to three panels a row; under each parameter panel a strip
    with one line per status of the jobs that did not finish; the best job ringed in red, the smallest
    artifact within tolerance in green; one legend for the figure, above the panels."""
    panels = summary_panels(rows, log_keys, tolerance)
    colors, by_level = job_colors(rows)
    statuses = [s for s in NOT_OK_MARKERS if any(s == st for p in panels for _, st, _ in p.not_ok)]
    statuses += sorted({st for p in panels for _, st, _ in p.not_ok} - set(statuses))
    ncols = max(1, min(3, len(panels)))
    nrows = max(1, math.ceil(len(panels) / ncols))
    height = 4.9 * nrows + 1.0
    fig = plt.figure(figsize=(5.2 * ncols, height))
    outer = fig.add_gridspec(nrows, ncols, hspace=0.45, wspace=0.3, top=1 - 1.0 / height)
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
        _draw_panel(ax, panel, colors, annotate)
        target = ax
        if below is not None:
            target = below
            ax.tick_params(labelbottom=False)
            for x, status, _ in panel.not_ok:
                below.scatter(
                    [x], [statuses.index(status)], marker=NOT_OK_MARKERS.get(status, "o"), color=NOT_OK_COLOR
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
        target.set_xlabel(panel.xlabel, fontsize=8)
    handles, labels = _legend_handles(rows, panels, by_level, tolerance)
    if handles:
        fig.legend(
            handles,
            labels,
            loc="upper center",
            bbox_to_anchor=(0.5, 1 - 0.45 / height),
            ncol=min(len(handles), 4),
            fontsize=8,
            frameon=False,
        )
    fig.suptitle(title, fontsize=9, y=1 - 0.1 / height)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path
