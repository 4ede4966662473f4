"""Labelled samples from a CSV file with a `text,label` header (the app's `training_data.csv` format)."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import torch

from layoutnet.contract import CLASS_TO_ID, CLASSES, encode_batch
from layoutnet.errors import ConfigError, DataError

REQUIRED_COLUMNS = ("text", "label")


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
    """Every row of the file, encoded. Any unusable row stops the load with a DataError naming its line."""
    path = Path(path)
    if not path.is_file():
        raise DataError(
            f"CSV file {path} not found; give the path of a file with a `text,label` header (data.path=...)"
        )
    texts: list[str] = []
    labels: list[int] = []
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.DictReader(handle)
            columns = reader.fieldnames
            if columns is None:
                raise DataError(
                    f"CSV file {path} is empty; it needs a `text,label` header and one row per sample"
                )
            missing = [name for name in REQUIRED_COLUMNS if name not in columns]
            if missing:
                raise DataError(
                    f"CSV file {path} has no column {', '.join(map(repr, missing))} (its header is "
                    f"{','.join(columns)}); the first line must be the header `text,label`"
                )
            for row_no, row in enumerate(reader, start=1):
                text, label = row["text"], row["label"]
                if label is None or text is None:
                    raise DataError(
                        f"{_where(path, row_no, reader)}: the row has fewer fields than the header; "
                        "quote texts that contain commas"
                    )
                label = label.strip()
                if label not in CLASS_TO_ID:
                    raise DataError(
                        f"{_where(path, row_no, reader)}: unknown label {label!r}; labels must be one of "
                        f"{', '.join(CLASSES)}. Fix or remove that row"
                    )
                if not text.strip():
                    raise DataError(
                        f"{_where(path, row_no, reader)}: empty text; remove that row or give it a text"
                    )
                texts.append(text)
                labels.append(CLASS_TO_ID[label])
    except UnicodeDecodeError as err:
        raise DataError(f"CSV file {path} is not UTF-8 ({err}); save it as UTF-8") from err
    except csv.Error as err:
        raise DataError(f"CSV file {path} is not valid CSV ({err}); check its quoting") from err
    if not texts:
        raise DataError(f"CSV file {path} has a header but no rows; add samples")
    return CsvSamples(path=path, ids=encode_batch(texts), labels=torch.tensor(labels, dtype=torch.long))


def _where(path: Path, row_no: int, reader: csv.DictReader) -> str:
    return f"CSV file {path}, row {row_no} (line {reader.line_num})"


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
