"""The reporting package's shared pieces: report sections defined once, the ending every command
shares (report written, summary printed, files listed, machine-readable last line), and the console's
blocks and tables at the terminal's width."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from layoutnet.export.result import ExportResult
from layoutnet.reporting import console, sweepsummary
from layoutnet.reporting.record import record, record_export
from layoutnet.reporting.runreport import (
    EVALUATION_SECTIONS,
    REPORT_FILE,
    SECTIONS,
    read_report,
    update_report,
    write_report,
)

from .conftest import read_fields


def test_report_sections_merge_and_unknown_sections_are_refused(tmp_path):
    update_report(tmp_path, status="running", training={"epochs": 0})
    update_report(tmp_path, status="ok", export={"status": "ok"})
    assert read_report(tmp_path) == {"status": "ok", "training": {"epochs": 0}, "export": {"status": "ok"}}
    with pytest.raises(ValueError, match=r"not a section of report\.json: trainig"):
        update_report(tmp_path, trainig={})
    assert read_report(tmp_path)["status"] == "ok"
    assert not list(tmp_path.glob(".*.tmp"))
    assert {"training", "validation", "test", "export"} <= set(SECTIONS)


def test_an_evaluation_report_is_replaced_not_merged(tmp_path):
    path = tmp_path / "best.eval.json"
    write_report(path, {"accuracy": 0.5, "realtext": {}}, EVALUATION_SECTIONS, replace=True)
    write_report(path, {"accuracy": 0.75}, EVALUATION_SECTIONS, replace=True)
    assert json.loads(path.read_text(encoding="utf-8")) == {"accuracy": 0.75}
    with pytest.raises(ValueError, match="training"):
        write_report(path, {"training": {}}, EVALUATION_SECTIONS)


def test_record_writes_prints_the_summary_the_files_and_the_last_line_last(tmp_path, capsys):
    path = tmp_path / "m.eval.json"
    record(
        path,
        {"accuracy": 0.9},
        console=Console(),
        summary=lambda console: console.print("SUMMARY"),
        files={"report": path, "confusion matrix": tmp_path / "m.png"},
        last_line="accuracy=0.900000",
        schema=EVALUATION_SECTIONS,
        replace=True,
    )
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines == [
        "SUMMARY",
        f"report: {path}",
        f"confusion matrix: {tmp_path / 'm.png'}",
        "accuracy=0.900000",
    ]
    assert json.loads(path.read_text(encoding="utf-8")) == {"accuracy": 0.9}


def test_record_export_writes_the_section_and_the_commands_status(tmp_path, capsys):
    failed = ExportResult(status="failed", path="x.mlmodel", error="parity over tolerance")
    record_export(tmp_path, failed, section="validation", top_level=True, command="validate")
    report = json.loads((tmp_path / REPORT_FILE).read_text(encoding="utf-8"))
    assert report["status"] == "failed" and report["error"] == "parity over tolerance"
    assert report["command"] == "validate" and report["validation"]["path"] == "x.mlmodel"
    assert "FAILED" in capsys.readouterr().out
    record_export(tmp_path, ExportResult(status="disabled", reason="export=none"))
    assert read_report(tmp_path)["export"] == {"status": "disabled", "reason": "export=none"}
    assert "disabled (export=none)" in capsys.readouterr().out


# The console: every block and table fits the width (80 columns when piped) without losing anything.

LONG_RUN = "/home/someone/projects/layoutnet/outputs/smoke/runs/2026-12-07_19-59-31_1"


def _printed(width: int, draw) -> list[str]:
    console = Console(width=width, file=io.StringIO(), highlight=False)
    draw(console)
    return console.file.getvalue().splitlines()


def test_long_paths_wrap_only_after_a_slash_and_read_back_whole():
    path = f"{LONG_RUN}/export/LayoutClassifier.mlpackage"
    lines = console.wrap_value(f"saved to {path} (fp16)", 40)
    assert all(len(line) <= 40 for line in lines)
    # a line that ends inside the path ends at a `/`, so no name is cut ("…mlpackag" / "e")
    inside = [line for line in lines[:-1] if not line.endswith(("to", ")"))]
    assert inside and all(line.endswith("/") for line in inside)
    assert read_fields(["k  " + lines[0], *("   " + line for line in lines[1:])])["k"] == (
        f"saved to {path} (fp16)"
    )
    assert console.wrap_value("x" * 25, 10) == ["x" * 10, "x" * 10, "x" * 5]  # a name wider than a line


@pytest.mark.parametrize("width", [80, 60])
def test_export_and_validation_summaries_fit_the_width_and_name_their_command(width):
    result = ExportResult(
        status="ok",
        path=f"{LONG_RUN}/export/LayoutClassifier.mlpackage",
        weights=f"{LONG_RUN}/checkpoints/best.ckpt",
        format="mlprogram",
        precision="fp16",
        parity_vectors=f"{LONG_RUN}/export/parity_vectors.json",
        warnings=[{"source": "torch", "category": "DeprecationWarning", "message": "word " * 40}],
    )
    for section, title in (("export", "Core ML export: OK"), ("validation", "Core ML validation: OK")):
        lines = _printed(width, lambda out, s=section: record_export(None, result, section=s, console=out))
        assert lines[0] == title and all(len(line) <= width for line in lines), lines
        fields = read_fields(lines[1:])
        assert fields["artifact"] == result.path and fields["weights"] == result.weights


def _swept_row(job: int, status: str = "ok") -> sweepsummary.JobRow:
    return sweepsummary.JobRow(
        job=str(job),
        run_dir=Path(f"/sweep/{job}"),
        status=status,
        overrides=[
            f"model.net.branch_kernels=[2,{3 + job},5]",
            f"model.net.branch_channels={32 * (job + 1)}",
            f"model.weight_decay={0.0123456 * job}",
            f"model.label_smoothing={0.05 * job}",
            f"model.lr={0.000312345 * (job + 1)}",
            "export.compression=none",
        ],
        parameters=50_000 + job,
        val_accuracy=0.9 + job / 100,
        export_status="ok",
        parity_max_prob_diff=0.00071234,
        artifact_size_bytes=480_000,
        wall_seconds=1234.5,
    )


@pytest.mark.parametrize("width", [80, 50])
def test_the_sweep_table_fits_the_width_and_keeps_every_column(width):
    rows = [_swept_row(0), _swept_row(1), _swept_row(2, "failed")]
    lines = _printed(width, lambda out: console.print_sweep_summary(rows, out, title="sweep summary"))
    assert all(len(line) <= width for line in lines), "\n".join(lines)
    text = "\n".join(lines)
    assert "…" not in text  # nothing cut
    for key in ("branch_kernels", "branch_channels", "weight_decay", "label_smoothing", "model.lr"):
        assert key in text  # in a header, or named in the legend under the table
    for value in ("[2,4,5]", "0.000625", "1234.5", "0.00071", "failed"):
        assert value in text
    assert "every job  export ok" in text  # a column that would repeat one value is said once
    if width == 50:
        assert "sweep summary (1 of " in text  # too wide for one table: parts, each with the job column


def test_a_narrow_sweep_table_abbreviates_headers_and_names_them_below():
    rows = [_swept_row(0), _swept_row(1)]
    text = "\n".join(_printed(80, lambda out: console.print_sweep_summary(rows, out)))
    legend = read_fields([line for line in text.splitlines() if line.startswith(("columns", " "))])
    assert "wd = model.weight_decay" in legend["columns"]
    assert "ls = model.label_smoothing" in legend["columns"]
