"""Shared behaviour of the command-line entry points (`python -m layoutnet[.<command>]`): one `error:` line
for refused input, and the run-directory check Hydra runs before any work starts."""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable
from typing import Any, TypeVar

from layoutnet.errors import LayoutnetError

T = TypeVar("T")

FULL_ERROR_ENV = "HYDRA_FULL_ERROR"
"""Set to 1 to see the traceback of a refused input above its `error:` line (as with Hydra's own errors)."""


def print_user_error(exc: LayoutnetError) -> None:
    """One `error:` line on stderr (after the traceback when HYDRA_FULL_ERROR=1)."""
    from rich.console import Console
    from rich.markup import escape

    if os.environ.get(FULL_ERROR_ENV) == "1":
        traceback.print_exception(exc, file=sys.stderr)
    Console(stderr=True, soft_wrap=True).print(
        f"[bold red]error:[/] {type(exc).__name__}: {escape(str(exc))}", highlight=False
    )


def exit_on_user_error(fn: Callable[[], T]) -> T:
    """Run `fn`; a LayoutnetError (bad input) becomes one clear line on stderr and exit code 1."""
    try:
        return fn()
    except LayoutnetError as exc:
        print_user_error(exc)
        sys.exit(1)


def run_command(cfg: Any, work: Callable[[Any], T]) -> T:
    """The body of a Hydra command: the config's `runtime` threads applied, then `work(cfg)`; a refused
    input in either is one `error:` line and exit code 1 (a failed export or validation is recorded in its
    report before it is raised)."""
    from layoutnet.runtime import apply_threads

    exit_on_user_error(lambda: apply_threads(cfg.get("runtime")))
    return exit_on_user_error(lambda: work(cfg))


try:
    from hydra.experimental.callback import Callback as _HydraCallback
except ImportError:  # pragma: no cover - hydra is a dependency
    _HydraCallback = object


class OutputDirCheck(_HydraCallback):
    """Hydra callback: refuse a run or sweep directory that is a file or cannot be created, with one
    `error:` line and exit code 1, before Hydra creates it and before any work starts."""

    def _check(self, config: Any, key: str) -> None:
        from omegaconf import OmegaConf

        from layoutnet.config import check_output_dir

        path = OmegaConf.select(config, key)
        if path is None:
            return
        try:
            check_output_dir(path, key)
        except LayoutnetError as exc:
            print_user_error(exc)
            sys.exit(1)

    def on_run_start(self, config: Any, **kwargs: Any) -> None:
        self._check(config, "hydra.run.dir")

    def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
        self._check(config, "hydra.sweep.dir")
