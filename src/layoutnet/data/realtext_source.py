"""The real-text source: the project's real-text development set (`layoutnet/resources/realtext/`,
built by `scripts/build_realtext.py`) as validation and test data. It is for evaluation only: the set must
stay out of training, so asking it for training batches is refused.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from layoutnet.data import csvfile
from layoutnet.data.sources import Batch, DataSource
from layoutnet.errors import ConfigError, DataError

REALTEXT_DIR = Path(__file__).resolve().parents[1] / "resources" / "realtext"
DEFAULT_PARTS = ("words", "sentences", "short")
"""The parts scored by default: 1-3 real words, sentence starts, one 2-4-letter word."""


class RealTextSource(DataSource):
    """Rows of the real-text set's parts (`<directory>/<part>.csv`, the one `text,label` format)."""

    name = "realtext"

    def __init__(
        self,
        parts: Sequence[str] = DEFAULT_PARTS,
        directory: str | None = None,
        batch_size: int = 512,
        eval_batch_size: int | None = None,
        seed: int = 0,
    ):
        super().__init__(batch_size, eval_batch_size, seed)
        parts = [parts] if isinstance(parts, str) else list(parts)
        if not parts or not all(isinstance(p, str) and p for p in parts):
            raise ConfigError("parts", parts, "must list part names, e.g. [words, sentences, short]")
        self.parts = parts
        self.directory = Path(directory).expanduser() if directory else REALTEXT_DIR
        self._rows: dict[str, csvfile.LabelledTexts] | None = None

    def rows(self) -> dict[str, csvfile.LabelledTexts]:
        """Each part's rows, read once."""
        if self._rows is None:
            missing = [p for p in self.parts if not (self.directory / f"{p}.csv").is_file()]
            if missing:
                have = sorted(p.stem for p in self.directory.glob("*.csv")) if self.directory.is_dir() else []
                raise DataError(
                    f"real-text part(s) {', '.join(missing)} not found in {self.directory} (found: "
                    f"{', '.join(have) or 'none'}); rebuild the set with scripts/build_realtext.py"
                )
            self._rows = {p: csvfile.read(self.directory / f"{p}.csv") for p in self.parts}
        return self._rows

    def _prepare(self) -> None:
        self.rows()

    def _splits(self) -> dict[str, Batch]:
        parts = list(self.rows().values())
        ids = torch.cat([part.ids() for part in parts])
        labels = torch.cat([part.label_tensor() for part in parts])
        return {"val": (ids, labels), "test": (ids, labels)}

    def train_batches(self, epoch: Callable[[], int]):
        raise DataError(
            "the real-text set is for evaluation only and must stay out of training; "
            "train on data=synthetic or data=csv"
        )

    def _describe(self) -> dict[str, Any]:
        return {
            "directory": str(self.directory),
            "parts": {name: len(rows) for name, rows in self.rows().items()},
        }
