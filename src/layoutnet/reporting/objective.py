"""A run's objective: the value of `optimized_metric` (a logged metric or a key path into `report.json`)
that `python -m layoutnet` returns to a Hydra sweeper, checked before training and read after it."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig

from layoutnet.errors import ConfigError
from layoutnet.reporting.runreport import RESULT_SECTIONS

log = logging.getLogger(__name__)

# `optimized_metric` names either a metric the module logs (`<stage>/<name>`, plus `val/acc_best`, the best
# validation accuracy of the run) or a key path into report.json (`export.parity.artifact_accuracy`).
DEFAULT_OBJECTIVE = "val/acc_best"
OBJECTIVE_ALIASES = {"val/acc_best": ("training", "best_val_accuracy")}
METRIC_STAGES = ("train", "val", "test")
KEY_FALLBACKS = {("export", "artifact_size_bytes"): ("export", "size_bytes")}
_ALLOWED = "val/acc_best, a logged metric such as val/acc or test/acc, or a report.json key path such as "
_ALLOWED += "training.best_val_accuracy, export.parity.artifact_accuracy, export.artifact_size_bytes"


def objective_name(cfg: DictConfig) -> str:
    """The run's `optimized_metric`, checked before training: its form, and that the run produces it
    (a `test/...` metric needs `test=true`, an `export.` key an export)."""
    name = cfg.get("optimized_metric", DEFAULT_OBJECTIVE)
    name = DEFAULT_OBJECTIVE if name is None else name
    if not isinstance(name, str) or not name:
        raise ConfigError("optimized_metric", name, "must be a metric name or a report key path", _ALLOWED)
    if name in OBJECTIVE_ALIASES:
        return name
    if "/" in name and "." not in name:
        stage = name.split("/", 1)[0]
        if stage not in METRIC_STAGES:
            raise ConfigError("optimized_metric", name, f"no logged metric starts with {stage}/", _ALLOWED)
    elif name.split(".", 1)[0] not in RESULT_SECTIONS:
        raise ConfigError(
            "optimized_metric",
            name,
            f"a report key path starts with one of {', '.join(RESULT_SECTIONS)}",
            _ALLOWED,
        )
    section = name.split("/", 1)[0] if "/" in name and "." not in name else name.split(".", 1)[0]
    if section == "test" and not cfg.get("test"):
        raise ConfigError("optimized_metric", name, "the run does not test (test=false); set test=true")
    export = cfg.get("export")
    if section == "export" and (export is None or export.get("enabled", True) is False):
        raise ConfigError("optimized_metric", name, "the run does not export (export=none)")
    return name


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _numeric_keys(tree: Any, prefix: str) -> list[str]:
    """Key paths of the numeric leaves under `tree` (`export.parity.max_prob_diff`, ...)."""
    if not isinstance(tree, Mapping):
        return [prefix] if _number(tree) is not None else []
    return [path for key, sub in tree.items() for path in _numeric_keys(sub, f"{prefix}.{key}")]


def _at(tree: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        tree = tree.get(part) if isinstance(tree, Mapping) else None
    return tree


def objective_value(
    name: str | None, report: Mapping[str, Any], logged: Mapping[str, Any] | None = None
) -> float | None:
    """The value of `optimized_metric` for a finished run: from its report (aliases, test metrics, key
    paths) or the metrics it logged last. None, with a warning naming what exists, when the run has none."""
    name = name or DEFAULT_OBJECTIVE
    if name in OBJECTIVE_ALIASES:
        path: tuple[str, ...] = OBJECTIVE_ALIASES[name]
    elif "/" in name and "." not in name:
        test_section = report.get("test") or {}
        if name in test_section:
            return _number(test_section[name])
        value = (logged or {}).get(name)
        return _number(value.item() if hasattr(value, "item") else value)
    else:
        path = tuple(name.split("."))
    value = _number(_at(report, path))
    if value is None and path in KEY_FALLBACKS:  # reports written before the key got its name
        value = _number(_at(report, KEY_FALLBACKS[path]))
    if value is None and name != DEFAULT_OBJECTIVE:
        known = [path for section in RESULT_SECTIONS for path in _numeric_keys(report.get(section), section)]
        log.warning(
            "optimized_metric=%s: this run has no numeric value there; numeric report keys: %s",
            name,
            ", ".join(known[:40]) or "none",
        )
    return value
