"""`LayoutDataModule`: synthetic or CSV data as whole batches of `(ids [B, 20], labels [B])`.

Batches are slices of tensors made a chunk at a time (synthetic) or once (CSV); nothing runs per sample.
Synthetic training epoch e is `train_size` samples of stream `seed + e`, so a resumed run sees the same
data; validation and test sets are made once from streams that no training epoch uses.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, IterableDataset

from layoutnet.contract import CLASSES, LANGUAGES, NUM_CLASSES
from layoutnet.data.csv_source import CsvSamples, load_csv, split_samples, split_sizes
from layoutnet.data.synth import CHUNK_SIZE, SynthConfig, Synthesizer
from layoutnet.errors import ConfigError, DataError
from layoutnet.layouts import LayoutSet

SOURCES = ("synthetic", "csv")
VAL_STREAM_OFFSET = 1 << 40
"""The validation set is stream `seed + VAL_STREAM_OFFSET`, the test set `seed + 2 * VAL_STREAM_OFFSET`:
far from every training stream `seed + epoch`."""

Batch = tuple[torch.Tensor, torch.Tensor]


def _plain(value: Any) -> Any:
    """Hydra/OmegaConf containers as plain dicts and lists."""
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf
    except ImportError:  # pragma: no cover - omegaconf is a dependency
        return value
    if isinstance(value, DictConfig | ListConfig):
        return OmegaConf.to_container(value, resolve=True)
    return value


def _shard() -> tuple[int, int]:
    """(rank, world size) of this process in a distributed run, else (0, 1)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class _Batches(IterableDataset):
    """Base: an iterable of whole batches with a known length (Lightning reads it as the epoch length)."""

    def __init__(self, batch_size: int, rows: int):
        super().__init__()
        self.batch_size = batch_size
        self.rows = rows

    def __len__(self) -> int:
        return -(-self.rows // self.batch_size)

    def _slices(self, ids: torch.Tensor, labels: torch.Tensor) -> Iterator[Batch]:
        for start in range(0, ids.shape[0], self.batch_size):
            yield ids[start : start + self.batch_size].long(), labels[start : start + self.batch_size].long()


class FixedBatches(_Batches):
    """Batches of fixed tensors in order. In a distributed run each rank takes every world-th row, padded
    by repeating the first rows so that every rank gets the same number of batches."""

    def __init__(self, ids: torch.Tensor, labels: torch.Tensor, batch_size: int):
        self.ids, self.labels = ids, labels
        self._rank, self._world = _shard()
        super().__init__(batch_size, -(-ids.shape[0] // self._world))

    def __iter__(self) -> Iterator[Batch]:
        ids, labels = self.ids, self.labels
        if self._world > 1:
            index = torch.arange(self.rows * self._world) % max(1, ids.shape[0])
            index = index[self._rank :: self._world]
            ids, labels = ids[index], labels[index]
        yield from self._slices(ids, labels)


class ShuffledBatches(_Batches):
    """Training batches of fixed tensors, in a new order each epoch (permutation seeded by seed + epoch)."""

    def __init__(
        self, ids: torch.Tensor, labels: torch.Tensor, batch_size: int, seed: int, epoch: Callable[[], int]
    ):
        self.ids, self.labels = ids, labels
        self.seed, self.epoch = seed, epoch
        self._rank, self._world = _shard()
        super().__init__(batch_size, ids.shape[0] // self._world)

    def __iter__(self) -> Iterator[Batch]:
        order = torch.randperm(
            self.ids.shape[0], generator=torch.Generator().manual_seed(self.seed + self.epoch())
        )
        mine = order[self._rank :: self._world][: self.rows]
        for start in range(0, mine.shape[0], self.batch_size):
            index = mine[start : start + self.batch_size]
            yield self.ids[index], self.labels[index]


class SyntheticBatches(_Batches):
    """Training batches of `size` fresh samples per epoch, stream `seed + epoch`, made a chunk at a time.

    In a distributed run rank r takes rows r, r + world, ... of the stream (the same count on each rank).
    """

    def __init__(self, synth: Synthesizer, size: int, batch_size: int, seed: int, epoch: Callable[[], int]):
        self.synth, self.size = synth, size
        self.seed, self.epoch = seed, epoch
        self._rank, self._world = _shard()
        super().__init__(batch_size, size // self._world)

    def __iter__(self) -> Iterator[Batch]:
        stream = self.seed + self.epoch()
        pending_ids: list[torch.Tensor] = []
        pending_labels: list[torch.Tensor] = []
        held = 0
        left = self.rows
        chunk_rows = self.rows * self._world
        for index, start in enumerate(range(0, chunk_rows, CHUNK_SIZE)):
            ids, labels = self.synth.generate_chunk(stream, index, min(CHUNK_SIZE, chunk_rows - start))
            if self._world > 1:
                first = (self._rank - start) % self._world
                ids, labels = ids[first :: self._world], labels[first :: self._world]
            ids, labels = ids[:left], labels[:left]
            left -= ids.shape[0]
            pending_ids.append(ids)
            pending_labels.append(labels)
            held += ids.shape[0]
            if held >= self.batch_size or left == 0:
                all_ids, all_labels = torch.cat(pending_ids), torch.cat(pending_labels)
                cut = all_ids.shape[0] if left == 0 else (held // self.batch_size) * self.batch_size
                yield from self._slices(all_ids[:cut], all_labels[:cut])
                pending_ids, pending_labels = [all_ids[cut:]], [all_labels[cut:]]
                held -= cut
            if left == 0:
                break


class LayoutDataModule(pl.LightningDataModule):
    """Data for training, validation and test, from the synthesizer or from a CSV file.

    Built from the `data` config (`_target_: layoutnet.data.datamodule.LayoutDataModule`). Call `check()`
    before building a Trainer: it raises the DataError/ConfigError of a bad config, a missing CSV, a bad
    row or a layout dump that lacks a configured layout.
    """

    def __init__(
        self,
        source: str = "synthetic",
        batch_size: int = 512,
        eval_batch_size: int | None = None,
        seed: int = 0,
        # synthetic
        languages: Mapping[str, Mapping[str, Any]] | None = None,
        flattening: float = 0.5,
        correct_layout_share: float = 0.5,
        word_count_weights: Sequence[float] = (0.6, 0.2, 0.12, 0.08),
        augment: Mapping[str, float] | None = None,
        layouts_dump: str | None = None,
        train_size: int = 250_000,
        val_size: int = 20_000,
        test_size: int = 20_000,
        # csv
        path: str | None = None,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
    ):
        super().__init__()
        self.source = source
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.seed = seed
        self.options = {
            "languages": _plain(languages),
            "flattening": flattening,
            "correct_layout_share": correct_layout_share,
            "word_count_weights": list(_plain(word_count_weights)),
            "augment": _plain(augment),
        }
        self.layouts_dump = layouts_dump
        self.train_size, self.val_size, self.test_size = train_size, val_size, test_size
        self.path = path
        self.val_fraction, self.test_fraction = val_fraction, test_fraction
        self._synth: Synthesizer | None = None
        self._synth_config: SynthConfig | None = None
        self._csv: CsvSamples | None = None
        self._splits: dict[str, Batch] | None = None
        self._iterations = 0
        # Keys are relative to the data config: layoutnet.config.build places them under `data`.
        self._check_options()

    # Checks -----------------------------------------------------------------------------------------
    def _check_options(self) -> None:
        if self.source not in SOURCES:
            raise ConfigError("source", self.source, "unknown data source", SOURCES)
        for key in ("batch_size", "eval_batch_size"):
            value = getattr(self, key)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(key, value, "must be a positive integer")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError("seed", self.seed, "must be a non-negative integer")
        if self.source == "synthetic":
            for key in ("train_size", "val_size", "test_size"):
                value = getattr(self, key)
                if not isinstance(value, int) or value < 1:
                    raise ConfigError(key, value, "must be a positive integer")
            self._synth_config = SynthConfig.from_options(**self.options)
        else:
            if not self.path:
                raise ConfigError(
                    "path", self.path, "the csv source needs the CSV file: data.path=/path/to/file.csv"
                )
            split_sizes(10**6, self.val_fraction, self.test_fraction)

    def check(self) -> None:
        """Load and check everything the chosen source needs, so bad data fails before training starts."""
        try:
            if self.source == "synthetic":
                self._synthesizer()
            else:
                self._load_csv()
        except ConfigError as err:
            raise err.under("data") from None

    def _layouts(self) -> LayoutSet:
        assert self._synth_config is not None
        wanted = list(dict.fromkeys(lid for spec in self._synth_config.languages for lid in spec.layouts))
        builtin = LayoutSet.builtin()
        if self.layouts_dump is None:
            unknown = [lid for lid in wanted if lid not in builtin]
            if unknown:
                raise DataError(
                    f"layout {', '.join(map(repr, unknown))} is not built in "
                    f"(built in: {', '.join(builtin)}); give a layout dump that has it: "
                    "data.layouts_dump=/path/to/layouts.json"
                )
            return builtin
        dump = Path(self.layouts_dump)
        # Layouts of languages outside the contract must come from the dump; built-in ids may too.
        from_dump = [lid for lid in wanted if lid not in builtin]
        extra_languages = [spec.code for spec in self._synth_config.languages if spec.code not in LANGUAGES]
        return LayoutSet.from_dump(dump, layout_ids=from_dump, languages=extra_languages or None)

    def synthesizer(self) -> Synthesizer:
        """The synthesizer of the synthetic source (built and checked on first use)."""
        if self.source != "synthetic":
            raise ConfigError(
                "data.source", self.source, "only the synthetic source has a synthesizer", ["synthetic"]
            )
        return self._synthesizer()

    def _synthesizer(self) -> Synthesizer:
        if self._synth is None:
            assert self._synth_config is not None
            self._synth = Synthesizer(self._synth_config, self._layouts())
        return self._synth

    def _load_csv(self) -> CsvSamples:
        if self._csv is None:
            assert self.path is not None
            samples = load_csv(self.path)
            split_sizes(len(samples), self.val_fraction, self.test_fraction)
            self._csv = samples
        return self._csv

    # Lightning hooks --------------------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        if self._splits is not None:
            return
        self.check()
        if self.source == "synthetic":
            synth = self._synthesizer()
            self._splits = {
                "val": synth.generate(self.val_size, self.seed + VAL_STREAM_OFFSET),
                "test": synth.generate(self.test_size, self.seed + 2 * VAL_STREAM_OFFSET),
            }
        else:
            self._splits = split_samples(self._load_csv(), self.val_fraction, self.test_fraction, self.seed)

    def _current_epoch(self) -> int:
        trainer = self.trainer
        if trainer is not None:
            return int(trainer.current_epoch)
        epoch = self._iterations
        self._iterations += 1
        return epoch

    def _ready(self) -> dict[str, Batch]:
        if self._splits is None:
            self.setup("fit")
        assert self._splits is not None
        return self._splits

    def train_dataloader(self) -> DataLoader:
        splits = self._ready()
        if self.source == "synthetic":
            batches: _Batches = SyntheticBatches(
                self._synthesizer(), self.train_size, self.batch_size, self.seed, self._current_epoch
            )
        else:
            ids, labels = splits["train"]
            batches = ShuffledBatches(ids, labels, self.batch_size, self.seed, self._current_epoch)
        return DataLoader(batches, batch_size=None)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(FixedBatches(*self.val_tensors(), self.eval_batch_size), batch_size=None)

    def test_dataloader(self) -> DataLoader:
        return DataLoader(FixedBatches(*self.test_tensors(), self.eval_batch_size), batch_size=None)

    def val_tensors(self) -> Batch:
        """The whole validation set: (ids int64 [N, 20], labels int64 [N])."""
        return self._ready()["val"]

    def test_tensors(self) -> Batch:
        """The whole test set: (ids int64 [N, 20], labels int64 [N])."""
        return self._ready()["test"]

    # Report -----------------------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        """Source, sizes, languages and seeds, for report.json."""
        info: dict[str, Any] = {"source": self.source, "batch_size": self.batch_size}
        if self.source == "synthetic":
            synth = self._synthesizer()
            info.update(
                {
                    "sizes": {
                        "train_per_epoch": self.train_size,
                        "val": self.val_size,
                        "test": self.test_size,
                    },
                    "seeds": {
                        "train": f"{self.seed} + epoch",
                        "val": self.seed + VAL_STREAM_OFFSET,
                        "test": self.seed + 2 * VAL_STREAM_OFFSET,
                    },
                    "layouts_dump": self.layouts_dump,
                    **synth.describe(),
                }
            )
        else:
            samples = self._load_csv()
            n_train, n_val, n_test = split_sizes(len(samples), self.val_fraction, self.test_fraction)
            counts = torch.bincount(samples.labels, minlength=NUM_CLASSES).tolist()
            present = [name for name, count in zip(CLASSES, counts, strict=True) if count]
            info.update(
                {
                    "path": str(samples.path),
                    "sizes": {"total": len(samples), "train": n_train, "val": n_val, "test": n_test},
                    "fractions": {"val": self.val_fraction, "test": self.test_fraction},
                    "seeds": {"split": self.seed, "shuffle": f"{self.seed} + epoch"},
                    "languages": sorted({lang for name in present for lang in name.split("_from_")}),
                    "class_counts": dict(zip(CLASSES, counts, strict=True)),
                }
            )
        return info
