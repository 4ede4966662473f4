"""The end of a multirun: `summary.md`, `summary.csv` and `summary.png` written into the sweep directory
and the summary table printed, with where the files went.

`SweepSummaryCallback` does it when every job of a multirun has finished (registered in
`conf/hydra/default.yaml`); `python -m layoutnet.summarize <sweep dir>` does it again for a sweep
directory (for example after a SLURM sweep was cut short). The rows are `sweepsummary`'s; the picture
is `pictures.plot_summary`; the table is `console.print_sweep_summary`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig
from rich.console import Console

from layoutnet.reporting.console import display_path, print_sweep_summary, print_written
from layoutnet.reporting.sweepsummary import (
    ACCURACY_TOLERANCE,
    SUMMARY_CSV,
    SUMMARY_MD,
    SUMMARY_PNG,
    collect,
    log_swept_keys,
    render_markdown,
    write_csv,
)

log = logging.getLogger(__name__)


def write_summary(sweep_dir: str | Path, tolerance: float = ACCURACY_TOLERANCE) -> dict[str, Path]:
    """Write summary.md, summary.csv and summary.png into `sweep_dir`; returns their paths. `tolerance`:
    how much accuracy below the best artifact still counts when picking the smallest artifact."""
    # matplotlib loads only when a summary is drawn: Hydra builds this module's callback for every run.
    from layoutnet.reporting.pictures import plot_summary

    sweep_dir = Path(sweep_dir)
    rows = collect(sweep_dir)
    paths = {"md": sweep_dir / SUMMARY_MD, "csv": sweep_dir / SUMMARY_CSV, "png": sweep_dir / SUMMARY_PNG}
    sweep_dir.mkdir(parents=True, exist_ok=True)
    paths["md"].write_text(render_markdown(sweep_dir, rows, tolerance), encoding="utf-8")
    write_csv(paths["csv"], rows)
    title = f"{display_path(sweep_dir)}: {len(rows)} jobs"
    plot_summary(paths["png"], rows, title, log_swept_keys(sweep_dir), tolerance)
    return paths


def summarize(sweep_dir: str | Path, tolerance: float = ACCURACY_TOLERANCE, console: Console | None = None):
    """The files written, the table printed, then one `summary <kind>: <path>` line per file."""
    console = console or Console(highlight=False)
    paths = write_summary(sweep_dir, tolerance)
    print_sweep_summary(collect(Path(sweep_dir)), console, title=f"sweep summary: {display_path(sweep_dir)}")
    print_written(console, {f"summary {kind}": path for kind, path in paths.items()})
    return paths


class SweepSummaryCallback(Callback):
    """Writes summary.md, summary.csv and summary.png into the sweep directory (`hydra.sweep.dir`) and
    prints the table. It runs in the process that launched the sweep, after every job (local, joblib,
    submitit or Optuna trial) has finished."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if not self.enabled:
            return
        sweep_dir = Path(str(config.hydra.sweep.dir)).absolute()
        # A summary that cannot be written must not turn a finished sweep into a failed command.
        try:
            summarize(sweep_dir)
        except Exception as exc:
            log.error(
                "could not write the sweep summary into %s: %s: %s; rebuild it with "
                "`python -m layoutnet.summarize %s`",
                sweep_dir,
                type(exc).__name__,
                exc,
                sweep_dir,
            )
