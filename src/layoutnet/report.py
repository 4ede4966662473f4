"""`report.json`: the machine-readable summary of a run, written into its run directory.

Sections are merged in as the run goes (training, export); the sweep summary reads them.
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

import torch

import layoutnet

REPORT_FILE = "report.json"


def read_report(run_dir: Path) -> dict:
    path = Path(run_dir) / REPORT_FILE
    if not path.exists():
        return {}
    return json.loads(path.read_text(encoding="utf-8"))


def update_report(directory: Path, /, **sections: Any) -> dict:
    """Merge top-level `sections` into the report in `directory` and write it atomically."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    report = read_report(directory)
    report.update(sections)
    tmp = directory / f".{REPORT_FILE}.tmp"
    tmp.write_text(json.dumps(report, indent=2, ensure_ascii=False, default=str), encoding="utf-8")
    os.replace(tmp, directory / REPORT_FILE)
    return report


def versions() -> dict[str, str]:
    import pytorch_lightning

    from layoutnet.export.convert import coremltools_version

    return {
        "layoutnet": layoutnet.__version__,
        "torch": torch.__version__,
        "pytorch_lightning": pytorch_lightning.__version__,
        "coremltools": coremltools_version(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
