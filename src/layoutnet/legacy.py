"""Loading the OMFK app's legacy `state_dict` files onto layoutnet's own trace-safe models.

The app's older training scripts saved plain `state_dict`s of four architectures (see
`shared/reference/omfk_legacy_checkpoints.md`):

    v1           "LayoutClassifier"     38,121 parameters   -> CompactCNN
    cnn          "LayoutClassifierV2"   2,636,169           -> CNNClassifier (crop padding)
    transformer  "LayoutTransformer"    826,121             -> TransformerClassifier (post-norm, no mask)
    ensemble     "EnsembleModel"        3,462,292           -> EnsembleClassifier(cnn, transformer)

Each legacy tensor has exactly one place in our model (the ensemble's two scalar gates
`weight_cnn` and `weight_transformer` become the two entries of `combiner.weights`), and in eval
mode our model computes the same function. Checking is strict: every legacy tensor must be
present with its exact shape and nothing else may be in the file. The only variants accepted
are those the old scripts actually produced: a positional table with more than 20 rows (the
first 20 are used), a `module.` prefix from `nn.DataParallel`, the state_dict wrapped in a
checkpoint dict, and BatchNorm `num_batches_tracked` entries being absent.

`load_legacy` builds the matching model; `init_from_legacy` copies a legacy file's weights into a
network built from a config (fine-tuning). Nothing here writes to disk.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from torch import nn

from layoutnet.contract import NUM_CLASSES, SEQ_LEN, VOCAB_SIZE
from layoutnet.errors import CheckpointError, ConfigError
from layoutnet.modelfile import read_torch_file
from layoutnet.models import count_parameters
from layoutnet.models.netconfig import load_net_spec
from layoutnet.models.registry import build_net

LEGACY_ARCHITECTURES: tuple[str, ...] = ("v1", "cnn", "transformer", "ensemble")

LEGACY_CLASS_NAMES: dict[str, str] = {
    "v1": "LayoutClassifier",
    "cnn": "LayoutClassifierV2",
    "transformer": "LayoutTransformer",
    "ensemble": "EnsembleModel",
}

CHECKPOINT_KEYS: tuple[str, ...] = ("state_dict", "model_state_dict", "model")
"""Keys of a checkpoint dict under which a wrapped state_dict is looked for, in this order."""

DATAPARALLEL_PREFIX = "module."
_MAX_LISTED = 30


# --------------------------------------------------------------------------------------------
# Our models


LEGACY_NET_FILES: dict[str, str] = {
    "v1": "compact_cnn",
    "cnn": "omfk_cnn",
    "transformer": "omfk_transformer",
    "ensemble": "omfk",
}
"""The `conf/model/net/<name>.yaml` that sizes layoutnet's network of each legacy architecture (the
same files the experiments use: `model=compact_cnn`, `model=omfk`)."""


def legacy_net_spec(arch: str) -> dict:
    """The network spec (registry family + keywords) of layoutnet's model for legacy `arch`."""
    _check_arch(arch)
    return load_net_spec(LEGACY_NET_FILES[arch])


def build_legacy_model(arch: str) -> nn.Module:
    """layoutnet's model that computes the legacy architecture `arch` (randomly initialised)."""
    return build_net(legacy_net_spec(arch))


def _check_arch(arch: str) -> None:
    if arch not in LEGACY_ARCHITECTURES:
        raise ConfigError("legacy", arch, "unknown legacy architecture", ("auto", *LEGACY_ARCHITECTURES))


# --------------------------------------------------------------------------------------------
# The legacy tensors and where each goes in our models


@dataclass(frozen=True)
class _Entry:
    legacy: str
    ours: str
    shape: tuple[int, ...]
    index: int | None = None  # position inside `ours` when several legacy scalars share one tensor
    buffer: bool = False
    optional: bool = False  # num_batches_tracked: absent in some files, unused in eval
    integer: bool = False
    min_rows: bool = False  # positional table: dim 1 may be longer than SEQ_LEN; the first SEQ_LEN are used


def _module(legacy: str, ours: str, **shapes: tuple[int, ...]) -> list[_Entry]:
    return [_Entry(f"{legacy}.{n}", f"{ours}.{n}", s) for n, s in shapes.items()]


def _linear(legacy: str, ours: str, out: int, inp: int) -> list[_Entry]:
    return _module(legacy, ours, weight=(out, inp), bias=(out,))


def _conv(legacy: str, ours: str, out: int, inp: int, k: int) -> list[_Entry]:
    return _module(legacy, ours, weight=(out, inp, k), bias=(out,))


def _batchnorm(legacy: str, ours: str, n: int) -> list[_Entry]:
    entries = _module(legacy, ours, weight=(n,), bias=(n,))
    for stat in ("running_mean", "running_var"):
        entries.append(_Entry(f"{legacy}.{stat}", f"{ours}.{stat}", (n,), buffer=True))
    entries.append(
        _Entry(
            f"{legacy}.num_batches_tracked",
            f"{ours}.num_batches_tracked",
            (),
            buffer=True,
            optional=True,
            integer=True,
        )
    )
    return entries


def _v1_entries(kw: dict) -> list[_Entry]:
    embed, (c1, c2), k = kw["embed_dim"], kw["channels"], kw["kernel_size"]
    return [
        _Entry("embedding.weight", "embedding.weight", (VOCAB_SIZE, embed)),
        *_conv("conv1", "features.0.conv", c1, embed, k),
        *_conv("conv2", "features.3.conv", c2, c1, k),
        *_linear("fc", "fc", NUM_CLASSES, c2),
    ]


def _cnn_entries(kw: dict) -> list[_Entry]:
    embed, branch, deep = kw["embed_dim"], kw["branch_channels"], kw["deep_channels"]
    width = branch * len(kw["branch_kernels"])
    entries = [_Entry("embedding.weight", "embedding.weight", (VOCAB_SIZE, embed))]
    for i, k in enumerate(kw["branch_kernels"]):
        entries += _conv(f"conv{k}", f"branches.branches.{i}.conv", branch, embed, k)
    entries += _batchnorm("bn1", "bn1", width)
    for i, (suffix, k) in enumerate(zip("ab", kw["mix_kernels"], strict=True)):
        entries += _conv(f"conv2_{suffix}", f"mix.branches.{i}.conv", width, width, k)
    mixed = width * len(kw["mix_kernels"])
    entries += _batchnorm("bn2", "bn2", mixed)
    entries += _conv("conv3_deep", "deep.conv", deep, mixed, kw["deep_kernel"])
    entries += _batchnorm("bn3", "bn3", deep)
    dims = [deep * len(kw["pooling"]), *kw["head_dims"], NUM_CLASSES]
    for i, (inp, out) in enumerate(itertools.pairwise(dims)):
        entries += _linear(f"fc{i + 1}", f"head.layers.{i}", out, inp)
    return entries


def _transformer_entries(kw: dict) -> list[_Entry]:
    d, ff = kw["d_model"], kw["ff_dim"]
    entries = [
        _Entry("embedding.weight", "embedding.weight", (VOCAB_SIZE, d)),
        _Entry("pos_encoder.pe", "pos_encoder.pe", (1, SEQ_LEN, d), buffer=True, min_rows=True),
    ]
    for i in range(kw["num_layers"]):
        old, new = f"transformer.layers.{i}", f"layers.{i}"
        entries += [
            _Entry(f"{old}.self_attn.in_proj_weight", f"{new}.self_attn.in_proj.weight", (3 * d, d)),
            _Entry(f"{old}.self_attn.in_proj_bias", f"{new}.self_attn.in_proj.bias", (3 * d,)),
            *_linear(f"{old}.self_attn.out_proj", f"{new}.self_attn.out_proj", d, d),
            *_linear(f"{old}.linear1", f"{new}.linear1", ff, d),
            *_linear(f"{old}.linear2", f"{new}.linear2", d, ff),
            *_module(f"{old}.norm1", f"{new}.norm1", weight=(d,), bias=(d,)),
            *_module(f"{old}.norm2", f"{new}.norm2", weight=(d,), bias=(d,)),
        ]
    dims = [d * len(kw["pooling"]), *kw["head_dims"], NUM_CLASSES]
    for i, (inp, out) in enumerate(itertools.pairwise(dims)):
        entries += _linear(f"fc{i + 1}", f"head.layers.{i}", out, inp)
    return entries


def _prefixed(prefix: str, entries: list[_Entry]) -> list[_Entry]:
    return [replace(e, legacy=prefix + e.legacy, ours=prefix + e.ours) for e in entries]


def _ensemble_entries(kw: dict) -> list[_Entry]:
    return [
        _Entry("weight_cnn", "combiner.weights", (), index=0),
        _Entry("weight_transformer", "combiner.weights", (), index=1),
        *_prefixed("cnn.", _cnn_entries(kw["cnn"]["kwargs"])),
        *_prefixed("transformer.", _transformer_entries(kw["transformer"]["kwargs"])),
    ]


_ENTRY_BUILDERS = {
    "v1": _v1_entries,
    "cnn": _cnn_entries,
    "transformer": _transformer_entries,
    "ensemble": _ensemble_entries,
}
_ENTRIES: dict[str, list[_Entry]] = {
    arch: builder(legacy_net_spec(arch)["kwargs"]) for arch, builder in _ENTRY_BUILDERS.items()
}
"""Every legacy tensor of each architecture and its place in our model, sized from the yaml."""

LEGACY_SHAPES: dict[str, dict[str, tuple[int, ...]]] = {
    arch: {e.legacy: e.shape for e in entries} for arch, entries in _ENTRIES.items()
}
"""Every tensor of each legacy state_dict and its shape, in the order the old scripts saved them
(`pos_encoder.pe` is listed with 20 rows; files may hold more)."""

LEGACY_PARAMETER_COUNTS: dict[str, int] = {
    arch: sum(math.prod(e.shape) for e in entries if not e.buffer) for arch, entries in _ENTRIES.items()
}


# --------------------------------------------------------------------------------------------
# Reading files


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a legacy checkpoint file, unwrapped from a checkpoint dict if needed.

    Loads with `weights_only=True` (no arbitrary code from the file runs). Raises CheckpointError
    for a missing, unreadable, truncated or non-torch file, and for contents that are not a
    mapping of names to tensors.
    """
    state_dict, _ = _read(Path(path))
    return state_dict


def _read(path: Path) -> tuple[dict[str, torch.Tensor], list[str]]:
    return _unwrap(read_torch_file(path), path)


def _tensor_mapping(obj: object) -> bool:
    return isinstance(obj, Mapping) and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()
    )


def _unwrap(obj: object, path: Path) -> tuple[dict[str, torch.Tensor], list[str]]:
    notes: list[str] = []
    if not isinstance(obj, Mapping):
        raise CheckpointError(
            f"{path}: holds a {type(obj).__name__}, not a state_dict (a mapping of names to tensors); save "
            f"the model with torch.save(model.state_dict(), path)"
        )
    if not _tensor_mapping(obj):
        wrapped = next((k for k in CHECKPOINT_KEYS if isinstance(obj.get(k), Mapping)), None)
        if wrapped is None:
            bad = [f"{k!r} ({type(v).__name__})" for k, v in obj.items() if not isinstance(v, torch.Tensor)]
            raise CheckpointError(
                f"{path}: a dict that is neither a state_dict nor a checkpoint dict with its state_dict "
                f"under one of {', '.join(map(repr, CHECKPOINT_KEYS))}; non-tensor entries: {_listing(bad)}"
            )
        others = [str(k) for k in obj if k != wrapped]
        obj = obj[wrapped]
        if not _tensor_mapping(obj):
            bad = [f"{k!r} ({type(v).__name__})" for k, v in obj.items() if not isinstance(v, torch.Tensor)]
            raise CheckpointError(
                f"{path}: the checkpoint's {wrapped!r} entry is not a state_dict (a mapping of names to "
                f"tensors); non-tensor entries: {_listing(bad)}"
            )
        notes.append(
            f"unwrapped from the checkpoint dict's {wrapped!r} entry"
            + (f" (ignored: {', '.join(others)})" if others else "")
        )
    if not obj:
        raise CheckpointError(f"{path}: the state_dict is empty; this is not a trained model")
    return dict(obj), notes


# --------------------------------------------------------------------------------------------
# Comparing a state_dict with the legacy architectures


def _strip_dataparallel(state_dict: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    if state_dict and all(k.startswith(DATAPARALLEL_PREFIX) for k in state_dict):
        stripped = {k[len(DATAPARALLEL_PREFIX) :]: v for k, v in state_dict.items()}
        return stripped, [
            f"removed the {DATAPARALLEL_PREFIX!r} prefix (nn.DataParallel) from all {len(stripped)} names"
        ]
    return dict(state_dict), []


def _shape_text(shape: tuple[int, ...] | torch.Size) -> str:
    return "[" + ", ".join(str(int(s)) for s in shape) + "]"


def _expected_text(entry: _Entry) -> str:
    if entry.min_rows:
        return f"[1, >={SEQ_LEN}, {entry.shape[2]}]"
    return _shape_text(entry.shape)


@dataclass
class _Comparison:
    arch: str
    matched: int = 0
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    wrong: list[str] = field(default_factory=list)

    @property
    def exact(self) -> bool:
        return not (self.missing or self.unexpected or self.wrong)


def _shape_ok(entry: _Entry, shape: torch.Size) -> bool:
    if entry.min_rows:
        return len(shape) == 3 and shape[0] == 1 and shape[1] >= SEQ_LEN and shape[2] == entry.shape[2]
    return tuple(shape) == entry.shape


def _compare(state_dict: Mapping[str, torch.Tensor], arch: str) -> _Comparison:
    result = _Comparison(arch)
    known = set()
    for entry in _ENTRIES[arch]:
        known.add(entry.legacy)
        tensor = state_dict.get(entry.legacy)
        if tensor is None:
            if not entry.optional:
                result.missing.append(f"{entry.legacy} {_expected_text(entry)}")
            continue
        if not _shape_ok(entry, tensor.shape):
            result.wrong.append(
                f"{entry.legacy}: expected {_expected_text(entry)}, found {_shape_text(tensor.shape)}"
            )
        elif entry.integer and (tensor.is_floating_point() or tensor.is_complex()):
            result.wrong.append(f"{entry.legacy}: expected an integer tensor, found {tensor.dtype}")
        elif not entry.integer and not tensor.is_floating_point():
            result.wrong.append(f"{entry.legacy}: expected a floating-point tensor, found {tensor.dtype}")
        else:
            result.matched += 1
    result.unexpected = [f"{k} {_shape_text(v.shape)}" for k, v in state_dict.items() if k not in known]
    return result


def _listing(items: list[str]) -> str:
    shown = ", ".join(items[:_MAX_LISTED])
    if len(items) > _MAX_LISTED:
        shown += f", ... ({len(items) - _MAX_LISTED} more)"
    return shown


def _problems(comparison: _Comparison) -> str:
    lines = []
    if comparison.missing:
        lines.append(f"  missing keys ({len(comparison.missing)}): {_listing(comparison.missing)}")
    if comparison.unexpected:
        lines.append(f"  unexpected keys ({len(comparison.unexpected)}): {_listing(comparison.unexpected)}")
    if comparison.wrong:
        lines.append(f"  wrong shapes or types ({len(comparison.wrong)}): {_listing(comparison.wrong)}")
    return "\n".join(lines)


def _exact_matches(state_dict: Mapping[str, torch.Tensor]) -> list[str]:
    return [arch for arch in LEGACY_ARCHITECTURES if _compare(state_dict, arch).exact]


def _hints(state_dict: Mapping[str, torch.Tensor]) -> list[str]:
    """Explanations for files that are close to, but are not, legacy state_dicts."""
    hints = []
    heads = {k.split(".", 1)[0] for k in state_dict}
    if len(heads) == 1 and all("." in k for k in state_dict):
        prefix = next(iter(heads)) + "."
        inner = {k[len(prefix) :]: v for k, v in state_dict.items()}
        inside = _exact_matches(inner)
        what = f"without it this would be a {inside[0]!r} file" if inside else "no legacy architecture fits"
        hints.append(
            f"every name starts with {prefix!r} ({what}). Only the {DATAPARALLEL_PREFIX!r} prefix of "
            f"nn.DataParallel is removed: other prefixes come from training checkpoints of wrapping models "
            f"(for example a Lightning checkpoint), which are not legacy OMFK files. Load such a file with "
            f"the tool that wrote it, or save the inner model with torch.save(inner_model.state_dict(), path)"
        )
    names = set(state_dict)
    for arch, entries in _ENTRIES.items():
        ours = {e.ours for e in entries}
        if names and names <= ours and len(names) >= len(ours) // 2:
            hints.append(
                f"these are layoutnet's own names for the {arch!r} model, so this is a layoutnet checkpoint, "
                f"not a legacy OMFK file; load it as a layoutnet model instead of through the legacy loader"
            )
            break
    return hints


def _summary(state_dict: Mapping[str, torch.Tensor]) -> str:
    values = sum(v.numel() for v in state_dict.values())
    first = ", ".join(list(state_dict)[:6])
    return f"{len(state_dict)} tensors, {values:,} values (first names: {first})"


def detect_architecture(state_dict: Mapping[str, torch.Tensor]) -> str:
    """The legacy architecture whose tensor names and shapes `state_dict` has exactly.

    A `module.` prefix is ignored. Raises CheckpointError describing what was found and how it
    differs from the closest architecture when none matches.
    """
    state_dict, _ = _strip_dataparallel(state_dict)
    matches = _exact_matches(state_dict)
    if matches:
        return matches[0]
    closest = max(
        (_compare(state_dict, arch) for arch in LEGACY_ARCHITECTURES),
        key=lambda c: (c.matched - len(c.unexpected), -len(c.missing)),
    )
    message = (
        f"no legacy OMFK architecture ({', '.join(LEGACY_ARCHITECTURES)}) matches this state_dict: "
        f"{_summary(state_dict)}.\n"
        f"Closest is {closest.arch!r} ({LEGACY_CLASS_NAMES[closest.arch]}, {len(_ENTRIES[closest.arch])} "
        f"tensors); it differs in:\n{_problems(closest)}"
    )
    hints = _hints(state_dict) or [
        "layoutnet's model classes express these four architectures only; a file from a modified training "
        "script cannot be loaded as a legacy model"
    ]
    for hint in hints:
        message += f"\nNote: {hint}."
    raise CheckpointError(message)


def describe_detection(state_dict: Mapping[str, torch.Tensor]) -> str:
    """One line saying what `state_dict` is, e.g. "EnsembleModel: 92 tensors, 3,462,292 parameters";
    for an unrecognised file, what it holds. Never raises."""
    state_dict, notes = _strip_dataparallel(state_dict)
    matches = _exact_matches(state_dict)
    if not matches:
        return f"not a legacy OMFK state_dict: {_summary(state_dict)}"
    arch = matches[0]
    text = (
        f"{LEGACY_CLASS_NAMES[arch]} ({arch}): {len(state_dict)} tensors, "
        f"{LEGACY_PARAMETER_COUNTS[arch]:,} parameters"
    )
    extras = notes + _variant_notes(state_dict, arch)
    if extras:
        text += "; " + "; ".join(extras)
    return text


def _variant_notes(state_dict: Mapping[str, torch.Tensor], arch: str) -> list[str]:
    notes = []
    for entry in _ENTRIES[arch]:
        tensor = state_dict.get(entry.legacy)
        if entry.min_rows and tensor is not None and tensor.shape[1] != SEQ_LEN:
            notes.append(f"{entry.legacy} has {tensor.shape[1]} rows; the first {SEQ_LEN} are used")
    absent = [e.legacy for e in _ENTRIES[arch] if e.optional and e.legacy not in state_dict]
    if absent:
        notes.append(f"no {', '.join(absent)} in the file (unused in eval; set to 0)")
    return notes


# --------------------------------------------------------------------------------------------
# Converting


def convert_state_dict(state_dict: Mapping[str, torch.Tensor], arch: str) -> dict[str, torch.Tensor]:
    """The legacy `state_dict` of architecture `arch` renamed (and, for the positional table,
    trimmed) to the `state_dict()` names of `build_legacy_model(arch)`.

    Strict: missing, unexpected and wrongly shaped tensors raise CheckpointError listing each of
    them. Floating-point tensors are returned as float32. BatchNorm `num_batches_tracked` entries
    are optional (absent ones are left out of the result).
    """
    converted, _ = _convert(state_dict, arch, "state_dict")
    return converted


def _convert(
    state_dict: Mapping[str, torch.Tensor], arch: str, source: str
) -> tuple[dict[str, torch.Tensor], list[str]]:
    _check_arch(arch)
    state_dict, notes = _strip_dataparallel(state_dict)
    comparison = _compare(state_dict, arch)
    if not comparison.exact:
        message = (
            f"{source} does not match the legacy {arch!r} architecture ({LEGACY_CLASS_NAMES[arch]}, "
            f"{len(_ENTRIES[arch])} tensors) that was requested:\n{_problems(comparison)}"
        )
        others = [a for a in _exact_matches(state_dict) if a != arch]
        if others:
            message += (
                f"\nThis looks like a {others[0]!r} file ({LEGACY_CLASS_NAMES[others[0]]}); pass "
                f"legacy={others[0]} or legacy=auto."
            )
        else:
            for hint in _hints(state_dict):
                message += f"\nNote: {hint}."
        raise CheckpointError(message)

    notes += _variant_notes(state_dict, arch)
    converted: dict[str, torch.Tensor] = {}
    gathered: dict[str, dict[int, torch.Tensor]] = {}
    cast: set[torch.dtype] = set()
    non_finite = []
    for entry in _ENTRIES[arch]:
        tensor = state_dict.get(entry.legacy)
        if tensor is None:
            continue
        tensor = tensor.detach()
        if entry.integer:
            converted[entry.ours] = tensor.to(torch.int64)
            continue
        if tensor.dtype != torch.float32:
            cast.add(tensor.dtype)
            tensor = tensor.to(torch.float32)
        if not bool(torch.isfinite(tensor).all()):
            non_finite.append(entry.legacy)
        if entry.min_rows:
            tensor = tensor[:, :SEQ_LEN, :].clone()
        if entry.index is None:
            converted[entry.ours] = tensor
        else:
            gathered.setdefault(entry.ours, {})[entry.index] = tensor
    for name, parts in gathered.items():
        converted[name] = torch.stack([parts[i] for i in sorted(parts)])
    if non_finite:
        raise CheckpointError(
            f"{source}: tensors holding NaN or infinite values: {_listing(non_finite)}; "
            f"the training run that wrote this file diverged, so the model cannot be used"
        )
    if cast:
        notes.append(f"converted {', '.join(sorted(str(d) for d in cast))} tensors to float32")
    return converted, notes


# --------------------------------------------------------------------------------------------
# Loading


def load_legacy(path: str | Path, arch: str = "auto") -> tuple[nn.Module, dict[str, object]]:
    """Load a legacy OMFK state_dict file onto layoutnet's model of the same function.

    `arch` is one of LEGACY_ARCHITECTURES or "auto" (recognised from names and shapes). Returns
    the model in eval mode and an info dict: arch, legacy_class, path, num_tensors (in the
    file's state_dict), num_parameters, description and notes (variants that were handled).
    """
    if arch != "auto":
        _check_arch(arch)
    path = Path(path)
    state_dict, notes = _read(path)
    if arch == "auto":
        try:
            arch = detect_architecture(state_dict)
        except CheckpointError as exc:
            raise CheckpointError(f"{path}: {exc}") from None
        notes.append(f"architecture detected from tensor names and shapes: {arch}")
    converted, convert_notes = _convert(state_dict, arch, str(path))
    notes += convert_notes

    model = build_legacy_model(arch)
    full = model.state_dict()
    missing = set(full) - set(converted)
    if any(not name.endswith("num_batches_tracked") for name in missing):  # pragma: no cover - table bug
        raise CheckpointError(f"internal error: no legacy source for {sorted(missing)}")
    for name in missing:
        converted[name] = torch.zeros_like(full[name])
    model.load_state_dict(converted, strict=True)
    model.eval()
    info: dict[str, object] = {
        "arch": arch,
        "legacy_class": LEGACY_CLASS_NAMES[arch],
        "path": str(path),
        "num_tensors": len(state_dict),
        "num_parameters": count_parameters(model),
        "description": describe_detection(state_dict),
        "notes": notes,
    }
    return model, info


def _probe_ids() -> torch.Tensor:
    """Fixed [8, 20] ids: an all-padding row, full rows and rows with a padded tail."""
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(1, VOCAB_SIZE, (8, SEQ_LEN), generator=gen)
    ids[0] = 0
    for row, length in enumerate((3, 7, 12, 19), start=4):
        ids[row, length:] = 0
    return ids


def init_from_legacy(net: nn.Module, path: str | Path, arch: str = "auto") -> dict[str, object]:
    """Copy the weights of a legacy state_dict file into an already built network `net` (e.g. to
    fine-tune it), in place. `net` must have exactly the parameter names and shapes of
    `build_legacy_model(arch)`; otherwise CheckpointError lists the differences. Returns
    `load_legacy`'s info; when `net` is configured so that it computes a different function
    from the legacy model (padding, pooling, activation or mask differ), a note says so.
    """
    legacy_model, info = load_legacy(path, arch)
    arch = str(info["arch"])
    source = legacy_model.state_dict()
    target = net.state_dict()
    missing = [f"{k} {_shape_text(v.shape)}" for k, v in source.items() if k not in target]
    unexpected = [f"{k} {_shape_text(v.shape)}" for k, v in target.items() if k not in source]
    wrong = [
        f"{k}: legacy {_shape_text(v.shape)}, configured {_shape_text(target[k].shape)}"
        for k, v in source.items()
        if k in target and v.shape != target[k].shape
    ]
    if missing or unexpected or wrong:
        lines = [
            f"{path} is a legacy {arch!r} file ({LEGACY_CLASS_NAMES[arch]}), but the configured network "
            f"({type(net).__name__}) does not have its parameters:"
        ]
        if missing:
            lines.append(f"  absent from the network ({len(missing)}): {_listing(missing)}")
        if unexpected:
            lines.append(f"  not in the legacy model ({len(unexpected)}): {_listing(unexpected)}")
        if wrong:
            lines.append(f"  different shapes ({len(wrong)}): {_listing(wrong)}")
        if arch == "ensemble":
            lines.append("Configure the network as the legacy ensemble: model=omfk (or +experiment=omfk).")
        else:
            lines.append(
                f"Configure the network as the legacy {arch!r} model: model/net={LEGACY_NET_FILES[arch]} "
                f"(conf/model/net/{LEGACY_NET_FILES[arch]}.yaml)."
            )
        raise CheckpointError("\n".join(lines))

    was_training = net.training
    net.load_state_dict(source, strict=True)
    net.eval()
    try:
        device = next(net.parameters()).device
        ids = _probe_ids()
        with torch.no_grad():
            diff = (net(ids.to(device)).float().cpu() - legacy_model(ids)).abs().max().item()
    finally:
        net.train(was_training)
    notes = list(info["notes"])
    if diff > 1e-4:
        notes.append(
            f"the configured network computes a different function from the legacy {arch!r} model with "
            f"the same weights (max logit difference {diff:.3g} on probe inputs): its padding, pooling, "
            f"activation or attention mask differ, so training starts from the legacy weights, not from "
            f"its predictions"
        )
    return {**info, "notes": notes, "same_function": diff <= 1e-4}
