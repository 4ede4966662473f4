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


def _type_refusal(exc: BaseException) -> LayoutnetError | None:
    """The ConfigError a Hydra composition failure stands for when a value does not fit the type a
    structured config (`ExportSettings`, `SyntheticSettings`, `ModuleSettings`) gives its key; else None."""
    from hydra.errors import ConfigCompositionException
    from omegaconf.errors import ValidationError

    from layoutnet.errors import ConfigError

    cause = exc.__cause__
    if not isinstance(exc, ConfigCompositionException) or not isinstance(cause, ValidationError):
        return None
    problem = str(getattr(cause, "msg", cause)).splitlines()[0]
    for omegaconf_type, wanted in _TYPE_WORDS.items():
        if problem.endswith(f"could not be converted to {omegaconf_type}"):
            problem = wanted
    kind = getattr(cause, "object_type_str", None)
    where = f" (a setting of {kind})" if kind and kind != "None" else ""
    return ConfigError(str(cause.full_key), getattr(cause, "value", None), f"{problem}{where}")


_TYPE_WORDS = {
    "Float": "must be a number",
    "Integer": "must be a whole number",
    "Boolean": "must be true or false",
}
"""OmegaConf's type names in its conversion errors -> what the value must be, in a refusal's words."""


def _install_type_refusals() -> None:
    """Let a value of the wrong type for a typed config key end in one `error:` line, like every other
    refusal, instead of Hydra's multi-line composition report: Hydra runs every command's body (config
    composition included) through `hydra._internal.utils.run_and_report`, which this wraps once."""
    try:
        import hydra._internal.utils as hydra_utils
    except ImportError:  # pragma: no cover - hydra is a dependency
        return
    original = hydra_utils.run_and_report
    if getattr(original, "layoutnet", False):
        return

    def run_and_report(func: Callable[[], Any]) -> Any:
        def refused_by_type() -> Any:
            try:
                return func()
            except Exception as exc:
                refusal = _type_refusal(exc)
                if refusal is None:
                    raise
                refusal.__cause__ = exc  # HYDRA_FULL_ERROR=1 shows Hydra's traceback above the line
                print_user_error(refusal)
                sys.exit(1)

        return original(refused_by_type)

    run_and_report.layoutnet = True  # type: ignore[attr-defined]
    hydra_utils.run_and_report = run_and_report


_install_type_refusals()
