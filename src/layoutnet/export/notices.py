"""Warnings from torch and coremltools during an export: kept, shown once, reported.

Nothing is swallowed: every Python warning and every coremltools log record of level WARNING or
above raised while exporting is collected, printed once on the console (`warning: ...`) and written
to the report's export section with the versions of the libraries involved. Two exceptions, facts about
parts of coremltools layoutnet never uses (`_is_platform_noise`): its "Failed to load _ML...Proxy"
lines on Linux (Core ML's native runtime is macOS-only), and its import-time check of scikit-learn's
version ("scikit-learn version X is not supported ... Disabling scikit-learn conversion API"), which
turns off only the conversion of scikit-learn models to Core ML; k-means palettization imports
`sklearn.cluster` itself and is unaffected.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field

_PLATFORM_NOISE = "Failed to load _ML"
_SKLEARN_CONVERTER_OFF = "Disabling scikit-learn conversion API"
_NOT_REPORTED = (ResourceWarning,)
"""Python hides these by default: coremltools' temporary folders cleaned up at exit are not news."""


@dataclass(frozen=True)
class Notice:
    source: str  # the library that raised it: torch, coremltools, ...
    category: str  # DeprecationWarning, UserWarning, logging WARNING, ...
    message: str

    def line(self) -> str:
        return f"{self.source} ({self.category}): {self.message}"

    def report(self) -> dict:
        return {"source": self.source, "category": self.category, "message": self.message}


def _source(module_or_path: str) -> str:
    for name in ("coremltools", "torch", "numpy", "pytorch_lightning", "layoutnet"):
        if name in module_or_path:
            return name
    return module_or_path.rsplit("/", 1)[-1] or "python"


def _is_platform_noise(message: str) -> bool:
    """A coremltools message about a part layoutnet never uses (see the module's docstring)."""
    if _SKLEARN_CONVERTER_OFF in message:
        return True
    return sys.platform != "darwin" and message.startswith(_PLATFORM_NOISE)


class _Records(logging.Handler):
    def __init__(self, sink: list[Notice]):
        super().__init__(logging.WARNING)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if not _is_platform_noise(message):
            self.sink.append(Notice(_source(record.name), f"logging {record.levelname}", message))


@contextlib.contextmanager
def library_log_records(sink: list[Notice], logger_name: str = "coremltools") -> Iterator[None]:
    """Collect `logger_name`'s WARNING+ records into `sink` instead of letting them print."""
    logger = logging.getLogger(logger_name)
    handler = _Records(sink)
    saved = logger.level, logger.propagate
    logger.setLevel(logging.WARNING)
    logger.propagate = False
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


IMPORT_NOTICES: list[Notice] = []
"""What coremltools logged when layoutnet imported it (e.g. an untested torch version)."""


@dataclass
class NoticeCollector:
    """`with NoticeCollector() as notices:` collects warnings; `notices.items` are unique, in order."""

    items: list[Notice] = field(default_factory=list)

    def __enter__(self) -> NoticeCollector:
        self._records: list[Notice] = []
        self._warnings = warnings.catch_warnings(record=True)
        self._caught = self._warnings.__enter__()
        warnings.simplefilter("always")
        self._logs = library_log_records(self._records)
        self._logs.__enter__()
        return self

    def __exit__(self, *exc_info) -> None:
        self._logs.__exit__(*exc_info)
        self._warnings.__exit__(*exc_info)
        # IMPORT_NOTICES is read at the end: coremltools may first be imported inside the block.
        found = (
            IMPORT_NOTICES
            + self._records
            + [
                Notice(_source(w.filename), w.category.__name__, str(w.message))
                for w in self._caught
                if not issubclass(w.category, _NOT_REPORTED)
            ]
        )
        seen = {(n.source, n.category, n.message) for n in self.items}
        for notice in found:
            key = (notice.source, notice.category, notice.message)
            if key not in seen and not _is_platform_noise(notice.message):
                seen.add(key)
                self.items.append(notice)

    def add(self, notice: Notice) -> None:
        if notice not in self.items:
            self.items.append(notice)
