"""Run directories that never collide: the `${unique_dir:...}` resolver of conf/hydra/default.yaml.

Hydra names a run directory after the second it started in, so two runs started in the same second
would share one directory (and one `last.ckpt`, one `report.json`). The resolver creates the
directory itself, exclusively; when another run got that name first it takes `<name>_1`, `<name>_2`,
... The value is cached in the config (Hydra copies the cache into every job of a multirun and it
travels with the pickled config to joblib and submitit workers), so a run resolves it once.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

RESOLVER = "unique_dir"


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
