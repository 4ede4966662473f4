"""The reporting package's shared pieces: report sections defined once, and the ending every command
shares (report written, summary printed, files listed, machine-readable last line)."""

from __future__ import annotations

import json

import pytest
from rich.console import Console

from layoutnet.export.result import ExportResult
from layoutnet.reporting.record import record, record_export
from layoutnet.reporting.runreport import (
    EVALUATION_SECTIONS,
    REPORT_FILE,
    SECTIONS,
    read_report,
    update_report,
    write_report,
)


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
