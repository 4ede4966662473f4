"""The CSV source: labelled samples from a `text,label` file (the app's `training_data.csv` format),
read by `layoutnet.data.csvfile` (the one reader of that format) and split train/val/test at random."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from layoutnet.contract import CLASSES, NUM_CLASSES
from layoutnet.data import csvfile
from layoutnet.data.batches import ShuffledBatches
from layoutnet.data.sources import Batch, DataSource
from layoutnet.errors import ConfigError, DataError


@dataclass(frozen=True)
class CsvSamples:
    path: Path
    ids: torch.Tensor
    """int64 [N, SEQ_LEN]"""
    labels: torch.Tensor
    """int64 [N]"""

    def __len__(self) -> int:
        return self.labels.shape[0]


def load_csv(path: str | Path) -> CsvSamples:
    """Every row of a `text,label` file, encoded (the rules are `layoutnet.data.csvfile`'s)."""
    rows = csvfile.read(path)
    return CsvSamples(path=rows.path, ids=rows.ids(), labels=rows.label_tensor())


def split_sizes(n: int, val_fraction: float, test_fraction: float) -> tuple[int, int, int]:
    """(train, val, test) row counts; a positive fraction gets at least one row."""
    for key, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not isinstance(value, int | float) or not 0 <= value < 1:
            raise ConfigError(key, value, "must be a fraction in [0, 1)")
    if val_fraction + test_fraction >= 1:
        raise ConfigError(
            "val_fraction",
            val_fraction,
            f"val_fraction + test_fraction = {val_fraction + test_fraction} leaves no rows "
            "for training; keep the sum below 1",
        )
    n_val = max(1, round(n * val_fraction)) if val_fraction > 0 else 0
    n_test = max(1, round(n * test_fraction)) if test_fraction > 0 else 0
    n_train = n - n_val - n_test
    if n_train < 1:
        raise DataError(
            f"{n} rows are too few to split into train, val ({val_fraction}) and test ({test_fraction}); "
            "add rows or lower the fractions"
        )
    return n_train, n_val, n_test


def split_samples(
    samples: CsvSamples, val_fraction: float, test_fraction: float, seed: int
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Random train/val/test split of the rows, fixed by `seed`."""
    n_train, n_val, _ = split_sizes(len(samples), val_fraction, test_fraction)
    order = torch.randperm(len(samples), generator=torch.Generator().manual_seed(seed))
    parts = {
        "train": order[:n_train],
        "val": order[n_train : n_train + n_val],
        "test": order[n_train + n_val :],
    }
    return {name: (samples.ids[index], samples.labels[index]) for name, index in parts.items()}


SYNTHETIC_ONLY = frozenset({"train_size", "val_size", "test_size"})


class CsvSource(DataSource):
    """Samples of a `text,label` CSV file (`conf/data/csv.yaml`), split at random (fixed by `seed`)."""

    name = "csv"

    def __init__(
        self,
        path: str | None = None,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        batch_size: int = 512,
        eval_batch_size: int | None = None,
        seed: int = 0,
        **synthetic_settings: object,
    ):
        super().__init__(batch_size, eval_batch_size, seed)
        # Presets written for synthetic data (the smoke experiment's `data.train_size`) stay usable
        # with `data=csv`: sizes come from the file and its fractions, so those settings do not apply.
        unknown = sorted(set(synthetic_settings) - SYNTHETIC_ONLY)
        if unknown:
            raise ConfigError(unknown[0], synthetic_settings[unknown[0]], "not a setting of the csv source")
        if not path:
            raise ConfigError("path", path, "the csv source needs the CSV file: data.path=/path/to/file.csv")
        split_sizes(10**6, val_fraction, test_fraction)
        self.path = path
        self.val_fraction, self.test_fraction = val_fraction, test_fraction
        self._samples: CsvSamples | None = None
        self._train: Batch | None = None

    def samples(self) -> CsvSamples:
        if self._samples is None:
            samples = load_csv(self.path)
            split_sizes(len(samples), self.val_fraction, self.test_fraction)
            self._samples = samples
        return self._samples

    def _prepare(self) -> None:
        self.samples()

    def _splits(self) -> dict[str, Batch]:
        return split_samples(self.samples(), self.val_fraction, self.test_fraction, self.seed)

    def train_batches(self, epoch: Callable[[], int]) -> ShuffledBatches:
        self.setup()
        assert self._ready is not None
        ids, labels = self._ready["train"]
        return ShuffledBatches(ids, labels, self.batch_size, self.seed, epoch)

    def _describe(self) -> dict[str, Any]:
        samples = self.samples()
        n_train, n_val, n_test = split_sizes(len(samples), self.val_fraction, self.test_fraction)
        counts = torch.bincount(samples.labels, minlength=NUM_CLASSES).tolist()
        present = [name for name, count in zip(CLASSES, counts, strict=True) if count]
        return {
            "path": str(samples.path),
            "sizes": {"total": len(samples), "train": n_train, "val": n_val, "test": n_test},
            "fractions": {"val": self.val_fraction, "test": self.test_fraction},
            "seeds": {"split": self.seed, "shuffle": f"{self.seed} + epoch"},
            "languages": sorted({lang for name in present for lang in name.split("_from_")}),
            "class_counts": dict(zip(CLASSES, counts, strict=True)),
        }
