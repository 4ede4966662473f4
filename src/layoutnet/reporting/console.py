"""What reporting prints on the terminal: the tables of an evaluation, the summary of an export or a
validation (an ExportResult), the sweep summary table, and the closing lines of a command (where its
files are, the machine-readable last line)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from layoutnet.contract import CLASSES
from layoutnet.quality import (
    ALL_SPLITS,
    HARMFUL_BUDGETS,
    LENGTH_BUCKETS,
    SPLIT_GROUPS,
    TYPED_RIGHT_OUTCOMES,
    WRONG_LAYOUT_OUTCOMES,
    budget_key,
)
from layoutnet.reporting.runreport import REPORT_FILE
from layoutnet.reporting.sweepsummary import (
    JobRow,
    as_number,
    best_row,
    format_cell,
    short_error,
    varied_keys,
)
from layoutnet.rundir import LATEST

if TYPE_CHECKING:
    from layoutnet.export.result import ExportResult


def display_path(path: Path | str) -> str:
    """A path as the console shows it: relative to the working directory when it lies inside it (what a
    user can paste back into the shell they typed the command in), else as it is."""
    text = str(path)
    try:
        relative = Path(text).absolute().relative_to(Path.cwd())
    except ValueError:
        return text
    return str(relative) if str(relative) != "." else text


def wrap_value(text: str, width: int) -> list[str]:
    """`text` in lines of at most `width` characters: broken at spaces, and inside a word (a path) only
    after a `/`; a piece longer than a whole line is cut."""
    width = max(1, width)
    lines: list[str] = []
    line = ""
    for word in text.split(" "):
        pieces = re.findall(r"[^/]*/|[^/]+", word) or [""]
        gap = " " if line else ""
        if len(line) + len(gap) + len(word) <= width:
            line += gap + word
            continue
        if len(pieces) == 1 or not line:  # a plain word, or a path starting a line: a fresh line
            if line:
                lines.append(line)
            line = ""
        else:
            line += gap
        for piece in pieces:
            if len(line) + len(piece) > width and line.strip():
                lines.append(line.rstrip())
                line = ""
            while len(piece) > width:
                lines.append(piece[:width])
                piece = piece[width:]
            line += piece
    lines.append(line)
    return lines


def print_title(console: Console, title: str) -> None:
    """A bold heading, wrapped like a value (at spaces and after `/`)."""
    for line in wrap_value(title, console.width):
        console.print(Text(line, style="bold"), soft_wrap=True, highlight=False)


def print_fields(console: Console, rows: Sequence[tuple[str, str]], title: str | None = None) -> None:
    """`key  value` lines: the values wrapped to the console's width (80 columns when the output is not a
    terminal; see `wrap_value`) under a hanging indent, so nothing is cut and no path breaks mid-name."""
    if title:
        print_title(console, title)
    key_width = min(max((len(key) for key, _ in rows), default=0), 26) + 2
    for key, value in rows:
        indent = max(key_width, len(key) + 2)
        lines = wrap_value(value, console.width - indent)
        text = Text(key.ljust(indent), style="bold")
        text.append(lines[0])
        for more in lines[1:]:
            text.append("\n" + " " * indent + more)
        console.print(text, soft_wrap=True, highlight=False)


def print_written(console: Console, files: Mapping[str, Path | str], last_line: str | None = None) -> None:
    """One `<what>: <path>` line per file a command wrote (whole, for scripts and copy-paste); then
    `last_line` (`accuracy=0.97`) alone on stdout, after everything the console printed, for scripts that
    read the last line."""
    for name, path in files.items():
        console.print(f"{name}: {escape(str(path))}", soft_wrap=True, highlight=False)
    if last_line is not None:
        console.file.flush()
        print(last_line, flush=True)


# Training run ---------------------------------------------------------------------------------------------


def _seconds(value: float | None) -> str | None:
    if value is None:
        return None
    return f"{value:.1f} s" if value < 120 else f"{value / 60:.1f} min"


def run_result_rows(run_dir: Path, report: dict) -> list[tuple[str, str]]:
    """The rows of a training run's summary, from its report. Files inside the run directory are named
    relative to it (the `run` row)."""

    def inside(path: object) -> str:
        text = str(path)
        try:
            return str(Path(text).relative_to(run_dir))
        except ValueError:
            return display_path(text)

    training = report.get("training") or {}
    best = training.get("best_val_accuracy")
    rows = [("run", display_path(run_dir))]
    latest = run_dir.parent.parent / LATEST
    if run_dir.parent.name in ("runs", "multiruns") and latest.is_symlink() and latest.resolve() == run_dir:
        rows[0] = ("run", f"{display_path(run_dir)} (also {display_path(latest)})")
    rows.append(
        (
            "model",
            f"{training.get('family')}, {training.get('parameters') or 0:,} parameters; "
            f"{training.get('epochs')} epochs, {training.get('global_step')} steps",
        )
    )
    best_path = (report.get("paths") or {}).get("best_checkpoint")
    if best is not None:
        rows.append(("val/acc", f"{best:.4f} (best checkpoint {inside(best_path)})"))
    else:
        rows.append(("val/acc", "none recorded: no best checkpoint, the final weights were used"))
    test = report.get("test") or {}
    if test.get("test/acc") is not None:
        rows.append(("test/acc", f"{test['test/acc']:.4f}"))
    per_class = (report.get("validation") or {}).get("per_class_accuracy") or {}
    if per_class:
        rows.append(
            (
                "per class",
                ", ".join(
                    f"{SHORT_NAMES[c]} {per_class[c]:.3f}" for c in CLASSES if per_class.get(c) is not None
                ),
            )
        )
    export = report.get("export") or {}
    if export.get("status") == "ok":
        parity = export.get("parity") or {}
        rows.append(("artifact", inside(export.get("path"))))
        if export.get("weights") and str(export.get("weights")) != str(best_path):
            rows.append(("weights", inside(export.get("weights"))))
        if parity:
            rows.append(
                (
                    "parity",
                    f"max |Δprob| {parity.get('max_prob_diff'):.2g} on {parity.get('samples')} samples "
                    f"({parity.get('backend')}), argmax agreement {parity.get('argmax_agreement'):.4f}",
                )
            )
    elif export:
        rows.append(("export", str(export.get("status"))))
    timings = report.get("timings") or {}
    spent = [
        f"{name} {_seconds(timings.get(key))}"
        for name, key in (("fit", "fit_seconds"), ("total", "total_seconds"))
        if timings.get(key) is not None
    ]
    if spent:
        rows.append(("time", ", ".join(spent)))
    pictures = sorted(inside(p) for p in (run_dir / "plots").glob("*.png"))
    if pictures:
        rows.append(("pictures", ", ".join(pictures)))
    return rows


def print_run_result(run_dir: Path, report: dict) -> None:
    """The end of a training run (`python -m layoutnet`), from its report: wrapped `key value` lines
    (paths break only at `/`), then the report's path whole."""
    console = Console(highlight=False)
    console.print()
    print_fields(
        console, run_result_rows(Path(run_dir), report), title=f"training run: {report.get('status')}"
    )
    print_written(console, {"report": Path(run_dir) / REPORT_FILE})


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


_REALTEXT_NOTE = f"real-text set (not trained on): {', '.join(ALL_SPLITS)}"


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


def print_threshold_figures(sets: dict[str, dict], threshold: float, origin: str, console: Console) -> None:
    """What the app does at its correction threshold on each set (fixed, kept, rewritten) with the
    expected calibration error, and the sets reported by group (SPLIT_GROUPS) by group, 80 columns."""
    table = Table(title=f"at the correction threshold t={threshold:.4f} ({origin})", **NARROW)
    for column in ("set", "rows", "fixed", "kept", "rewritten", "ECE"):
        table.add_column(column, justify="left" if column == "set" else "right")
    for name, summary in sets.items():
        found = summary.get("at_threshold") or {}
        ece = (summary.get("calibration") or {}).get("ece")
        table.add_row(
            name,
            f"{summary['rows']:,}",
            format_share(found.get("fixed")),
            format_share(found.get("kept")),
            format_share(found.get("rewritten")),
            "—" if ece is None else f"{ece:.4f}",
        )
    console.print(table)
    bins = next((s["calibration"]["bins"] for s in sets.values() if s.get("calibration")), None)
    console.print(
        "fixed: wrong-layout rows corrected at t; kept: correctly typed rows left alone;\n"
        f"rewritten: correctly typed rows changed; ECE: expected calibration error of\n"
        f"the top probability ({bins} equal-width bins)",
        style="dim",
    )
    for name, summary in sets.items():
        groups = (summary.get("at_threshold") or {}).get("groups")
        if not groups:
            continue
        by = SPLIT_GROUPS[name][0] if name in SPLIT_GROUPS else "group"
        table = Table(title=f"{name} at t={threshold:.4f}, by {by}", **NARROW)
        for column in (by, "wrong", "fixed", "correct", "kept", "rewritten"):
            table.add_column(column, justify="left" if column == by else "right")
        for group, figures in groups.items():
            table.add_row(
                group,
                f"{figures['wrong_layout_rows']:,}",
                format_share(figures["fixed"]),
                f"{figures['correct_rows']:,}",
                format_share(figures["kept"]),
                format_share(figures["rewritten"]),
            )
        console.print(table)


PAIRS_SHOWN = 10
"""Most confident wrong tokens printed (the report keeps `mistakes` of them)."""


def print_pairs(result: dict, console: Console) -> None:
    """Typed text scored token by token: fixed, missed, kept, harmed, and the most confident misses."""
    console.print(
        f"typed text token by token at t={result['threshold']:.4f}: {escape(Path(result['path']).name)}, "
        f"{result['lines']:,} lines, {result['tokens']:,} tokens"
    )
    table = Table(**NARROW)
    for column in ("tokens", "of", "share"):
        table.add_column(column, justify="left" if column == "tokens" else "right")
    for outcomes, total in (
        (WRONG_LAYOUT_OUTCOMES, result["wrong_layout_tokens"]),
        (TYPED_RIGHT_OUTCOMES, result["correct_tokens"]),
    ):
        for outcome in outcomes:
            table.add_row(
                outcome, f"{result['counts'][outcome]:,} of {total:,}", format_share(result[outcome])
            )
    table.add_row("lines all right", f"{result['lines_right']:,} of {result['lines']:,}", "")
    console.print(table)
    console.print(
        "wrong-layout tokens are fixed, missed or miscorrected; correctly typed\n"
        "tokens are kept or harmed (rewritten)",
        style="dim",
    )
    if not result["worst"]:
        return
    table = Table(title="most confident wrong tokens", **NARROW)
    for column in ("line", "typed", "expected", "output", "class", "p"):
        table.add_column(column, justify="right" if column in ("line", "p") else "left", max_width=18)
    for item in result["worst"][:PAIRS_SHOWN]:
        table.add_row(
            str(item["line"]),
            escape(item["typed"]),
            escape(item["expected"]),
            escape(item["output"]),
            SHORT_NAMES[item["class"]],
            f"{item['probability']:.3f}",
        )
    console.print(table)


# Export and validation ------------------------------------------------------------------------------------


def _fmt(value: float | None, spec: str = ".3g") -> str:
    return "-" if value is None else format(value, spec)


def export_rows(result: ExportResult) -> list[tuple[str, str]]:
    """The rows of an export's or a validation's summary."""
    rows = [("artifact", display_path(str(result.path)))]
    rows.append(
        (
            "format",
            f"{result.format} / {result.precision}, front end {result.frontend}, "
            f"compression {result.compression}",
        )
    )
    if result.artifact_size_bytes is not None:
        rows.append(("size", f"{result.artifact_size_bytes / 1e6:.3f} MB"))
    if result.weights:
        rows.append(("weights", display_path(str(result.weights))))
    parity = result.parity or {}
    if parity:
        against = ", against the file's own (decompressed) weights" if result.compression_cost else ""
        rows.append(("parity", f"{parity.get('backend')}, {parity.get('samples')} samples{against}"))
        for name, figures in (result.parity_by_precision or {}).items():
            mark = " (app bracket, required)" if figures.get("required") else ""
            rows.append(
                (
                    f"{name}{mark}",
                    f"max |Δprob| {_fmt(figures['max_prob_diff'])} (margin {_fmt(figures.get('margin'))}), "
                    f"argmax agreement {_fmt(figures['argmax_agreement'], '.4f')}"
                    + (f" - {figures['device']}" if figures.get("device") else "")
                    + ("" if figures.get("passed") else ", OVER TOLERANCE"),
                )
            )
        rows.append(("tolerance", str(parity.get("tolerance"))))
    for name, guard in (result.range_guards or {}).items():
        verdict = (
            "" if guard["passed"] else (", OVER THE LIMIT" if guard["gates"] else ", over (reported only)")
        )
        rows.append(
            (
                f"range {name}" + (" (required)" if guard["gates"] else ""),
                f"{_fmt(guard['largest'])} at {guard['op']}, limit {_fmt(guard['limit'], '.6g')}, "
                f"margin {_fmt(guard['margin'])}{verdict}",
            )
        )
    rows.extend(_compression_rows(result))
    accuracy = result.accuracy or {}
    if accuracy.get("torch") is not None:
        rows.append(
            ("accuracy", f"torch {accuracy['torch']:.4f}, artifact {_fmt(accuracy.get('artifact'), '.4f')}")
        )
    if result.manifest_check:
        rows.append(("manifest", result.manifest_check))
    if result.parity_vectors:
        rows.append(("parity vectors", display_path(result.parity_vectors)))
    if result.handoff:
        rows.append(("hand-off", result.handoff))
    if result.timings:
        rows.append(("timings (s)", ", ".join(f"{k} {v}" for k, v in result.timings.items())))
    for notice in result.warnings:
        rows.append(("warning", f"{notice['source']} ({notice['category']}): {notice['message']}"))
    if result.versions:
        rows.append(
            ("versions", ", ".join(f"{k} {v}" for k, v in result.versions.items() if k != "platform"))
        )
    if not result.ok and result.error:
        rows.append(("error", str(result.error)[:2000]))
        if result.failed_dir:
            rows.append(("kept in", display_path(result.failed_dir)))
    return rows


def _compression_rows(result: ExportResult) -> list[tuple[str, str]]:
    """The compression's size and cost against the uncompressed model, beside the parity rows, and
    what `export.compression=auto` tried."""
    rows = []
    cost = result.compression_cost
    if cost:
        budget = cost["budget"]
        sizes = [_fmt((cost[k] or 0) / 1e6, ".3f") for k in ("size_bytes", "uncompressed_size_bytes")]
        rows.append(
            (
                "compression size",
                f"{cost['level']}: {sizes[0]} MB, {_fmt(cost['size_ratio'], '.1%')} of {sizes[1]} MB (none)",
            )
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
            + ("within budget" if cost["within_budget"] else "OVER BUDGET")
        )
        rows.append(("compression cost", "; ".join(parts)))
    for trial in result.compression_trials or []:
        size = "-" if trial["size_bytes"] is None else f"{trial['size_bytes'] / 1e6:.3f} MB"
        rows.append((f"auto tried {trial['level']}", f"{size}: {trial['outcome']}"))
    return rows


def print_export_summary(
    result: ExportResult, console: Console | None = None, title: str = "Core ML export"
) -> None:
    """The summary of an export (`title`: what the command did, e.g. "Core ML validation"): `key value`
    lines wrapped to the console's width, paths broken only at `/`."""
    console = console or Console(highlight=False)
    if result.status == "disabled":
        console.print(f"{title}: disabled ({escape(str(result.reason))})", highlight=False)
        return
    verdict = "[green]OK[/]" if result.ok else "[red]FAILED[/]"
    console.print(f"[bold]{escape(title)}: {verdict}[/]", highlight=False)
    print_fields(console, export_rows(result))


# Sweeps ---------------------------------------------------------------------------------------------------


def short_keys(keys: Sequence[str]) -> list[str]:
    """Each key's last component (`model.net.padding` -> `padding`) where that stays unambiguous."""
    last = [key.rsplit(".", 1)[-1] for key in keys]
    return [short if last.count(short) == 1 else key for key, short in zip(keys, last, strict=True)]


def _terminal_value(value: str) -> str:
    """A swept value in the terminal table: numbers to 3 significant digits (`0.00112`)."""
    number = as_number(value)
    return value if number is None or len(value) <= 6 else f"{number:.3g}"


def _abbreviation(name: str, width: int, taken: set[str]) -> str:
    """A short header for a column: the initials of a `snake_case` name (`kernel_size` -> `ks`), else the
    name cut to `width` (its values' width, at least 4: `experiment` over `smoke` -> `exper`); a digit is
    added when that is taken."""
    words = [w for w in re.split(r"[._]", name) if w]
    short = "".join(w[0] for w in words) if len(words) > 1 else name[: max(width, 4)]
    candidate, n = short, 1
    while candidate in taken:
        n += 1
        candidate = f"{short}{n}"
    return candidate


COLUMN_NOTES = {
    "Δp": "Δp = the artifact's largest probability difference from PyTorch",
    "KiB": "KiB = artifact size",
}
"""The legend of the sweep table's narrow result columns."""


@dataclass
class _Column:
    header: str
    cells: list[str]
    key: str | None = None  # a swept key: its full name goes into the legend
    right: bool = False


def _sweep_table(columns: Sequence[_Column]) -> Table:
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True, show_edge=False)
    for column in columns:
        table.add_column(escape(column.header), no_wrap=True, justify="right" if column.right else "left")
    for i in range(len(columns[0].cells)):
        table.add_row(*(column.cells[i] for column in columns))
    return table


def _fits(console: Console, columns: Sequence[_Column]) -> bool:
    unbounded = console.options.update(width=10_000)  # a measurement is capped at the width it is given
    return console.measure(_sweep_table(columns), options=unbounded).maximum <= console.width


def _pack(console: Console, columns: list[_Column]) -> list[list[_Column]]:
    """The columns as one table when it fits the console; else as few tables as fit, in order, each
    starting with the job column."""
    if _fits(console, columns):
        return [columns]
    job, rest = columns[0], columns[1:]
    tables: list[list[_Column]] = [[job]]
    for column in rest:
        if len(tables[-1]) > 1 and not _fits(console, [*tables[-1], column]):
            tables.append([job])
        tables[-1].append(column)
    return tables


def sweep_columns(rows: Sequence[JobRow]) -> tuple[list[_Column], list[str]]:
    """The summary table's columns, and notes for what every job shares (one status, one export status):
    a column that would repeat one value in every row is said once under the table instead."""
    varied, _ = varied_keys(rows)
    best = best_row(rows)
    notes: list[str] = []
    columns = [_Column("job", [row.job for row in rows])]
    statuses = {row.status for row in rows}
    if len(statuses) == 1 and len(rows) > 1:
        notes.append(f"status {next(iter(statuses))}")
    else:
        columns.append(
            _Column(
                "status",
                [row.status if row.status == "ok" else f"[red]{escape(row.status)}[/]" for row in rows],
            )
        )
    for key, name in zip(varied, short_keys(varied), strict=True):
        columns.append(
            _Column(name, [escape(_terminal_value(row.params.get(key, "—"))) for row in rows], key)
        )
    accuracies = [format_cell(row.val_accuracy, "acc") for row in rows]
    columns.append(
        _Column(
            "val acc",
            [f"[bold green]{a}[/]" if row is best else a for row, a in zip(rows, accuracies, strict=True)],
            right=True,
        )
    )
    exports = [format_cell(row.export_status) for row in rows]
    if len(set(exports)) == 1:
        notes.append(f"export {exports[0]}")
    else:
        columns.append(_Column("export", [escape(e) for e in exports]))
    columns.append(_Column("Δp", [format_cell(row.parity_max_prob_diff, "diff") for row in rows], right=True))
    sizes = ["—" if r.artifact_size_bytes is None else f"{r.artifact_size_bytes / 1024:,.0f}" for r in rows]
    columns.append(_Column("KiB", sizes, right=True))
    columns.append(_Column("wall s", [format_cell(row.wall_seconds, "seconds") for row in rows], right=True))
    columns = [c for c in columns if c.key is not None or c.header == "job" or any(x != "—" for x in c.cells)]
    return columns, notes


def print_sweep_summary(
    rows: Sequence[JobRow], console: Console | None = None, title: str = "sweep summary"
) -> None:
    """The sweep's table for the terminal, fitted to the console's width (80 columns when piped) without
    dropping a column: swept keys are named by their last part, abbreviated with a legend when that is
    still too wide, and the table is split into parts (each with the job column) when even that does not
    fit. Values are rounded for the screen; summary.csv keeps them whole. Duplicates and errors are
    listed under it."""
    console = console or Console(highlight=False)
    columns, notes = sweep_columns(rows)
    if not _fits(console, columns):
        taken = {c.header for c in columns}
        for column in columns:
            values = max(len(Text.from_markup(c).plain) for c in column.cells)
            if column.key is not None and len(column.header) > max(values, 4):
                column.header = _abbreviation(column.header, values, taken)
                taken.add(column.header)
    tables = _pack(console, columns)
    for number, part in enumerate(tables, 1):
        print_title(console, title if len(tables) == 1 else f"{title} ({number} of {len(tables)})")
        console.print(_sweep_table(part))
    legend = [f"{c.header} = {c.key}" for c in columns if c.key is not None and c.header != c.key]
    legend += [COLUMN_NOTES[c.header] for c in columns if c.header in COLUMN_NOTES]
    below = [("columns", "; ".join(legend))] if legend else []
    print_fields(console, below + ([("every job", ", ".join(notes))] if notes else []))
    jobs = [
        (f"job {row.job}", f"trains the same network as job {row.duplicate_of}")
        for row in rows
        if row.duplicate_of is not None
    ]
    jobs += [(f"job {row.job}", f"{row.status}: {short_error(row.error, 300)}") for row in rows if row.error]
    if jobs:
        print_fields(console, jobs)
