"""The export callback: at the end of every fit, export the best checkpoint's network."""

from __future__ import annotations

import logging
from pathlib import Path

import pytorch_lightning as pl
import torch

from layoutnet.data.readings import prior_metadata
from layoutnet.export.pipeline import ModelInfo, export_and_record
from layoutnet.export.result import ExportResult
from layoutnet.export.settings import ExportSettings
from layoutnet.modelfile import best_checkpoint_path, load_net, net_from_checkpoint
from layoutnet.reporting.record import record_export

log = logging.getLogger(__name__)


class CoreMLExportCallback(pl.Callback):
    """Runs on rank 0 only, on CPU, in eval mode, on the best checkpoint's weights (the final
    weights when no checkpoint was kept). Writes the `export` section of `report.json` and
    fails the fit when the export fails.

    `settings`: the run's ExportSettings, checked once by training's prepare and handed over (a
    plain `export` config node is checked here, for direct use of the callback)."""

    def __init__(self, settings: ExportSettings, run_dir: str):
        self.settings = ExportSettings.from_config(settings)
        self.run_dir = Path(run_dir)

    def _best_net(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule
    ) -> tuple[torch.nn.Module, str, dict]:
        best = best_checkpoint_path(trainer)
        if best:
            net, meta = load_net(best)
            return net, best, meta
        log.warning("no best checkpoint was saved; exporting the final weights")
        net, meta = net_from_checkpoint(pl_module.checkpoint_payload(), "final weights")
        return net, "final weights", meta

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        if not self.settings.enabled:
            record_export(self.run_dir, ExportResult(status="disabled", reason="export=none"))
            return
        net, source, meta = self._best_net(trainer, pl_module)
        val_ids, val_labels = trainer.datamodule.val_tensors() if trainer.datamodule else (None, None)
        score = getattr(trainer.checkpoint_callback, "best_model_score", None)
        info = ModelInfo(
            run_id=self.run_dir.name,
            source=source,
            val_accuracy=None if score is None else float(score),
            app_metadata=prior_metadata(meta),
        )
        export_and_record(
            self.run_dir, net, self.settings, self.run_dir / "export", info, val_ids, val_labels
        )
