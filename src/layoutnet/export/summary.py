"""The short human-readable summary of an export or a validation (an ExportResult)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.table import Table

if TYPE_CHECKING:
    from layoutnet.export.result import ExportResult


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
        table.add_row("parity backend", f"{parity.get('backend')} ({parity.get('samples')} samples)")
        for name, figures in (result.parity_by_precision or {}).items():
            mark = " (app, required)" if figures.get("required") else ""
            table.add_row(
                f"{name}{mark}",
                f"max |Δprob| {_fmt(figures['max_prob_diff'])}, argmax agreement "
                f"{_fmt(figures['argmax_agreement'], '.4f')}"
                + ("" if figures.get("passed") else " [red]over tolerance[/]"),
            )
        table.add_row("tolerance", str(parity.get("tolerance")))
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
