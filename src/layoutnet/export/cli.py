"""`python -m layoutnet.export ckpt_path=<.ckpt | legacy .pth> [legacy=auto] [export.format=...]
[output_dir=...]`: the same capture, conversion, parity, hand-off and report as at the end of a fit."""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig
from rich.console import Console
from rich.markup import escape

from layoutnet.commandline import run_command
from layoutnet.config import CONF_DIR, check_output_dir
from layoutnet.data.readings import prior_metadata
from layoutnet.errors import ConfigError
from layoutnet.export.parity import validation_tensors
from layoutnet.export.pipeline import ModelInfo, export_and_record
from layoutnet.export.result import ExportResult
from layoutnet.export.settings import ExportSettings
from layoutnet.modelfile import open_model
from layoutnet.reporting.console import print_written
from layoutnet.reporting.runreport import REPORT_FILE, update_report


def run_export(cfg: DictConfig) -> ExportResult:
    if not cfg.get("ckpt_path"):
        raise ConfigError(
            "ckpt_path", None, "required: the checkpoint to export (.ckpt of a run or a legacy .pth)"
        )
    settings = ExportSettings.from_config(cfg.export)
    run_dir = Path(cfg.paths.output_dir)
    default_dir = check_output_dir(cfg.output_dir) if cfg.get("output_dir") else run_dir / "export"
    loaded = open_model(cfg.ckpt_path, cfg.get("legacy"))
    if loaded.net is None:
        raise ConfigError(
            "ckpt_path", cfg.ckpt_path, "is a Core ML artifact; export needs a .ckpt or legacy .pth"
        )
    console = Console()
    console.print(
        f"loaded {escape(loaded.kind)} model from {escape(loaded.source)}: "
        f"{loaded.describe()['parameters']:,} parameters"
    )
    if "legacy" in loaded.details:
        console.print(f"  found: {escape(str(loaded.details['legacy'].get('description', '')))}")
    val_ids, val_labels = validation_tensors(cfg.data)
    update_report(run_dir, status="running", command="export", model=loaded.describe())
    info = ModelInfo(run_id=run_dir.name, source=loaded.source, app_metadata=prior_metadata(loaded.metadata))
    result = export_and_record(
        run_dir, loaded.net, settings, default_dir, info, val_ids, val_labels, top_level=True, console=console
    )
    print_written(console, {"report": run_dir / REPORT_FILE})
    return result


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="export_model")
def main(cfg: DictConfig) -> None:
    return run_command(cfg, run_export)
