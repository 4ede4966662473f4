"""Hydra callback that writes the sweep summary at the end of every multirun.

Registered in `conf/hydra/default.yaml` under `hydra.callbacks.sweep_summary`; it runs in the process
that launched the sweep, after every job (local, joblib, submitit or Optuna trial) has finished.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger(__name__)


class SweepSummaryCallback(Callback):
    """Writes summary.md, summary.csv and summary.png into the sweep directory (`hydra.sweep.dir`)."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if not self.enabled:
            return
        sweep_dir = Path(str(config.hydra.sweep.dir)).absolute()
        # A summary that cannot be written must not turn a finished sweep into a failed command.
        try:
            from layoutnet.summarize import collect, print_summary, write_summary

            paths = write_summary(sweep_dir)
            print_summary(collect(sweep_dir))
        except Exception as exc:
            log.error(
                "could not write the sweep summary into %s: %s: %s; rebuild it with "
                "`python -m layoutnet.summarize %s`",
                sweep_dir,
                type(exc).__name__,
                exc,
                sweep_dir,
            )
            return
        log.info("sweep summary: %s", ", ".join(str(p) for p in paths.values()))
