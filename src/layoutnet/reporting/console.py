"""What reporting prints on the terminal: the tables of an evaluation, the summary of an export or a
validation (an ExportResult), the sweep summary table, and the closing lines of a command (where its
files are, the machine-readable last line)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from layoutnet.contract import CLASSES
from layoutnet.quality import HARMFUL_BUDGETS, LENGTH_BUCKETS, budget_key
from layoutnet.reporting.sweepsummary import (
    JobRow,
    as_number,
    best_row,
    format_cell,
    short_error,
    varied_keys,
)

if TYPE_CHECKING:
    from layoutnet.export.result import ExportResult


def print_written(console: Console, files: Mapping[str, Path | str], last_line: str | None = None) -> None:
    """One `<what>: <path>` line per file a command wrote; then `last_line` (`accuracy=0.97`) alone on
    stdout, after everything the console printed, for scripts that read the last line."""
    for name, path in files.items():
        console.print(f"{name}: {escape(str(path))}", soft_wrap=True, highlight=False)
    if last_line is not None:
        console.file.flush()
        print(last_line, flush=True)


# Training run ---------------------------------------------------------------------------------------------


def print_run_result(run_dir: Path, report: dict) -> None:
    """The end of a training run (`python -m layoutnet`), from its report: plain lines that wrap rather
    than cut (paths are never truncated)."""
    console = Console(soft_wrap=True, highlight=False)
    training = report.get("training") or {}
    best = training.get("best_val_accuracy")
    lines = [("run", str(run_dir))]
    lines.append(
        (
            "model",
            f"{training.get('family')}, {training.get('parameters') or 0:,} parameters; "
            f"{training.get('epochs')} epochs, {training.get('global_step')} steps",
        )
    )
    best_path = (report.get("paths") or {}).get("best_checkpoint")
    if best is not None:
        lines.append(("val/acc", f"{best:.4f} (best checkpoint {best_path})"))
    else:
        lines.append(("val/acc", "none recorded: no best checkpoint, the final weights were used"))
    test = report.get("test") or {}
    if test.get("test/acc") is not None:
        lines.append(("test/acc", f"{test['test/acc']:.4f}"))
    per_class = (report.get("validation") or {}).get("per_class_accuracy") or {}
    if per_class:
        lines.append(
            (
                "per class",
                ", ".join(f"{c} {per_class[c]:.3f}" for c in CLASSES if per_class.get(c) is not None),
            )
        )
    export = report.get("export") or {}
    if export.get("status") == "ok":
        parity = export.get("parity") or {}
        lines.append(("artifact", str(export.get("path"))))
        lines.append(("weights", str(export.get("weights"))))
        if parity:
            lines.append(
                (
                    "parity",
                    f"max |dprob| {parity.get('max_prob_diff'):.2g} on {parity.get('samples')} samples "
                    f"({parity.get('backend')}), argmax agreement {parity.get('argmax_agreement'):.4f}",
                )
            )
    elif export:
        lines.append(("export", str(export.get("status"))))
    pictures = sorted(str(p) for p in (run_dir / "plots").glob("*.png"))
    if pictures:
        lines.append(("pictures", ", ".join(pictures)))
    lines.append(("report", str(run_dir / "report.json")))
    console.print()
    for key, value in lines:
        console.print(f"[bold]{key:<9}[/] {escape(value)}")


# Evaluation -----------------------------------------------------------------------------------------------

SHORT_NAMES = {name: name.replace("_from_", "←") for name in CLASSES}
"""Narrow class names for the console tables (`ru←en` = meant ru, typed on en)."""

NARROW = {"box": box.SIMPLE_HEAD, "padding": (0, 1), "title_justify": "left"}
"""Table style of the console reports: fits 80 columns."""


def format_share(value: float | None) -> str:
    """A share as a percentage: 12.3%, 0.05%."""
    return "—" if value is None else f"{100 * value:.1f}%" if value >= 0.1 else f"{100 * value:.2f}%"


def _accuracy(value: float | None) -> str:
    return "—" if value is None else f"{value:.4f}"


def print_evaluation(result: dict, console: Console) -> None:
    """Per-class accuracy and the confusion matrix of an evaluation, 80 columns wide."""
    per_class = Table(title="per-class accuracy", **NARROW)
    per_class.add_column("class")
    per_class.add_column("support", justify="right")
    per_class.add_column("accuracy", justify="right")
    for name in CLASSES:
        value = result["per_class_accuracy"][name]
        per_class.add_row(SHORT_NAMES[name], str(result["support"][name]), _accuracy(value))
    console.print(per_class)
    matrix = Table(title="confusion matrix (rows: true, columns: predicted; ru←en = ru_from_en)", **NARROW)
    matrix.add_column("true")
    for name in CLASSES:
        matrix.add_column(SHORT_NAMES[name], justify="right")
    for i, name in enumerate(CLASSES):
        cells = []
        for j, count in enumerate(result["confusion_matrix"][i]):
            text = str(count) if count else "·"
            cells.append(f"[bold]{text}[/]" if i == j and count else text)
        matrix.add_row(SHORT_NAMES[name], *cells)
    console.print(matrix)
    correct = int(np.trace(np.asarray(result["confusion_matrix"])))
    console.print(f"overall accuracy {result['accuracy']:.4f} ({correct:,} of {result['samples']:,} rows)")


_REALTEXT_NOTE = "real-text set (not trained on): words, sentences, short, ambiguous"


def print_quality(sets: dict[str, dict], console: Console) -> None:
    """Accuracy by text length and the harmful/fixed table of each evaluated set, 80 columns wide."""
    lengths = Table(title="accuracy by text length (characters)", caption=_REALTEXT_NOTE, **NARROW)
    for column in ("set", "rows", "all", *(name for name, _, _ in LENGTH_BUCKETS)):
        lengths.add_column(column, justify="left" if column == "set" else "right")
    for name, summary in sets.items():
        buckets = summary["length_buckets"]
        lengths.add_row(
            name,
            f"{summary['rows']:,}",
            _accuracy(summary["accuracy"]),
            *(_accuracy(buckets[bucket]["accuracy"]) for bucket, _, _ in LENGTH_BUCKETS),
        )
    console.print(lengths)
    corrections = Table(title="corrections at a threshold t on the top probability", **NARROW)
    corrections.add_column("set")
    corrections.add_column("harm", justify="right")
    corrections.add_column("fixed", justify="right")
    for budget in HARMFUL_BUDGETS:
        key = budget_key(budget)
        corrections.add_column(f"t@{key}", justify="right")
        corrections.add_column("fixed", justify="right")
    for name, summary in sets.items():
        cells = [name, format_share(summary["harmful"]), format_share(summary["fixed"])]
        for budget in HARMFUL_BUDGETS:
            found = summary["thresholds"][budget_key(budget)]
            if found is None:
                cells += ["—", "—"]
            else:
                cells += [f"{found['threshold']:.3f}", format_share(found["fixed"])]
        corrections.add_row(*cells)
    console.print(corrections)
    console.print(
        "harm: correctly typed (ru/en/he) rows rewritten; fixed: wrong-layout rows\n"
        "corrected to their class; t@0.1%: the lowest t keeping harm <= 0.1%",
        style="dim",
    )


# Export and validation ------------------------------------------------------------------------------------


def _fmt(value: float | None, spec: str = ".3g") -> str:
    return "-" if value is None else format(value, spec)


def print_export_summary(result: ExportResult, console: Console | None = None) -> None:
    console = console or Console()
    if result.status == "disabled":
        console.print(f"Core ML export: disabled ({escape(str(result.reason))})")
        return
    title = "Core ML export: " + ("[green]OK[/]" if result.ok else "[red]FAILED[/]")
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(no_wrap=True)
    table.add_column(overflow="fold")
    table.add_row("artifact", escape(str(result.path)))
    table.add_row(
        "format",
        f"{result.format} / {result.precision}, front end {result.frontend}, "
        f"compression {result.compression}",
    )
    if result.artifact_size_bytes is not None:
        table.add_row("size", f"{result.artifact_size_bytes / 1e6:.3f} MB")
    parity = result.parity or {}
    if parity:
        against = " against the file's own (decompressed) weights" if result.compression_cost else ""
        table.add_row("parity backend", f"{parity.get('backend')} ({parity.get('samples')} samples){against}")
        for name, figures in (result.parity_by_precision or {}).items():
            mark = " (app bracket, required)" if figures.get("required") else ""
            table.add_row(
                f"{name}{mark}",
                f"max |Δprob| {_fmt(figures['max_prob_diff'])} (margin {_fmt(figures.get('margin'))}), "
                f"argmax agreement {_fmt(figures['argmax_agreement'], '.4f')}"
                + (f" - {escape(figures['device'])}" if figures.get("device") else "")
                + ("" if figures.get("passed") else " [red]over tolerance[/]"),
            )
        table.add_row("tolerance", str(parity.get("tolerance")))
    for name, guard in (result.range_guards or {}).items():
        verdict = "" if guard["passed"] else (" [red]over[/]" if guard["gates"] else " [yellow]over[/]")
        table.add_row(
            f"range {name}" + (" (required)" if guard["gates"] else ""),
            f"{_fmt(guard['largest'])} at {escape(str(guard['op']))}, limit {_fmt(guard['limit'], '.6g')}, "
            f"margin {_fmt(guard['margin'])}{verdict}",
        )
    _compression_rows(table, result)
    accuracy = result.accuracy or {}
    if accuracy.get("torch") is not None:
        table.add_row(
            "accuracy torch / artifact", f"{accuracy['torch']:.4f} / {_fmt(accuracy.get('artifact'), '.4f')}"
        )
    if result.manifest_check:
        table.add_row("manifest", escape(result.manifest_check))
    if result.parity_vectors:
        table.add_row("parity vectors", escape(result.parity_vectors))
    if result.handoff:
        table.add_row("hand-off", escape(result.handoff))
    if result.timings:
        table.add_row("timings (s)", ", ".join(f"{k} {v}" for k, v in result.timings.items()))
    for notice in result.warnings:
        table.add_row(
            "[yellow]warning[/]", escape(f"{notice['source']} ({notice['category']}): {notice['message']}")
        )
    if result.versions:
        table.add_row(
            "versions", ", ".join(f"{k} {v}" for k, v in result.versions.items() if k != "platform")
        )
    if not result.ok and result.error:
        table.add_row("error", escape(str(result.error)[:2000]))
        if result.failed_dir:
            table.add_row("kept in", escape(result.failed_dir))
    console.print(table)


def _compression_rows(table: Table, result: ExportResult) -> None:
    """The compression's size and cost against the uncompressed model, beside the parity rows, and
    what `export.compression=auto` tried."""
    cost = result.compression_cost
    if cost:
        budget = cost["budget"]
        sizes = [_fmt((cost[k] or 0) / 1e6, ".3f") for k in ("size_bytes", "uncompressed_size_bytes")]
        table.add_row(
            "compression size",
            f"{cost['level']}: {sizes[0]} MB, {_fmt(cost['size_ratio'], '.1%')} of {sizes[1]} MB (none)",
        )
        parts = []
        if cost.get("validation"):
            v = cost["validation"]
            parts.append(
                f"validation {v['uncompressed']:.4f} -> {v['compressed']:.4f} ({-v['points_lost']:+.2f} pt)"
            )
        for split, f in cost["realtext"].items():
            parts.append(
                f"{split} {f['uncompressed']:.4f} -> {f['compressed']:.4f} ({-f['points_lost']:+.2f} pt, "
                f"harm {f['harm_added_points']:+.2f} pt)"
            )
        thresholds = f"{cost['threshold_uncompressed']:.4g} -> {cost['threshold']:.4g}"
        parts.append(f"harm at each model's correction threshold ({thresholds})")
        parts.append(
            f"budget {budget['realtext_points']:g} pt real text, {budget['validation_points']:g} pt "
            f"validation, {budget['harm_points']:g} pt harm: "
            + ("within budget" if cost["within_budget"] else "[red]over budget[/]")
        )
        table.add_row("compression cost", "; ".join(parts))
    for trial in result.compression_trials or []:
        size = "-" if trial["size_bytes"] is None else f"{trial['size_bytes'] / 1e6:.3f} MB"
        table.add_row(f"auto tried {trial['level']}", escape(f"{size}: {trial['outcome']}"))


# Sweeps ---------------------------------------------------------------------------------------------------


def short_keys(keys: Sequence[str]) -> list[str]:
    """Each key's last component (`model.net.padding` -> `padding`) where that stays unambiguous."""
    last = [key.rsplit(".", 1)[-1] for key in keys]
    return [short if last.count(short) == 1 else key for key, short in zip(keys, last, strict=True)]


def _terminal_value(value: str) -> str:
    """A swept value in the terminal table: numbers to 3 significant digits (`0.00112`)."""
    number = as_number(value)
    return value if number is None or len(value) <= 6 else f"{number:.3g}"


def print_sweep_summary(rows: Sequence[JobRow], console: Console | None = None) -> None:
    """A compact table for the terminal (columns that hold nothing, or the same export status for every
    job, are left out so it reads at 80 columns); duplicates and errors are listed under it."""
    console = console or Console()
    varied, _ = varied_keys(rows)
    best = best_row(rows)
    columns: list[tuple[str, list[str]]] = [
        ("job", [row.job for row in rows]),
        ("status", [row.status if row.status == "ok" else f"[red]{escape(row.status)}[/]" for row in rows]),
    ]
    for key, name in zip(varied, short_keys(varied), strict=True):
        columns.append((name, [escape(_terminal_value(row.params.get(key, "—"))) for row in rows]))
    accuracies = [format_cell(row.val_accuracy, "acc") for row in rows]
    columns.append(
        (
            "val acc",
            [f"[bold green]{a}[/]" if row is best else a for row, a in zip(rows, accuracies, strict=True)],
        )
    )
    exports = [format_cell(row.export_status) for row in rows]
    if len(set(exports)) > 1 or exports[:1] not in (["disabled"], ["—"]):
        columns.append(("export", [escape(e) for e in exports]))
    columns.append(("Δp", [format_cell(row.parity_max_prob_diff, "diff") for row in rows]))
    columns.append(
        (
            "KiB",
            ["—" if r.artifact_size_bytes is None else f"{r.artifact_size_bytes / 1024:,.0f}" for r in rows],
        )
    )
    columns.append(("wall s", [format_cell(row.wall_seconds, "seconds") for row in rows]))
    columns = [(name, cells) for name, cells in columns if any(cell != "—" for cell in cells)]
    table = Table(title="sweep summary", box=box.SIMPLE_HEAD, pad_edge=False)
    for name, _ in columns:
        table.add_column(escape(name), no_wrap=True, min_width=min(len(name), 8))
    for i in range(len(rows)):
        table.add_row(*(cells[i] for _, cells in columns))
    console.print(table)
    if exports and len(set(exports)) == 1 and exports[0] in ("disabled", "—"):
        console.print(f"export: {escape(exports[0])} for every job")
    for row in rows:
        if row.duplicate_of is not None:
            console.print(
                f"[yellow]job {escape(row.job)}[/] trains the same network as job {escape(row.duplicate_of)}"
            )
    for row in rows:
        if row.error:
            console.print(f"[red]job {escape(row.job)}:[/] {escape(short_error(row.error, 300))}")
