"""The ending every command shares: its result written into its report, its summary printed, then where
its files are and its machine-readable last line. `record_export` is that ending for an ExportResult
(`python -m layoutnet`, `python -m layoutnet.export`, `python -m layoutnet.export.validate`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from layoutnet.reporting.console import print_export_summary, print_written
from layoutnet.reporting.runreport import REPORT_FILE, SECTIONS, write_report

if TYPE_CHECKING:
    from layoutnet.export.result import ExportResult

TITLES = {"export": "Core ML export", "validation": "Core ML validation"}
"""What the summary of a `record_export` section announces."""


def record(
    report_path: Path | None,
    sections: Mapping[str, Any],
    *,
    console: Console | None = None,
    summary: Callable[[Console], None] | None = None,
    files: Mapping[str, Path | str] | None = None,
    last_line: str | None = None,
    schema: Mapping[str, str] = SECTIONS,
    replace: bool = False,
) -> None:
    """Write `sections` into the report at `report_path` (merged; the whole file when `replace`), print
    `summary`, then one line per entry of `files` and `last_line` (see `console.print_written`)."""
    console = console or Console(highlight=False)
    if report_path is not None:
        write_report(report_path, sections, schema, replace)
    if summary is not None:
        summary(console)
    print_written(console, files or {}, last_line)


def record_export(
    run_dir: Path | str | None,
    result: ExportResult,
    *,
    section: str = "export",
    top_level: bool = False,
    console: Console | None = None,
    files: Mapping[str, Path | str] | None = None,
    **extra: Any,
) -> None:
    """`result` written under `section` of `run_dir/report.json` (with the command's top-level
    `status`/`error` when `top_level`, and any `extra` sections) and its summary printed."""
    sections: dict[str, Any] = {section: result.section(), **extra}
    if top_level:
        sections["status"] = "ok" if result.ok else "failed"
        if result.error:
            sections["error"] = result.error
    record(
        None if run_dir is None else Path(run_dir) / REPORT_FILE,
        sections,
        console=console,
        summary=lambda out: print_export_summary(result, out, TITLES.get(section, f"Core ML {section}")),
        files=files,
    )
