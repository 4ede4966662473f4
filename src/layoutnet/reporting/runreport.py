"""The machine-readable reports: `report.json` of a run directory (training, `export`, `validate`) and the
`<model>.eval.json` of `python -m layoutnet.evaluate`. Their sections are defined here, once: writing a
section that is not listed is a programming error.

Sections are merged into `report.json` as the run goes (training, then export); the sweep summary and the
sweep objective read them.
"""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

import layoutnet

REPORT_FILE = "report.json"

SECTIONS: dict[str, str] = {
    "status": "running / ok / failed (with `error`) / interrupted (with `signal` and `resume`)",
    "error": "why the run or command failed",
    "command": "the command that wrote the report when it is not training (`export`, `validate`)",
    "experiment": "task_name of the run",
    "overrides": "the Hydra overrides of the run",
    "run_dir": "the run directory",
    "versions": "layoutnet, torch, Lightning, coremltools, numpy, python, platform",
    "runtime": "threads and interop threads",
    "scheduler": "submitit jobs: job_id, resumed_from on a requeued attempt",
    "resumed_from": "the ckpt_path the run started from",
    "signal": "the signal that stopped the run",
    "resume": "ckpt_path and command that continue an interrupted run",
    "data": "the data source's description (source, sizes, seeds)",
    "model": "the model file a command opened (`export`)",
    "init_from": "what a run initialised from a legacy file took from it",
    "training": "family, parameters, best_val_accuracy, epochs, global_step",
    "validation": "training: accuracy, per-class accuracy, confusion matrix of the best weights on the "
    "validation set; `export.validate`: the validated artifact (an ExportResult)",
    "test": "the logged test metrics (test=true)",
    "export": "the export (an ExportResult: artifact, parity figures per precision of the device bracket, "
    "range guards, a compressed artifact's cost against the uncompressed model, settings, warnings, timings)",
    "paths": "checkpoints, config and pictures",
    "timings": "seconds per stage and total_seconds",
}
"""Top-level sections of `report.json`."""

RESULT_SECTIONS = ("training", "validation", "test", "export")
"""The sections holding a run's figures: where a sweep objective (`optimized_metric`) may point."""

EVALUATION_SECTIONS: dict[str, str] = {
    "command": "`evaluate`",
    "model": "the model file (kind, backend, family, parameters)",
    "data": "the rows scored (a CSV or the generated test set, and which config made it)",
    "samples": "rows scored",
    "accuracy": "share of rows classified right",
    "per_class_accuracy": "accuracy (recall) of each true class",
    "support": "rows of each true class",
    "confusion_matrix": "confusion[true][predicted]",
    "classes": "the class order of the matrix",
    "mistakes": "the most confident misclassified rows",
    "quality": "accuracy by text length, harmful corrections and fixes by threshold, calibration, and the "
    "figures at the correction threshold",
    "predict_seconds": "time spent scoring",
    "realtext": "the same figures on every split of the real-text set",
    "correction_threshold": "the app's threshold measured on the real-text set",
    "pairs": "typed,expected text scored token by token at the correction threshold",
    "paths": "the report and the pictures",
    "timings": "total_seconds",
    "versions": "as in report.json",
}
"""Top-level sections of `<model>.eval.json`."""


def read_report(run_dir: Path) -> dict:
    path = Path(run_dir) / REPORT_FILE
    if not path.exists():
        return {}
    return json.loads(path.read_text(encoding="utf-8"))


def write_report(
    path: Path, sections: Mapping[str, Any], schema: Mapping[str, str] = SECTIONS, replace: bool = False
) -> dict:
    """Merge `sections` into the JSON report at `path` (or replace the whole file when `replace`) and write
    it atomically; every section must be one of `schema`'s."""
    unknown = sorted(set(sections) - set(schema))
    if unknown:
        raise ValueError(f"not a section of {path.name}: {', '.join(unknown)} (see reporting/runreport.py)")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    existing = {} if replace or not path.exists() else json.loads(path.read_text(encoding="utf-8"))
    report = {**existing, **sections}
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(report, indent=2, ensure_ascii=False, default=str), encoding="utf-8")
    os.replace(tmp, path)
    return report


def update_report(directory: Path, /, **sections: Any) -> dict:
    """Merge top-level `sections` into `report.json` in `directory`."""
    return write_report(Path(directory) / REPORT_FILE, sections)


def versions(lightning: bool = True) -> dict[str, str]:
    """The versions a report records; an export's (its manifest's) leave Lightning out. Read from the
    installed distributions' metadata: recording a version never imports Lightning or coremltools."""
    from importlib.metadata import version

    import numpy as np

    found = {"layoutnet": layoutnet.__version__, "torch": torch.__version__}
    if lightning:
        found["pytorch_lightning"] = version("pytorch-lightning")
    return {
        **found,
        "coremltools": version("coremltools"),
        "numpy": np.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
