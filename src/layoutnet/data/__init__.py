"""Training data: data sources (synthetic, CSV, real text), the one `text,label` CSV format, the
vectorised synthesizer, word lists and the Lightning wrapper.

Names are imported on first use, so `from layoutnet.data import SyntheticSource` does not load Lightning.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "LayoutDataModule": "layoutnet.data.datamodule",
    "DataSource": "layoutnet.data.sources",
    "KNOWN_SOURCES": "layoutnet.data.sources",
    "SyntheticSource": "layoutnet.data.synthetic",
    "CsvSource": "layoutnet.data.csv_source",
    "Synthesizer": "layoutnet.data.synth",
    "SynthConfig": "layoutnet.data.synth",
    "WordList": "layoutnet.data.words",
    "load_words": "layoutnet.data.words",
    "load_csv": "layoutnet.data.csv_source",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
