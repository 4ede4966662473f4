"""Shared behaviour of the command-line entry points."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TypeVar

from rich.console import Console
from rich.markup import escape

from layoutnet.errors import LayoutnetError

T = TypeVar("T")


def exit_on_user_error(fn: Callable[[], T]) -> T:
    """Run `fn`; a LayoutnetError (bad input) becomes one clear line on stderr and exit code 1."""
    try:
        return fn()
    except LayoutnetError as exc:
        Console(stderr=True, soft_wrap=True).print(
            f"[bold red]error:[/] {type(exc).__name__}: {escape(str(exc))}", highlight=False
        )
        sys.exit(1)
