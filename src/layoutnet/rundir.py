"""Run directories that never collide (the `${unique_dir:...}` resolver of conf/hydra/default.yaml), and
the `latest` links that name the newest of them (`LatestRunLink`, a Hydra callback).

Hydra names a run directory after the second it started in, so two runs started in the same second
would share one directory (and one `last.ckpt`, one `report.json`). The resolver creates the
directory itself, exclusively; when another run got that name first it takes `<name>_1`, `<name>_2`,
... The value is cached in the config (Hydra copies the cache into every job of a multirun and it
travels with the pickled config to joblib and submitit workers), so a run resolves it once.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

try:
    from hydra.experimental.callback import Callback as _HydraCallback
except ImportError:  # pragma: no cover - hydra is a dependency
    _HydraCallback = object

log = logging.getLogger(__name__)

RESOLVER = "unique_dir"
LATEST = "latest"
"""`outputs/<task>/latest` -> the task's newest run (`runs/<time>`)."""
LATEST_MULTIRUN = "latest_multirun"
"""`outputs/<task>/latest_multirun` -> the task's newest sweep (`multiruns/<time>`)."""
LINKED_PARENTS = {"runs": LATEST, "multiruns": LATEST_MULTIRUN}


def unique_dir(base: str) -> str:
    """Create `base` (or the first free `base_N`) exclusively and return its path."""
    path = Path(base)
    path.parent.mkdir(parents=True, exist_ok=True)
    for n in range(10_000):
        candidate = path if n == 0 else path.with_name(f"{path.name}_{n}")
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        return str(candidate)
    raise FileExistsError(f"no free run directory next to {path}")


def register() -> None:
    if not OmegaConf.has_resolver(RESOLVER):
        OmegaConf.register_new_resolver(RESOLVER, unique_dir, use_cache=True)


def link_latest(run_dir: str | Path) -> Path | None:
    """Point `<task>/latest` (or `latest_multirun`) at `run_dir` when it is `<task>/runs/<name>` (or
    `<task>/multiruns/<name>`): a relative link, replaced atomically (a new link renamed over the old
    one), so a reader sees the old run or the new one, never no link. Returns the link; None when
    `run_dir` is not a task's run, or when the link cannot be made (a warning says why; the run goes on)."""
    run_dir = Path(run_dir)
    name = LINKED_PARENTS.get(run_dir.parent.name)
    if name is None:
        return None
    link = run_dir.parent.parent / name
    staged = link.with_name(f".{name}.{os.getpid()}")
    try:
        staged.unlink(missing_ok=True)
        staged.symlink_to(Path(run_dir.parent.name) / run_dir.name, target_is_directory=True)
        os.replace(staged, link)
    except OSError as exc:
        staged.unlink(missing_ok=True)
        log.warning("could not point %s at %s: %s", link, run_dir, exc)
        return None
    return link


class LatestRunLink(_HydraCallback):
    """Hydra callback: when a run or a sweep starts, `outputs/<task>/latest` (`latest_multirun`) points
    at its directory."""

    def on_job_start(self, config: Any, **kwargs: Any) -> None:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        hydra_cfg = HydraConfig.get()
        if hydra_cfg.mode == RunMode.RUN:
            link_latest(hydra_cfg.runtime.output_dir)

    def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
        sweep_dir = OmegaConf.select(config, "hydra.sweep.dir")
        if sweep_dir is not None:
            link_latest(sweep_dir)
