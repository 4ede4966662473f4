"""`LayoutDataModule`: any data source (`layoutnet.data.sources`) as a Lightning data module.

It does not know which source it holds: every source gives its fixed splits, its training batches per
epoch and its description through the same interface.
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
from torch.utils.data import DataLoader

from layoutnet.data.batches import Batch, FixedBatches
from layoutnet.data.sources import DataSource, source_class


class LayoutDataModule(pl.LightningDataModule):
    """Training, validation and test batches of one data source.

    `LayoutDataModule(source)` wraps a source object. `LayoutDataModule(source="synthetic"|"csv", **options)`
    builds the named source from its options: the form of configs written before sources were objects
    (`_target_: layoutnet.data.datamodule.LayoutDataModule`), kept so old run directories still evaluate.
    """

    def __init__(self, source: DataSource | str = "synthetic", **options: Any):
        super().__init__()
        if isinstance(source, str):
            source = source_class(source)(**options)
        elif options:
            raise TypeError(f"options {sorted(options)} belong to the source, not to the data module")
        self.source = source
        self._iterations = 0

    def check(self) -> None:
        self.source.check()

    def setup(self, stage: str | None = None) -> None:
        self.source.setup(stage)

    def _current_epoch(self) -> int:
        trainer = self.trainer
        if trainer is not None:
            return int(trainer.current_epoch)
        epoch = self._iterations
        self._iterations += 1
        return epoch

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.source.train_batches(self._current_epoch), batch_size=None)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(FixedBatches(*self.val_tensors(), self.source.eval_batch_size), batch_size=None)

    def test_dataloader(self) -> DataLoader:
        return DataLoader(FixedBatches(*self.test_tensors(), self.source.eval_batch_size), batch_size=None)

    def val_tensors(self) -> Batch:
        return self.source.val_tensors()

    def test_tensors(self) -> Batch:
        return self.source.test_tensors()

    def describe(self) -> dict[str, Any]:
        return self.source.describe()

    def label_meaning(self) -> dict[str, Any] | None:
        return self.source.label_meaning()


def as_datamodule(data: DataSource | LayoutDataModule) -> LayoutDataModule:
    """A Lightning data module for what `build(cfg.data, "data")` returned (a source or an old module)."""
    return data if isinstance(data, LayoutDataModule) else LayoutDataModule(data)
