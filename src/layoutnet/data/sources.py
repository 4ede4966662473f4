"""Data sources: the one small interface every source of samples has, and the list of layoutnet's own.

A source is chosen in the `data` config by `_target_` (`conf/data/synthetic.yaml`, `csv.yaml`,
`realtext.yaml`) and gives:
- `check()`: load and check what it needs, so bad data fails before training starts;
- `val_tensors()` / `test_tensors()`: the fixed evaluation splits, `(ids int64 [N, 20], labels int64 [N])`;
- `train_batches(epoch)`: the training batches of the epoch `epoch()` returns when iterated;
- `describe()`: what report.json records about the data.
`layoutnet.data.datamodule.LayoutDataModule` wraps any source for Lightning without knowing which it is.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from layoutnet.errors import ConfigError

KNOWN_SOURCES: dict[str, str] = {
    "layoutnet.data.synthetic.SyntheticSource": "synthetic",
    "layoutnet.data.csv_source.CsvSource": "csv",
    "layoutnet.data.realtext_source.RealTextSource": "realtext",
    # Runs made before sources were objects: a data module with `source: synthetic|csv`.
    "layoutnet.data.datamodule.LayoutDataModule": "legacy",
}
"""`_target_` of every data source layoutnet itself provides (the only ones a config read back from a run
directory may name) -> its short name. Compared as strings; nothing here is imported on a file's word."""

SOURCE_NAMES: dict[str, str] = {name: target for target, name in KNOWN_SOURCES.items() if name != "legacy"}
"""Short name (`source: csv` in configs written before sources were objects) -> `_target_`."""


def is_known_source(target: object) -> bool:
    """True when `target` (a config's `_target_` value) names one of layoutnet's own data sources."""
    return isinstance(target, str) and target in KNOWN_SOURCES


def source_class(name: str) -> type[DataSource]:
    """The class of a source by its short name (`synthetic`, `csv`, `realtext`)."""
    if name not in SOURCE_NAMES:
        raise ConfigError("source", name, "unknown data source", list(SOURCE_NAMES))
    module, _, cls = SOURCE_NAMES[name].rpartition(".")
    return getattr(importlib.import_module(module), cls)


Batch = tuple[Any, Any]


class DataSource:
    """Base of the data sources. Subclasses implement `_prepare`, `_splits`, `train_batches`, `_describe`.

    Keys in ConfigErrors are relative to the data config (`layoutnet.config.build` places them under
    `data`; `check()` does so itself).
    """

    name = "source"

    def __init__(self, batch_size: int = 512, eval_batch_size: int | None = None, seed: int = 0):
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.seed = seed
        for key in ("batch_size", "eval_batch_size"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(key, value, "must be a positive integer")
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise ConfigError("seed", seed, "must be a non-negative integer")
        self._ready: dict[str, Batch] | None = None

    # The interface -----------------------------------------------------------------------------------
    def check(self) -> None:
        """Load and check everything this source needs (DataError/ConfigError naming the problem)."""
        try:
            self._prepare()
        except ConfigError as err:
            raise err.under("data") from None

    def setup(self, stage: str | None = None) -> None:
        """Make the fixed splits (once)."""
        if self._ready is None:
            self.check()
            self._ready = self._splits()

    def val_tensors(self) -> Batch:
        """The whole validation set: (ids int64 [N, 20], labels int64 [N])."""
        self.setup()
        assert self._ready is not None
        return self._ready["val"]

    def test_tensors(self) -> Batch:
        """The whole test set: (ids int64 [N, 20], labels int64 [N])."""
        self.setup()
        assert self._ready is not None
        return self._ready["test"]

    def train_batches(self, epoch: Callable[[], int]):
        """An iterable of training batches (with len) for the epoch `epoch()` returns at each pass."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """Source, sizes and seeds, for report.json."""
        return {"source": self.name, "batch_size": self.batch_size, **self._describe()}

    def label_meaning(self) -> dict[str, Any] | None:
        """What the training labels mean (the synthetic source's typing prior), for the checkpoint and the
        exported model's metadata; None when the labels are given (a CSV)."""
        return None

    # For subclasses --------------------------------------------------------------------------------
    def _prepare(self) -> None:
        raise NotImplementedError

    def _splits(self) -> dict[str, Batch]:
        raise NotImplementedError

    def _describe(self) -> dict[str, Any]:
        raise NotImplementedError
