"""Shared behaviour of the command-line entry points."""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable
from typing import TypeVar

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
