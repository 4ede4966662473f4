"""Errors a user can act on: each names the problem and the fix."""

from __future__ import annotations

from collections.abc import Iterable


class LayoutnetError(Exception):
    """Base class of every error layoutnet raises on bad input."""


class ConfigError(LayoutnetError, ValueError):
    """A configuration value that cannot work, named by its key."""

    def __init__(self, key: str, value: object, problem: str, allowed: str | Iterable[object] | None = None):
        self.key = key
        self.value = value
        self.problem = problem
        self.allowed = (
            allowed if isinstance(allowed, str) or allowed is None else ", ".join(map(str, allowed))
        )
        super().__init__(self._message())

    def _message(self) -> str:
        text = f"{self.key}={self.value!r}: {self.problem}"
        if self.allowed:
            text += f" (allowed: {self.allowed})"
        return text

    def under(self, prefix: str) -> ConfigError:
        """The same error with its key placed under a config path such as `model.net`."""
        return ConfigError(
            f"{prefix}.{self.key}" if prefix else self.key, self.value, self.problem, self.allowed
        )


class DataError(LayoutnetError, ValueError):
    """Input data (CSV, layout dump, corpus) that cannot be used as it is."""


class ExportError(LayoutnetError, RuntimeError):
    """Trace, conversion or parity failed; nothing was published."""


class CheckpointError(LayoutnetError, ValueError):
    """A checkpoint file that cannot be loaded onto the requested architecture."""
