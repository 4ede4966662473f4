"""The one `text,label` CSV format: read by training (the csv source), evaluate and the real-text set,
written by generate. Its sibling, the `typed,expected` file of text as typed and as meant that evaluate
scores token by token (`read_pairs`), follows the same rules with those two columns.

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
from collections.abc import Callable, Iterable, Iterator, Sequence
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


def _rows(path: str | Path, columns: tuple[str, str], is_row: Callable[[list[str]], bool]) -> Iterator:
    """(path, line, first cell, second cell) of each row of a two-column CSV file with the given column
    names; the header is optional (a first row naming a column is the header unless `is_row` says it
    is a row). A DataError names the file (and line) of the first problem."""
    path = Path(path).expanduser()
    names = ",".join(columns)
    if path.is_dir():
        raise DataError(f"CSV file {path} is a directory; give the path of a `{names}` CSV file")
    if not path.is_file():
        raise DataError(f"CSV file {path} not found; give the path of a file with the columns {names}")
    if csv.field_size_limit() < _FIELD_LIMIT:
        csv.field_size_limit(_FIELD_LIMIT)
    rows = 0
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle)
            first_col, second_col, width = 0, 1, 2
            first = True
            line = 1  # the line where the next row starts
            for row in reader:
                start, line = line, reader.line_num + 1
                if not row:
                    continue  # a blank line, not a sample (an empty text is written `,label`)
                if first:
                    first = False
                    header = [cell.strip().lower() for cell in row]
                    if any(name in header for name in columns) and not is_row(row):
                        missing = [name for name in columns if name not in header]
                        if missing:
                            raise DataError(
                                f"CSV file {path} has no column {', '.join(map(repr, missing))} (its header "
                                f"is {','.join(row)}); the header must name the columns {names}"
                            )
                        first_col, second_col = header.index(columns[0]), header.index(columns[1])
                        width = len(row)
                        continue
                if len(row) < max(first_col, second_col) + 1 or (width == 2 and len(row) != 2):
                    raise DataError(
                        f"CSV file {path}, line {start}: the row has {len(row)} field(s), expected {width} "
                        f"({names}); quote texts that contain commas or quotes"
                    )
                rows += 1
                yield path, start, row[first_col], row[second_col]
    except UnicodeDecodeError as err:
        raise DataError(f"CSV file {path} is not UTF-8 ({err}); save it as UTF-8") from err
    except csv.Error as err:
        raise DataError(f"CSV file {path}, line {line}: not valid CSV ({err}); check its quoting") from err
    except OSError as err:
        raise DataError(f"cannot read CSV file {path} ({err.strerror})") from err
    if first:
        raise DataError(f"CSV file {path} is empty; it needs one `{names}` row per sample")
    if not rows:
        raise DataError(f"CSV file {path} has a header but no rows; add samples")


def read(path: str | Path) -> LabelledTexts:
    """Every row of the `text,label` CSV at `path`; a DataError naming the file (and line) otherwise."""
    texts: list[str] = []
    labels: list[int] = []
    lines: list[int] = []
    where = Path(path).expanduser()
    for where, line, text, label_cell in _rows(
        path, COLUMNS, lambda row: len(row) == 2 and parse_label(row[1]) is not None
    ):
        label = parse_label(label_cell)
        if label is None:
            raise DataError(
                f"CSV file {where}, line {line}: label {label_cell!r} is not one of the 9 classes "
                f"({', '.join(CLASSES)}); fix or remove that row"
            )
        texts.append(text)
        labels.append(label)
        lines.append(line)
    return LabelledTexts(path=where, texts=texts, labels=labels, lines=lines)


PAIR_COLUMNS = ("typed", "expected")


@dataclass(frozen=True)
class TextPairs:
    """The rows of a `typed,expected` CSV: text as typed, the same text as meant, and each row's line."""

    path: Path
    typed: list[str]
    expected: list[str]
    lines: list[int]

    def __len__(self) -> int:
        return len(self.typed)


def read_pairs(path: str | Path) -> TextPairs:
    """Every row of the `typed,expected` CSV at `path`: a line as typed and as meant, with the same number
    of whitespace-separated tokens (the token in the same place is its correction); a DataError naming
    the file and line otherwise."""
    typed: list[str] = []
    expected: list[str] = []
    lines: list[int] = []
    where = Path(path).expanduser()
    for where, line, shown, meant in _rows(path, PAIR_COLUMNS, lambda row: False):
        if len(shown.split()) != len(meant.split()):
            raise DataError(
                f"CSV file {where}, line {line}: {len(shown.split())} token(s) typed but "
                f"{len(meant.split())} expected; each typed token needs the token it should read as"
            )
        typed.append(shown)
        expected.append(meant)
        lines.append(line)
    return TextPairs(path=where, typed=typed, expected=expected, lines=lines)


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
