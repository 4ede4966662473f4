"""Export settings: one structured config (the `export` config group's schema), validated once.

`ExportSettings` is registered in Hydra's ConfigStore as `export/export_schema`; every file of the
`export` group starts from it (`defaults: [export_schema, _self_]`), so its defaults exist only here
and Hydra refuses a misspelt key or a value of the wrong type when the config is composed. The
checks that need more than a type (allowed values, combinations) are in `check()`, run once by
`from_config` before any training.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from layoutnet.errors import ConfigError

SCHEMA_NAME = "export_schema"

FORMATS = {"mlprogram": ".mlpackage", "neuralnetwork": ".mlmodel"}
PRECISIONS = ("fp32", "fp16")
ML_PROGRAM_TARGETS = ("iOS15", "iOS16", "iOS17", "iOS18", "macOS12", "macOS13", "macOS14", "macOS15")
NEURAL_NETWORK_TARGETS = ("iOS13", "iOS14", "macOS10_15", "macOS11")
FRONTENDS = ("trace", "torch_export")
APP_PRECISIONS = ("fp32", "fp16_storage", "fp16_wide", "fp16", "fp16_sequential")
"""How a device may compute the model, most to least precise (the reference executor's precision modes):
`fp32` (a CPU); `fp16_storage` (every tensor stored in float16, arithmetic and accumulation in float32:
Core ML's GPU default); `fp16_wide` (float16 arithmetic, products rounded to float16 and summed in a
wide accumulator: the Neural Engine as a reverse-engineering write-up describes it); `fp16` (float16
products summed in a pairwise float16 tree: adder trees, SIMD lanes folded in halves); `fp16_sequential`
(one running float16 sum: a GPU with `allowLowPrecisionAccumulationOnGPU`). `export.app_precision` names
the least precise one the app's device may use; parity must hold at it and at every one before it."""
COMPRESSIONS = ("none", "int8", "palettize6", "palettize4", "auto")
LEVELS_BY_SIZE = ("palettize4", "palettize6", "int8", "none")
"""What `export.compression=auto` tries, smallest artifact first: 4-, 6- and 8-bit weights, then none."""
GRANULARITIES = {
    "int8": ("per_channel", "per_tensor", "per_block"),
    "palettize6": ("per_tensor", "per_grouped_channel"),
    "palettize4": ("per_tensor", "per_grouped_channel"),
}
IOS18_GRANULARITIES = ("per_block", "per_grouped_channel")
MODES = {
    "int8": ("linear_symmetric", "linear"),
    "palettize6": ("kmeans", "uniform"),
    "palettize4": ("kmeans", "uniform"),
}


@dataclass
class CompressionBudget:
    """How much a compression level may cost against the uncompressed model (percentage points)."""

    # Accuracy lost on each real-text split (layoutnet.quality.REALTEXT_SPLITS: words typed by people,
    # sentences, short texts): a careful default, the size of one or two real words in a thousand.
    realtext_points: float = 0.2
    # Accuracy lost on the export's validation rows.
    validation_points: float = 0.2
    # Harmful rewrites added on each real-text split (points of its correctly typed rows), each model
    # at its own correction threshold - the pair the app would run. The threshold keeps harm on real
    # words <= 0.1% for either model; 0.2 allows the one or two rows (a row is 0.08-0.11 points) that
    # re-measuring the threshold on the compressed weights moves on the other splits.
    harm_points: float = 0.2


@dataclass
class ExportSettings:
    # Export at the end of every fit (export=none sets false).
    enabled: bool = True
    # neuralnetwork (.mlmodel: what the app loads today, widest OS support) or mlprogram (.mlpackage).
    format: str = "neuralnetwork"
    # Storage/compute precision of the saved file: fp32, or fp16 (ML Programs only).
    precision: str = "fp32"
    # null: the lowest target the file needs: iOS15 for mlprogram, iOS16 when compressed, iOS18 for
    # per_block / per_grouped_channel compression; the converter's default for neuralnetwork. A target
    # set here is kept, and a compression it cannot hold is refused.
    minimum_deployment_target: str | None = None
    # How the PyTorch graph is captured: trace (torch.jit.trace, strict) or torch_export (torch.export).
    frontend: str = "trace"
    # Weight compression of an ML Program: none, int8 (linear quantization), palettize6, palettize4,
    # or auto: the smallest of palettize4, palettize6, int8, none within compression_budget.
    compression: str = "none"
    # Largest cost of compression against the uncompressed model; a level past it is refused.
    compression_budget: CompressionBudget = field(default_factory=CompressionBudget)
    # null: per_channel for int8, per_tensor for palettization (per_block and per_grouped_channel need
    # iOS18, which the deployment target then becomes unless it is set).
    compression_granularity: str | None = None
    # null: linear_symmetric for int8, kmeans for palettization.
    compression_mode: str | None = None
    # Block size (int8 per_block) or channel group size (palettization per_grouped_channel).
    compression_group_size: int = 32
    # The least precise way the app's device may compute (APP_PRECISIONS); parity must be within
    # tolerance at it and at every more precise one (the bracket), the others are reported.
    # fp16, the default, is what compute units `.all` with MLModelConfiguration() defaults may run:
    # the CPU (fp32), the GPU with its default float32 accumulation (fp16_storage: the app has not
    # set allowLowPrecisionAccumulationOnGPU) and the Neural Engine, which computes in float16 and
    # whose summation order is not documented: fp16 products into a wide accumulator (fp16_wide) or
    # an fp16 adder tree (fp16) - both gate. fp16_sequential: an app that allows low-precision
    # accumulation on the GPU; fp16_storage: `.cpuAndGPU`; fp32: `.cpuOnly`.
    app_precision: str = "fp16"
    # String values the app reads from the model's metadata (e.g. correction_threshold); also written into
    # parity_vectors.json and manifest.json.
    app_metadata: dict[str, str] = field(default_factory=dict)
    # The artifact's file name, without extension.
    filename: str = "LayoutClassifier"
    # The export folder (artifact + parity_vectors.json + manifest.json); null: <run dir>/export.
    output_dir: str | None = None
    # Max |softmax difference| allowed between the saved artifact and PyTorch.
    tolerance: float = 0.01
    parity_samples: int = 2000
    random_samples: int = 200
    parity_vectors: int = 300
    # Rows checked at fp16 arithmetic, the executor's slowest mode (every product and partial sum
    # rounded to float16 in NumPy): evenly spaced over the parity rows, plus every edge case. fp32
    # and fp16 storage check every row. 0: every row at fp16 arithmetic too.
    fp16_arithmetic_samples: int = 256
    author: str = "layoutnet"
    version: str = "1.0"
    description: str = "Keyboard-layout classifier for OMFK: 20 character ids in, 9 class logits out."

    def __post_init__(self) -> None:
        if isinstance(self.compression_budget, Mapping):  # from a plain dict or a composed config
            budget = dict(self.compression_budget)
            _known_keys("export.compression_budget", budget, CompressionBudget)
            self.compression_budget = CompressionBudget(**budget)

    @classmethod
    def from_config(cls, config: Any) -> ExportSettings:
        """Settings from the `export` config node (or a plain dict), checked."""
        if isinstance(config, ExportSettings):
            config.check()
            return config
        if isinstance(config, DictConfig):
            config = OmegaConf.to_container(config, resolve=True)
        values = dict(config or {})
        _known_keys("export", values, cls)
        settings = cls(**values)
        settings.check()
        return settings

    def check(self) -> None:
        _one_of("format", self.format, FORMATS)
        _one_of("precision", self.precision, PRECISIONS)
        _one_of("frontend", self.frontend, FRONTENDS)
        _one_of("app_precision", self.app_precision, APP_PRECISIONS)
        _one_of("compression", self.compression, COMPRESSIONS)
        if self.format == "neuralnetwork" and self.precision != "fp32":
            raise ConfigError(
                "export.precision",
                self.precision,
                "fp16 is for ML Programs; use export.format=mlprogram or precision fp32",
                ["fp32"],
            )
        if self.compression != "none":
            if self.format != "mlprogram":
                raise ConfigError(
                    "export.compression",
                    self.compression,
                    "weight compression needs an ML Program; add export.format=mlprogram",
                    ["none"],
                )
            if self.compression == "auto":
                for key in ("compression_granularity", "compression_mode"):
                    if getattr(self, key) is not None:
                        raise ConfigError(
                            f"export.{key}",
                            getattr(self, key),
                            "export.compression=auto takes each level's default; unset it or pick a level",
                            ["null"],
                        )
            else:
                _one_of("compression_granularity", self.granularity, GRANULARITIES[self.compression])
                _one_of("compression_mode", self.mode, MODES[self.compression])
            if self.mode == "kmeans" and importlib.util.find_spec("sklearn") is None:
                raise ConfigError(
                    "export.compression_mode",
                    self.mode,
                    "k-means palettization needs scikit-learn (pip install scikit-learn), or use uniform",
                    MODES[self.compression],
                )
            if self.compression_group_size < 1:
                raise ConfigError(
                    "export.compression_group_size", self.compression_group_size, "must be >= 1"
                )
        targets = ML_PROGRAM_TARGETS if self.format == "mlprogram" else NEURAL_NETWORK_TARGETS
        if self.minimum_deployment_target is not None:
            _one_of("minimum_deployment_target", self.minimum_deployment_target, targets)
            if self.compression != "none" and self.minimum_deployment_target in ("iOS15", "macOS12"):
                raise ConfigError(
                    "export.minimum_deployment_target",
                    self.minimum_deployment_target,
                    "compressed weights need iOS16 / macOS13 or newer",
                    targets[1:4] + targets[5:],
                )
        if self.granularity in IOS18_GRANULARITIES and self.deployment_target not in ("iOS18", "macOS15"):
            raise ConfigError(
                "export.compression_granularity",
                self.granularity,
                f"needs export.minimum_deployment_target=iOS18 or macOS15 (it is {self.deployment_target})",
                GRANULARITIES[self.compression],
            )
        for name in ("realtext_points", "validation_points", "harm_points"):
            value = getattr(self.compression_budget, name)
            if not 0 <= value <= 100:
                raise ConfigError(f"export.compression_budget.{name}", value, "must be in [0, 100] points")
        if not 0 < self.tolerance <= 1:
            raise ConfigError("export.tolerance", self.tolerance, "must be in (0, 1]")
        for name in ("parity_samples", "random_samples", "parity_vectors", "fp16_arithmetic_samples"):
            if getattr(self, name) < (1 if name == "parity_samples" else 0):
                raise ConfigError(f"export.{name}", getattr(self, name), "must not be negative or zero")
        if not self.filename or "/" in self.filename or self.filename.startswith("."):
            raise ConfigError("export.filename", self.filename, "must be a plain file name without extension")

    def levels(self) -> tuple[str, ...]:
        """The compression levels the export tries, in order (one unless `auto`)."""
        return LEVELS_BY_SIZE if self.compression == "auto" else (self.compression,)

    def at_level(self, level: str) -> ExportSettings:
        """These settings with `compression` one concrete level (what `auto` tries)."""
        return replace(self, compression=level)

    @property
    def granularity(self) -> str | None:
        if self.compression in ("none", "auto"):
            return None
        return self.compression_granularity or ("per_channel" if self.compression == "int8" else "per_tensor")

    @property
    def mode(self) -> str | None:
        if self.compression in ("none", "auto"):
            return None
        return self.compression_mode or ("linear_symmetric" if self.compression == "int8" else "kmeans")

    @property
    def deployment_target(self) -> str | None:
        """The deployment target passed to the converter (None: its own default)."""
        if self.minimum_deployment_target:
            return self.minimum_deployment_target
        if self.format == "mlprogram":
            if self.granularity in IOS18_GRANULARITIES:
                return "iOS18"
            return "iOS16" if self.compression != "none" else "iOS15"
        return None

    @property
    def extension(self) -> str:
        return FORMATS[self.format]

    def export_dir(self, default_dir: Path) -> Path:
        return Path(self.output_dir).expanduser() if self.output_dir else Path(default_dir)

    def as_dict(self) -> dict:
        return asdict(self)


def _known_keys(prefix: str, values: dict, schema: type) -> None:
    known = {f.name for f in fields(schema)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(
            f"{prefix}.{unknown[0]}", values[unknown[0]], "unknown export setting", sorted(known)
        )


def _one_of(name: str, value: object, allowed) -> None:
    if value not in allowed:
        raise ConfigError(f"export.{name}", value, f"unknown {name.replace('_', ' ')}", list(allowed))


def register_schema() -> None:
    """Make `export_schema` available to the `export` group's files (idempotent)."""
    ConfigStore.instance().store(group="export", name=SCHEMA_NAME, node=ExportSettings)


register_schema()
