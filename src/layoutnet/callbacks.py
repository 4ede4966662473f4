"""Lightning callbacks of layoutnet's training runs (not the export: layoutnet.export.callback)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import ClassVar

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import TQDMProgressBar
from pytorch_lightning.trainer.states import TrainerFn

from layoutnet.runtime import GUARD, RunInterrupted, ThreadGovernor

log = logging.getLogger(__name__)


class InterruptCheckpoint(pl.Callback):
    """Stops training at a batch boundary after SIGINT/SIGTERM and saves `<dirpath>/<filename>.ckpt`
    when a fit ends by any exception (a signal, a crash, a failed export).

    Deliberately not Lightning's OnExceptionCheckpoint: with one of those present, Lightning turns
    `fit(ckpt_path=None)` into `ckpt_path="last"` and silently resumes from whatever `last.ckpt` the
    run directory holds. A layoutnet run resumes only from a checkpoint given with `ckpt_path=`.
    """

    def __init__(self, dirpath: str, filename: str = "interrupted"):
        self.path = Path(dirpath) / f"{filename}.ckpt"

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        GUARD.graceful = True

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        # The previous step is complete here (its progress counted): the checkpoint holds whole steps.
        if GUARD.pending() is not None:
            raise RunInterrupted(GUARD.pending())

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        GUARD.graceful = False
        if GUARD.pending() is not None:
            raise RunInterrupted(GUARD.pending())

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        GUARD.graceful = False
        if trainer.state.fn != TrainerFn.FITTING:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        trainer.save_checkpoint(self.path)
        log.info("saved %s at step %d", self.path, trainer.global_step)

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        GUARD.graceful = False


class AdaptiveThreads(pl.Callback):
    """`runtime.threads=auto` in a training run: the thread count follows the load (ThreadGovernor),
    looked at between batches of training and validation."""

    def __init__(self) -> None:
        self.governor: ThreadGovernor | None = None  # from the fit's start, at torch's count then

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # A multi-process run (DDP) keeps its counts: its ranks would count each other as load, and
        # Lightning gives each rank its share of the cores.
        if trainer.world_size == 1:
            self.governor = ThreadGovernor(torch.get_num_threads())

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # the test and the export after the fit run at the count the machine allows now
        if self.governor is not None:
            self.governor.poll(trainer.global_step, settle=True)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.governor is not None:
            self.governor.poll(trainer.global_step)

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        self.on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def report(self) -> dict:
        """The report's `runtime` additions: the count at the end and every change (step, count)."""
        if self.governor is None:
            return {}
        return {"threads_at_end": self.governor.threads, "thread_changes": self.governor.changes}


class CompactProgressBar(TQDMProgressBar):
    """Lightning's tqdm bar with the few metrics worth watching, short enough for 80 columns:
    `loss` (the step loss) and `val/acc` once validated; no `v_num`, no epoch aggregates."""

    SHOWN: ClassVar[dict[str, str]] = {
        "train/loss_step": "loss",
        "val/acc": "val/acc",
    }

    def get_metrics(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict:
        metrics = super().get_metrics(trainer, pl_module)
        shown = {}
        for key, label in self.SHOWN.items():
            value = metrics.get(key)
            if value is not None:
                shown[label] = f"{float(value):.3f}" if not isinstance(value, str) else value
        return shown
