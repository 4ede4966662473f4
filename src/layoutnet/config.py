"""Building objects from Hydra config nodes, with errors that name the config key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from layoutnet.errors import ConfigError, LayoutnetError

CONF_DIR = str(Path(__file__).resolve().parents[2] / "conf")
"""The repository's `conf/` (layoutnet runs from its source tree: `pip install -e .`)."""


def _root_cause(exc: BaseException) -> BaseException:
    while isinstance(exc, InstantiationException) and exc.__cause__ is not None:
        exc = exc.__cause__
    return exc


def build(node: DictConfig, path: str, **kwargs: Any) -> Any:
    """Instantiate `node` (children with `_target_` first, each under its own path).

    A ConfigError raised by a constructor comes back with its key placed under `path` (for
    example `model.net.transformer.num_heads`); other constructor failures become a
    ConfigError naming `path` and the target.
    """
    if not isinstance(node, DictConfig) or "_target_" not in node:
        raise ConfigError(
            path,
            OmegaConf.to_container(node) if isinstance(node, DictConfig) else node,
            "expected a config node with a _target_",
        )
    children = {
        key: build(value, f"{path}.{key}")
        for key, value in node.items()
        if isinstance(value, DictConfig) and "_target_" in value
    }
    try:
        return instantiate(node, _recursive_=False, _convert_="all", **children, **kwargs)
    except InstantiationException as exc:
        cause = _root_cause(exc)
        if isinstance(cause, ConfigError):
            raise cause.under(path) from None
        if isinstance(cause, LayoutnetError):
            raise cause from None
        raise ConfigError(
            path, node.get("_target_"), f"could not be built: {type(cause).__name__}: {cause}"
        ) from exc


def to_plain(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


# Structured config schemas the conf/ files build on (the `export` group's `export_schema`).
from layoutnet.export import settings as _export_settings  # noqa: E402, F401
