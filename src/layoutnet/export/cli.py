"""`python -m layoutnet.export ckpt_path=<.ckpt | legacy .pth> [legacy=auto] [export.format=...]
[output_dir=...]`: the same strict trace, conversion, parity and report as at the end of a fit."""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig
from rich.console import Console
from rich.markup import escape

from layoutnet.cli import exit_on_user_error
from layoutnet.config import CONF_DIR, build
from layoutnet.errors import ConfigError, ExportError
from layoutnet.export.pipeline import ModelInfo, export_model
from layoutnet.export.settings import ExportSettings
from layoutnet.export.summary import print_export_summary
from layoutnet.loading import load_model
from layoutnet.report import update_report, versions
from layoutnet.runtime import apply_threads


def validation_tensors(cfg: DictConfig):
    datamodule = build(cfg.data, "data")
    datamodule.check()
    datamodule.setup("validate")
    return datamodule.val_tensors()


def run_export(cfg: DictConfig) -> dict:
    if not cfg.get("ckpt_path"):
        raise ConfigError(
            "ckpt_path", None, "required: the checkpoint to export (.ckpt of a run or a legacy .pth)"
        )
    settings = ExportSettings.from_config(cfg.export)
    run_dir = Path(cfg.paths.output_dir)
    out_dir = Path(cfg.output_dir) if cfg.get("output_dir") else run_dir / "export"
    loaded = load_model(cfg.ckpt_path, cfg.get("legacy"))
    console = Console()
    console.print(
        f"loaded {escape(loaded.kind)} model from {escape(loaded.source)}: "
        f"{loaded.describe()['parameters']:,} parameters"
    )
    if "legacy" in loaded.details:
        console.print(f"  found: {escape(str(loaded.details['legacy'].get('description', '')))}")
    val_ids, val_labels = validation_tensors(cfg)
    section: dict = {"weights": loaded.source}
    update_report(run_dir, status="running", command="export", model=loaded.describe(), versions=versions())
    try:
        export_model(
            loaded.net,
            settings,
            out_dir,
            ModelInfo(run_id=run_dir.name, source=loaded.source),
            val_ids,
            val_labels,
            section,
        )
    except ExportError as exc:
        update_report(run_dir, status="failed", error=str(exc), export=section)
        print_export_summary(section)
        raise
    update_report(run_dir, status="ok", export=section)
    print_export_summary(section)
    console.print(f"report: {run_dir / 'report.json'}")
    return section


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="export_model")
def main(cfg: DictConfig) -> None:
    exit_on_user_error(lambda: apply_threads(cfg.get("runtime")))
    return exit_on_user_error(lambda: run_export(cfg))
