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


def update_report(run_dir: Path, **sections: Any) -> dict:
    """Merge top-level `sections` into the run's report and write it atomically."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    report = read_report(run_dir)
    report.update(sections)
    tmp = run_dir / f".{REPORT_FILE}.tmp"
    tmp.write_text(json.dumps(report, indent=2, ensure_ascii=False, default=str), encoding="utf-8")
    os.replace(tmp, run_dir / REPORT_FILE)
    return report


def versions() -> dict[str, str]:
    import pytorch_lightning

    try:
        import coremltools

        coreml = coremltools.__version__
    except ImportError:
        coreml = "not installed"
    return {
        "layoutnet": layoutnet.__version__,
        "torch": torch.__version__,
        "pytorch_lightning": pytorch_lightning.__version__,
        "coremltools": coreml,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
