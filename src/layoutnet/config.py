"""Building objects from Hydra config nodes, with errors that name the config key."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from layoutnet.errors import ConfigError, LayoutnetError

CONF_DIR = str(Path(__file__).resolve().parents[2] / "conf")
"""The repository's `conf/` (layoutnet runs from its source tree: `pip install -e .`)."""


def _root_cause(exc: BaseException) -> BaseException:
    from hydra.errors import InstantiationException

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
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

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


def require_values(cfg: DictConfig, hints: dict[str, str] | None = None) -> None:
    """Refuse a config that still holds a mandatory `???` (an experiment's `teacher_ckpt`, `data=csv`'s
    `data.path`): the first such key, with what to give (`hints[key]` where the command knows it)."""
    missing = sorted(_missing_keys(OmegaConf.to_container(cfg, resolve=False), ""))
    if missing:
        key = missing[0]
        hint = (hints or {}).get(key, "a value for it")
        others = f"; also unset: {', '.join(missing[1:])}" if len(missing) > 1 else ""
        raise ConfigError(key, "???", f"required: {hint}; add {key}=<value> to the command{others}")


def _missing_keys(node: Any, path: str) -> list[str]:
    """Dotted keys whose value is the literal `???` (interpolations to them are left unresolved)."""
    if isinstance(node, dict):
        items = [(f"{path}.{key}" if path else str(key), value) for key, value in node.items()]
    elif isinstance(node, list):
        items = [(f"{path}[{index}]", value) for index, value in enumerate(node)]
    else:
        return [path] if node == "???" else []
    return [key for child_path, value in items for key in _missing_keys(value, child_path)]


def to_plain(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


def build_from_file(node: Any, path: str, source: str, known: tuple[str, ...]) -> Any:
    """Build a config node that was read from a file someone else wrote (a run's
    `config_resolved.yaml`): its `_target_` must be one of `known` and no other `_target_` may appear
    at any depth; the class is then imported by layoutnet's own code, never from the file's string."""
    plain = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node
    if not isinstance(plain, dict):
        raise ConfigError(path, plain, f"in {source}: expected a config mapping")
    target = plain.get("_target_")
    if target not in known:
        raise ConfigError(
            f"{path}._target_", target, f"in {source}: not one of layoutnet's own classes", known
        )
    nested = _nested_targets({k: v for k, v in plain.items() if k != "_target_"}, path)
    if nested:
        raise ConfigError(nested[0], "_target_", f"in {source}: a value read from a file cannot name code")
    module_name, _, class_name = target.rpartition(".")
    import importlib

    cls = getattr(importlib.import_module(module_name), class_name)
    return cls(**{k: v for k, v in plain.items() if k != "_target_"})


def _nested_targets(obj: Any, where: str) -> list[str]:
    found: list[str] = []
    if isinstance(obj, dict):
        for key, value in obj.items():
            if key == "_target_":
                found.append(f"{where}._target_")
            found += _nested_targets(value, f"{where}.{key}")
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            found += _nested_targets(value, f"{where}[{i}]")
    return found


def check_output_dir(path: Any, key: str = "output_dir") -> Path:
    """`path` as a directory that exists or can be created (created now), or a ConfigError naming `key`.

    Called before any work, so a bad output directory never costs a training run or an export.
    """
    directory = Path(str(path)).expanduser()
    if directory.exists() and not directory.is_dir():
        raise ConfigError(
            key, str(path), "is a file, not a directory; pass a directory (it is created if missing)"
        )
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            key,
            str(path),
            f"cannot be created ({exc.strerror or type(exc).__name__}); pass a writable directory",
        ) from None
    if not os.access(directory, os.W_OK | os.X_OK):
        raise ConfigError(key, str(path), "is not writable; pass a writable directory")
    return directory


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_trainer_settings(trainer: Any) -> None:
    """Refuse trainer values Lightning would only reject mid-setup (or silently truncate)."""
    if trainer is None:
        return
    for key in ("max_epochs", "min_epochs", "max_steps"):
        value = trainer.get(key)
        if value is None:
            continue
        if not _whole(value) or value < -1:
            raise ConfigError(
                f"trainer.{key}", value, "must be a whole number (-1: no limit)", "-1, 1, 2, 3, ..."
            )


# Structured config schemas the conf/ files build on (the `export` group's `export_schema`, the `data`
# group's `synthetic_schema`).
from layoutnet import modulesettings as _module_settings  # noqa: E402
from layoutnet.data import settings as _data_settings  # noqa: E402
from layoutnet.export import settings as _export_settings  # noqa: E402, F401

_data_settings.register()
_module_settings.register()
