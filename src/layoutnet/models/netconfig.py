"""Reading a network's sizes from `conf/model/net/<name>.yaml` as data (no Hydra, no `_target_`).

The files are the ones experiments select with `model/net=<name>`; a file may compose others with a
defaults list of `<name>` (merged at its own level), `<name>@<key>` (placed under `key`, as an
ensemble's members) and `_self_`, exactly as Hydra composes them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from layoutnet.config import CONF_DIR
from layoutnet.errors import ConfigError

NET_DIR = Path(CONF_DIR) / "model" / "net"


def _load(name: str, seen: tuple[str, ...] = ()) -> DictConfig:
    path = NET_DIR / f"{name}.yaml"
    if not path.is_file():
        available = sorted(p.stem for p in NET_DIR.glob("*.yaml"))
        raise ConfigError("model/net", name, f"no such network config in {NET_DIR}", available)
    if name in seen:
        raise ConfigError("model/net", name, f"composes itself ({' -> '.join((*seen, name))})")
    node = OmegaConf.load(path)
    defaults = list(node.pop("defaults", None) or [])
    if "_self_" not in defaults:
        defaults.append("_self_")
    merged = OmegaConf.create({})
    for entry in defaults:
        if entry == "_self_":
            merged = OmegaConf.merge(merged, node)
            continue
        if not isinstance(entry, str):
            raise ConfigError(f"{path}: defaults", entry, "only `<name>` and `<name>@<key>` entries are read")
        other, _, key = entry.partition("@")
        part = _load(other, (*seen, name))
        merged = OmegaConf.merge(merged, OmegaConf.create({key: part}) if key else part)
    return merged


def load_net_config(name: str) -> dict[str, Any]:
    """The flat network config of `conf/model/net/<name>.yaml`, composed, as plain values."""
    return OmegaConf.to_container(_load(name), resolve=True)


def load_net_spec(name: str) -> dict[str, Any]:
    """The registry spec of `conf/model/net/<name>.yaml`."""
    from layoutnet.models.registry import to_spec

    return to_spec(load_net_config(name))
