"""The one `text,label` CSV format: read by training (the csv source), evaluate and the real-text set,
written by generate.

Rules (the same for every reader):
- UTF-8 (a leading byte-order mark is ignored); RFC 4180 quoting, so a quoted text may hold commas,
  quotes, line breaks and any other Unicode (U+2028, NEL, form feed...), and fields may be of any length.
- A header row is optional. When the first row names a `text` or a `label` column it is the header
  (extra columns are ignored, both columns are required); otherwise every row is `text,label`.
- Empty text is a valid sample (written `,en`); a line with nothing on it is skipped.
- Labels are the contract's class names (surrounding spaces and case are ignored).
- The first bad row stops the read with a DataError naming the file and the row's line.
"""

from __future__ import annotations

import csv
import io
import os
import re
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from layoutnet.contract import CLASS_TO_ID, CLASSES
from layoutnet.errors import DataError

COLUMNS = ("text", "label")
_NEEDS_QUOTES = re.compile("[\\n\\r\\v\\f\\x1c\\x1d\\x1e\\x85\\u2028\\u2029\\ufeff]")
"""Characters that `str.splitlines` and other line-based tools treat as line breaks (and the byte-order
mark): a text holding one is always quoted, though the csv module alone would not need it."""
_FIELD_LIMIT = 2**31 - 1
"""The csv module refuses fields over 128 KiB by default; a text of any length is a valid field."""


@dataclass(frozen=True)
class LabelledTexts:
    """The rows of a `text,label` CSV: texts as written, labels as class ids, and each row's line."""

    path: Path
    texts: list[str]
    labels: list[int]
    lines: list[int]
    """Line number (1-based) where each row starts, for messages about a row."""

    def __len__(self) -> int:
        return len(self.texts)

    def ids(self):
        """int64 tensor [N, SEQ_LEN] of the encoded texts."""
        from layoutnet.contract import encode_batch

        return encode_batch(self.texts)

    def label_tensor(self):
        """int64 tensor [N] of the class ids."""
        import torch

        return torch.tensor(self.labels, dtype=torch.long)


def parse_label(value: str) -> int | None:
    """Class id of a label cell, or None when it names no class."""
    name = value.strip()
    return CLASS_TO_ID.get(name, CLASS_TO_ID.get(name.lower()))


def read(path: str | Path) -> LabelledTexts:
    """Every row of the `text,label` CSV at `path`; a DataError naming the file (and line) otherwise."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise DataError(f"CSV file {path} is a directory; give the path of a `text,label` CSV file")
    if not path.is_file():
        raise DataError(f"CSV file {path} not found; give the path of a file with the columns text,label")
    if csv.field_size_limit() < _FIELD_LIMIT:
        csv.field_size_limit(_FIELD_LIMIT)
    texts: list[str] = []
    labels: list[int] = []
    lines: list[int] = []
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle)
            text_col, label_col, width = 0, 1, 2
            first = True
            line = 1  # the line where the next row starts
            for row in reader:
                start, line = line, reader.line_num + 1
                if not row:
                    continue  # a blank line, not a sample (an empty text is written `,label`)
                if first:
                    first = False
                    header = [cell.strip().lower() for cell in row]
                    is_sample = len(row) == 2 and parse_label(row[1]) is not None
                    if ("text" in header or "label" in header) and not is_sample:
                        missing = [name for name in COLUMNS if name not in header]
                        if missing:
                            raise DataError(
                                f"CSV file {path} has no column {', '.join(map(repr, missing))} (its header "
                                f"is {','.join(row)}); the header must name the columns text,label"
                            )
                        text_col, label_col = header.index("text"), header.index("label")
                        width = len(row)
                        continue
                where = f"CSV file {path}, line {start}"
                if len(row) < max(text_col, label_col) + 1 or (width == 2 and len(row) != 2):
                    raise DataError(
                        f"{where}: the row has {len(row)} field(s), expected {width} (text,label); "
                        "quote texts that contain commas or quotes"
                    )
                label = parse_label(row[label_col])
                if label is None:
                    raise DataError(
                        f"{where}: label {row[label_col]!r} is not one of the 9 classes "
                        f"({', '.join(CLASSES)}); fix or remove that row"
                    )
                texts.append(row[text_col])
                labels.append(label)
                lines.append(start)
    except UnicodeDecodeError as err:
        raise DataError(f"CSV file {path} is not UTF-8 ({err}); save it as UTF-8") from err
    except csv.Error as err:
        raise DataError(f"CSV file {path}, line {line}: not valid CSV ({err}); check its quoting") from err
    except OSError as err:
        raise DataError(f"cannot read CSV file {path} ({err.strerror})") from err
    if first:
        raise DataError(f"CSV file {path} is empty; it needs one `text,label` row per sample")
    if not texts:
        raise DataError(f"CSV file {path} has a header but no rows; add samples")
    return LabelledTexts(path=path, texts=texts, labels=labels, lines=lines)


def _label_name(label: int | str) -> str:
    if isinstance(label, str):
        found = parse_label(label)
        if found is None:
            raise DataError(f"cannot write label {label!r}: labels must be one of {', '.join(CLASSES)}")
        return CLASSES[found]
    if not 0 <= int(label) < len(CLASSES):
        raise DataError(f"cannot write label id {label}: class ids are 0..{len(CLASSES) - 1}")
    return CLASSES[int(label)]


def write_rows(handle: io.TextIOBase, texts: Iterable[str], labels: Iterable[int | str]) -> int:
    """Append `text,label` rows to an open text handle (opened with newline=""); returns the row count."""
    writer = csv.writer(handle, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
    count = 0
    for text, label in zip(texts, labels, strict=True):
        if _NEEDS_QUOTES.search(text):
            handle.write('"' + text.replace('"', '""') + '",' + _label_name(label) + "\n")
        else:
            writer.writerow((text, _label_name(label)))
        count += 1
    return count


def open_for_writing(path: str | Path):
    """A context manager that writes the header to a temporary file next to `path` and moves it into place
    only when the block ends without an error (an existing file is never left half-written)."""
    return _AtomicCsv(Path(path))


class _AtomicCsv:
    def __init__(self, path: Path):
        self.path = path.expanduser()

    def __enter__(self) -> io.TextIOBase:
        if self.path.is_dir():
            raise DataError(f"{self.path} is a directory; give the path of the CSV file to write")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, self._tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        except OSError as err:
            raise DataError(f"cannot write {self.path} ({err.strerror}); choose a writable path") from err
        self._handle = os.fdopen(fd, "w", encoding="utf-8", newline="")
        self._handle.write(",".join(COLUMNS) + "\n")
        return self._handle

    def __exit__(self, kind, value, traceback) -> None:
        self._handle.close()
        if kind is None:
            os.replace(self._tmp, self.path)
        else:
            os.unlink(self._tmp)


def write(path: str | Path, texts: Sequence[str], labels: Sequence[int | str]) -> int:
    """Write a `text,label` CSV (header first) that `read` returns identically; returns the row count."""
    with open_for_writing(path) as handle:
        return write_rows(handle, texts, labels)
