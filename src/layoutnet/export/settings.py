"""Export settings (the `export` config group), validated before any training starts."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from layoutnet.errors import ConfigError

FORMATS = {"mlprogram": ".mlpackage", "neuralnetwork": ".mlmodel"}
PRECISIONS = ("fp32", "fp16")
ML_PROGRAM_TARGETS = ("iOS15", "iOS16", "iOS17", "iOS18", "macOS12", "macOS13", "macOS14", "macOS15")
NEURAL_NETWORK_TARGETS = ("iOS13", "iOS14", "macOS10_15", "macOS11")


@dataclass
class ExportSettings:
    enabled: bool = True
    format: str = "neuralnetwork"
    precision: str = "fp32"
    minimum_deployment_target: str | None = None
    filename: str = "LayoutClassifier"
    output_dir: str | None = None
    tolerance: float = 0.01
    parity_samples: int = 2000
    random_samples: int = 200
    parity_vectors: int = 300
    author: str = "layoutnet"
    version: str = "1.0"
    description: str = "Keyboard-layout classifier for OMFK: 20 character ids in, 9 class logits out."

    @classmethod
    def from_config(cls, config: Any) -> ExportSettings:
        values = dict(config or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(
                f"export.{unknown[0]}", values[unknown[0]], "unknown export setting", sorted(known)
            )
        settings = cls(**values)
        settings.check()
        return settings

    def check(self) -> None:
        if self.format not in FORMATS:
            raise ConfigError("export.format", self.format, "unknown format", FORMATS)
        if self.precision not in PRECISIONS:
            raise ConfigError("export.precision", self.precision, "unknown precision", PRECISIONS)
        if self.format == "neuralnetwork" and self.precision != "fp32":
            raise ConfigError(
                "export.precision",
                self.precision,
                "fp16 is for ML Programs; use export.format=mlprogram or precision fp32",
                ["fp32"],
            )
        targets = ML_PROGRAM_TARGETS if self.format == "mlprogram" else NEURAL_NETWORK_TARGETS
        if self.minimum_deployment_target is not None and self.minimum_deployment_target not in targets:
            raise ConfigError(
                "export.minimum_deployment_target",
                self.minimum_deployment_target,
                f"not a target for export.format={self.format}",
                targets,
            )
        if not 0 < self.tolerance <= 1:
            raise ConfigError("export.tolerance", self.tolerance, "must be in (0, 1]")
        if self.parity_samples < 1:
            raise ConfigError("export.parity_samples", self.parity_samples, "must be >= 1")
        if not self.filename or "/" in self.filename:
            raise ConfigError("export.filename", self.filename, "must be a plain file name without extension")

    @property
    def extension(self) -> str:
        return FORMATS[self.format]

    def target_path(self, default_dir: Path) -> Path:
        directory = Path(self.output_dir) if self.output_dir else default_dir
        return directory / f"{self.filename}{self.extension}"

    def as_dict(self) -> dict:
        return asdict(self)
