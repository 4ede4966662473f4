"""The registry of network families: the only way a network is built from data.

A network is described by a *spec*, a plain mapping `{"family": <name>, "kwargs": {...}}` whose
kwargs are plain values (numbers, strings, booleans, lists of them); an ensemble's members are
nested specs. `build_net(spec)` looks the family up in `FAMILIES`, checks every keyword against the
class's signature and type hints, and calls the class. Nothing in a spec can name code: a family is
a key of this registry, never an import path.

Configs write a network flat, as `conf/model/net/*.yaml` do (`family: cnn` beside the keywords);
`to_spec` turns that form, or a spec, into a spec. Old checkpoints stored Hydra configs with
`_target_` class paths; `spec_from_targets` accepts them only when each `_target_` string is one of
`CLASS_PATHS` (a string compare: nothing is imported by name).
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any

from torch import nn

from layoutnet.contract import NUM_CLASSES, SEQ_LEN, VOCAB_SIZE
from layoutnet.errors import ConfigError
from layoutnet.models.cnn import CNNClassifier, CompactCNN
from layoutnet.models.ensemble import EnsembleClassifier
from layoutnet.models.transformer import TransformerClassifier

FAMILIES: dict[str, type[nn.Module]] = {
    "cnn": CNNClassifier,
    "compact_cnn": CompactCNN,
    "transformer": TransformerClassifier,
    "ensemble": EnsembleClassifier,
}
"""Registry name -> layoutnet's class."""

MEMBERS: dict[str, tuple[str, ...]] = {"ensemble": ("cnn", "transformer")}
"""Keywords of a family that are member networks (nested specs), not plain values."""

CLASS_PATHS: dict[str, str] = {
    f"{module}.{cls.__name__}": name
    for name, cls in FAMILIES.items()
    for module in ("layoutnet.models", cls.__module__)
}
"""Class paths that old checkpoints' `_target_` strings may hold -> registry name."""

CONTRACT_FIXED: dict[str, tuple[int, str]] = {
    "seq_len": (SEQ_LEN, "the app's contract fixes the input length"),
    "vocab_size": (VOCAB_SIZE, "the app's contract fixes the alphabet size (188 characters + padding)"),
    "num_classes": (NUM_CLASSES, "the app's contract fixes the number of classes"),
}
"""Keywords every family has whose value the contract decides."""

TARGET_KEY = "_target_"
_SCALARS = (bool, int, float, str, type(None))


def family_of(net: nn.Module) -> str:
    """The registry name of a network built from this registry."""
    for name, cls in FAMILIES.items():
        if type(net) is cls:
            return name
    raise ConfigError("net", type(net).__name__, "is not one of layoutnet's network families", FAMILIES)


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _plain(value: Any, where: str) -> Any:
    """`value` as plain data (tuples become lists), or a ConfigError naming the key."""
    if isinstance(value, _SCALARS):
        return value
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, Mapping) and TARGET_KEY in value:
        raise ConfigError(
            _join(where, TARGET_KEY), value[TARGET_KEY], "a network's settings cannot name code to run"
        )
    raise ConfigError(
        where, value, f"must be a plain value (number, text, boolean or list), not {type(value).__name__}"
    )


def to_spec(node: Mapping[str, Any], where: str = "") -> dict[str, Any]:
    """A spec from a flat network config (`{"family": ..., <keywords>}`) or from a spec.

    Structure only (known family, plain values, members as nested configs); `build_net` checks the
    keywords. Keys of errors are paths in the flat form, e.g. `transformer.num_heads`.
    """
    if not isinstance(node, Mapping):
        raise ConfigError(where or "net", node, "expected a network config with a `family` key", FAMILIES)
    if TARGET_KEY in node:
        raise ConfigError(
            _join(where, TARGET_KEY),
            node[TARGET_KEY],
            "networks are chosen by `family`, not by a class path",
            FAMILIES,
        )
    family = node.get("family")
    if family not in FAMILIES:
        raise ConfigError(_join(where, "family"), family, "unknown network family", FAMILIES)
    if set(node) == {"family", "kwargs"} and isinstance(node["kwargs"], Mapping):
        raw = node["kwargs"]
    else:
        raw = {k: v for k, v in node.items() if k != "family"}
    kwargs: dict[str, Any] = {}
    for key, value in raw.items():
        if not isinstance(key, str):
            raise ConfigError(where or "net", key, "keyword names must be text")
        if key in MEMBERS.get(family, ()):
            kwargs[key] = to_spec(value, _join(where, key))
        else:
            kwargs[key] = _plain(value, _join(where, key))
    return {"family": family, "kwargs": kwargs}


def _matches(value: Any, hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if hint is Any:
        return True
    if origin is tuple:
        args = typing.get_args(hint)
        if not isinstance(value, list | tuple):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_matches(v, args[0]) for v in value)
        return len(value) == len(args) and all(_matches(v, a) for v, a in zip(value, args, strict=True))
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, a) for a in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    return False


def _hint_text(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def build_net(spec: Mapping[str, Any], where: str = "") -> nn.Module:
    """The network a spec (or a flat network config) describes, randomly initialised.

    Every keyword must be a parameter of the family's class with a value of its annotated type;
    `seq_len`, `vocab_size` and `num_classes` must be the contract's. Members of an ensemble are
    built through this same function. Errors are ConfigErrors whose key is the flat path
    (`transformer.num_heads`) under `where`.
    """
    spec = to_spec(spec, where)
    family = spec["family"]
    cls = FAMILIES[family]
    signature = inspect.signature(cls.__init__)
    hints = typing.get_type_hints(cls.__init__)
    allowed = [p for p in signature.parameters if p != "self"]
    kwargs: dict[str, Any] = {}
    for key, value in spec["kwargs"].items():
        path = _join(where, key)
        if key not in allowed:
            raise ConfigError(path, value, f"is not a setting of the {family!r} network", allowed)
        if key in MEMBERS.get(family, ()):
            kwargs[key] = build_net(value, path)
            continue
        if key in CONTRACT_FIXED and value != CONTRACT_FIXED[key][0]:
            raise ConfigError(path, value, CONTRACT_FIXED[key][1], [CONTRACT_FIXED[key][0]])
        hint = hints.get(key, Any)
        if not _matches(value, hint):
            raise ConfigError(path, value, f"must be of type {_hint_text(hint)}")
        kwargs[key] = value
    missing = [
        p
        for p in MEMBERS.get(family, ())
        if p not in kwargs and signature.parameters[p].default is inspect.Parameter.empty
    ]
    if missing:
        raise ConfigError(_join(where, missing[0]), None, f"the {family!r} network needs this member network")
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        raise exc.under(where) from None


def spec_from_targets(node: Any, where: str) -> dict[str, Any]:
    """A spec from an old checkpoint's Hydra-style network config (`_target_` + keywords).

    Each `_target_` must be, as a string, one of `CLASS_PATHS`; anything else is refused with the
    key that holds it. Nothing is imported or called.
    """
    if not isinstance(node, Mapping):
        raise ConfigError(where, node, "expected a network config mapping")
    target = node.get(TARGET_KEY)
    if not isinstance(target, str) or target not in CLASS_PATHS:
        raise ConfigError(
            _join(where, TARGET_KEY), target, "is not one of layoutnet's network classes", sorted(CLASS_PATHS)
        )
    family = CLASS_PATHS[target]
    kwargs: dict[str, Any] = {}
    for key, value in node.items():
        if key == TARGET_KEY:
            continue
        if not isinstance(key, str) or key.startswith("_"):
            raise ConfigError(_join(where, str(key)), value, "is not a network setting")
        if key in MEMBERS.get(family, ()):
            kwargs[key] = spec_from_targets(value, _join(where, key))
        else:
            kwargs[key] = _plain(value, _join(where, key))
    return {"family": family, "kwargs": kwargs}
